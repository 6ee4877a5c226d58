// Shared helpers of the datastore endpoints: store lookup, namespace privilege checks with
// PBS's messages, owner checks and the snapshot list item.
#pragma once

#include <boost/json.hpp>
#include <memory>
#include <string>

#include "api.h"
#include "pbskit/datastore/datastore.h"

namespace pbskit::server {

// A route below admin/datastore: `pattern` "" is the store list itself, anything else becomes
// "admin/datastore/{store}/<pattern>" with the store parameter put first.
Route DatastoreRoute(std::string method, std::string pattern, std::vector<ParamDef> params,
                     ApiHandlerFn fn);
// ns, backup-type, backup-id, backup-time, then `extra`.
std::vector<ParamDef> SnapshotParams(std::vector<ParamDef> extra = {});

// The configured datastore `name` (datastore.cfg). NotFound "datastore '<name>' does not exist".
Result<std::shared_ptr<DataStore>> OpenConfiguredStore(ApiCall& call, const std::string& name);

// PBS check_ns_privs_full: false when `full` privileges are present, true when only `partial`
// ones are (caller must then check ownership), else PermissionDenied "permission check failed -
// missing <A|B> on /datastore/<store>[/ns]".
Result<bool> CheckNsPrivsFull(ApiCall& call, const std::string& store, const BackupNamespace& ns,
                              uint64_t full, uint64_t partial);
Status CheckNsPrivs(ApiCall& call, const std::string& store, const BackupNamespace& ns,
                    uint64_t privs);

struct GroupTarget {
  std::shared_ptr<DataStore> store;
  BackupNamespace ns;
  BackupGroup group;
};
struct SnapshotTarget {
  std::shared_ptr<DataStore> store;
  BackupNamespace ns;
  BackupDir dir;
};

// Resolves store/ns/group (+ backup-time) parameters, checks privileges (full, or partial plus
// group ownership: InvalidArgument "backup owner check failed (<auth> != <owner>)", which PBS
// answers with 400 like any plain error).
Result<GroupTarget> ResolveGroup(ApiCall& call, uint64_t full, uint64_t partial);
Result<SnapshotTarget> ResolveSnapshot(ApiCall& call, uint64_t full, uint64_t partial);

// SnapshotListItem (PROTOCOL.md §3.1) of one snapshot.
boost::json::object SnapshotListItem(const DataStore& store, const BackupNamespace& ns,
                                     const SnapshotInfo& info, const std::string* owner);

}  // namespace pbskit::server
