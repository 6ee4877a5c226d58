// datastore.cfg: parse, edit and write the datastore registry; resolve --store arguments.
#include "pbskit/datastore/datastore_config.h"

#include <limits.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "pbskit/formats/property_string.h"
#include "pbskit/formats/section_config.h"

namespace pbskit {
namespace {

Result<int64_t> ParseIntIn(const std::string& key, const std::string& v, int64_t lo, int64_t hi) {
  if (v.empty() || v.size() > 18) {
    return Status::InvalidArgument("tuning: invalid value for '" + key + "': '" + v + "'");
  }
  int64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') {
      return Status::InvalidArgument("tuning: invalid integer for '" + key + "': '" + v + "'");
    }
    n = n * 10 + (c - '0');
  }
  if (n < lo || n > hi) {
    return Status::InvalidArgument(
        fmt::format("tuning: value {} for '{}' out of range ({}..{})", n, key, lo, hi));
  }
  return n;
}

// `what`: where the value sits, for the message ("tuning", "datastore 'x'").
Result<bool> ParseBool(const std::string& what, const std::string& key, const std::string& v) {
  std::string l = v;
  std::transform(l.begin(), l.end(), l.begin(), ::tolower);
  if (l == "1" || l == "true" || l == "yes" || l == "on") return true;
  if (l == "0" || l == "false" || l == "no" || l == "off") return false;
  return Status::InvalidArgument(what + ": invalid boolean for '" + key + "': '" + v + "'");
}

// Absolute path without trailing '/', symlinks resolved when the path exists.
std::string NormalizePath(const std::string& path) {
  char buf[PATH_MAX];
  std::string p = path;
  if (::realpath(path.c_str(), buf) != nullptr) p = buf;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

}  // namespace

// ---- tuning / maintenance mode ----

Result<DatastoreTuning> DatastoreTuning::Parse(std::string_view text) {
  DatastoreTuning t;
  PBSKIT_ASSIGN_OR_RETURN(PropertyList kv, ParsePropertyString(text));
  for (auto& [k, v] : kv) {
    if (k == "chunk-order") {
      if (v != "inode" && v != "none") {
        return Status::InvalidArgument("tuning: invalid chunk-order '" + v +
                                       "' (expected inode or none)");
      }
      t.chunk_order = v;
    } else if (k == "sync-level") {
      PBSKIT_ASSIGN_OR_RETURN(t.sync_level, ParseSyncLevel(v));
    } else if (k == "gc-atime-safety-check") {
      PBSKIT_ASSIGN_OR_RETURN(t.gc_atime_safety_check, ParseBool("tuning", k, v));
    } else if (k == "gc-atime-cutoff") {
      PBSKIT_ASSIGN_OR_RETURN(t.gc_atime_cutoff, ParseIntIn(k, v, 1, 2880));
    } else if (k == "gc-cache-capacity") {
      PBSKIT_ASSIGN_OR_RETURN(t.gc_cache_capacity, ParseIntIn(k, v, 0, 8388608));
    } else {
      t.other.emplace_back(k, v);
    }
  }
  return t;
}

std::string DatastoreTuning::ToString() const {
  PropertyList kv = other;
  if (chunk_order) kv.emplace_back("chunk-order", *chunk_order);
  if (sync_level) kv.emplace_back("sync-level", SyncLevelName(*sync_level));
  if (gc_atime_safety_check) {
    kv.emplace_back("gc-atime-safety-check", *gc_atime_safety_check ? "true" : "false");
  }
  if (gc_atime_cutoff) kv.emplace_back("gc-atime-cutoff", std::to_string(*gc_atime_cutoff));
  if (gc_cache_capacity) kv.emplace_back("gc-cache-capacity", std::to_string(*gc_cache_capacity));
  std::stable_sort(kv.begin(), kv.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  return FormatPropertyString(kv);
}

Result<MaintenanceMode> MaintenanceMode::Parse(std::string_view text) {
  PBSKIT_ASSIGN_OR_RETURN(PropertyList kv, ParsePropertyString(text, "type"));
  MaintenanceMode m;
  for (auto& [k, v] : kv) {
    if (k == "type") {
      if (v != "read-only" && v != "offline" && v != "delete" && v != "unmount" &&
          v != "s3-refresh") {
        return Status::InvalidArgument("unknown maintenance type: " + v);
      }
      m.type = v;
    } else if (k == "message") {
      m.message = v;
    } else {
      return Status::InvalidArgument("maintenance-mode: unknown property '" + k + "'");
    }
  }
  if (m.type.empty()) return Status::InvalidArgument("maintenance-mode: missing type");
  return m;
}

std::string MaintenanceMode::ToString() const {
  PropertyList kv{{"type", type}};
  if (message) kv.emplace_back("message", *message);
  return FormatPropertyString(kv, "type");
}

// ---- entries ----

const std::string* DatastoreConfigEntry::Get(std::string_view key) const {
  for (const auto& [k, v] : properties) {
    if (k == key) return &v;
  }
  return nullptr;
}

void DatastoreConfigEntry::Set(const std::string& key, const std::string& value) {
  for (auto& [k, v] : properties) {
    if (k == key) {
      v = value;
      return;
    }
  }
  properties.emplace_back(key, value);
}

void DatastoreConfigEntry::Erase(std::string_view key) {
  properties.erase(std::remove_if(properties.begin(), properties.end(),
                                  [&](const auto& kv) { return kv.first == key; }),
                   properties.end());
}

std::string DatastoreConfigEntry::path() const {
  const std::string* p = Get("path");
  return p ? *p : std::string();
}

std::string DatastoreConfigEntry::comment() const {
  const std::string* p = Get("comment");
  return p ? *p : std::string();
}

Result<DatastoreTuning> DatastoreConfigEntry::tuning() const {
  const std::string* t = Get("tuning");
  if (!t) return DatastoreTuning{};
  auto r = DatastoreTuning::Parse(*t);
  if (!r.ok()) return r.status().WithContext("datastore '" + name + "'");
  return r;
}

Result<bool> DatastoreConfigEntry::verify_new() const {
  const std::string* v = Get("verify-new");
  if (!v) return false;
  return ParseBool("datastore '" + name + "'", "verify-new", *v);
}

Result<std::optional<MaintenanceMode>> DatastoreConfigEntry::maintenance_mode() const {
  const std::string* m = Get("maintenance-mode");
  if (!m) return std::optional<MaintenanceMode>();
  auto r = MaintenanceMode::Parse(*m);
  if (!r.ok()) return r.status().WithContext("datastore '" + name + "'");
  return std::optional<MaintenanceMode>(*r);
}

// ---- config ----

Result<DatastoreConfig> DatastoreConfig::Load(const std::string& config_dir, Filesystem* fs) {
  std::string path = config_dir + "/" + kDatastoreCfgName;
  DatastoreConfig cfg;
  auto text = ReadWholeFileText(fs, path);
  if (!text.ok()) {
    if (text.status().IsNotFound()) return cfg;
    return text.status().WithContext("unable to read " + path);
  }
  PBSKIT_ASSIGN_OR_RETURN(SectionConfig sc, SectionConfig::Parse(*text, path));
  for (const auto& s : sc.sections) {
    if (s.type != "datastore") continue;  // other section types are not ours to judge
    DatastoreConfigEntry e;
    e.name = s.id;
    e.properties = s.properties;
    if (e.path().empty()) {
      return Status::InvalidArgument(fmt::format("{}:{}: datastore '{}' has no path", path,
                                                 s.line, s.id));
    }
    cfg.entries_.push_back(std::move(e));
  }
  return cfg;
}

const DatastoreConfigEntry* DatastoreConfig::Find(std::string_view name) const {
  for (const auto& e : entries_) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

const DatastoreConfigEntry* DatastoreConfig::FindByPath(const std::string& path) const {
  std::string want = NormalizePath(path);
  for (const auto& e : entries_) {
    if (e.Get("backing-device")) continue;  // removable: path is device-relative
    if (NormalizePath(e.path()) == want) return &e;
  }
  return nullptr;
}

Status DatastoreConfig::Add(DatastoreConfigEntry entry) {
  PBSKIT_RETURN_IF_ERROR(CheckDatastoreName(entry.name));
  if (Find(entry.name)) {
    return Status::AlreadyExists("datastore '" + entry.name + "' already exists.");
  }
  if (entry.path().empty()) {
    return Status::InvalidArgument("datastore '" + entry.name + "': missing path");
  }
  entries_.push_back(std::move(entry));
  return Status::OK();
}

Status DatastoreConfig::Remove(std::string_view name) {
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [&](const DatastoreConfigEntry& e) { return e.name == name; });
  if (it == entries_.end()) {
    return Status::NotFound("datastore '" + std::string(name) + "' does not exist.");
  }
  entries_.erase(it);
  return Status::OK();
}

std::string DatastoreConfig::ToString() const {
  SectionConfig sc;
  for (const auto& e : entries_) {
    SectionConfigEntry s;
    s.type = "datastore";
    s.id = e.name;
    s.properties = e.properties;
    s.property_lines.assign(s.properties.size(), 0);
    sc.sections.push_back(std::move(s));
  }
  return sc.ToString();
}

Status DatastoreConfig::Save(const std::string& config_dir, Filesystem* fs) const {
  PBSKIT_RETURN_IF_ERROR(MkdirAll(fs, config_dir, 0700));
  std::string text = ToString();
  return WriteFileAtomic(fs, config_dir + "/" + kDatastoreCfgName, text, SyncLevel::kFile, 0640);
}

Result<LockGuardPtr> LockDatastoreConfig(const std::string& config_dir, Filesystem* fs) {
  PBSKIT_RETURN_IF_ERROR(MkdirAll(fs, config_dir, 0700));
  std::string path = config_dir + "/.datastore.lck";
  PBSKIT_ASSIGN_OR_RETURN(int fd, fs->Open(path, O_RDWR | O_CREAT, 0660));
  ScopedFd guard(fs, fd);
  for (int i = 0; i < 500; ++i) {
    Status st = fs->Flock(fd, LockMode::kExclusive, true);
    if (st.ok()) return std::make_unique<BackupLockGuard>(fs, guard.release(), path);
    if (!st.IsBusy()) return st.WithContext("unable to lock " + path);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Status::Busy("unable to lock " + path + " - timeout (another config change is running)");
}

Result<OpenedStore> OpenStore(const std::string& config_dir, const std::string& store_arg,
                              Filesystem* fs) {
  if (store_arg.empty()) return Status::InvalidArgument("no datastore given (--store)");
  PBSKIT_ASSIGN_OR_RETURN(DatastoreConfig cfg, DatastoreConfig::Load(config_dir, fs));
  OpenedStore out;
  std::string path;
  std::string name;
  bool looks_like_path = store_arg.find('/') != std::string::npos || store_arg == "." ||
                         store_arg == "..";
  const DatastoreConfigEntry* entry = looks_like_path ? nullptr : cfg.Find(store_arg);
  if (entry) {
    if (entry->Get("backing-device")) {
      path = "/mnt/datastore/" + entry->name;  // removable datastores are mounted here
    } else {
      path = entry->path();
    }
    name = entry->name;
  } else {
    auto st = fs->Stat(store_arg + "/.chunks", true);
    if (!st.ok() || !S_ISDIR(st->st_mode)) {
      if (looks_like_path) {
        return Status::NotFound("'" + store_arg + "' is not a datastore directory (no .chunks)");
      }
      return Status::NotFound("datastore '" + store_arg + "' does not exist (not in " +
                              config_dir + "/" + kDatastoreCfgName +
                              ", and not a datastore directory)");
    }
    path = NormalizePath(store_arg);
    entry = cfg.FindByPath(path);
    name = entry ? entry->name : BaseName(path);
  }
  DataStoreOptions options;
  if (entry) {
    PBSKIT_ASSIGN_OR_RETURN(DatastoreTuning tuning, entry->tuning());
    options.sync_level = tuning.EffectiveSyncLevel();
    out.config = *entry;
  }
  auto store = DataStore::Open(path, name, fs, options);
  if (!store.ok()) {
    return Status(store.status().code(),
                  "datastore '" + name + "': " + store.status().message());
  }
  out.store = std::move(store).value();
  return out;
}

}  // namespace pbskit
