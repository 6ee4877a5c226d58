// `pbskit namespace list|create|delete`, shaped like `proxmox-backup-client namespace ...`.
#include <iostream>

#include "output.h"
#include "registry.h"
#include "store_args.h"

namespace pbskit::cli {
namespace {

struct NsArgs {
  std::string store;
  std::string ns;
  std::string ns_pos;
  int max_depth = -1;
  bool delete_groups = false;
};

Result<BackupNamespace> TargetNamespace(const NsArgs& a) {
  if (!a.ns.empty() && !a.ns_pos.empty() && a.ns != a.ns_pos) {
    return Status::InvalidArgument("namespace given twice ('" + a.ns_pos + "' and --ns '" + a.ns +
                                   "')");
  }
  return ParseNamespaceArg(a.ns.empty() ? a.ns_pos : a.ns);
}

int RunList(const GlobalOptions& g, const NsArgs& a) {
  auto ns = TargetNamespace(a);
  if (!ns.ok()) return ReportError(ns.status(), 2);
  auto opened = OpenStoreArg(g, a.store);
  if (!opened.ok()) return ReportStoreError(opened.status());
  auto list = opened->store->ListNamespaces(*ns, true);
  if (!list.ok()) return ReportError(list.status(), ExitCodeFor(list.status()));
  size_t max_depth = a.max_depth < 0 ? kMaxNamespaceDepth : static_cast<size_t>(a.max_depth);
  boost::json::array items;
  for (const auto& child : *list) {
    if (child.depth() - ns->depth() > max_depth) continue;
    if (g.output_format == "text") {
      if (!child.IsRoot()) std::cout << child.ToString() << "\n";
      continue;
    }
    boost::json::object o;
    o["ns"] = child.ToString();
    items.push_back(std::move(o));
  }
  if (g.output_format != "text") {
    boost::json::object result;
    result["data"] = std::move(items);
    PrintJson(std::cout, result, g.output_format);
  }
  return 0;
}

int RunCreate(const GlobalOptions& g, const NsArgs& a) {
  auto ns = TargetNamespace(a);
  if (!ns.ok()) return ReportError(ns.status(), 2);
  if (ns->IsRoot()) return ReportError(Status::InvalidArgument("root namespace is always present"), 2);
  auto opened = OpenStoreArg(g, a.store);
  if (!opened.ok()) return ReportStoreError(opened.status());
  Status st = opened->store->CreateNamespace(*ns);
  if (!st.ok()) return ReportError(st, ExitCodeFor(st));
  return 0;
}

int RunDelete(const GlobalOptions& g, const NsArgs& a) {
  auto ns = TargetNamespace(a);
  if (!ns.ok()) return ReportError(ns.status(), 2);
  if (ns->IsRoot()) return ReportError(Status::InvalidArgument("root namespace cannot be deleted"), 2);
  auto opened = OpenStoreArg(g, a.store);
  if (!opened.ok()) return ReportStoreError(opened.status());
  auto exists = opened->store->NamespaceExists(*ns);
  if (!exists.ok()) return ReportError(exists.status(), 1);
  if (!*exists) {
    return ReportError(Status::NotFound("namespace '" + ns->ToString() + "' does not exist"), 1);
  }
  Status st = opened->store->RemoveNamespace(*ns, a.delete_groups);
  if (!st.ok()) return ReportError(st, 1);
  return 0;
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto* nsc = app.add_subcommand("namespace", "list, create and delete backup namespaces");
  nsc->require_subcommand(1);

  auto list_args = std::make_shared<NsArgs>();
  auto* list = nsc->add_subcommand("list", "list namespaces below --ns (recursively)");
  AddStoreOption(list, &list_args->store);
  AddNamespaceOption(list, &list_args->ns);
  list->add_option("--max-depth", list_args->max_depth, "maximum recursion depth (0..7)")
      ->check(CLI::Range(0, 7));
  list->callback([&g, list_args] { g.exit_code = RunList(g, *list_args); });

  auto create_args = std::make_shared<NsArgs>();
  auto* create = nsc->add_subcommand("create", "create a namespace (its parent must exist)");
  AddStoreOption(create, &create_args->store);
  AddNamespaceOption(create, &create_args->ns);
  create->add_option("namespace", create_args->ns_pos, "the namespace to create (a/b)");
  create->callback([&g, create_args] { g.exit_code = RunCreate(g, *create_args); });

  auto delete_args = std::make_shared<NsArgs>();
  auto* del = nsc->add_subcommand("delete", "delete a namespace and its child namespaces");
  AddStoreOption(del, &delete_args->store);
  AddNamespaceOption(del, &delete_args->ns);
  del->add_option("namespace", delete_args->ns_pos, "the namespace to delete (a/b)");
  del->add_flag("--delete-groups", delete_args->delete_groups,
                "destroy all groups in the hierarchy (protected snapshots are kept)");
  del->callback([&g, delete_args] { g.exit_code = RunDelete(g, *delete_args); });
}

}  // namespace
}  // namespace pbskit::cli

PBSKIT_REGISTER_COMMAND(20, pbskit::cli::Setup);
