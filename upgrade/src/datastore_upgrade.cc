// In-place datastore upgrade to the PBS 4.x layout (see datastore_upgrade.h).
#include "pbskit/upgrade/datastore_upgrade.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <functional>
#include <memory>
#include <optional>

#include "pbskit/datastore/chunk_store.h"
#include "pbskit/datastore/fs.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/fixed_index.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/names.h"

namespace pbskit {
namespace {

constexpr char kGcStatusName[] = ".gc-status";
constexpr char kOldManifestLock[] = ".index.json.lck";
// What PBS writes when no GC has run: every counter 0, no UPID.
constexpr char kEmptyGcStatus[] =
    "{\"upid\":null,\"index-file-count\":0,\"index-data-bytes\":0,\"disk-bytes\":0,"
    "\"disk-chunks\":0,\"removed-bytes\":0,\"removed-chunks\":0,\"pending-bytes\":0,"
    "\"pending-chunks\":0,\"removed-bad\":0,\"still-bad\":0}";

// "0000..00ff" runs of consecutive prefix numbers.
std::vector<std::string> Ranges(const std::vector<int>& v) {
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    out.push_back(i == j ? fmt::format("{:04x}", v[i]) : fmt::format("{:04x}..{:04x}", v[i], v[j]));
    i = j + 1;
  }
  return out;
}

// A temp name a crashed PBS writer leaves behind: "<x>.tmp_XXXXXX", "<x>.tmp_fidx",
// "<x>.tmp_didx".
bool IsWriterTempName(const std::string& name) {
  auto pos = name.rfind(".tmp_");
  if (pos == std::string::npos || pos == 0) return false;
  std::string tail = name.substr(pos + 5);
  return tail == "fidx" || tail == "didx" || tail.size() == 6;
}

class Upgrader {
 public:
  Upgrader(std::string base, const DatastoreUpgradeOptions& o)
      : base_(std::move(base)), o_(o), fs_(PosixFilesystem()) {
    r_.dry_run = o.dry_run;
    if (::geteuid() == 0) {
      if (struct passwd* pw = ::getpwnam("backup"))
        backup_ = std::make_pair(pw->pw_uid, pw->pw_gid);
    }
  }

  Result<DatastoreUpgradeResult> Run();

 private:
  std::string Abs(const std::string& rel) const {
    return rel == "." ? base_ : JoinPath(base_, rel);
  }
  // Records a change and, unless dry run, applies it.
  Status Change(const std::string& rel, const std::string& what,
                const std::function<Status()>& fn) {
    r_.changes.push_back(UpgradeChange{rel, what});
    if (o_.log) o_.log->Info((o_.dry_run ? "would " : "") + what + ": " + rel);
    if (o_.dry_run) return Status::OK();
    Status s = fn();
    return s.ok() ? s : s.WithContext(what + " " + Abs(rel));
  }
  void Problem(const std::string& text) {
    r_.problems.push_back(text);
    if (o_.log) o_.log->Warn("problem: " + text);
  }
  void Note(const std::string& text) {
    r_.notes.push_back(text);
    if (o_.log) o_.log->Info("note: " + text);
  }
  Status CheckSkeletonEntry(const std::string& rel, mode_t want, bool dir);
  // Read-only pass over the prefix directories (refuses an S3 cache before anything changes).
  Status ScanChunkStore();
  Status FixChunkStore();
  Status CheckGcStatus();
  Status WalkNamespace(const std::string& rel, int depth);
  Status CheckGroup(const std::string& rel);
  Status CheckSnapshot(const std::string& rel);

  std::string base_;
  DatastoreUpgradeOptions o_;
  Filesystem* fs_;
  std::optional<std::pair<uid_t, gid_t>> backup_;
  DatastoreUpgradeResult r_;
  std::vector<int> missing, wrong_mode, wrong_owner;  // prefix numbers found by the scan
  std::vector<std::string> temps;                     // chunk temp files found by the scan
};

Status Upgrader::CheckSkeletonEntry(const std::string& rel, mode_t want, bool dir) {
  const std::string path = Abs(rel);
  auto st = fs_->Stat(path, false);
  if (!st.ok()) {
    if (!st.status().IsNotFound()) return st.status();
    if (dir) {
      return Change(rel, fmt::format("create directory (mode {:04o})", want),
                    [&] { return fs_->Mkdir(path, want); });
    }
    return Change(rel, fmt::format("create empty file (mode {:04o})", want), [&]() -> Status {
      PBSKIT_ASSIGN_OR_RETURN(int fd, fs_->Open(path, O_WRONLY | O_CREAT | O_EXCL, want));
      return fs_->Close(fd);
    });
  }
  if (dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode)) {
    Problem(rel + " is not a " + (dir ? "directory" : "regular file"));
    return Status::OK();
  }
  if ((st->st_mode & 07777) != want) {
    PBSKIT_RETURN_IF_ERROR(
        Change(rel, fmt::format("set mode {:04o} (was {:04o})", want, st->st_mode & 07777),
               [&] { return fs_->Chmod(path, want); }));
  }
  if (backup_ && (st->st_uid != backup_->first || st->st_gid != backup_->second)) {
    PBSKIT_RETURN_IF_ERROR(Change(rel, "set owner backup:backup", [&]() -> Status {
      if (::lchown(path.c_str(), backup_->first, backup_->second) != 0) {
        return Status::FromErrno(errno, "chown " + path);
      }
      return Status::OK();
    }));
  }
  return Status::OK();
}

Status Upgrader::ScanChunkStore() {
  const std::string chunks = Abs(".chunks");
  std::vector<DirEntry> entries;
  for (int i = 0; i < 0x10000; ++i) {
    const std::string dir = JoinPath(chunks, fmt::format("{:04x}", i));
    auto st = fs_->Stat(dir, false);
    if (!st.ok()) {
      if (!st.status().IsNotFound()) return st.status();
      missing.push_back(i);
      continue;
    }
    if (!S_ISDIR(st->st_mode)) {
      Problem(fmt::format(".chunks/{:04x} is not a directory", i));
      continue;
    }
    if ((st->st_mode & 07777) != 0750) wrong_mode.push_back(i);
    if (backup_ && (st->st_uid != backup_->first || st->st_gid != backup_->second)) {
      wrong_owner.push_back(i);
    }
    entries.clear();
    PBSKIT_RETURN_IF_ERROR(fs_->ReadDir(dir, &entries));
    for (const auto& e : entries) {
      if (e.name.size() < 64 || !IsDigestHex(e.name.substr(0, 64))) continue;
      if (e.name.size() == 70 && e.name.compare(64, 6, ".using") == 0) {
        return Status::Unsupported(
            "datastore at " + base_ + " has the S3 chunk marker " + JoinPath(dir, e.name) +
            ": it is the local cache of a PBS 4.x S3-backed datastore, which PBS itself keeps "
            "up to date (s3-refresh); not upgrading it");
      }
      if (e.name.size() == 75 && e.name.compare(64, 5, ".tmp_") == 0) {
        temps.push_back(fmt::format(".chunks/{:04x}/{}", i, e.name));
      }
    }
  }
  return Status::OK();
}

Status Upgrader::FixChunkStore() {
  const std::string chunks = Abs(".chunks");
  for (const auto& r : Ranges(missing)) {
    int a = std::stoi(r.substr(0, 4), nullptr, 16);
    int b = r.size() > 4 ? std::stoi(r.substr(6), nullptr, 16) : a;
    PBSKIT_RETURN_IF_ERROR(
        Change(".chunks/" + r,
               fmt::format("create missing chunk prefix director{} "
                           "({} of them, mode 0750)",
                           a == b ? "y" : "ies", b - a + 1),
               [&]() -> Status {
                 for (int i = a; i <= b; ++i) {
                   const std::string p = JoinPath(chunks, fmt::format("{:04x}", i));
                   PBSKIT_RETURN_IF_ERROR(fs_->Mkdir(p, 0750));
                   PBSKIT_RETURN_IF_ERROR(fs_->Chmod(p, 0750));
                   if (backup_ && ::lchown(p.c_str(), backup_->first, backup_->second) != 0) {
                     return Status::FromErrno(errno, "chown " + p);
                   }
                 }
                 return Status::OK();
               }));
  }
  for (const auto& r : Ranges(wrong_mode)) {
    int a = std::stoi(r.substr(0, 4), nullptr, 16);
    int b = r.size() > 4 ? std::stoi(r.substr(6), nullptr, 16) : a;
    PBSKIT_RETURN_IF_ERROR(Change(".chunks/" + r, "set mode 0750", [&]() -> Status {
      for (int i = a; i <= b; ++i) {
        PBSKIT_RETURN_IF_ERROR(fs_->Chmod(JoinPath(chunks, fmt::format("{:04x}", i)), 0750));
      }
      return Status::OK();
    }));
  }
  for (const auto& r : Ranges(wrong_owner)) {
    int a = std::stoi(r.substr(0, 4), nullptr, 16);
    int b = r.size() > 4 ? std::stoi(r.substr(6), nullptr, 16) : a;
    PBSKIT_RETURN_IF_ERROR(Change(".chunks/" + r, "set owner backup:backup", [&]() -> Status {
      for (int i = a; i <= b; ++i) {
        const std::string p = JoinPath(chunks, fmt::format("{:04x}", i));
        if (::lchown(p.c_str(), backup_->first, backup_->second) != 0) {
          return Status::FromErrno(errno, "chown " + p);
        }
      }
      return Status::OK();
    }));
  }
  for (const auto& t : temps) {
    // Found before the lock was taken: a writer may have finished (renamed it) meanwhile.
    PBSKIT_RETURN_IF_ERROR(Change(t, "remove leftover chunk temp file", [&] {
      Status s = fs_->Unlink(Abs(t));
      return s.IsNotFound() ? Status::OK() : s;
    }));
  }
  return Status::OK();
}

Status Upgrader::CheckGcStatus() {
  auto text = ReadWholeFileText(fs_, Abs(kGcStatusName));
  if (!text.ok()) {
    if (!text.status().IsNotFound()) return text.status();
    Note("no .gc-status: PBS shows no previous garbage collection until the next one runs");
    return Status::OK();
  }
  boost::system::error_code ec;
  auto v = boost::json::parse(*text, ec);
  if (!ec && v.is_object()) return Status::OK();
  return Change(kGcStatusName, "replace unreadable garbage collection status with an empty one",
                [&] {
                  return WriteFileAtomic(fs_, Abs(kGcStatusName), std::string_view(kEmptyGcStatus),
                                         SyncLevel::kFile, 0644);
                });
}

Status Upgrader::CheckSnapshot(const std::string& rel) {
  ++r_.snapshots;
  const std::string dir = Abs(rel);
  std::vector<DirEntry> entries;
  PBSKIT_RETURN_IF_ERROR(fs_->ReadDir(dir, &entries));
  std::sort(entries.begin(), entries.end(),
            [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  bool finished = std::any_of(entries.begin(), entries.end(),
                              [](const DirEntry& e) { return e.name == "index.json.blob"; });
  if (!finished) {
    Note(rel + ": unfinished snapshot (no index.json.blob); PBS prune removes it");
    return Status::OK();
  }
  for (const auto& e : entries) {
    const std::string frel = rel + "/" + e.name;
    if (e.name == kOldManifestLock) {
      PBSKIT_RETURN_IF_ERROR(Change(frel,
                                    "remove PBS <= 1.0.5 manifest lock file (PBS 4.x locks "
                                    "below /run/proxmox-backup/locks)",
                                    [&] { return fs_->Unlink(Abs(frel)); }));
    } else if (IsWriterTempName(e.name)) {
      PBSKIT_RETURN_IF_ERROR(Change(frel, "remove leftover temp file of a finished snapshot",
                                    [&] { return fs_->Unlink(Abs(frel)); }));
    } else if (e.name == ".protected") {
      auto st = fs_->Stat(Abs(frel), false);
      if (st.ok() && !S_ISREG(st->st_mode)) Problem(frel + " is not a regular file");
    } else if (e.name.size() > 5 && e.name.compare(e.name.size() - 5, 5, ".fidx") == 0) {
      auto data = ReadWholeFile(fs_, Abs(frel));
      if (!data.ok()) return data.status();
      if (data->size() >= 4096) {
        uint64_t chunk_size = 0;
        for (int i = 7; i >= 0; --i) chunk_size = (chunk_size << 8) | (*data)[72 + i];
        if (chunk_size == 0 || (chunk_size & (chunk_size - 1)) != 0) {
          Problem(frel + fmt::format(": chunk size {} is not a power of two (PBS >= 4.1.5 "
                                     "cannot read this index)",
                                     chunk_size));
        }
      }
    } else if (e.name == "index.json.blob") {
      auto raw = ReadWholeFile(fs_, Abs(frel));
      if (!raw.ok()) return raw.status();
      auto blob = DataBlob::FromRaw(std::move(raw).value());
      if (!blob.ok()) {
        Problem(frel + ": " + blob.status().message());
        continue;
      }
      auto json = blob->Decode(nullptr);
      boost::system::error_code ec;
      auto v =
          json.ok()
              ? boost::json::parse(
                    std::string_view(reinterpret_cast<const char*>(json->data()), json->size()), ec)
              : boost::json::value();
      if (!json.ok() || ec || !v.is_object()) {
        Problem(frel + ": manifest does not decode to a JSON object");
        continue;
      }
      const auto& obj = v.as_object();
      bool old = !obj.contains("unprotected");
      if (auto* files = obj.if_contains("files"); files && files->is_array()) {
        for (const auto& f : files->as_array()) {
          if (f.is_object() && !f.as_object().contains("crypt-mode")) old = true;
        }
      }
      if (old) {
        Note(frel +
             ": manifest from before PBS 0.8.0 (no crypt-mode/unprotected); PBS 4.x "
             "reads it with the defaults (none / {})");
      }
    }
  }
  return Status::OK();
}

Status Upgrader::CheckGroup(const std::string& rel) {
  ++r_.groups;
  const std::string dir = Abs(rel);
  auto owner = ReadWholeFileText(fs_, JoinPath(dir, "owner"));
  bool usable = false;
  if (owner.ok()) {
    std::string first = owner->substr(0, owner->find('\n'));
    while (!first.empty() && std::isspace(static_cast<unsigned char>(first.back())))
      first.pop_back();
    usable = !first.empty();
  } else if (!owner.status().IsNotFound()) {
    return owner.status();
  }
  if (!usable) {
    PBSKIT_RETURN_IF_ERROR(
        Change(rel + "/owner", "write missing group owner '" + o_.default_owner + "'", [&] {
          return WriteFileAtomic(fs_, JoinPath(dir, "owner"), o_.default_owner + "\n",
                                 SyncLevel::kFile, 0644);
        }));
  }
  std::vector<DirEntry> entries;
  PBSKIT_RETURN_IF_ERROR(fs_->ReadDir(dir, &entries));
  std::sort(entries.begin(), entries.end(),
            [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  size_t snaps = 0;
  for (const auto& e : entries) {
    if (!IsBackupTimeString(e.name)) continue;
    auto st = fs_->Stat(JoinPath(dir, e.name), false);
    if (!st.ok() || !S_ISDIR(st->st_mode)) continue;
    ++snaps;
    PBSKIT_RETURN_IF_ERROR(CheckSnapshot(rel + "/" + e.name));
  }
  if (snaps == 0) {
    Note(rel +
         ": group without snapshots (PBS >= 3.3.5 removes a group with its last snapshot; "
         "kept)");
  }
  return Status::OK();
}

Status Upgrader::WalkNamespace(const std::string& rel, int depth) {
  ++r_.namespaces;
  const std::string dir = Abs(rel);
  for (const char* type : {"ct", "host", "vm"}) {
    const std::string tdir = JoinPath(dir, type);
    std::vector<DirEntry> ids;
    Status s = fs_->ReadDir(tdir, &ids);
    if (s.IsNotFound()) continue;
    PBSKIT_RETURN_IF_ERROR(s);
    std::sort(ids.begin(), ids.end(),
              [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
    for (const auto& id : ids) {
      auto st = fs_->Stat(JoinPath(tdir, id.name), false);
      if (!IsSafeId(id.name) || !st.ok() || !S_ISDIR(st->st_mode)) continue;
      const std::string grel = (rel == "." ? "" : rel + "/") + type + "/" + id.name;
      PBSKIT_RETURN_IF_ERROR(CheckGroup(grel));
    }
  }
  std::vector<DirEntry> children;
  Status s = fs_->ReadDir(JoinPath(dir, "ns"), &children);
  if (s.IsNotFound()) return Status::OK();
  PBSKIT_RETURN_IF_ERROR(s);
  std::sort(children.begin(), children.end(),
            [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  for (const auto& c : children) {
    const std::string crel = (rel == "." ? "" : rel + "/") + "ns/" + c.name;
    auto st = fs_->Stat(Abs(crel), false);
    if (!st.ok() || !S_ISDIR(st->st_mode)) continue;
    if (!IsSafeId(c.name)) {
      Problem(crel + ": not a valid namespace name; PBS refuses to list the namespaces of " +
              (rel == "." ? std::string("the root") : rel) + " until it is renamed or removed");
      continue;
    }
    if (depth + 1 > static_cast<int>(kMaxNamespaceDepth)) {
      Problem(crel + ": namespace deeper than 7 levels");
      continue;
    }
    PBSKIT_RETURN_IF_ERROR(WalkNamespace(crel, depth + 1));
  }
  return Status::OK();
}

Result<DatastoreUpgradeResult> Upgrader::Run() {
  auto st = fs_->Stat(Abs(".chunks"), true);
  if (!st.ok() || !S_ISDIR(st->st_mode)) {
    return Status::NotFound("'" + base_ + "' is not a datastore (no .chunks directory)");
  }
  PBSKIT_RETURN_IF_ERROR(ScanChunkStore());
  // The lock file comes first: the exclusive lock below lives on it.
  PBSKIT_RETURN_IF_ERROR(CheckSkeletonEntry(".lock", 0644, false));
  std::unique_ptr<ChunkStore> store;
  std::unique_ptr<ProcessLockGuard> lock;
  if (!o_.dry_run) {
    PBSKIT_ASSIGN_OR_RETURN(store, ChunkStore::Open(base_, fs_, SyncLevel::kFile));
    auto l = store->TryLockExclusive();
    if (!l.ok()) {
      return Status::Busy("datastore " + base_ +
                          " is in use (backup, GC or another upgrade "
                          "running): " +
                          l.status().message());
    }
    lock = std::move(l).value();
  }
  PBSKIT_RETURN_IF_ERROR(CheckSkeletonEntry(".", 0755, true));
  PBSKIT_RETURN_IF_ERROR(CheckSkeletonEntry(".chunks", 0750, true));
  PBSKIT_RETURN_IF_ERROR(FixChunkStore());
  PBSKIT_RETURN_IF_ERROR(CheckGcStatus());
  PBSKIT_RETURN_IF_ERROR(WalkNamespace(".", 0));
  if (!o_.dry_run && !r_.changes.empty()) {
    PBSKIT_ASSIGN_OR_RETURN(int fd, fs_->Open(base_, O_RDONLY | O_DIRECTORY));
    ScopedFd guard(fs_, fd);
    PBSKIT_RETURN_IF_ERROR(fs_->SyncFs(fd));
  }
  return r_;
}

}  // namespace

Result<DatastoreUpgradeResult> UpgradeDatastore(const std::string& path,
                                                const DatastoreUpgradeOptions& options) {
  std::string base = path;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  Upgrader u(base, options);
  return u.Run();
}

}  // namespace pbskit
