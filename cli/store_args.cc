// Shared --store / --ns / SNAPSHOT / GROUP argument handling.
#include "store_args.h"

#include "output.h"

namespace pbskit::cli {

CLI::Option* AddStoreOption(CLI::App* sub, std::string* store, bool required) {
  auto* opt = sub->add_option("--store", *store,
                              "datastore: a name configured in datastore.cfg or a path to a "
                              "datastore directory");
  if (required) opt->required();
  return opt;
}

CLI::Option* AddNamespaceOption(CLI::App* sub, std::string* ns) {
  return sub->add_option("--ns", *ns, "namespace (a/b form; default: the root namespace)");
}

Result<OpenedStore> OpenStoreArg(const GlobalOptions& g, const std::string& store_arg) {
  return OpenStore(g.config_dir, store_arg);
}

Result<BackupNamespace> ParseNamespaceArg(const std::string& ns_arg) {
  std::string_view v = ns_arg;
  if (v == "/") v = "";  // some PBS tools print the root as "/"
  return BackupNamespace::Parse(v);
}

namespace {

Result<BackupNamespace> MergeNamespace(const std::string& ns_arg, const BackupNamespace& from_path,
                                       const std::string& arg) {
  PBSKIT_ASSIGN_OR_RETURN(BackupNamespace ns, ParseNamespaceArg(ns_arg));
  if (from_path.IsRoot()) return ns;
  if (ns.IsRoot()) return from_path;
  if (ns == from_path) return ns;
  return Status::InvalidArgument("'" + arg + "' lies in namespace '" + from_path.ToString() +
                                 "' but --ns says '" + ns.ToString() + "'");
}

}  // namespace

Result<std::pair<GroupRef, std::optional<int64_t>>> ParseGroupOrSnapshotArg(
    const std::string& ns_arg, const std::string& arg) {
  PBSKIT_ASSIGN_OR_RETURN(auto parsed, ParseSnapshotOrGroupPath(arg));
  auto& [path_ns, group, time] = parsed;
  PBSKIT_ASSIGN_OR_RETURN(BackupNamespace ns, MergeNamespace(ns_arg, path_ns, arg));
  return std::make_pair(GroupRef{std::move(ns), std::move(group)}, time);
}

Result<GroupRef> ParseGroupArg(const std::string& ns_arg, const std::string& arg) {
  PBSKIT_ASSIGN_OR_RETURN(auto r, ParseGroupOrSnapshotArg(ns_arg, arg));
  if (r.second) {
    return Status::InvalidArgument("expected a backup group (<type>/<id>), got the snapshot '" +
                                   arg + "'");
  }
  return std::move(r.first);
}

Result<SnapshotRef> ParseSnapshotArg(const std::string& ns_arg, const std::string& arg) {
  PBSKIT_ASSIGN_OR_RETURN(auto r, ParseGroupOrSnapshotArg(ns_arg, arg));
  if (!r.second) {
    return Status::InvalidArgument("expected a snapshot (<type>/<id>/<time>), got the group '" +
                                   arg + "'");
  }
  return SnapshotRef{std::move(r.first.ns), BackupDir{std::move(r.first.group), *r.second}};
}

int ReportStoreError(const Status& status) {
  int code = (status.IsNotFound() || status.code() == Code::kInvalidArgument) ? 2 : 1;
  return ReportError(status, code);
}

}  // namespace pbskit::cli
