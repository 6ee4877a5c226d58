// `pbskit snapshot list|files|show|forget|protect|unprotect|notes`, shaped like
// `proxmox-backup-client snapshot ...` (same columns, same JSON fields).
#include <iostream>
#include <set>

#include "output.h"
#include "pbskit/formats/manifest.h"
#include "registry.h"
#include "store_args.h"

namespace pbskit::cli {
namespace {

struct SnapArgs {
  std::string store;
  std::string ns;
  std::string target;  // GROUP or SNAPSHOT
  std::string notes;
};

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

// Files of a snapshot as the PBS API lists them: manifest files with crypt-mode and size, then
// index.json.blob, then files present but not in the manifest (client.log.blob) without size.
// Returns false (and the plain file list) when the manifest cannot be read.
bool SnapshotFiles(const DataStore& store, const BackupNamespace& ns, const SnapshotInfo& info,
                   std::optional<Manifest>* manifest, boost::json::array* files, Status* error) {
  auto m = store.LoadManifest(ns, info.dir);
  if (!m.ok()) {
    *error = m.status();
    for (const auto& f : info.files) {
      boost::json::object o;
      o["filename"] = f;
      files->push_back(std::move(o));
    }
    return false;
  }
  std::set<std::string> seen;
  for (const auto& f : m->files) {
    boost::json::object o;
    o["crypt-mode"] = CryptModeName(f.crypt_mode);
    o["filename"] = f.filename;
    o["size"] = f.size;
    files->push_back(std::move(o));
    seen.insert(f.filename);
  }
  auto st = store.fs()->Stat(store.SnapshotPath(ns, info.dir) + "/" + kManifestBlobName, true);
  boost::json::object idx;
  idx["crypt-mode"] = m->signature ? "sign-only" : "none";
  idx["filename"] = kManifestBlobName;
  if (st.ok()) idx["size"] = static_cast<uint64_t>(st->st_size);
  files->push_back(std::move(idx));
  seen.insert(kManifestBlobName);
  for (const auto& f : info.files) {
    if (seen.count(f)) continue;
    boost::json::object o;
    o["filename"] = f;
    files->push_back(std::move(o));
  }
  *manifest = std::move(m).value();
  return true;
}

// One SnapshotListItem (keys in serde_json's sorted order).
boost::json::object SnapshotItem(const DataStore& store, const BackupNamespace& ns,
                                 const SnapshotInfo& info, const std::optional<std::string>& owner) {
  std::optional<Manifest> manifest;
  boost::json::array files;
  Status error;
  bool ok = SnapshotFiles(store, ns, info, &manifest, &files, &error);
  if (!ok && info.finished) {
    std::cerr << "error during snapshot file listing: '" << error.message() << "'\n";
  }
  boost::json::object o;
  o["backup-id"] = info.dir.group.id;
  o["backup-time"] = info.dir.time;
  o["backup-type"] = BackupTypeName(info.dir.group.type);
  if (manifest) {
    auto notes = manifest->unprotected.find("notes");
    if (notes != manifest->unprotected.end() && notes->value().is_string()) {
      o["comment"] = FirstLine(std::string(notes->value().as_string()));
    }
  }
  uint64_t size = 0;
  for (const auto& f : files) {
    const auto& fo = f.as_object();
    if (auto it = fo.find("size"); it != fo.end()) size += it->value().to_number<uint64_t>();
  }
  o["files"] = std::move(files);
  if (manifest) {
    if (auto fp = manifest->KeyFingerprint()) o["fingerprint"] = *fp;
  }
  if (owner) o["owner"] = *owner;
  o["protected"] = info.is_protected;
  if (manifest) o["size"] = size;
  if (manifest) {
    auto vs = manifest->unprotected.find("verify_state");
    if (vs != manifest->unprotected.end() && vs->value().is_object()) {
      o["verification"] = vs->value();
    }
  }
  return o;
}

std::string RenderFiles(const boost::json::value& v, const boost::json::object&) {
  std::vector<std::string> names;
  if (v.is_array()) {
    for (const auto& f : v.as_array()) {
      std::string n;
      if (f.is_string()) n = std::string(f.as_string());
      else if (f.is_object() && f.as_object().contains("filename"))
        n = std::string(f.as_object().at("filename").as_string());
      for (const char* ext : {".didx", ".fidx", ".blob"}) {
        if (n.size() > 5 && n.compare(n.size() - 5, 5, ext) == 0) {
          n.resize(n.size() - 5);
          break;
        }
      }
      names.push_back(n);
    }
  }
  std::sort(names.begin(), names.end());
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : " ") + n;
  return out;
}

std::string RenderSnapshotPath(const boost::json::value&, const boost::json::object& r) {
  auto type = ParseBackupType(std::string(r.at("backup-type").as_string()));
  BackupDir d{BackupGroup{type.ok() ? *type : BackupType::kVm,
                          std::string(r.at("backup-id").as_string())},
              r.at("backup-time").to_number<int64_t>()};
  return d.ToString();
}

std::string RenderBytes(const boost::json::value& v, const boost::json::object&) {
  return v.is_null() ? std::string() : HumanBytes(v.to_number<uint64_t>());
}

std::optional<std::string> OwnerOrWarn(const DataStore& store, const BackupNamespace& ns,
                                       const BackupGroup& g) {
  auto owner = store.GetOwner(ns, g);
  if (owner.ok()) return *owner;
  std::cerr << "warning: group '" << g.ToString() << "'"
            << (ns.IsRoot() ? "" : " in namespace '" + ns.ToString() + "'")
            << " has no owner: " << owner.status().message() << "\n";
  return std::nullopt;
}

int RunList(const GlobalOptions& g, const SnapArgs& a) {
  auto ns = ParseNamespaceArg(a.ns);
  if (!ns.ok()) return ReportError(ns.status(), 2);
  std::vector<BackupGroup> groups;
  BackupNamespace where = *ns;
  if (!a.target.empty()) {
    auto ref = ParseGroupArg(a.ns, a.target);
    if (!ref.ok()) return ReportError(ref.status(), 2);
    where = ref->ns;
    groups.push_back(ref->group);
  }
  auto opened = OpenStoreArg(g, a.store);
  if (!opened.ok()) return ReportStoreError(opened.status());
  const DataStore& store = *opened->store;
  if (groups.empty()) {
    auto list = store.ListGroups(where);
    if (!list.ok()) return ReportError(list.status(), ExitCodeFor(list.status()));
    groups = std::move(list).value();
  }
  boost::json::array data;
  for (const auto& grp : groups) {
    auto snaps = store.ListSnapshots(where, grp);
    if (!snaps.ok()) return ReportError(snaps.status(), ExitCodeFor(snaps.status()));
    auto owner = OwnerOrWarn(store, where, grp);
    for (const auto& s : *snaps) data.push_back(SnapshotItem(store, where, s, owner));
  }
  TableOptions options = DefaultTableOptions();
  options.sort_by = {{"backup-type", false}, {"backup-id", false}, {"backup-time", false}};
  return PrintList(g, std::move(data),
                   {Column{"backup-id", "snapshot", false, RenderSnapshotPath},
                    Column{"size", "", true, RenderBytes}, Column{"files", "", false, RenderFiles}},
                   options);
}

// Opens the store and resolves a SNAPSHOT argument; on error prints and sets *rc.
struct Resolved {
  OpenedStore opened;
  SnapshotRef ref;
  SnapshotInfo info;
};
std::optional<Resolved> Resolve(const GlobalOptions& g, const SnapArgs& a, int* rc) {
  auto ref = ParseSnapshotArg(a.ns, a.target);
  if (!ref.ok()) {
    *rc = ReportError(ref.status(), 2);
    return std::nullopt;
  }
  auto opened = OpenStoreArg(g, a.store);
  if (!opened.ok()) {
    *rc = ReportStoreError(opened.status());
    return std::nullopt;
  }
  auto info = opened->store->GetSnapshotInfo(ref->ns, ref->dir);
  if (!info.ok()) {
    *rc = ReportError(info.status(), 1);
    return std::nullopt;
  }
  return Resolved{std::move(opened).value(), std::move(ref).value(), std::move(info).value()};
}

int RunFiles(const GlobalOptions& g, const SnapArgs& a) {
  int rc = 0;
  auto r = Resolve(g, a, &rc);
  if (!r) return rc;
  std::optional<Manifest> manifest;
  boost::json::array files;
  Status error;
  if (!SnapshotFiles(*r->opened.store, r->ref.ns, r->info, &manifest, &files, &error)) {
    return ReportError(error, 1);
  }
  return PrintList(g, std::move(files),
                   {Column{"filename", "", false, nullptr}, Column{"crypt-mode", "", false, nullptr},
                    Column{"size", "", true, nullptr}});
}

int RunShow(const GlobalOptions& g, const SnapArgs& a) {
  int rc = 0;
  auto r = Resolve(g, a, &rc);
  if (!r) return rc;
  const DataStore& store = *r->opened.store;
  auto owner = OwnerOrWarn(store, r->ref.ns, r->ref.dir.group);
  boost::json::object item = SnapshotItem(store, r->ref.ns, r->info, owner);
  auto manifest = store.LoadManifest(r->ref.ns, r->ref.dir);
  if (g.output_format != "text") {
    item["ns"] = r->ref.ns.ToString();
    if (manifest.ok()) item["manifest"] = manifest->ToValue();
    PrintJson(std::cout, item, g.output_format);
    return manifest.ok() || !r->info.finished ? 0 : ReportError(manifest.status(), 1);
  }
  boost::json::object rec;
  rec["snapshot"] = r->ref.dir.ToString();
  rec["namespace"] = r->ref.ns.IsRoot() ? "(root)" : r->ref.ns.ToString();
  rec["backup-time"] = Rfc3339Utc(r->ref.dir.time);
  if (owner) rec["owner"] = *owner;
  rec["finished"] = r->info.finished ? "yes" : "no (unfinished or aborted backup)";
  rec["protected"] = r->info.is_protected ? "yes" : "no";
  if (item.contains("size")) rec["size"] = HumanBytes(item["size"].to_number<uint64_t>());
  rec["files"] = RenderFiles(item["files"], item);
  if (manifest.ok()) {
    rec["signed"] = manifest->signature ? "yes" : "no";
    if (auto fp = manifest->KeyFingerprint()) rec["fingerprint"] = *fp;
    auto vs = manifest->unprotected.find("verify_state");
    if (vs != manifest->unprotected.end() && vs->value().is_object()) {
      const auto& v = vs->value().as_object();
      std::string s = v.contains("state") && v.at("state").is_string()
                          ? std::string(v.at("state").as_string()) : "?";
      if (v.contains("upid") && v.at("upid").is_string()) {
        s += " (" + std::string(v.at("upid").as_string()) + ")";
      }
      rec["verify-state"] = s;
    }
    auto notes = manifest->unprotected.find("notes");
    if (notes != manifest->unprotected.end() && notes->value().is_string()) {
      rec["notes"] = notes->value().as_string();
    }
  }
  std::vector<Column> rows;
  for (const char* k : {"snapshot", "namespace", "backup-time", "owner", "finished", "protected",
                        "size", "files", "signed", "fingerprint", "verify-state", "notes"}) {
    rows.push_back(Column{k, "", false, nullptr});
  }
  PrintRecord(g, rec, rows);
  if (!manifest.ok() && r->info.finished) return ReportError(manifest.status(), 1);
  return 0;
}

int RunForget(const GlobalOptions& g, const SnapArgs& a) {
  int rc = 0;
  auto r = Resolve(g, a, &rc);
  if (!r) return rc;
  Status st = r->opened.store->RemoveSnapshot(r->ref.ns, r->ref.dir, false);
  if (!st.ok()) return ReportError(st, 1);
  return 0;
}

int RunProtect(const GlobalOptions& g, const SnapArgs& a, bool protect) {
  int rc = 0;
  auto r = Resolve(g, a, &rc);
  if (!r) return rc;
  Status st = r->opened.store->SetProtected(r->ref.ns, r->ref.dir, protect);
  if (!st.ok()) return ReportError(st, 1);
  return 0;
}

int RunNotesGet(const GlobalOptions& g, const SnapArgs& a) {
  int rc = 0;
  auto r = Resolve(g, a, &rc);
  if (!r) return rc;
  auto notes = r->opened.store->GetSnapshotNotes(r->ref.ns, r->ref.dir);
  if (!notes.ok()) return ReportError(notes.status(), 1);
  return PrintNotes(g, *notes);
}

int RunNotesSet(const GlobalOptions& g, const SnapArgs& a) {
  int rc = 0;
  auto r = Resolve(g, a, &rc);
  if (!r) return rc;
  Status st = r->opened.store->SetSnapshotNotes(r->ref.ns, r->ref.dir, a.notes);
  if (!st.ok()) return ReportError(st, 1);
  return 0;
}

CLI::App* AddSnapCommand(CLI::App* parent, const std::string& name, const std::string& help,
                         const std::shared_ptr<SnapArgs>& args, bool target_required,
                         const std::string& target_help) {
  auto* sub = parent->add_subcommand(name, help);
  AddStoreOption(sub, &args->store);
  AddNamespaceOption(sub, &args->ns);
  auto* t = sub->add_option(target_required ? "snapshot" : "group", args->target, target_help);
  if (target_required) t->required();
  return sub;
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto* snap = app.add_subcommand("snapshot", "list and manage backup snapshots");
  snap->require_subcommand(1);
  const std::string snap_help =
      "snapshot: <type>/<id>/<time> (with --ns) or ns/<a>/.../<type>/<id>/<time>";

  auto la = std::make_shared<SnapArgs>();
  AddSnapCommand(snap, "list", "list snapshots (of one group, or of all groups in --ns)", la,
                 false, "group: <type>/<id> or ns/<a>/.../<type>/<id>")
      ->callback([&g, la] { g.exit_code = RunList(g, *la); });

  auto fa = std::make_shared<SnapArgs>();
  AddSnapCommand(snap, "files", "list the files of a snapshot", fa, true, snap_help)
      ->callback([&g, fa] { g.exit_code = RunFiles(g, *fa); });

  auto sa = std::make_shared<SnapArgs>();
  AddSnapCommand(snap, "show", "show a snapshot: owner, protection, verify state, notes, manifest",
                 sa, true, snap_help)
      ->callback([&g, sa] { g.exit_code = RunShow(g, *sa); });

  auto xa = std::make_shared<SnapArgs>();
  AddSnapCommand(snap, "forget", "remove a snapshot (protected snapshots are refused)", xa, true,
                 snap_help)
      ->callback([&g, xa] { g.exit_code = RunForget(g, *xa); });

  auto pa = std::make_shared<SnapArgs>();
  AddSnapCommand(snap, "protect", "protect a snapshot from prune and forget", pa, true, snap_help)
      ->callback([&g, pa] { g.exit_code = RunProtect(g, *pa, true); });
  auto ua = std::make_shared<SnapArgs>();
  AddSnapCommand(snap, "unprotect", "remove the protection of a snapshot", ua, true, snap_help)
      ->callback([&g, ua] { g.exit_code = RunProtect(g, *ua, false); });

  auto* notes = snap->add_subcommand("notes", "show or update snapshot notes");
  notes->require_subcommand(1);
  auto na = std::make_shared<SnapArgs>();
  AddSnapCommand(notes, "get", "print the notes of a snapshot", na, true, snap_help)
      ->alias("show")
      ->callback([&g, na] { g.exit_code = RunNotesGet(g, *na); });
  auto nsa = std::make_shared<SnapArgs>();
  auto* set = AddSnapCommand(notes, "set", "replace the notes of a snapshot", nsa, true, snap_help);
  set->alias("update");
  set->add_option("notes", nsa->notes, "the new notes")->required();
  set->callback([&g, nsa] { g.exit_code = RunNotesSet(g, *nsa); });
}

}  // namespace
}  // namespace pbskit::cli

PBSKIT_REGISTER_COMMAND(40, pbskit::cli::Setup);
