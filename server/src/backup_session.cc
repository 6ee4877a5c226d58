// Backup session: upgrade-time locking, cleanup, and the HTTP/2 endpoints of the backup
// protocol other than the index writers (backup_index.cc), with PBS's checks and messages
// (pbs4: src/api2/backup/mod.rs, environment.rs, upload_chunk.rs).
#include "backup_session.h"

#include <fcntl.h>

#include <cstring>

#include "pbskit/datastore/fs.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/names.h"
#include "pbskit/server/access_control.h"

namespace pbskit::server {
namespace {

constexpr int64_t kMaxChunkSize = 16ll * 1024 * 1024;
constexpr int64_t kMaxEncodedSize = kMaxChunkSize + 44;  // + encrypted blob header

ParamDef Wid() { return ParamDef{"wid", ParamType::kInteger, false, 1, 256}; }
ParamDef DigestParam() {
  return ParamDef{"digest", ParamType::kString, false, 0, INT64_MAX, [](const std::string& s) {
                    return IsDigestHex(s) ? Status::OK()
                                          : Status::InvalidArgument(
                                                "value does not match the regex pattern");
                  }};
}
ParamDef ArchiveNameParam(const std::string& name) {
  return ParamDef{name, ParamType::kString, false, 0, INT64_MAX, [](const std::string& s) {
                    return IsSafeId(s) ? Status::OK()
                                       : Status::InvalidArgument(
                                             "value does not match the regex pattern");
                  }};
}
ParamDef DigestList() {
  ParamDef d = DigestParam();
  d.name = "digest-list";
  d.type = ParamType::kStringArray;
  return d;
}
ParamDef OffsetList() { return ParamDef{"offset-list", ParamType::kIntegerArray, false, 0}; }

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

// PBS's relative snapshot path as shown in task logs: "ns/a/ns/b/host/x/2024-...Z".
std::string SnapshotName(const BackupNamespace& ns, const BackupDir& dir) {
  std::string out;
  for (const auto& c : ns.components()) out += "ns/" + c + "/";
  return out + dir.ToString();
}

}  // namespace

size_t BackupSession::DigestHash::operator()(const Digest& d) const {
  size_t h;
  std::memcpy(&h, d.data(), sizeof h);
  return h;
}

const std::vector<BackupSession::Endpoint>& BackupSession::Endpoints() {
  auto make = [](std::string method, std::string path, std::vector<ParamDef> params, bool raw,
                 auto fn) {
    Endpoint e;
    e.route.method = std::move(method);
    e.route.pattern = std::move(path);
    e.route.params = std::move(params);
    e.route.raw_body = raw;
    e.handler = [fn](BackupSession& s, H2Request& r, const Params& p) { return (s.*fn)(r, p); };
    return e;
  };
  auto chunk = [](BackupSession& s, H2Request& r, const Params& p, bool fixed) {
    return s.UploadChunk(r, p, fixed);
  };
  std::vector<ParamDef> chunk_params = {
      Wid(), DigestParam(), ParamDef{"size", ParamType::kInteger, false, 1, kMaxChunkSize},
      ParamDef{"encoded-size", ParamType::kInteger, false, 13, kMaxEncodedSize}};
  static const std::vector<Endpoint> endpoints = [&] {
    std::vector<Endpoint> v;
    v.push_back(make("GET", "", {}, false, &BackupSession::ListSubdirs));
    v.push_back(make("GET", "previous_backup_time", {}, false, &BackupSession::PreviousBackupTime));
    v.push_back(make("GET", "previous", {ArchiveNameParam("archive-name")}, true,
                     &BackupSession::Previous));
    v.push_back(make("POST", "blob",
                     {ArchiveNameParam("file-name"),
                      ParamDef{"encoded-size", ParamType::kInteger, false, 12, kMaxEncodedSize}},
                     true, &BackupSession::UploadBlob));
    v.push_back(make("POST", "dynamic_index", {ArchiveNameParam("archive-name")}, false,
                     &BackupSession::CreateDynamicIndex));
    v.push_back(make("POST", "fixed_index",
                     {ArchiveNameParam("archive-name"),
                      ParamDef{"size", ParamType::kInteger, true, 1},
                      ParamDef{"reuse-csum", ParamType::kString, true}},
                     false, &BackupSession::CreateFixedIndex));
    Endpoint dc;
    dc.route.method = "POST";
    dc.route.pattern = "dynamic_chunk";
    dc.route.params = chunk_params;
    dc.route.raw_body = true;
    dc.handler = [chunk](BackupSession& s, H2Request& r, const Params& p) {
      return chunk(s, r, p, false);
    };
    v.push_back(dc);
    Endpoint fc = dc;
    fc.route.pattern = "fixed_chunk";
    fc.handler = [chunk](BackupSession& s, H2Request& r, const Params& p) {
      return chunk(s, r, p, true);
    };
    v.push_back(fc);
    v.push_back(make("PUT", "dynamic_index", {Wid(), DigestList(), OffsetList()}, false,
                     &BackupSession::DynamicAppend));
    v.push_back(make("PUT", "fixed_index", {Wid(), DigestList(), OffsetList()}, false,
                     &BackupSession::FixedAppend));
    v.push_back(make("POST", "dynamic_close",
                     {Wid(), ParamDef{"chunk-count", ParamType::kInteger, false, 1},
                      ParamDef{"size", ParamType::kInteger, false, 1},
                      ParamDef{"csum", ParamType::kString, false}},
                     false, &BackupSession::CloseDynamic));
    v.push_back(make("POST", "fixed_close",
                     {Wid(), ParamDef{"chunk-count", ParamType::kInteger, false, 0},
                      ParamDef{"size", ParamType::kInteger, false, 0},
                      ParamDef{"csum", ParamType::kString, false}},
                     false, &BackupSession::CloseFixed));
    v.push_back(make("POST", "finish", {}, false, &BackupSession::Finish));
    v.push_back(make("POST", "speedtest", {}, true, &BackupSession::Speedtest));
    return v;
  }();
  return endpoints;
}

Result<std::unique_ptr<BackupSession>> BackupSession::Start(BackupSessionParams params) {
  std::unique_ptr<BackupSession> s(new BackupSession(std::move(params)));
  BackupSessionParams& p = s->p_;
  DataStore& store = *p.store;
  std::string auth = p.auth_id.ToString();

  PBSKIT_ASSIGN_OR_RETURN(bool group_existed, store.GroupExists(p.ns, p.dir.group));
  PBSKIT_ASSIGN_OR_RETURN(auto owner_and_lock, store.CreateLockedGroup(p.ns, p.dir.group, auth));
  s->group_lock_ = std::move(owner_and_lock.second);
  s->created_group_ = !group_existed;
  const std::string& owner = owner_and_lock.first;
  if (!p.benchmark && !OwnerMatches(owner, p.auth_id)) {
    return Status::InvalidArgument("backup owner check failed (" + auth + " != " + owner + ")");
  }

  // The newest finished snapshot is the base unless its verification failed.
  PBSKIT_ASSIGN_OR_RETURN(std::optional<BackupDir> last,
                          store.LastFinishedSnapshot(p.ns, p.dir.group));
  if (last) {
    PBSKIT_ASSIGN_OR_RETURN(Manifest m, store.LoadManifest(p.ns, *last));
    bool failed = false;
    if (const auto* vs = m.unprotected.if_contains("verify_state"); vs && vs->is_object()) {
      const auto* state = vs->as_object().if_contains("state");
      failed = state && state->is_string() && state->as_string() == "failed";
    }
    if (!failed) {
      if (p.dir.time <= last->time) {
        return Status::InvalidArgument("backup timestamp is older than last backup.");
      }
      auto lock = store.LockSnapshotShared(p.ns, *last);
      if (!lock.ok()) {
        return Status::InvalidArgument("while locking last snapshot during backup '" +
                                       last->ToString() + "': " + lock.status().message());
      }
      s->previous_lock_ = std::move(lock).value();
      s->last_backup_ = last;
    }
  }

  Status st = store.fs()->Mkdir(s->SnapshotPath(), 0755);
  if (st.code() == Code::kAlreadyExists) {
    return Status::InvalidArgument("backup directory already exists.");
  }
  PBSKIT_RETURN_IF_ERROR(st);
  s->created_dir_ = true;
  auto snap_lock = store.LockSnapshot(p.ns, p.dir);
  if (!snap_lock.ok()) return snap_lock.status();  // the destructor removes the directory
  s->snapshot_lock_ = std::move(snap_lock).value();
  auto plock = store.chunk_store().LockShared();
  if (!plock.ok()) {
    return Status::InvalidArgument("unable to get shared lock on datastore '" + store.name() +
                                   "' - " + plock.status().message());
  }
  s->chunk_store_lock_ = std::move(plock).value();
  if (!p.benchmark) s->pacer_ = std::make_unique<WritebackPacer>(store);

  if (!p.state_dir.empty()) {
    std::string worker_id = store.name() + ":" + BackupTypeName(p.dir.group.type) + "/" +
                            p.dir.group.id;
    auto upid = NewUpid(p.benchmark ? "benchmark" : "backup", worker_id, auth);
    if (upid.ok()) {
      auto task = TaskLog::Start(p.state_dir, *upid);
      if (task.ok()) s->task_ = std::move(task).value();
    }
  }
  std::string origin = p.peer.empty() ? "" : " from " + p.peer.substr(0, p.peer.rfind(':'));
  s->Log(std::string("starting new ") + (p.benchmark ? "benchmark" : "backup") +
         " on datastore '" + store.name() + "'" + origin + ": " +
         Quoted(SnapshotName(p.ns, p.dir)));
  return s;
}

BackupSession::~BackupSession() {
  if (!cleaned_) Cleanup(finished_ ? "" : "backup ended without finish");
}

std::string BackupSession::SnapshotPath() const { return p_.store->SnapshotPath(p_.ns, p_.dir); }

void BackupSession::Log(const std::string& line) {
  if (task_) task_->Info(line);
}

Status BackupSession::EnsureActive() const {
  if (finished_) return Status::InvalidArgument("backup already marked as finished.");
  return Status::OK();
}

void BackupSession::Cleanup(const std::string& why) {
  cleaned_ = true;
  DataStore& store = *p_.store;
  bool remove = created_dir_ && (!finished_ || p_.benchmark);
  if (remove && !finished_) {
    // We still hold the snapshot lock: remove under the manifest lock only.
    Status st = store.RemoveSnapshotLocked(p_.ns, p_.dir, true);
    if (!st.ok() && !st.IsNotFound()) Log("removing snapshot failed: " + st.message());
  } else if (remove) {
    Status st = store.RemoveSnapshot(p_.ns, p_.dir, true);
    if (!st.ok() && !st.IsNotFound()) Log("removing benchmark snapshot failed: " + st.message());
  }
  if (remove && created_group_ && group_lock_) {
    // Leave no trace of a group this session created: owner file and directory if empty.
    std::string group_path = store.GroupPath(p_.ns, p_.dir.group);
    std::vector<DirEntry> entries;
    if (store.fs()->ReadDir(group_path, &entries).ok()) {
      bool only_owner = true;
      for (const auto& e : entries) only_owner = only_owner && e.name == "owner";
      if (only_owner) {
        (void)store.fs()->Unlink(group_path + "/owner");
        (void)store.fs()->Rmdir(group_path);
      }
    }
  }
  snapshot_lock_.reset();
  previous_lock_.reset();
  chunk_store_lock_.reset();
  group_lock_.reset();
  if (task_) {
    Status result = finished_ ? Status::OK() : Status::Aborted(why.empty() ? "backup failed" : why);
    (void)task_->Finish(result);
    task_.reset();
  }
}

void BackupSession::End(const H2ConnectionStats& stats) {
  std::string err = stats.close_reason;
  if (p_.benchmark) {
    Log("benchmark finished successfully");
  } else if (finished_) {
    if (err.empty()) {
      Log("backup finished successfully");
    } else {
      Log("backup had errors but finished: " + err);
    }
  } else if (err.empty()) {
    err = "backup ended but finished state is not set.";
    Log("backup ended and finish failed: " + err);
    Log("removing unfinished backup");
  } else {
    Log("backup failed: " + err);
    Log("removing failed backup");
  }
  Cleanup(err);
}

size_t BackupSession::MaxBodySize(const H2Request& request) {
  std::string rel = NormalizeH2Path(request.path);
  if (rel == "dynamic_chunk" || rel == "fixed_chunk" || rel == "blob") return kMaxEncodedSize;
  if (rel == "speedtest") return 64ull * 1024 * 1024;
  return 512 * 1024;  // parameter bodies (PBS MAX_REQUEST_BODY_SIZE)
}

bool BackupSession::IsConcurrent(const H2Request& request) {
  if (request.method != "POST") return false;
  std::string rel = NormalizeH2Path(request.path);
  return rel == "fixed_chunk" || rel == "dynamic_chunk";
}

H2Response BackupSession::Handle(H2Request& request) {
  Params params;
  H2Response error;
  const Endpoint* e = FindEndpoint(Endpoints(), request, &params, &error);
  if (!e) return error;
  return e->handler(*this, request, params);
}

H2Response BackupSession::ListSubdirs(H2Request&, const Params&) {
  boost::json::array a;
  for (const char* n : {"blob", "dynamic_chunk", "dynamic_close", "dynamic_index", "finish",
                        "fixed_chunk", "fixed_close", "fixed_index", "previous",
                        "previous_backup_time", "speedtest"}) {
    boost::json::object o;
    o["subdir"] = n;
    a.push_back(std::move(o));
  }
  return DataResponse(std::move(a));
}

H2Response BackupSession::PreviousBackupTime(H2Request&, const Params&) {
  if (!last_backup_) return DataResponse(nullptr);
  return DataResponse(last_backup_->time);
}

H2Response BackupSession::Previous(H2Request&, const Params& params) {
  std::string name(params.at("archive-name").as_string());
  if (!last_backup_) return ErrorResponse(400, "no valid previous backup");
  std::string path = p_.store->SnapshotPath(p_.ns, *last_backup_) + "/" + name;
  auto type = ArchiveTypeOf(name);
  if (!type.ok()) return ErrorResponse(400, type.status().message());
  if (*type != ArchiveType::kBlob) {
    Log("register chunks in '" + name + "' from previous backup '" + last_backup_->ToString() +
        "'.");
    if (Status st = EnsureActive(); !st.ok()) return ErrorResponse(st);
    if (*type == ArchiveType::kFixedIndex) {
      auto index = p_.store->OpenFixedIndex(p_.ns, *last_backup_, name);
      if (!index.ok()) return ErrorResponse(400, index.status().message());
      for (size_t i = 0; i < index->chunk_count(); ++i) {
        auto [start, end] = index->chunk_range(i);
        known_chunks_[index->digest(i)] = static_cast<uint32_t>(end - start);
      }
    } else {
      auto index = p_.store->OpenDynamicIndex(p_.ns, *last_backup_, name);
      if (!index.ok()) return ErrorResponse(400, index.status().message());
      for (size_t i = 0; i < index->chunk_count(); ++i) {
        auto [start, end] = index->chunk_range(i);
        known_chunks_[index->entry(i).digest] = static_cast<uint32_t>(end - start);
      }
    }
  }
  Log("download '" + name + "' from previous backup '" + last_backup_->ToString() + "'.");
  auto data = ReadWholeFile(p_.store->fs(), path);
  if (!data.ok()) {
    if (data.status().IsNotFound()) {
      return ErrorResponse(404, "open file " + Quoted(path) + " failed - not found");
    }
    return ErrorResponse(400, "open file " + Quoted(path) + " failed: " + data.status().message());
  }
  return OctetResponse(std::string(data->begin(), data->end()));
}

H2Response BackupSession::UploadBlob(H2Request& request, const Params& params) {
  std::string name(params.at("file-name").as_string());
  auto encoded_size = static_cast<size_t>(params.at("encoded-size").as_int64());
  if (!EndsWith(name, ".blob")) return ErrorResponse(400, "wrong blob file extension: '" + name + "'");
  if (encoded_size != request.body.size()) {
    return ErrorResponse(400, "got blob with unexpected length (" + std::to_string(encoded_size) +
                                  " != " + std::to_string(request.body.size()) + ")");
  }
  if (Status st = EnsureActive(); !st.ok()) return ErrorResponse(st);
  // Always verify the blob (magic, CRC) on the server side.
  std::vector<uint8_t> raw(request.body.begin(), request.body.end());
  auto blob = DataBlob::FromRaw(std::move(raw), true);
  if (!blob.ok()) return ErrorResponse(400, blob.status().message());
  std::string path = SnapshotPath() + "/" + name;
  Status st = WriteFileAtomic(p_.store->fs(), path, std::span<const uint8_t>(blob->raw()),
                              p_.store->sync_level());
  if (!st.ok()) return ErrorResponse(400, st.message());
  Log("add blob " + Quoted(path) + " (" + std::to_string(blob->size()) +
      " bytes, comp: " + std::to_string(blob->size()) + ")");
  file_counter_ += 1;
  backup_size_ += blob->size();
  backup_stat_.size += blob->size();
  return DataResponse(nullptr);
}

H2Response BackupSession::Finish(H2Request&, const Params&) {
  if (Status st = EnsureActive(); !st.ok()) return ErrorResponse(st);
  if (!dynamic_writers_.empty() || !fixed_writers_.empty()) {
    return ErrorResponse(400, "found open index writer - unable to finish backup");
  }
  if (file_counter_ == 0) {
    return ErrorResponse(400, "backup does not contain valid files (file count == 0)");
  }
  DataStore& store = *p_.store;
  if (last_backup_) {
    auto exists = PathExists(store.fs(), store.SnapshotPath(p_.ns, *last_backup_));
    if (!exists.ok() || !*exists) {
      return ErrorResponse(400, "base snapshot " + last_backup_->ToString() +
                                    " was removed during backup, cannot finish as chunks might "
                                    "be missing");
    }
  }
  previous_lock_.reset();
  chunk_store_lock_.reset();
  boost::json::object stats;
  stats["count"] = backup_stat_.count;
  stats["size"] = backup_stat_.size;
  stats["compressed_size"] = backup_stat_.compressed_size;
  stats["duplicates"] = backup_stat_.duplicates;
  Status st = store.UpdateManifestUnprotected(p_.ns, p_.dir, [&](boost::json::object& u) {
    u["chunk_upload_stats"] = stats;
    return Status::OK();
  });
  if (!st.ok()) return ErrorResponse(400, "unable to update manifest blob - " + st.message());
  if (store.sync_level() == SyncLevel::kFilesystem) {
    auto fd = store.fs()->Open(SnapshotPath(), O_RDONLY | O_DIRECTORY);
    if (!fd.ok()) return ErrorResponse(400, fd.status().message());
    ScopedFd sfd(store.fs(), *fd);
    if (Status s2 = store.fs()->SyncFs(*fd); !s2.ok()) return ErrorResponse(400, s2.message());
  } else if (store.sync_level() == SyncLevel::kFile) {
    if (Status s2 = store.fs()->FsyncDir(store.GroupPath(p_.ns, p_.dir.group)); !s2.ok()) {
      return ErrorResponse(400, s2.message());
    }
  }
  finished_ = true;
  // Release now so an immediately following backup of this group (push sync) can start.
  snapshot_lock_.reset();
  group_lock_.reset();
  Log("successfully finished backup");
  return DataResponse(nullptr);
}

H2Response BackupSession::Speedtest(H2Request& request, const Params&) {
  if (p_.debug) Log("UPLOAD END " + std::to_string(request.body.size()) + " bytes");
  return DataResponse(nullptr);
}

}  // namespace pbskit::server
