// Datastore REST endpoints (PROTOCOL.md §3): list, status, namespaces, groups, snapshots, files,
// notes, protection, download, client log upload, forget.
#include <sys/statvfs.h>

#include <filesystem>

#include "api.h"
#include "datastore_access.h"
#include "file_util.h"
#include "pbskit/datastore/datastore_config.h"
#include "pbskit/datastore/archive_reader.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/server/api_server.h"

namespace pbskit::server {
namespace {


constexpr uint64_t kNsPrivsOk =
    kPrivDatastoreModify | kPrivDatastoreRead | kPrivDatastoreBackup | kPrivDatastoreAudit;

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

boost::json::array FileNames(const std::vector<std::string>& files) {
  boost::json::array a;
  for (const auto& f : files) a.emplace_back(f);
  return a;
}

Result<ApiResult> ListDatastores(ApiCall& call) {
  PBSKIT_ASSIGN_OR_RETURN(DatastoreConfig cfg, DatastoreConfig::Load(call.server->options().config_dir));
  boost::json::array out;
  for (const auto& e : cfg.entries()) {
    uint64_t privs = call.server->access().LookupPrivs(*call.auth_id, {"datastore", e.name});
    bool allowed = (privs & (kPrivDatastoreAudit | kPrivDatastoreBackup)) != 0;
    if (!allowed && privs == 0) {
      // Any namespace privilege below also makes the store visible (without its comment).
      auto store = OpenStore(call.server->options().config_dir, e.name);
      if (store.ok()) {
        auto nss = store->store->ListNamespaces(BackupNamespace(), true);
        if (nss.ok()) {
          for (const auto& ns : *nss) {
            if (call.server->access().LookupPrivs(*call.auth_id, DatastoreAclPath(e.name, ns)) &
                kNsPrivsOk) {
              privs = 1;
              break;
            }
          }
        }
      }
      if (privs == 0) continue;
    }
    boost::json::object item;
    item["store"] = e.name;
    if (allowed && !e.comment().empty()) item["comment"] = e.comment();
    item["mount-status"] = "nonremovable";
    item["backend-type"] = "filesystem";
    if (auto mm = e.maintenance_mode(); mm.ok() && mm->has_value()) {
      item["maintenance"] = (*mm)->ToString();
    }
    out.push_back(std::move(item));
  }
  return ApiResult::Of(std::move(out));
}

Result<ApiResult> DatastoreStatus(ApiCall& call) {
  std::string name = call.Str("store");
  uint64_t privs = call.server->access().LookupPrivs(*call.auth_id, {"datastore", name});
  bool full = (privs & (kPrivDatastoreAudit | kPrivDatastoreBackup)) != 0;
  if (!full && !(privs & kPrivDatastoreRead)) {
    return Status::PermissionDenied("permission check failed - missing Datastore.Audit|"
                                    "Datastore.Backup on /datastore/" + name);
  }
  PBSKIT_ASSIGN_OR_RETURN(auto store, OpenConfiguredStore(call, name));
  boost::json::object o;
  uint64_t total = 0, used = 0, avail = 0;
  if (full) {
    struct statvfs st{};
    if (::statvfs(store->base().c_str(), &st) != 0) {
      return Status::FromErrno(errno, "unable to stat datastore '" + store->base() + "'");
    }
    total = static_cast<uint64_t>(st.f_blocks) * st.f_frsize;
    avail = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
    used = total - static_cast<uint64_t>(st.f_bfree) * st.f_frsize;
  }
  o["total"] = total;
  o["used"] = used;
  o["avail"] = avail;
  o["backend-type"] = "filesystem";
  if (full && call.Bool("verbose")) {
    boost::json::object counts;
    std::map<std::string, std::pair<uint64_t, uint64_t>> per_type;
    auto nss = store->ListNamespaces(BackupNamespace(), true);
    if (nss.ok()) {
      for (const auto& ns : *nss) {
        auto groups = store->ListGroups(ns);
        if (!groups.ok()) continue;
        for (const auto& g : *groups) {
          auto& c = per_type[BackupTypeName(g.type)];
          c.first += 1;
          auto snaps = store->ListSnapshots(ns, g);
          if (snaps.ok()) c.second += snaps->size();
        }
      }
    }
    for (const auto& [type, c] : per_type) {
      counts[type] = boost::json::object{{"groups", c.first}, {"snapshots", c.second}};
    }
    o["counts"] = std::move(counts);
  }
  return ApiResult::Of(std::move(o));
}

Result<ApiResult> ListNamespaces(ApiCall& call) {
  std::string name = call.Str("store");
  PBSKIT_ASSIGN_OR_RETURN(BackupNamespace parent, BackupNamespace::Parse(call.Str("parent")));
  PBSKIT_ASSIGN_OR_RETURN(auto store, OpenConfiguredStore(call, name));
  PBSKIT_ASSIGN_OR_RETURN(auto all, store->ListNamespaces(parent, true));
  bool has_depth = call.Has("max-depth");
  int64_t max_depth = call.Int("max-depth");
  boost::json::array out;
  for (const auto& ns : all) {
    if (has_depth && static_cast<int64_t>(ns.depth() - parent.depth()) > max_depth) continue;
    if (call.server->access().LookupPrivs(*call.auth_id, DatastoreAclPath(name, ns)) & kNsPrivsOk) {
      out.push_back(boost::json::object{{"ns", ns.ToString()}});
    }
  }
  if (out.empty()) {
    return Status::PermissionDenied("permission check failed");
  }
  return ApiResult::Of(std::move(out));
}

Result<ApiResult> CreateNamespace(ApiCall& call) {
  std::string name = call.Str("store");
  PBSKIT_ASSIGN_OR_RETURN(BackupNamespace parent, BackupNamespace::Parse(call.Str("parent")));
  PBSKIT_ASSIGN_OR_RETURN(BackupNamespace ns, parent.Child(call.Str("name")));
  PBSKIT_RETURN_IF_ERROR(CheckNsPrivs(call, name, parent, kPrivDatastoreModify));
  PBSKIT_ASSIGN_OR_RETURN(auto store, OpenConfiguredStore(call, name));
  PBSKIT_RETURN_IF_ERROR(store->CreateNamespace(ns));
  return ApiResult::Of(boost::json::string(ns.ToString()));
}

Result<ApiResult> DeleteNamespace(ApiCall& call) {
  std::string name = call.Str("store");
  PBSKIT_ASSIGN_OR_RETURN(BackupNamespace ns, BackupNamespace::Parse(call.Str("ns")));
  if (ns.IsRoot()) return Status::InvalidArgument("Cannot create/delete root namespace!");
  PBSKIT_RETURN_IF_ERROR(CheckNsPrivs(call, name, ns.Parent(), kPrivDatastoreModify));
  PBSKIT_ASSIGN_OR_RETURN(auto store, OpenConfiguredStore(call, name));
  bool delete_groups = call.Bool("delete-groups");
  bool error_on_protected = call.Bool("error-on-protected", true);
  uint64_t groups = 0, snaps = 0, prot = 0;
  if (delete_groups) {
    PBSKIT_ASSIGN_OR_RETURN(auto nss, store->ListNamespaces(ns, true));
    for (const auto& sub : nss) {
      auto gl = store->ListGroups(sub);
      if (!gl.ok()) continue;
      for (const auto& g : *gl) {
        auto sl = store->ListSnapshots(sub, g);
        if (!sl.ok()) continue;
        uint64_t p = 0;
        for (const auto& s : *sl) p += s.is_protected ? 1 : 0;
        prot += p;
        snaps += sl->size() - p;
        groups += p == 0 ? 1 : 0;
      }
    }
  }
  Status st = store->RemoveNamespace(ns, delete_groups);
  if (!st.ok() && (error_on_protected || prot == 0)) return st;
  return ApiResult::Of(boost::json::object{
      {"removed-groups", groups}, {"protected-snapshots", prot}, {"removed-snapshots", snaps}});
}

Result<ApiResult> ListGroups(ApiCall& call) {
  std::string name = call.Str("store");
  PBSKIT_ASSIGN_OR_RETURN(BackupNamespace ns, BackupNamespace::Parse(call.Str("ns")));
  PBSKIT_ASSIGN_OR_RETURN(bool owner_only, CheckNsPrivsFull(call, name, ns, kPrivDatastoreAudit,
                                                            kPrivDatastoreBackup));
  PBSKIT_ASSIGN_OR_RETURN(auto store, OpenConfiguredStore(call, name));
  PBSKIT_ASSIGN_OR_RETURN(auto groups, store->ListGroups(ns));
  boost::json::array out;
  for (const auto& g : groups) {
    auto owner = store->GetOwner(ns, g);
    if (owner_only && !(owner.ok() && OwnerMatches(*owner, *call.auth_id))) continue;
    auto snaps = store->ListSnapshots(ns, g);
    if (!snaps.ok() || snaps->empty()) continue;
    const SnapshotInfo* last = nullptr;
    for (const auto& s : *snaps) {
      if (s.finished && (!last || s.dir.time > last->dir.time)) last = &s;
    }
    if (!last) last = &snaps->back();
    boost::json::object item;
    item["backup-type"] = BackupTypeName(g.type);
    item["backup-id"] = g.id;
    item["last-backup"] = last->dir.time;
    item["backup-count"] = snaps->size();
    item["files"] = FileNames(last->files);
    if (owner.ok()) item["owner"] = *owner;
    auto notes = store->GetGroupNotes(ns, g);
    if (notes.ok() && !notes->empty()) item["comment"] = FirstLine(*notes);
    out.push_back(std::move(item));
  }
  return ApiResult::Of(std::move(out));
}

Result<ApiResult> ListSnapshots(ApiCall& call) {
  std::string name = call.Str("store");
  PBSKIT_ASSIGN_OR_RETURN(BackupNamespace ns, BackupNamespace::Parse(call.Str("ns")));
  PBSKIT_ASSIGN_OR_RETURN(bool owner_only, CheckNsPrivsFull(call, name, ns, kPrivDatastoreAudit,
                                                            kPrivDatastoreBackup));
  PBSKIT_ASSIGN_OR_RETURN(auto store, OpenConfiguredStore(call, name));
  std::vector<BackupGroup> groups;
  if (call.Has("backup-type") && call.Has("backup-id")) {
    PBSKIT_ASSIGN_OR_RETURN(BackupType t, ParseBackupType(call.Str("backup-type")));
    groups.push_back(BackupGroup{t, call.Str("backup-id")});
  } else {
    PBSKIT_ASSIGN_OR_RETURN(groups, store->ListGroups(ns));
    if (call.Has("backup-type")) {
      std::erase_if(groups, [&](const BackupGroup& g) {
        return BackupTypeName(g.type) != call.Str("backup-type");
      });
    }
    if (call.Has("backup-id")) {
      std::erase_if(groups, [&](const BackupGroup& g) { return g.id != call.Str("backup-id"); });
    }
  }
  boost::json::array out;
  for (const auto& g : groups) {
    auto owner = store->GetOwner(ns, g);
    if (owner_only && !(owner.ok() && OwnerMatches(*owner, *call.auth_id))) continue;
    auto snaps = store->ListSnapshots(ns, g);
    if (!snaps.ok()) {
      if (groups.size() == 1) return snaps.status();
      continue;
    }
    for (const auto& s : *snaps) {
      out.push_back(SnapshotListItem(*store, ns, s, owner.ok() ? &*owner : nullptr));
    }
  }
  return ApiResult::Of(std::move(out));
}

Result<ApiResult> ListFiles(ApiCall& call) {
  PBSKIT_ASSIGN_OR_RETURN(SnapshotTarget t,
                          ResolveSnapshot(call, kPrivDatastoreAudit | kPrivDatastoreRead,
                                          kPrivDatastoreBackup));
  PBSKIT_ASSIGN_OR_RETURN(SnapshotInfo info, t.store->GetSnapshotInfo(t.ns, t.dir));
  if (!info.finished) {
    return Status::InvalidArgument("unable to load manifest of snapshot '" + t.dir.ToString() +
                                   "' - no manifest");
  }
  auto item = SnapshotListItem(*t.store, t.ns, info, nullptr);
  return ApiResult::Of(item["files"]);
}

Result<ApiResult> Download(ApiCall& call) {
  PBSKIT_ASSIGN_OR_RETURN(SnapshotTarget t,
                          ResolveSnapshot(call, kPrivDatastoreRead, kPrivDatastoreBackup));
  std::string file = call.Str("file-name");
  auto data = t.store->ReadSnapshotFile(t.ns, t.dir, file);
  if (!data.ok()) {
    if (data.status().IsNotFound()) {
      return Status::NotFound("file '" + file + "' of snapshot '" + t.dir.ToString() +
                              "' does not exist");
    }
    return data.status();
  }
  HttpResponse r;
  r.content_type = "application/octet-stream";
  r.body.assign(data->begin(), data->end());
  ApiResult res;
  res.raw = std::move(r);
  return res;
}

// PBS download_file_decoded: the blob payload or the reassembled index data of an
// unencrypted file; index csum and size are checked against the manifest and every chunk is
// decoded and checked (CRC, plain magic, digest, length) before the response is sent.
Result<ApiResult> DownloadDecoded(ApiCall& call) {
  PBSKIT_ASSIGN_OR_RETURN(SnapshotTarget t,
                          ResolveSnapshot(call, kPrivDatastoreRead, kPrivDatastoreBackup));
  const std::string file = call.Str("file-name");
  auto manifest = t.store->LoadManifest(t.ns, t.dir);
  if (!manifest.ok()) {
    if (manifest.status().IsNotFound()) {
      return Status::InvalidArgument("manifest not found for snapshot '" + t.dir.ToString() + "'");
    }
    return manifest.status();
  }
  const FileInfo* info = manifest->Lookup(file);
  if (info && info->crypt_mode == CryptMode::kEncrypt) {
    return Status::InvalidArgument("cannot decode '" + file + "' - is encrypted");
  }
  PBSKIT_ASSIGN_OR_RETURN(ArchiveType type, ArchiveTypeOf(file));
  std::string out;
  if (type == ArchiveType::kBlob) {
    auto raw = t.store->ReadSnapshotFile(t.ns, t.dir, file);
    if (!raw.ok()) {
      if (raw.status().IsNotFound()) {
        return Status::InvalidArgument("File open failed: file '" + file + "' of snapshot '" +
                                       t.dir.ToString() + "' does not exist");
      }
      return raw.status();
    }
    PBSKIT_ASSIGN_OR_RETURN(DataBlob blob, DataBlob::FromRaw(std::move(raw).value(), true));
    if (blob.is_encrypted()) {
      return Status::InvalidArgument("cannot decode '" + file + "' - is encrypted");
    }
    PBSKIT_ASSIGN_OR_RETURN(std::vector<uint8_t> data, blob.Decode(nullptr));
    out.assign(data.begin(), data.end());
  } else {
    std::optional<FixedIndex> fixed;
    std::optional<DynamicIndex> dynamic;
    uint64_t size = 0;
    Digest csum{};
    if (type == ArchiveType::kFixedIndex) {
      PBSKIT_ASSIGN_OR_RETURN(fixed, t.store->OpenFixedIndex(t.ns, t.dir, file));
      size = fixed->size();
      csum = fixed->ComputeCsum();
    } else {
      PBSKIT_ASSIGN_OR_RETURN(dynamic, t.store->OpenDynamicIndex(t.ns, t.dir, file));
      size = dynamic->size();
      csum = dynamic->ComputeCsum();
    }
    if (!info) return Status::InvalidArgument("manifest does not contain file '" + file + "'");
    if (info->size != size) {
      return Status::InvalidArgument("wrong size for file '" + file + "' (" +
                                     std::to_string(info->size) + " != " + std::to_string(size) +
                                     ")");
    }
    if (info->csum != csum) {
      return Status::InvalidArgument("wrong checksum for file '" + file + "'");
    }
    // Streamed chunk by chunk (each one checked as it is read), as PBS streams it: memory stays
    // at one chunk whatever the archive's size.
    struct Source {
      std::shared_ptr<DataStore> store;
      std::optional<FixedIndex> fixed;
      std::optional<DynamicIndex> dynamic;
      size_t next = 0;
      std::vector<uint8_t> raw, plain;
    };
    auto src = std::make_shared<Source>();
    src->store = t.store;
    src->fixed = std::move(fixed);
    src->dynamic = std::move(dynamic);
    HttpResponse r;
    r.content_type = "application/octet-stream";
    r.body_stream_size = size;
    r.body_stream = [src](std::string* piece) -> Result<bool> {
      const size_t count = src->fixed ? src->fixed->chunk_count() : src->dynamic->chunk_count();
      piece->clear();
      if (src->next >= count) return false;
      size_t i = src->next++;
      const Digest& d = src->fixed ? src->fixed->digest(i) : src->dynamic->entry(i).digest;
      auto [begin, end] = src->fixed ? src->fixed->chunk_range(i) : src->dynamic->chunk_range(i);
      PBSKIT_RETURN_IF_ERROR(src->store->chunk_store().LoadChunkInto(d, &src->raw));
      PBSKIT_RETURN_IF_ERROR(
          DecodeAndCheckChunk(src->raw, d, end - begin, CryptMode::kNone, nullptr, &src->plain));
      piece->assign(src->plain.begin(), src->plain.end());
      return src->next < count;
    };
    ApiResult res;
    res.raw = std::move(r);
    return res;
  }
  HttpResponse r;
  r.content_type = "application/octet-stream";
  r.body = std::move(out);
  ApiResult res;
  res.raw = std::move(r);
  return res;
}

Result<ApiResult> UploadBackupLog(ApiCall& call) {
  PBSKIT_ASSIGN_OR_RETURN(SnapshotTarget t, ResolveSnapshot(call, 0, kPrivDatastoreBackup));
  std::string path = t.store->SnapshotPath(t.ns, t.dir);
  PBSKIT_ASSIGN_OR_RETURN(SnapshotInfo info, t.store->GetSnapshotInfo(t.ns, t.dir));
  (void)info;
  std::string target = path + "/" + kClientLogBlobName;
  std::error_code ec;
  if (std::filesystem::exists(target, ec)) {
    return Status::InvalidArgument("backup already contains a log.");
  }
  const std::string& body = call.request->body;
  auto blob = DataBlob::FromRaw(std::vector<uint8_t>(body.begin(), body.end()), true);
  if (!blob.ok()) return Status::InvalidArgument("client log blob: " + blob.status().message());
  PBSKIT_RETURN_IF_ERROR(ReplaceFile(target, body, 0644));
  return ApiResult::Null();
}

Result<ApiResult> GetNotes(ApiCall& call) {
  PBSKIT_ASSIGN_OR_RETURN(SnapshotTarget t,
                          ResolveSnapshot(call, kPrivDatastoreAudit, kPrivDatastoreBackup));
  PBSKIT_ASSIGN_OR_RETURN(std::string notes, t.store->GetSnapshotNotes(t.ns, t.dir));
  return ApiResult::Of(boost::json::string(notes));
}

Result<ApiResult> SetNotes(ApiCall& call) {
  PBSKIT_ASSIGN_OR_RETURN(SnapshotTarget t,
                          ResolveSnapshot(call, kPrivDatastoreModify, kPrivDatastoreBackup));
  PBSKIT_RETURN_IF_ERROR(t.store->SetSnapshotNotes(t.ns, t.dir, call.Str("notes")));
  return ApiResult::Null();
}

Result<ApiResult> GetProtected(ApiCall& call) {
  PBSKIT_ASSIGN_OR_RETURN(SnapshotTarget t,
                          ResolveSnapshot(call, kPrivDatastoreAudit, kPrivDatastoreBackup));
  PBSKIT_ASSIGN_OR_RETURN(bool p, t.store->IsProtected(t.ns, t.dir));
  return ApiResult::Of(p);
}

Result<ApiResult> SetProtected(ApiCall& call) {
  PBSKIT_ASSIGN_OR_RETURN(SnapshotTarget t,
                          ResolveSnapshot(call, kPrivDatastoreModify, kPrivDatastoreBackup));
  PBSKIT_RETURN_IF_ERROR(t.store->SetProtected(t.ns, t.dir, call.Bool("protected")));
  return ApiResult::Null();
}

Result<ApiResult> DeleteSnapshot(ApiCall& call) {
  PBSKIT_ASSIGN_OR_RETURN(SnapshotTarget t,
                          ResolveSnapshot(call, kPrivDatastoreModify, kPrivDatastorePrune));
  auto prot = t.store->IsProtected(t.ns, t.dir);
  if (prot.ok() && *prot) {
    return Status::InvalidArgument("failed to delete snapshot - cannot remove protected snapshot");
  }
  PBSKIT_RETURN_IF_ERROR(t.store->RemoveSnapshot(t.ns, t.dir, false));
  return ApiResult::Null();
}

Result<ApiResult> GetGroupNotes(ApiCall& call) {
  PBSKIT_ASSIGN_OR_RETURN(GroupTarget t,
                          ResolveGroup(call, kPrivDatastoreAudit, kPrivDatastoreBackup));
  PBSKIT_ASSIGN_OR_RETURN(std::string notes, t.store->GetGroupNotes(t.ns, t.group));
  return ApiResult::Of(boost::json::string(notes));
}

Result<ApiResult> SetGroupNotes(ApiCall& call) {
  PBSKIT_ASSIGN_OR_RETURN(GroupTarget t,
                          ResolveGroup(call, kPrivDatastoreModify, kPrivDatastoreBackup));
  PBSKIT_RETURN_IF_ERROR(t.store->SetGroupNotes(t.ns, t.group, call.Str("notes")));
  return ApiResult::Null();
}

Result<ApiResult> DeleteGroup(ApiCall& call) {
  PBSKIT_ASSIGN_OR_RETURN(GroupTarget t,
                          ResolveGroup(call, kPrivDatastoreModify, kPrivDatastorePrune));
  PBSKIT_ASSIGN_OR_RETURN(auto snaps, t.store->ListSnapshots(t.ns, t.group));
  uint64_t prot = 0;
  for (const auto& s : snaps) prot += s.is_protected ? 1 : 0;
  bool error_on_protected = call.Bool("error-on-protected", true);
  if (prot > 0 && error_on_protected) {
    return Status::InvalidArgument("group '" + t.group.ToString() + "' has " +
                                   std::to_string(prot) + " protected snapshots");
  }
  Status st = t.store->RemoveGroup(t.ns, t.group);
  if (!st.ok() && prot == 0) return st;
  return ApiResult::Of(boost::json::object{{"removed-groups", prot == 0 ? 1 : 0},
                                           {"protected-snapshots", prot},
                                           {"removed-snapshots", snaps.size() - prot}});
}

Result<ApiResult> ChangeOwner(ApiCall& call) {
  std::string name = call.Str("store");
  PBSKIT_ASSIGN_OR_RETURN(BackupNamespace ns, BackupNamespace::Parse(call.Str("ns")));
  PBSKIT_ASSIGN_OR_RETURN(BackupType type, ParseBackupType(call.Str("backup-type")));
  BackupGroup group{type, call.Str("backup-id")};
  PBSKIT_ASSIGN_OR_RETURN(Authid new_owner, Authid::Parse(call.Str("new-owner")));
  PBSKIT_ASSIGN_OR_RETURN(bool owner_check, CheckNsPrivsFull(call, name, ns, kPrivDatastoreModify,
                                                             kPrivDatastoreBackup));
  PBSKIT_ASSIGN_OR_RETURN(auto store, OpenConfiguredStore(call, name));
  PBSKIT_ASSIGN_OR_RETURN(std::string owner_text, store->GetOwner(ns, group));
  PBSKIT_ASSIGN_OR_RETURN(Authid owner, Authid::Parse(owner_text));
  const Authid& me = *call.auth_id;
  if (owner_check) {
    // Without Datastore.Modify only moves between a user and that user's own tokens.
    bool allowed = false;
    if (owner.is_token() && new_owner.is_token()) {
      allowed = owner.user == new_owner.user && Authid{owner.user, ""} == me;
    } else if (owner.is_token()) {
      allowed = Authid{owner.user, ""} == me && new_owner == me;
    } else if (new_owner.is_token()) {
      allowed = owner == me && Authid{new_owner.user, ""} == me;
    }
    if (!allowed) {
      ApiResult r;
      HttpResponse resp;
      resp.status = 401;
      resp.body = me.ToString() + " does not have permission to change owner of backup group '" +
                  group.ToString() + "' to " + new_owner.ToString();
      r.raw = std::move(resp);
      return r;
    }
  }
  if (!call.server->access().IsActive(new_owner)) {
    return Status::InvalidArgument(std::string(new_owner.is_token() ? "API token" : "user") +
                                   " '" + new_owner.ToString() + "' is inactive or non-existent");
  }
  PBSKIT_RETURN_IF_ERROR(store->SetOwner(ns, group, new_owner.ToString(), true));
  return ApiResult::Null();
}

// The routes below are all DatastoreRoute()s; the short name keeps the table readable.
constexpr auto& R = DatastoreRoute;

std::vector<ParamDef> GroupParams(std::vector<ParamDef> extra = {}) {
  std::vector<ParamDef> p = {NsParam(), BackupTypeParam(), BackupIdParam()};
  p.insert(p.end(), extra.begin(), extra.end());
  return p;
}

ParamDef FileNameParam() {
  ParamDef d{"file-name", ParamType::kString, false, 1, 255, nullptr};
  d.check = [](const std::string& s) {
    if (s == kManifestBlobName || s == kClientLogBlobName) return Status::OK();
    auto st = CheckArchiveName(s);
    return st.ok() ? st : Status::InvalidArgument("value does not match the regex pattern");
  };
  return d;
}

}  // namespace

void AddDatastoreRoutes(std::vector<Route>* routes) {
  ParamDef parent{"parent", ParamType::kString, true, 0, 256, NsParam().check};
  ParamDef max_depth{"max-depth", ParamType::kInteger, true, 0, 7};
  ParamDef ns_name{"name", ParamType::kString, false, 1, 32, BackupIdParam().check};
  ParamDef notes{"notes", ParamType::kString, false, 0, 64 * 1024};
  ParamDef eop{"error-on-protected", ParamType::kBoolean, true};
  routes->push_back(R("GET", "", {}, ListDatastores));
  routes->push_back(R("GET", "status", {{"verbose", ParamType::kBoolean, true}}, DatastoreStatus));
  routes->push_back(R("GET", "namespace", {parent, max_depth}, ListNamespaces));
  routes->push_back(R("POST", "namespace", {ns_name, parent}, CreateNamespace));
  routes->push_back(R("DELETE", "namespace",
                      {[] { auto n = NsParam(); n.optional = false; return n; }(),
                       {"delete-groups", ParamType::kBoolean, true}, eop},
                      DeleteNamespace));
  routes->push_back(R("GET", "groups", {NsParam()}, ListGroups));
  routes->push_back(R("DELETE", "groups", GroupParams({eop}), DeleteGroup));
  routes->push_back(R("GET", "snapshots",
                      {NsParam(), BackupTypeParam(true), BackupIdParam(true)}, ListSnapshots));
  routes->push_back(R("DELETE", "snapshots", SnapshotParams(), DeleteSnapshot));
  routes->push_back(R("GET", "files", SnapshotParams(), ListFiles));
  routes->push_back(R("GET", "download", SnapshotParams({FileNameParam()}), Download));
  routes->push_back(
      R("GET", "download-decoded", SnapshotParams({FileNameParam()}), DownloadDecoded));
  Route upload = R("POST", "upload-backup-log", SnapshotParams(), UploadBackupLog);
  upload.raw_body = true;
  upload.max_body = 16 * 1024 * 1024 + 64;
  routes->push_back(std::move(upload));
  routes->push_back(R("GET", "notes", SnapshotParams(), GetNotes));
  routes->push_back(R("PUT", "notes", SnapshotParams({notes}), SetNotes));
  routes->push_back(R("GET", "group-notes", GroupParams(), GetGroupNotes));
  routes->push_back(R("PUT", "group-notes", GroupParams({notes}), SetGroupNotes));
  routes->push_back(R("GET", "protected", SnapshotParams(), GetProtected));
  ParamDef new_owner{"new-owner", ParamType::kString, false, 3, 128, [](const std::string& v) {
                       auto id = Authid::Parse(v);
                       return id.ok() ? Status::OK() : id.status();
                     }};
  routes->push_back(R("POST", "change-owner", GroupParams({new_owner}), ChangeOwner));
  routes->push_back(R("PUT", "protected",
                      SnapshotParams({{"protected", ParamType::kBoolean, false}}), SetProtected));
}

}  // namespace pbskit::server
