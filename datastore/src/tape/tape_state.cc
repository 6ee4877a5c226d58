// inventory.json, media catalog files and the .index cache (see tape_state.h).
#include "pbskit/datastore/tape/tape_state.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>

#include "pbskit/formats/json.h"

namespace pbskit::tape {
namespace {

boost::json::value JsonOf(const std::string& text) { return boost::json::parse(text); }

Result<MediaId> ParseMediaId(const boost::json::value& v, const std::string& file) {
  auto bad = [&](const std::string& what) {
    return Status::Corruption("unable to parse inventory " + file + " - " + what);
  };
  if (!v.is_object()) return bad("entry is not an object");
  auto* id = v.as_object().if_contains("id");
  if (id == nullptr || !id->is_object()) return bad("entry without 'id'");
  auto* label = id->as_object().if_contains("label");
  if (label == nullptr) return bad("entry without 'id.label'");
  MediaId out;
  auto l = MediaLabel::FromJson(boost::json::serialize(*label));
  if (!l.ok()) return bad(l.status().message());
  out.label = *l;
  if (auto* s = id->as_object().if_contains("media_set_label"); s != nullptr && !s->is_null()) {
    auto set = MediaSetLabel::FromJson(boost::json::serialize(*s));
    if (!set.ok()) return bad(set.status().message());
    out.media_set_label = *set;
  }
  return out;
}

std::optional<std::string> OptString(const boost::json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return std::string(v->as_string());
}

class FlockGuard {
 public:
  static Result<FlockGuard> Take(Filesystem* fs, const std::string& path, LockMode mode,
                                 int open_flags) {
    PBSKIT_ASSIGN_OR_RETURN(int fd, fs->Open(path, open_flags, 0640));
    ScopedFd sfd(fs, fd);
    PBSKIT_RETURN_IF_ERROR(fs->Flock(sfd.get(), mode, /*nonblock=*/false));
    return FlockGuard(std::move(sfd));
  }
  int fd() const { return fd_.get(); }

 private:
  explicit FlockGuard(ScopedFd fd) : fd_(std::move(fd)) {}
  ScopedFd fd_;
};

}  // namespace

// ---------------------------------------------------------------- inventory

Result<Inventory> Inventory::Load(Filesystem* fs, const std::string& dir) {
  std::string path = JoinPath(dir, "inventory.json");
  Inventory inv;
  auto text = ReadWholeFileText(fs, path);
  if (!text.ok() && text.status().code() == Code::kNotFound) return inv;
  if (!text.ok()) return text.status();
  boost::system::error_code ec;
  auto v = boost::json::parse(*text, ec);
  if (ec || !v.is_array()) {
    return Status::Corruption("unable to parse inventory " + path + " - expected a JSON array");
  }
  for (const auto& item : v.as_array()) {
    InventoryEntry e;
    PBSKIT_ASSIGN_OR_RETURN(e.id, ParseMediaId(item, path));
    const auto& o = item.as_object();
    e.location = OptString(o, "location");
    e.status = OptString(o, "status");
    if (auto* b = o.if_contains("bytes_used"); b != nullptr && b->is_uint64()) {
      e.bytes_used = b->as_uint64();
    } else if (b != nullptr && b->is_int64() && b->as_int64() >= 0) {
      e.bytes_used = static_cast<uint64_t>(b->as_int64());
    }
    inv.entries_.push_back(std::move(e));
  }
  std::sort(inv.entries_.begin(), inv.entries_.end(),
            [](const auto& a, const auto& b) { return a.id.label.uuid < b.id.label.uuid; });
  return inv;
}

std::string Inventory::ToJson() const {
  boost::json::array arr;
  for (const auto& e : entries_) {
    boost::json::object id;
    id["label"] = JsonOf(e.id.label.ToJson());
    if (e.id.media_set_label) {
      MediaSetLabel set = *e.id.media_set_label;
      set.key_config_json.clear();
      id["media_set_label"] = JsonOf(set.ToJson());
    }
    boost::json::object o;
    o["id"] = std::move(id);
    if (e.location) o["location"] = *e.location;
    if (e.status) o["status"] = *e.status;
    if (e.bytes_used) o["bytes_used"] = *e.bytes_used;
    arr.push_back(std::move(o));
  }
  return ToSerdePretty(SortedKeys(arr));
}

const InventoryEntry* Inventory::Find(const Uuid& media_uuid) const {
  for (const auto& e : entries_) {
    if (e.id.label.uuid == media_uuid) return &e;
  }
  return nullptr;
}

Result<const InventoryEntry*> Inventory::FindByLabel(const std::string& label_text) const {
  const InventoryEntry* found = nullptr;
  for (const auto& e : entries_) {
    if (e.id.label.label_text != label_text) continue;
    if (found != nullptr) {
      return Status::InvalidArgument("media label '" + label_text + "' is not unique");
    }
    found = &e;
  }
  if (found == nullptr) {
    return Status::NotFound("no such media with label '" + label_text + "' in the inventory");
  }
  return found;
}

Result<std::vector<std::optional<Uuid>>> Inventory::MediaSetMembers(const Uuid& set_uuid) const {
  std::vector<std::optional<Uuid>> out;
  for (const auto& e : entries_) {
    if (!e.id.media_set_label || e.id.media_set_label->uuid != set_uuid) continue;
    uint64_t seq = e.id.media_set_label->seq_nr;
    if (seq >= 100000) return Status::Corruption("media set sequence number too large");
    if (out.size() <= seq) out.resize(seq + 1);
    if (out[seq]) {
      return Status::Corruption("found duplicate sequence number in media set '" +
                                UuidToString(set_uuid) + "/" + std::to_string(seq) + "'");
    }
    out[seq] = e.id.label.uuid;
  }
  return out;
}

std::vector<Inventory::SetInfo> Inventory::MediaSets() const {
  std::vector<SetInfo> out;
  for (const auto& e : entries_) {
    if (!e.id.media_set_label || e.id.media_set_label->IsUnassigned()) continue;
    const auto& s = *e.id.media_set_label;
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& i) { return i.uuid == s.uuid; });
    if (it == out.end()) {
      out.push_back(SetInfo{s.uuid, s.pool, std::nullopt, s.ctime});
      it = out.end() - 1;
    }
    it->last_ctime = std::max(it->last_ctime, s.ctime);
    if (s.seq_nr == 0) it->start_time = s.ctime;
  }
  return out;
}

void Inventory::Store(const MediaId& id, bool clear_status) {
  for (auto& e : entries_) {
    if (e.id.label.uuid != id.label.uuid) continue;
    MediaId next = id;
    if (!next.media_set_label && e.id.media_set_label && e.id.media_set_label->IsUnassigned()) {
      next.media_set_label = e.id.media_set_label;
    }
    e.id = next;
    if (clear_status) e.status.reset();
    return;
  }
  InventoryEntry e;
  e.id = id;
  auto pos =
      std::lower_bound(entries_.begin(), entries_.end(), id.label.uuid,
                       [](const InventoryEntry& a, const Uuid& u) { return a.id.label.uuid < u; });
  entries_.insert(pos, std::move(e));
}

void Inventory::SetStatus(const Uuid& media_uuid, std::optional<std::string> status) {
  for (auto& e : entries_) {
    if (e.id.label.uuid == media_uuid) e.status = std::move(status);
  }
}

void Inventory::SetLocation(const Uuid& media_uuid, std::optional<std::string> location) {
  for (auto& e : entries_) {
    if (e.id.label.uuid == media_uuid) e.location = std::move(location);
  }
}

Result<Inventory> Inventory::Update(Filesystem* fs, const std::string& dir,
                                    const std::function<Status(Inventory*)>& fn) {
  PBSKIT_RETURN_IF_ERROR(MkdirAll(fs, dir, 0750));
  PBSKIT_ASSIGN_OR_RETURN(
      auto lock, FlockGuard::Take(fs, JoinPath(dir, ".inventory.lck"), LockMode::kExclusive,
                                  O_RDWR | O_CREAT | O_CLOEXEC));
  PBSKIT_ASSIGN_OR_RETURN(auto inv, Load(fs, dir));
  PBSKIT_RETURN_IF_ERROR(fn(&inv));
  PBSKIT_RETURN_IF_ERROR(
      WriteFileAtomic(fs, JoinPath(dir, "inventory.json"), inv.ToJson(), SyncLevel::kFile, 0640));
  return inv;
}

// ---------------------------------------------------------------- catalogs

Status TapeStatusDir::Init() const { return MkdirAll(fs_, dir_, 0750); }

std::string TapeStatusDir::CatalogPath(const Uuid& m) const {
  return JoinPath(dir_, UuidToString(m) + ".log");
}
std::string TapeStatusDir::TmpPath(const Uuid& m) const {
  return JoinPath(dir_, UuidToString(m) + ".tmp");
}
std::string TapeStatusDir::IndexPath(const Uuid& m) const {
  return JoinPath(dir_, UuidToString(m) + ".index");
}

Result<bool> TapeStatusDir::CatalogExists(const Uuid& media) const {
  return PathExists(fs_, CatalogPath(media));
}

Result<std::vector<uint8_t>> TapeStatusDir::ReadCatalog(const Uuid& media) const {
  std::string path = CatalogPath(media);
  PBSKIT_ASSIGN_OR_RETURN(auto lock,
                          FlockGuard::Take(fs_, path, LockMode::kShared, O_RDONLY | O_CLOEXEC));
  PBSKIT_ASSIGN_OR_RETURN(auto st, fs_->FStat(lock.fd()));
  std::vector<uint8_t> out(static_cast<size_t>(st.st_size));
  PBSKIT_ASSIGN_OR_RETURN(size_t n, fs_->PRead(lock.fd(), out.data(), out.size(), 0));
  out.resize(n);
  return out;
}

Result<MediaCatalogContent> TapeStatusDir::LoadCatalog(const MediaId& id) const {
  PBSKIT_ASSIGN_OR_RETURN(auto bytes, ReadCatalog(id.label.uuid));
  auto content = ParseMediaCatalog(bytes, id.label.uuid, id.media_set_label);
  if (!content.ok()) return content.status().WithContext(CatalogPath(id.label.uuid));
  return content;
}

Status TapeStatusDir::WriteCatalog(const Uuid& media, std::span<const uint8_t> bytes) const {
  PBSKIT_RETURN_IF_ERROR(Init());
  std::string tmp = TmpPath(media);
  {
    PBSKIT_ASSIGN_OR_RETURN(int fd, fs_->Open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
    ScopedFd sfd(fs_, fd);
    PBSKIT_RETURN_IF_ERROR(fs_->PWriteAll(sfd.get(), bytes.data(), bytes.size(), 0));
    PBSKIT_RETURN_IF_ERROR(fs_->Fsync(sfd.get()));
    PBSKIT_RETURN_IF_ERROR(sfd.Close());
  }
  PBSKIT_RETURN_IF_ERROR(fs_->Rename(tmp, CatalogPath(media)));
  auto st = fs_->Unlink(IndexPath(media));
  if (!st.ok() && st.code() != Code::kNotFound) return st;
  return fs_->FsyncDir(dir_);
}

Status TapeStatusDir::AppendCatalog(const Uuid& media, std::span<const uint8_t> bytes) const {
  std::string path = CatalogPath(media);
  PBSKIT_ASSIGN_OR_RETURN(auto lock,
                          FlockGuard::Take(fs_, path, LockMode::kExclusive, O_RDWR | O_CLOEXEC));
  PBSKIT_ASSIGN_OR_RETURN(auto st, fs_->FStat(lock.fd()));
  PBSKIT_RETURN_IF_ERROR(
      fs_->PWriteAll(lock.fd(), bytes.data(), bytes.size(), static_cast<uint64_t>(st.st_size)));
  return fs_->Fsync(lock.fd());
}

Status TapeStatusDir::DestroyCatalog(const Uuid& media) const {
  for (const auto& p : {CatalogPath(media), IndexPath(media)}) {
    auto st = fs_->Unlink(p);
    if (!st.ok() && st.code() != Code::kNotFound) return st;
  }
  return Status::OK();
}

Result<bool> TapeStatusDir::DestroyUnrelatedCatalog(const MediaId& id) const {
  const Uuid& uuid = id.label.uuid;
  auto bytes = ReadCatalog(uuid);
  if (!bytes.ok() && bytes.status().code() == Code::kNotFound) return false;
  if (!bytes.ok()) return bytes.status();
  bool remove = false;
  if (!id.media_set_label) {
    remove = true;
  } else if (!bytes->empty()) {
    auto h = ParseMediaCatalogHeader(*bytes);
    if (!h.ok() || (h->media_uuid && *h->media_uuid != uuid) ||
        (h->media_set_uuid && *h->media_set_uuid != id.media_set_label->uuid)) {
      remove = true;
    }
  }
  if (remove) PBSKIT_RETURN_IF_ERROR(DestroyCatalog(uuid));
  return remove;
}

Result<std::vector<Uuid>> TapeStatusDir::MediaWithCatalogs() const {
  std::vector<DirEntry> entries;
  auto st = fs_->ReadDir(dir_, &entries);
  if (!st.ok() && st.code() == Code::kNotFound) return std::vector<Uuid>();
  PBSKIT_RETURN_IF_ERROR(st);
  std::vector<Uuid> out;
  for (const auto& e : entries) {
    if (e.name.size() != 40 || e.name.compare(36, 4, ".log") != 0) continue;
    auto u = ParseUuid(e.name.substr(0, 36));
    if (u.ok()) out.push_back(*u);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::string> TapeStatusDir::CacheId(const Uuid& media) const {
  auto st = fs_->Stat(CatalogPath(media), /*follow=*/true);
  if (!st.ok()) {
    if (st.status().code() == Code::kNotFound) {
      return Status::NotFound("unable to stat media catalog " + CatalogPath(media));
    }
    return st.status();
  }
  char buf[64];
  std::snprintf(
      buf, sizeof buf, "%016llX-%016llX-%016llX", static_cast<unsigned long long>(st->st_ino),
      static_cast<unsigned long long>(st->st_size), static_cast<unsigned long long>(st->st_mtime));
  return std::string(buf);
}

Result<std::vector<std::pair<std::string, std::string>>> TapeStatusDir::SnapshotList(
    const MediaId& id) const {
  const Uuid& uuid = id.label.uuid;
  PBSKIT_ASSIGN_OR_RETURN(std::string cache_id, CacheId(uuid));
  std::vector<std::pair<std::string, std::string>> list;
  auto text = ReadWholeFileText(fs_, IndexPath(uuid));
  if (text.ok()) {
    size_t nl = text->find('\n');
    if (nl != std::string::npos && text->compare(0, nl, cache_id) == 0) {
      size_t pos = nl + 1;
      while (pos < text->size()) {
        size_t e = text->find('\n', pos);
        if (e == std::string::npos) e = text->size();
        std::string line = text->substr(pos, e - pos);
        size_t colon = line.find(':');
        if (colon == std::string::npos) {
          return Status::Corruption("invalid line format (no store found) in " + IndexPath(uuid));
        }
        list.emplace_back(line.substr(0, colon), line.substr(colon + 1));
        pos = e + 1;
      }
      return list;
    }
  } else if (text.status().code() != Code::kNotFound) {
    return text.status();
  }
  PBSKIT_ASSIGN_OR_RETURN(auto content, LoadCatalog(id));
  std::string data = cache_id + "\n";
  for (const auto& [store, c] : content.content) {
    for (const auto& [snapshot, file] : c.snapshot_index) {
      (void)file;
      list.emplace_back(store, snapshot);
      data += store + ":" + snapshot + "\n";
    }
  }
  PBSKIT_RETURN_IF_ERROR(WriteFileAtomic(fs_, IndexPath(uuid), data, SyncLevel::kNone, 0640));
  return list;
}

Result<MediaCatalogBuilder> NewMediaCatalog(const MediaId& id) {
  MediaCatalogBuilder b(id.label.uuid);
  PBSKIT_RETURN_IF_ERROR(b.RegisterLabel(id.label.uuid, 0, 0));
  if (id.media_set_label) {
    PBSKIT_RETURN_IF_ERROR(
        b.RegisterLabel(id.media_set_label->uuid, id.media_set_label->seq_nr, 1));
  }
  return b;
}

}  // namespace pbskit::tape
