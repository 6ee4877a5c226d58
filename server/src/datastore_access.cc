#include "datastore_access.h"

#include <filesystem>
#include <set>

#include "pbskit/datastore/datastore_config.h"
#include "pbskit/server/api_server.h"

namespace pbskit::server {

Route DatastoreRoute(std::string method, std::string pattern, std::vector<ParamDef> params,
                     ApiHandlerFn fn) {
  Route r;
  r.method = std::move(method);
  r.pattern = "admin/datastore" + (pattern.empty() ? "" : "/{store}/" + pattern);
  r.params = std::move(params);
  if (!pattern.empty()) r.params.insert(r.params.begin(), StoreParam());
  r.handler = std::move(fn);
  return r;
}

std::vector<ParamDef> SnapshotParams(std::vector<ParamDef> extra) {
  std::vector<ParamDef> p = {NsParam(), BackupTypeParam(), BackupIdParam(), BackupTimeParam()};
  p.insert(p.end(), extra.begin(), extra.end());
  return p;
}

Result<std::shared_ptr<DataStore>> OpenConfiguredStore(ApiCall& call, const std::string& name) {
  const std::string& dir = call.server->options().config_dir;
  PBSKIT_ASSIGN_OR_RETURN(DatastoreConfig cfg, DatastoreConfig::Load(dir));
  if (!cfg.Find(name)) return Status::NotFound("datastore '" + name + "' does not exist");
  PBSKIT_ASSIGN_OR_RETURN(OpenedStore opened, OpenStore(dir, name));
  return opened.store;
}

Result<bool> CheckNsPrivsFull(ApiCall& call, const std::string& store, const BackupNamespace& ns,
                              uint64_t full, uint64_t partial) {
  auto path = DatastoreAclPath(store, ns);
  uint64_t privs = call.server->access().LookupPrivs(*call.auth_id, path);
  if (full != 0 && (privs & full) != 0) return false;
  if (partial != 0 && (privs & partial) != 0) return true;
  std::string names;
  for (const auto& n : PrivilegeNames(full | partial)) names += (names.empty() ? "" : "|") + n;
  std::string p;
  for (const auto& c : path) p += "/" + c;
  return Status::PermissionDenied("permission check failed - missing " + names + " on " + p);
}

Status CheckNsPrivs(ApiCall& call, const std::string& store, const BackupNamespace& ns,
                    uint64_t privs) {
  auto r = CheckNsPrivsFull(call, store, ns, privs, 0);
  return r.ok() ? Status::OK() : r.status();
}

Result<GroupTarget> ResolveGroup(ApiCall& call, uint64_t full, uint64_t partial) {
  GroupTarget t;
  std::string name = call.Str("store");
  PBSKIT_ASSIGN_OR_RETURN(t.ns, BackupNamespace::Parse(call.Str("ns")));
  PBSKIT_ASSIGN_OR_RETURN(BackupType type, ParseBackupType(call.Str("backup-type")));
  t.group = BackupGroup{type, call.Str("backup-id")};
  PBSKIT_ASSIGN_OR_RETURN(bool owner_check, CheckNsPrivsFull(call, name, t.ns, full, partial));
  PBSKIT_ASSIGN_OR_RETURN(t.store, OpenConfiguredStore(call, name));
  if (owner_check) {
    auto owner = t.store->GetOwner(t.ns, t.group);
    if (!owner.ok()) {
      if (owner.status().IsNotFound()) {
        PBSKIT_ASSIGN_OR_RETURN(bool exists, t.store->GroupExists(t.ns, t.group));
        if (!exists) {
          return Status::NotFound("group '" + t.group.ToString() + "' does not exist");
        }
      }
      return owner.status();
    }
    if (!OwnerMatches(*owner, *call.auth_id)) {
      // PBS's check_backup_owner bails with a plain error: 400, not 403.
      return Status::InvalidArgument("backup owner check failed (" + call.auth_id->ToString() +
                                     " != " + *owner + ")");
    }
  }
  return t;
}

Result<SnapshotTarget> ResolveSnapshot(ApiCall& call, uint64_t full, uint64_t partial) {
  PBSKIT_ASSIGN_OR_RETURN(GroupTarget g, ResolveGroup(call, full, partial));
  SnapshotTarget t{g.store, g.ns, BackupDir{g.group, call.Int("backup-time")}};
  auto info = t.store->GetSnapshotInfo(t.ns, t.dir);
  if (!info.ok()) {
    if (info.status().IsNotFound()) {
      return Status::NotFound("snapshot '" + t.dir.ToString() + "' does not exist");
    }
    return info.status();
  }
  return t;
}

boost::json::object SnapshotListItem(const DataStore& store, const BackupNamespace& ns,
                                     const SnapshotInfo& info, const std::string* owner) {
  boost::json::object item;
  item["backup-type"] = BackupTypeName(info.dir.group.type);
  item["backup-id"] = info.dir.group.id;
  item["backup-time"] = info.dir.time;
  boost::json::array files;
  std::optional<Manifest> manifest;
  if (info.finished) {
    auto m = store.LoadManifest(ns, info.dir);
    if (m.ok()) manifest = std::move(m).value();
  }
  if (manifest) {
    uint64_t size = 0;
    std::set<std::string> listed;
    for (const auto& f : manifest->files) {
      files.push_back(boost::json::object{{"filename", f.filename},
                                          {"crypt-mode", CryptModeName(f.crypt_mode)},
                                          {"size", f.size}});
      size += f.size;
      listed.insert(f.filename);
    }
    std::error_code ec;
    uint64_t msize = std::filesystem::file_size(
        store.SnapshotPath(ns, info.dir) + "/" + kManifestBlobName, ec);
    if (ec) msize = 0;
    files.push_back(boost::json::object{
        {"filename", kManifestBlobName},
        {"crypt-mode", manifest->signature ? "sign-only" : "none"},
        {"size", msize}});
    size += msize;
    listed.insert(kManifestBlobName);
    for (const auto& f : info.files) {
      if (!listed.count(f)) files.push_back(boost::json::object{{"filename", f}});
    }
    item["files"] = std::move(files);
    item["size"] = size;
    if (auto* notes = manifest->unprotected.if_contains("notes"); notes && notes->is_string()) {
      std::string n(notes->as_string());
      if (!n.empty()) item["comment"] = n.substr(0, n.find('\n'));
    }
    if (auto* vs = manifest->unprotected.if_contains("verify_state"); vs && vs->is_object()) {
      item["verification"] = *vs;
    }
    if (auto fp = manifest->KeyFingerprint()) item["fingerprint"] = *fp;
  } else {
    for (const auto& f : info.files) files.push_back(boost::json::object{{"filename", f}});
    item["files"] = std::move(files);
  }
  if (owner) item["owner"] = *owner;
  item["protected"] = info.is_protected;
  return item;
}

}  // namespace pbskit::server
