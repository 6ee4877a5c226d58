// Tape backup job: media pool allocation and the pool writer (see tape_backup.h).
#include "pbskit/datastore/tape/tape_backup.h"

#include <time.h>

#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/tape/archives.h"

namespace pbskit::tape {
namespace {

int64_t Now() { return static_cast<int64_t>(::time(nullptr)); }

std::string TapeSnapshotName(const BackupNamespace& ns, const BackupDir& d) {
  return ns.IsRoot() ? d.ToString() : ns.Path() + "/" + d.ToString();
}

constexpr uint64_t kSeqNrWarnLimit = 20;

}  // namespace

// ---------------------------------------------------------------- group filter

Result<GroupFilter> GroupFilter::Parse(const std::vector<std::string>& filters) {
  GroupFilter out;
  for (const auto& f : filters) {
    One one;
    std::string_view s = f;
    if (s.rfind("exclude:", 0) == 0) {
      one.exclude = true;
      s.remove_prefix(8);
    } else if (s.rfind("include:", 0) == 0) {
      s.remove_prefix(8);
    }
    size_t colon = s.find(':');
    if (colon == std::string_view::npos) {
      return Status::InvalidArgument("invalid group filter '" + f + "'");
    }
    one.kind = std::string(s.substr(0, colon));
    one.value = std::string(s.substr(colon + 1));
    if (one.kind == "type") {
      PBSKIT_RETURN_IF_ERROR(ParseBackupType(one.value).status());
    } else if (one.kind == "group") {
      PBSKIT_RETURN_IF_ERROR(BackupGroup::Parse(one.value).status());
    } else if (one.kind == "regex") {
      try {
        std::regex re(one.value);
      } catch (const std::regex_error&) {
        return Status::InvalidArgument("invalid group filter '" + f + "' - bad regex");
      }
    } else {
      return Status::InvalidArgument("invalid group filter '" + f + "'");
    }
    out.filters_.push_back(std::move(one));
  }
  return out;
}

bool GroupFilter::Matches(const BackupGroup& g) const {
  bool has_include = false, included = false, excluded = false;
  for (const auto& f : filters_) {
    bool m = false;
    if (f.kind == "type") m = f.value == BackupTypeName(g.type);
    if (f.kind == "group") m = f.value == g.ToString();
    if (f.kind == "regex") m = std::regex_search(g.ToString(), std::regex(f.value));
    if (f.exclude) {
      excluded = excluded || m;
    } else {
      has_include = true;
      included = included || m;
    }
  }
  return (!has_include || included) && !excluded;
}

// ---------------------------------------------------------------- inventory helpers

Result<VirtualTapeLabels> InventorizeLoadedTape(VirtualTapeDrive* drive,
                                                const std::string& drive_name,
                                                const TapeStatusDir& state) {
  PBSKIT_ASSIGN_OR_RETURN(auto labels, drive->ReadLabel());
  if (!labels.label) return labels;
  MediaId id{*labels.label, labels.media_set};
  PBSKIT_RETURN_IF_ERROR(Inventory::Update(state.fs(), state.dir(), [&](Inventory* inv) {
                           inv->Store(id, false);
                           inv->SetLocation(id.label.uuid, "online-" + drive_name);
                           return Status::OK();
                         }).status());
  PBSKIT_RETURN_IF_ERROR(state.DestroyUnrelatedCatalog(id).status());
  return labels;
}

Result<MediaId> LabelTape(VirtualTapeDrive* drive, const std::string& drive_name,
                          const TapeStatusDir& state, const std::string& label_text,
                          const std::optional<std::string>& pool, bool force, int64_t ctime) {
  PBSKIT_RETURN_IF_ERROR(state.Init());
  PBSKIT_ASSIGN_OR_RETURN(auto inv, Inventory::Load(state.fs(), state.dir()));
  for (const auto& e : inv.entries()) {
    if (e.id.label.label_text == label_text && !force) {
      return Status::InvalidArgument("media with label '" + label_text +
                                     "' already exists in the inventory (uuid " +
                                     UuidToString(e.id.label.uuid) + ")");
    }
  }
  PBSKIT_RETURN_IF_ERROR(drive->LoadMedia(label_text));
  auto old = drive->ReadLabel();
  if (old.ok() && old->label && !force) {
    return Status::InvalidArgument("media is not empty (already labelled '" +
                                   old->label->label_text + "', use --force)");
  }
  MediaId id;
  id.label.uuid = RandomUuid();
  id.label.label_text = label_text;
  id.label.ctime = ctime;
  id.label.pool = pool;
  PBSKIT_RETURN_IF_ERROR(drive->WriteMediaLabel(id.label));
  PBSKIT_ASSIGN_OR_RETURN(auto check, drive->ReadLabel());
  if (!check.label || check.label->uuid != id.label.uuid) {
    return Status::IoError("verify media label failed - label uuid does not match");
  }
  PBSKIT_ASSIGN_OR_RETURN(auto catalog, NewMediaCatalog(id));
  PBSKIT_RETURN_IF_ERROR(state.WriteCatalog(id.label.uuid, catalog.pending()));
  PBSKIT_RETURN_IF_ERROR(Inventory::Update(state.fs(), state.dir(), [&](Inventory* inv) {
                           // A relabelled tape keeps its label text but gets a new uuid.
                           if (old.ok() && old->label) inv->SetStatus(old->label->uuid, "retired");
                           inv->Store(id, true);
                           inv->SetLocation(id.label.uuid, "online-" + drive_name);
                           return Status::OK();
                         }).status());
  return id;
}

// ---------------------------------------------------------------- pool writer

namespace {

class PoolWriter {
 public:
  PoolWriter(std::shared_ptr<DataStore> store, VirtualTapeDrive* drive, const TapeStatusDir& state,
             const TapeBackupOptions& opts)
      : store_(std::move(store)), drive_(drive), state_(state), opts_(opts) {}

  Status Start();
  bool ContainsSnapshot(const std::string& name) const {
    auto it = snapshots_.find(store_->name());
    return it != snapshots_.end() && it->second.count(name) != 0;
  }
  Status BackupSnapshot(const BackupNamespace& ns, const BackupDir& dir);
  Status Finish(bool need_catalog);
  TapeBackupSummary& summary() { return summary_; }

 private:
  // Catalog archive v1.1 unless the job is limited to the root namespace (max-depth 0).
  bool NsMagic() const {
    return !opts_.ns.IsRoot() || opts_.max_depth != std::optional<uint64_t>(0);
  }
  void Log(const std::string& line) const {
    if (opts_.log) opts_.log(line);
  }
  Result<Uuid> LoadWritableMedia();
  Result<Uuid> AllocWritableMedia();
  Status AddMediaToSet(const MediaId& id);
  Status AppendSetCatalogs();
  Result<uint64_t> PrepareWrite();
  Status Commit();
  Status SetFull(const Uuid& media);
  Status AbsorbCatalog(const MediaCatalogContent& c);
  Result<bool> AppendChunkArchive(std::vector<Digest>* todo, size_t* next);
  Result<bool> AppendSnapshotArchive(const BackupNamespace& ns, const BackupDir& dir,
                                     const std::string& name);
  Status AppendCatalogArchive(bool* done);

  std::shared_ptr<DataStore> store_;
  VirtualTapeDrive* drive_;
  const TapeStatusDir& state_;
  const TapeBackupOptions& opts_;
  TapeBackupSummary summary_;

  Inventory inv_;
  Uuid set_uuid_{};
  std::vector<Uuid> members_;
  std::set<std::string> online_;
  // Set-wide lookup (all member catalogs, including the pending part of the current one).
  std::map<std::string, std::set<Digest>> chunks_;
  std::map<std::string, std::set<std::string>> snapshots_;
  // Loaded tape.
  std::optional<Uuid> current_;
  std::optional<MediaCatalogBuilder> catalog_;
  bool at_eom_ = false;
};

Status PoolWriter::AbsorbCatalog(const MediaCatalogContent& c) {
  for (const auto& [store, content] : c.content) {
    for (const auto& [d, f] : content.chunk_index) chunks_[store].insert(d);
    for (const auto& [s, f] : content.snapshot_index) snapshots_[store].insert(s);
  }
  return Status::OK();
}

Status PoolWriter::Start() {
  const std::string& alloc = opts_.pool.allocation.value_or("continue");
  if (alloc != "continue" && alloc != "always") {
    return Status::Unsupported("media pool '" + opts_.pool.name + "': allocation policy '" + alloc +
                               "' (calendar event) is not supported by pbskit");
  }
  if (opts_.pool.encrypt) {
    return Status::Unsupported("media pool '" + opts_.pool.name +
                               "' uses encryption; the virtual drive has none");
  }
  PBSKIT_RETURN_IF_ERROR(state_.Init());
  PBSKIT_ASSIGN_OR_RETURN(auto online, drive_->OnlineMediaLabelTexts());
  online_ = std::set<std::string>(online.begin(), online.end());
  PBSKIT_ASSIGN_OR_RETURN(inv_, Inventory::Load(state_.fs(), state_.dir()));

  // Latest set of the pool: greatest member ctime, ambiguous -> none.
  std::optional<Inventory::SetInfo> latest;
  bool ambiguous = false;
  for (const auto& s : inv_.MediaSets()) {
    if (s.pool != opts_.pool.name) continue;
    if (!latest || s.last_ctime > latest->last_ctime) {
      latest = s;
      ambiguous = false;
    } else if (s.last_ctime == latest->last_ctime) {
      ambiguous = true;
    }
  }
  std::string reason;
  if (opts_.force_media_set)
    reason = "forced";
  else if (!latest || ambiguous)
    reason = "no current media set";
  else if (alloc == "always")
    reason = "policy is AlwaysCreate";
  if (reason.empty()) {
    PBSKIT_ASSIGN_OR_RETURN(auto members, inv_.MediaSetMembers(latest->uuid));
    for (size_t i = 0; i < members.size() && reason.empty(); ++i) {
      if (!members[i]) {
        reason = "media set is incomplete (missing media information)";
        break;
      }
      const auto* e = inv_.Find(*members[i]);
      std::string status = e->status.value_or("");
      bool last = i + 1 == members.size();
      if (status == "damaged" || status == "retired") {
        reason = "unable to use media set - wrong media status " + status;
      } else if (last && status != "full" && online_.count(e->id.label.label_text) == 0) {
        reason = "writable media '" + e->id.label.label_text + "' is not online";
      }
      if (reason.empty()) members_.push_back(*members[i]);
    }
    if (reason.empty()) set_uuid_ = latest->uuid;
  }
  if (!reason.empty()) {
    Log("starting new media set - reason: " + reason);
    members_.clear();
    set_uuid_ = RandomUuid();
  }
  Log("media set uuid: " + UuidToString(set_uuid_));
  summary_.media_set = set_uuid_;
  for (const auto& m : members_) {
    const auto* e = inv_.Find(m);
    auto c = state_.LoadCatalog(e->id);
    if (!c.ok()) {
      return c.status().WithContext("unable to load catalog of media '" + e->id.label.label_text +
                                    "' (run 'pbskit tape catalog "
                                    "reindex')");
    }
    PBSKIT_RETURN_IF_ERROR(AbsorbCatalog(*c));
  }
  return Status::OK();
}

Status PoolWriter::AddMediaToSet(const MediaId& media) {
  MediaId id = media;
  MediaSetLabel set;
  set.pool = opts_.pool.name;
  set.uuid = set_uuid_;
  set.seq_nr = members_.size();
  set.ctime = Now();
  id.media_set_label = set;
  PBSKIT_ASSIGN_OR_RETURN(auto cat, NewMediaCatalog(id));
  PBSKIT_RETURN_IF_ERROR(state_.WriteCatalog(id.label.uuid, cat.pending()));
  PBSKIT_ASSIGN_OR_RETURN(inv_, Inventory::Update(state_.fs(), state_.dir(), [&](Inventory* inv) {
                            inv->Store(id, true);
                            return Status::OK();
                          }));
  members_.push_back(id.label.uuid);
  return Status::OK();
}

Result<Uuid> PoolWriter::AllocWritableMedia() {
  if (!members_.empty()) {
    const auto* last = inv_.Find(members_.back());
    if (last->status.value_or("") != "full") return members_.back();
  }
  PBSKIT_ASSIGN_OR_RETURN(inv_, Inventory::Load(state_.fs(), state_.dir()));
  auto pick = [&](bool own_pool) -> const InventoryEntry* {
    const InventoryEntry* best = nullptr;
    for (const auto& e : inv_.entries()) {
      if (e.id.media_set_label && !e.id.media_set_label->IsUnassigned()) continue;
      std::string status = e.status.value_or("");
      if (status == "full" || status == "damaged" || status == "retired") continue;
      if (online_.count(e.id.label.label_text) == 0) continue;
      std::optional<std::string> pool = e.id.label.pool;
      if (e.id.media_set_label) pool = e.id.media_set_label->pool;
      if (own_pool ? pool != opts_.pool.name : pool.has_value()) continue;
      if (best == nullptr || e.id.label.label_text < best->id.label.label_text) best = &e;
    }
    return best;
  };
  if (const auto* e = pick(true)) {
    Log("found empty media '" + e->id.label.label_text + "'");
    MediaId id = e->id;
    PBSKIT_RETURN_IF_ERROR(AddMediaToSet(id));
    return id.label.uuid;
  }
  if (const auto* e = pick(false)) {
    Log("use free/unassigned media '" + e->id.label.label_text + "'");
    MediaId id = e->id;
    PBSKIT_RETURN_IF_ERROR(AddMediaToSet(id));
    return id.label.uuid;
  }
  return Status::NotFound("alloc writable media in pool '" + opts_.pool.name +
                          "' failed: no usable media found (label more tapes with 'pbskit tape "
                          "label')");
}

Result<Uuid> PoolWriter::LoadWritableMedia() {
  PBSKIT_ASSIGN_OR_RETURN(Uuid uuid, AllocWritableMedia());
  if (current_ && *current_ == uuid) return uuid;
  const auto* e = inv_.Find(uuid);
  MediaId id = e->id;
  Log("allocated new writable media '" + id.label.label_text + "'");
  if (current_) {
    Log("eject current media");
    PBSKIT_RETURN_IF_ERROR(drive_->UnloadMedia());
  }
  Log("loading media '" + id.label.label_text + "' into drive '" + opts_.drive_name + "'");
  PBSKIT_RETURN_IF_ERROR(drive_->LoadMedia(id.label.label_text));
  PBSKIT_ASSIGN_OR_RETURN(auto labels, drive_->ReadLabel());
  if (!labels.label || labels.label->uuid != uuid) {
    return Status::InvalidArgument("wrong media label in drive '" + opts_.drive_name +
                                   "': expected '" + id.label.label_text + "' (" +
                                   UuidToString(uuid) + ")");
  }
  const MediaSetLabel& want = *id.media_set_label;
  bool new_media = true;
  if (labels.media_set && labels.media_set->uuid == want.uuid) {
    if (labels.media_set->seq_nr != want.seq_nr) {
      return Status::Corruption("got media with wrong media sequence number (" +
                                std::to_string(want.seq_nr) +
                                " != " + std::to_string(labels.media_set->seq_nr));
    }
    PBSKIT_ASSIGN_OR_RETURN(auto bytes, state_.ReadCatalog(uuid));
    PBSKIT_ASSIGN_OR_RETURN(auto b, MediaCatalogBuilder::Open(uuid, bytes));
    catalog_ = std::move(b);
    new_media = false;
  } else {
    if (labels.media_set) {
      Log("writing new media set label (overwrite '" + UuidToString(labels.media_set->uuid) + "/" +
          std::to_string(labels.media_set->seq_nr) + "')");
    } else {
      Log("writing new media set label");
    }
    PBSKIT_RETURN_IF_ERROR(drive_->WriteMediaSetLabel(want));
    PBSKIT_ASSIGN_OR_RETURN(auto b, NewMediaCatalog(id));
    PBSKIT_RETURN_IF_ERROR(state_.WriteCatalog(uuid, b.pending()));
    b.ClearPending();
    catalog_ = std::move(b);
  }
  if (new_media && want.seq_nr >= kSeqNrWarnLimit) {
    Log("large media-set detected (" + std::to_string(want.seq_nr) +
        "), consider using a different allocation policy");
  }
  current_ = uuid;
  at_eom_ = false;
  PBSKIT_RETURN_IF_ERROR(Inventory::Update(state_.fs(), state_.dir(), [&](Inventory* inv) {
                           inv->SetLocation(uuid, "online-" + opts_.drive_name);
                           return Status::OK();
                         }).status());
  if (std::find(summary_.used_tapes.begin(), summary_.used_tapes.end(), id.label.label_text) ==
      summary_.used_tapes.end()) {
    summary_.used_tapes.push_back(id.label.label_text);
  }
  if (new_media) PBSKIT_RETURN_IF_ERROR(AppendSetCatalogs());
  return uuid;
}

Result<uint64_t> PoolWriter::PrepareWrite() {
  if (!at_eom_) {
    Log("moving to end of media");
    PBSKIT_RETURN_IF_ERROR(drive_->MoveToEom());
    at_eom_ = true;
    Log("arrived at end of media");
  }
  PBSKIT_ASSIGN_OR_RETURN(uint64_t file, drive_->CurrentFileNumber());
  if (file < 2) {
    return Status::Corruption("got strange file position number from drive (" +
                              std::to_string(file) + ")");
  }
  return file;
}

Status PoolWriter::AppendSetCatalogs() {
  if (members_.size() < 2) return Status::OK();
  PBSKIT_RETURN_IF_ERROR(PrepareWrite().status());
  for (size_t seq = 0; seq + 1 < members_.size(); ++seq) {
    const Uuid& uuid = members_[seq];
    PBSKIT_ASSIGN_OR_RETURN(auto bytes, state_.ReadCatalog(uuid));
    Log("write catalog for previous media: " + UuidToString(uuid));
    PBSKIT_ASSIGN_OR_RETURN(auto dev, drive_->WriteFile());
    CatalogArchiveHeader h{uuid, set_uuid_, seq};
    PBSKIT_ASSIGN_OR_RETURN(auto done, WriteCatalogArchive(dev.get(), h, NsMagic(), bytes, Now()));
    if (!done) return Status::IoError("got EOM while writing start catalog");
  }
  return Status::OK();
}

Status PoolWriter::Commit() {
  if (!current_ || !catalog_) return Status::OK();
  if (catalog_->pending().empty()) return Status::OK();
  PBSKIT_RETURN_IF_ERROR(state_.AppendCatalog(*current_, catalog_->pending()));
  catalog_->ClearPending();
  return Status::OK();
}

Status PoolWriter::SetFull(const Uuid& media) {
  PBSKIT_ASSIGN_OR_RETURN(inv_, Inventory::Update(state_.fs(), state_.dir(), [&](Inventory* inv) {
                            inv->SetStatus(media, "full");
                            return Status::OK();
                          }));
  return Status::OK();
}

Result<bool> PoolWriter::AppendChunkArchive(std::vector<Digest>* todo, size_t* next) {
  PBSKIT_ASSIGN_OR_RETURN(uint64_t file, PrepareWrite());
  PBSKIT_ASSIGN_OR_RETURN(auto dev, drive_->WriteFile());
  const std::string& store = store_->name();
  PBSKIT_ASSIGN_OR_RETURN(auto w, ChunkArchiveWriter::Begin(dev.get(), store, true, Now()));
  std::vector<Digest> saved;
  bool leom = false;
  while (*next < todo->size()) {
    const Digest& d = (*todo)[*next];
    PBSKIT_ASSIGN_OR_RETURN(auto raw, store_->chunk_store().LoadChunk(d));
    Status crc = CheckBlobHeader(raw, /*check_crc=*/true);
    if (!crc.ok()) return crc.WithContext("chunk " + ToHex(d) + " in datastore '" + store + "'");
    PBSKIT_ASSIGN_OR_RETURN(bool ok, w->TryWriteChunk(d, raw));
    if (!ok) {
      leom = true;
      break;
    }
    saved.push_back(d);
    ++*next;
    if (w->closed()) {  // LEOM after the chunk's last slice: it counts, the archive is closed
      leom = true;
      break;
    }
    if (w->bytes_written() > kMaxChunkArchiveSize) break;
  }
  PBSKIT_ASSIGN_OR_RETURN(bool end_leom, w->Finish());
  leom = leom || end_leom;
  uint64_t bytes = w->bytes_written();
  dev.reset();
  Log("wrote " + std::to_string(saved.size()) + " chunks (" +
      std::to_string(bytes / 1000000.0).substr(0, 6) + " MB)");
  PBSKIT_RETURN_IF_ERROR(catalog_->StartChunkArchive(w->uuid(), file, store));
  for (const auto& d : saved) {
    PBSKIT_RETURN_IF_ERROR(catalog_->RegisterChunk(d));
    chunks_[store].insert(d);
  }
  PBSKIT_RETURN_IF_ERROR(catalog_->EndChunkArchive(w->uuid(), file));
  summary_.chunks_written += saved.size();
  summary_.bytes_written += bytes;
  if (leom) PBSKIT_RETURN_IF_ERROR(Commit());
  return leom;
}

Result<bool> PoolWriter::AppendSnapshotArchive(const BackupNamespace& ns, const BackupDir& dir,
                                               const std::string& name) {
  PBSKIT_ASSIGN_OR_RETURN(uint64_t file, PrepareWrite());
  PBSKIT_ASSIGN_OR_RETURN(auto manifest, store_->LoadManifest(ns, dir));
  Filesystem* fs = store_->fs();
  std::string base = store_->SnapshotPath(ns, dir);
  std::vector<std::string> names = {kManifestBlobName};
  for (const auto& f : manifest.files) names.push_back(f.filename);
  PBSKIT_ASSIGN_OR_RETURN(bool has_log, PathExists(fs, JoinPath(base, kClientLogBlobName)));
  if (has_log) names.push_back(kClientLogBlobName);
  std::vector<ScopedFd> fds;
  std::vector<SnapshotArchiveFile> files;
  for (const auto& n : names) {
    std::string path = JoinPath(base, n);
    auto fd = fs->Open(path, O_RDONLY | O_CLOEXEC);
    if (!fd.ok()) return fd.status().WithContext("open file '" + n + "' failed");
    fds.emplace_back(fs, *fd);
    PBSKIT_ASSIGN_OR_RETURN(auto st, fs->FStat(*fd));
    SnapshotArchiveFile f;
    f.name = n;
    f.stat.mode = st.st_mode;
    f.stat.uid = st.st_uid;
    f.stat.gid = st.st_gid;
    f.stat.mtime_secs = st.st_mtim.tv_sec;
    f.stat.mtime_nanos = static_cast<uint32_t>(st.st_mtim.tv_nsec);
    f.size = static_cast<uint64_t>(st.st_size);
    int raw_fd = *fd;
    f.read = [fs, raw_fd](uint64_t off, std::span<uint8_t> buf) {
      return fs->PRead(raw_fd, buf.data(), buf.size(), off);
    };
    files.push_back(std::move(f));
  }
  PBSKIT_ASSIGN_OR_RETURN(auto dev, drive_->WriteFile());
  SnapshotArchiveHeader h{name, store_->name()};
  PBSKIT_ASSIGN_OR_RETURN(auto uuid, WriteSnapshotArchive(dev.get(), h, ns.IsRoot(), files, Now()));
  dev.reset();
  if (!uuid) {
    PBSKIT_RETURN_IF_ERROR(Commit());
    return false;
  }
  PBSKIT_RETURN_IF_ERROR(catalog_->RegisterSnapshot(*uuid, file, store_->name(), name));
  snapshots_[store_->name()].insert(name);
  return true;
}

Status PoolWriter::BackupSnapshot(const BackupNamespace& ns, const BackupDir& dir) {
  std::string name = TapeSnapshotName(ns, dir);
  Log("backup snapshot \"" + name + "\"");
  auto lock = store_->LockSnapshotShared(ns, dir);
  if (!lock.ok()) return lock.status().WithContext("failed opening snapshot " + name);
  PBSKIT_ASSIGN_OR_RETURN(auto manifest, store_->LoadManifest(ns, dir));
  const std::string& store = store_->name();
  std::vector<Digest> todo;
  std::set<Digest> seen;
  for (const auto& f : manifest.files) {
    PBSKIT_ASSIGN_OR_RETURN(auto type, ArchiveTypeOf(f.filename));
    std::vector<Digest> digests;
    if (type == ArchiveType::kFixedIndex) {
      PBSKIT_ASSIGN_OR_RETURN(auto idx, store_->OpenFixedIndex(ns, dir, f.filename));
      digests = idx.digests();
    } else if (type == ArchiveType::kDynamicIndex) {
      PBSKIT_ASSIGN_OR_RETURN(auto idx, store_->OpenDynamicIndex(ns, dir, f.filename));
      for (const auto& e : idx.entries()) digests.push_back(e.digest);
    }
    for (const auto& d : digests) {
      if (chunks_[store].count(d) != 0 || !seen.insert(d).second) continue;
      todo.push_back(d);
    }
  }
  size_t next = 0;
  while (next < todo.size()) {
    PBSKIT_ASSIGN_OR_RETURN(Uuid uuid, LoadWritableMedia());
    PBSKIT_ASSIGN_OR_RETURN(bool leom, AppendChunkArchive(&todo, &next));
    if (leom) PBSKIT_RETURN_IF_ERROR(SetFull(uuid));
  }
  PBSKIT_ASSIGN_OR_RETURN(Uuid uuid, LoadWritableMedia());
  PBSKIT_ASSIGN_OR_RETURN(bool done, AppendSnapshotArchive(ns, dir, name));
  if (!done) {
    PBSKIT_RETURN_IF_ERROR(SetFull(uuid));
    PBSKIT_RETURN_IF_ERROR(LoadWritableMedia().status());
    PBSKIT_ASSIGN_OR_RETURN(done, AppendSnapshotArchive(ns, dir, name));
    if (!done) return Status::IoError("write_snapshot_archive failed on second media");
  }
  Log("end backup " + store + ":\"" + name + "\"");
  summary_.snapshots.push_back(name);
  return Status::OK();
}

Status PoolWriter::AppendCatalogArchive(bool* done) {
  PBSKIT_RETURN_IF_ERROR(PrepareWrite().status());
  uint64_t seq = members_.size() - 1;
  if (members_.back() != *current_) {
    return Status::Aborted("append_catalog_archive: got wrong media - internal error");
  }
  PBSKIT_ASSIGN_OR_RETURN(auto bytes, state_.ReadCatalog(*current_));
  PBSKIT_ASSIGN_OR_RETURN(auto dev, drive_->WriteFile());
  CatalogArchiveHeader h{*current_, set_uuid_, seq};
  PBSKIT_ASSIGN_OR_RETURN(auto uuid, WriteCatalogArchive(dev.get(), h, NsMagic(), bytes, Now()));
  *done = uuid.has_value();
  return Status::OK();
}

Status PoolWriter::Finish(bool need_catalog) {
  PBSKIT_RETURN_IF_ERROR(Commit());
  if (!need_catalog) return Status::OK();
  Log("append media catalog");
  PBSKIT_ASSIGN_OR_RETURN(Uuid uuid, LoadWritableMedia());
  bool done = false;
  PBSKIT_RETURN_IF_ERROR(AppendCatalogArchive(&done));
  if (!done) {
    Log("catalog does not fit on tape, writing to next volume");
    PBSKIT_RETURN_IF_ERROR(SetFull(uuid));
    PBSKIT_RETURN_IF_ERROR(LoadWritableMedia().status());
    PBSKIT_RETURN_IF_ERROR(AppendCatalogArchive(&done));
    if (!done) return Status::IoError("write_catalog_archive failed on second media");
  }
  return Status::OK();
}

}  // namespace

Result<TapeBackupSummary> RunTapeBackup(std::shared_ptr<DataStore> store, VirtualTapeDrive* drive,
                                        const TapeStatusDir& state, const TapeBackupOptions& opts) {
  PBSKIT_ASSIGN_OR_RETURN(auto filter, GroupFilter::Parse(opts.group_filter));
  PoolWriter writer(store, drive, state, opts);
  PBSKIT_RETURN_IF_ERROR(writer.Start());

  PBSKIT_ASSIGN_OR_RETURN(auto namespaces, store->ListNamespaces(opts.ns, true));
  std::vector<std::pair<BackupNamespace, BackupGroup>> groups;
  size_t total = 0;
  for (const auto& ns : namespaces) {
    if (opts.max_depth && ns.depth() - opts.ns.depth() > *opts.max_depth) continue;
    PBSKIT_ASSIGN_OR_RETURN(auto list, store->ListGroups(ns));
    for (const auto& g : list) {
      ++total;
      if (filter.Matches(g)) groups.emplace_back(ns, g);
    }
  }
  std::stable_sort(groups.begin(), groups.end(),
                   [](const auto& a, const auto& b) { return a.second < b.second; });
  if (opts.log) {
    opts.log("found " + std::to_string(groups.size()) + " groups (out of " + std::to_string(total) +
             " total)");
  }
  bool need_catalog = false;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const auto& [ns, g] = groups[gi];
    PBSKIT_ASSIGN_OR_RETURN(auto snaps, store->ListSnapshots(ns, g));
    std::vector<BackupDir> finished;
    for (const auto& s : snaps) {
      if (s.finished) finished.push_back(s.dir);
    }
    if (finished.empty()) {
      if (opts.log) opts.log("group " + g.ToString() + " was empty");
      continue;
    }
    if (opts.latest_only) finished.erase(finished.begin(), finished.end() - 1);
    for (const auto& d : finished) {
      std::string name = TapeSnapshotName(ns, d);
      if (writer.ContainsSnapshot(name)) {
        if (opts.log) opts.log("skip snapshot " + name);
        continue;
      }
      need_catalog = true;
      PBSKIT_RETURN_IF_ERROR(writer.BackupSnapshot(ns, d));
    }
    if (opts.log) {
      opts.log("percentage done: " + std::to_string((gi + 1) * 100 / groups.size()) + "% (" +
               std::to_string(gi + 1) + " of " + std::to_string(groups.size()) + " groups)");
    }
  }
  PBSKIT_RETURN_IF_ERROR(writer.Finish(need_catalog));
  return std::move(writer.summary());
}

}  // namespace pbskit::tape
