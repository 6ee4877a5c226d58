// `pbskit group list|notes|forget`, shaped like `proxmox-backup-client list` (groups).
#include <iostream>
#include <optional>

#include "output.h"
#include "registry.h"
#include "store_args.h"

namespace pbskit::cli {
namespace {

struct GroupArgs {
  std::string store;
  std::string ns;
  std::string group;
  std::string notes;
};

std::string RenderGroupPath(const boost::json::value&, const boost::json::object& r) {
  return std::string(r.at("backup-type").as_string()) + "/" +
         std::string(r.at("backup-id").as_string());
}

std::string RenderLastBackup(const boost::json::value& v, const boost::json::object& r) {
  return RenderGroupPath(v, r) + "/" + FormatBackupTime(r.at("last-backup").to_number<int64_t>());
}

std::string RenderFileList(const boost::json::value& v, const boost::json::object&) {
  std::vector<std::string> names;
  if (v.is_array()) {
    for (const auto& f : v.as_array()) {
      if (!f.is_string()) continue;
      std::string n(f.as_string());
      if (n.size() > 5 && (n.ends_with(".didx") || n.ends_with(".fidx") || n.ends_with(".blob"))) {
        n.resize(n.size() - 5);
      }
      names.push_back(n);
    }
  }
  std::sort(names.begin(), names.end());
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : " ") + n;
  return out;
}

int RunList(const GlobalOptions& g, const GroupArgs& a) {
  auto ns = ParseNamespaceArg(a.ns);
  if (!ns.ok()) return ReportError(ns.status(), 2);
  auto opened = OpenStoreArg(g, a.store);
  if (!opened.ok()) return ReportStoreError(opened.status());
  const DataStore& store = *opened->store;
  auto groups = store.ListGroups(*ns);
  if (!groups.ok()) return ReportError(groups.status(), ExitCodeFor(groups.status()));
  boost::json::array data;
  for (const auto& grp : *groups) {
    auto snaps = store.ListSnapshots(*ns, grp);
    if (!snaps.ok() || snaps->empty()) continue;  // PBS skips empty and unreadable groups
    // The newest finished snapshot, or the newest one when none is finished.
    const SnapshotInfo* last = &snaps->back();
    for (const auto& s : *snaps) {
      if (s.finished) last = &s;
    }
    boost::json::object o;
    o["backup-count"] = static_cast<uint64_t>(snaps->size());
    o["backup-id"] = grp.id;
    o["backup-type"] = BackupTypeName(grp.type);
    auto notes = store.GetGroupNotes(*ns, grp);
    if (notes.ok() && !notes->empty()) o["comment"] = notes->substr(0, notes->find('\n'));
    boost::json::array files;
    for (const auto& f : last->files) files.push_back(boost::json::string(f));
    o["files"] = std::move(files);
    o["last-backup"] = last->dir.time;
    auto owner = store.GetOwner(*ns, grp);
    if (owner.ok()) {
      o["owner"] = *owner;
    } else {
      std::cerr << "warning: group '" << grp.ToString() << "' has no owner: "
                << owner.status().message() << "\n";
    }
    data.push_back(std::move(o));
  }
  TableOptions options = DefaultTableOptions();
  options.sort_by = {{"backup-type", false}, {"backup-id", false}};
  return PrintList(g, std::move(data),
                   {Column{"backup-id", "group", false, RenderGroupPath},
                    Column{"last-backup", "last snapshot", false, RenderLastBackup},
                    Column{"backup-count", "", true, nullptr},
                    Column{"files", "", false, RenderFileList}},
                   options);
}

// Parses the group argument, opens the store and checks the group exists. On failure reports
// the error, sets *rc and returns false.
bool ResolveExistingGroup(const GlobalOptions& g, const GroupArgs& a, std::optional<GroupRef>* ref,
                          std::optional<OpenedStore>* opened, int* rc) {
  auto parsed = ParseGroupArg(a.ns, a.group);
  if (!parsed.ok()) return (*rc = ReportError(parsed.status(), 2)), false;
  auto store = OpenStoreArg(g, a.store);
  if (!store.ok()) return (*rc = ReportStoreError(store.status())), false;
  auto exists = store->store->GroupExists(parsed->ns, parsed->group);
  if (!exists.ok()) return (*rc = ReportError(exists.status(), 1)), false;
  if (!*exists) {
    *rc = ReportError(Status::NotFound("backup group '" + parsed->group.ToString() +
                                       "' does not exist"),
                      1);
    return false;
  }
  ref->emplace(std::move(parsed).value());
  opened->emplace(std::move(store).value());
  return true;
}

int RunNotes(const GlobalOptions& g, const GroupArgs& a, bool set) {
  std::optional<GroupRef> ref;
  std::optional<OpenedStore> opened;
  int rc = 0;
  if (!ResolveExistingGroup(g, a, &ref, &opened, &rc)) return rc;
  if (set) {
    Status st = opened->store->SetGroupNotes(ref->ns, ref->group, a.notes);
    return st.ok() ? 0 : ReportError(st, 1);
  }
  auto notes = opened->store->GetGroupNotes(ref->ns, ref->group);
  if (!notes.ok()) return ReportError(notes.status(), 1);
  return PrintNotes(g, *notes);
}

int RunForget(const GlobalOptions& g, const GroupArgs& a) {
  std::optional<GroupRef> ref;
  std::optional<OpenedStore> opened;
  int rc = 0;
  if (!ResolveExistingGroup(g, a, &ref, &opened, &rc)) return rc;
  Status st = opened->store->RemoveGroup(ref->ns, ref->group);
  return st.ok() ? 0 : ReportError(st, 1);
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto* grp = app.add_subcommand("group", "list and manage backup groups");
  grp->require_subcommand(1);

  auto la = std::make_shared<GroupArgs>();
  auto* list = grp->add_subcommand("list", "list the backup groups of a namespace");
  AddStoreOption(list, &la->store);
  AddNamespaceOption(list, &la->ns);
  list->callback([&g, la] { g.exit_code = RunList(g, *la); });

  const std::string group_help = "group: <type>/<id> (with --ns) or ns/<a>/.../<type>/<id>";
  auto* notes = grp->add_subcommand("notes", "show or update group notes");
  notes->require_subcommand(1);
  auto ga = std::make_shared<GroupArgs>();
  auto* get = notes->add_subcommand("get", "print the notes of a group")->alias("show");
  AddStoreOption(get, &ga->store);
  AddNamespaceOption(get, &ga->ns);
  get->add_option("group", ga->group, group_help)->required();
  get->callback([&g, ga] { g.exit_code = RunNotes(g, *ga, false); });
  auto sa = std::make_shared<GroupArgs>();
  auto* set = notes->add_subcommand("set", "replace the notes of a group")->alias("update");
  AddStoreOption(set, &sa->store);
  AddNamespaceOption(set, &sa->ns);
  set->add_option("group", sa->group, group_help)->required();
  set->add_option("notes", sa->notes, "the new notes")->required();
  set->callback([&g, sa] { g.exit_code = RunNotes(g, *sa, true); });

  auto fa = std::make_shared<GroupArgs>();
  auto* forget = grp->add_subcommand(
      "forget", "remove a group with all its snapshots (protected snapshots are kept)");
  AddStoreOption(forget, &fa->store);
  AddNamespaceOption(forget, &fa->ns);
  forget->add_option("group", fa->group, group_help)->required();
  forget->callback([&g, fa] { g.exit_code = RunForget(g, *fa); });
}

}  // namespace
}  // namespace pbskit::cli

PBSKIT_REGISTER_COMMAND(30, pbskit::cli::Setup);
