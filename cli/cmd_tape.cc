// `pbskit tape ...`: PBS tape handling on the `virtual` drive type (proxmox-tape's commands):
//   tape drive create NAME --type virtual --path DIR [--max-size SIZE] | drive list
//   tape pool create NAME [--allocation A] [--retention R] [--template T] | pool list
//   tape label --drive D --label-text L [--pool P] [--force]
//   tape media list [--pool P] | media content [--pool P]
//   tape backup STORE --pool P --drive D [--ns NS] [--max-depth N] [--group-filter F]...
//   tape catalog reindex --drive D [--scan] [--force] [--verbose]
//   tape restore MEDIA-SET --store DST --drive D [--snapshots S]...
// Configuration lives in <config-dir>/{tape.cfg,media-pool.cfg,tape-job.cfg}, state in
// <state-dir>/tape (inventory.json, <uuid>.log catalogs, .index caches).
#include <time.h>

#include <cstdlib>
#include <iostream>
#include <memory>

#include "output.h"
#include "pbskit/datastore/tape/catalog_reindex.h"
#include "pbskit/datastore/tape/tape_backup.h"
#include "pbskit/datastore/tape/tape_restore.h"
#include "pbskit/formats/names.h"
#include "pbskit/formats/tape/tape_config.h"
#include "registry.h"
#include "store_args.h"

namespace pbskit::cli {
namespace {

using namespace pbskit::tape;

std::string CfgPath(const GlobalOptions& g, const char* name) {
  return JoinPath(g.config_dir, name);
}
std::string TapeDir(const GlobalOptions& g) { return JoinPath(g.state_dir, "tape"); }

Result<TapeDriveConfigFile> LoadDrives(const GlobalOptions& g) {
  auto text = ReadWholeFileText(PosixFilesystem(), CfgPath(g, "tape.cfg"));
  if (!text.ok() && text.status().code() == Code::kNotFound) return TapeDriveConfigFile{};
  if (!text.ok()) return text.status();
  return TapeDriveConfigFile::Parse(*text, CfgPath(g, "tape.cfg"));
}

Result<MediaPoolConfigFile> LoadPools(const GlobalOptions& g) {
  auto text = ReadWholeFileText(PosixFilesystem(), CfgPath(g, "media-pool.cfg"));
  if (!text.ok() && text.status().code() == Code::kNotFound) return MediaPoolConfigFile{};
  if (!text.ok()) return text.status();
  return MediaPoolConfigFile::Parse(*text, CfgPath(g, "media-pool.cfg"));
}

Status SaveConfig(const GlobalOptions& g, const char* name, const std::string& text) {
  PBSKIT_RETURN_IF_ERROR(MkdirAll(PosixFilesystem(), g.config_dir, 0700));
  return WriteFileAtomic(PosixFilesystem(), CfgPath(g, name), text, SyncLevel::kFile, 0640);
}

// --drive, else $PROXMOX_TAPE_DRIVE / $PBSKIT_TAPE_DRIVE, else the only virtual drive.
Result<VirtualDriveConfig> ResolveDrive(const GlobalOptions& g, const std::string& arg) {
  PBSKIT_ASSIGN_OR_RETURN(auto cfg, LoadDrives(g));
  std::string name = arg;
  for (const char* env : {"PBSKIT_TAPE_DRIVE", "PROXMOX_TAPE_DRIVE"}) {
    if (name.empty() && std::getenv(env) != nullptr) name = std::getenv(env);
  }
  if (name.empty()) {
    if (cfg.virtual_drives.size() == 1) return cfg.virtual_drives[0];
    return Status::InvalidArgument("no drive specified (use --drive)");
  }
  const auto* d = cfg.FindVirtual(name);
  if (d == nullptr) {
    for (const auto& l : cfg.lto_drives) {
      if (l.name == name) {
        return Status::Unsupported("drive '" + name +
                                   "' is an LTO drive; pbskit drives only "
                                   "the virtual drive type");
      }
    }
    return Status::InvalidArgument("no such drive '" + name + "' in " + CfgPath(g, "tape.cfg"));
  }
  return *d;
}

Result<std::unique_ptr<VirtualTapeDrive>> OpenDrive(const VirtualDriveConfig& d) {
  return VirtualTapeDrive::Open(PosixFilesystem(), d.path,
                                d.max_size.value_or(kVirtualDriveDefaultMaxSize));
}

int64_t Now() { return static_cast<int64_t>(::time(nullptr)); }

TapeLog Logger(const GlobalOptions& g) {
  if (g.output_format != "text") return {};
  return [](const std::string& line) { std::cout << line << std::endl; };
}

// ---------------------------------------------------------------- drive / pool

struct DriveArgs {
  std::string name, type = "virtual", path, max_size;
};

int DriveCreate(GlobalOptions& g, const DriveArgs& a) {
  if (a.type != "virtual") {
    return ReportError(
        Status::Unsupported("drive type '" + a.type + "' is not supported (only 'virtual')"), 2);
  }
  auto cfg = LoadDrives(g);
  if (!cfg.ok()) return ReportError(cfg.status(), 2);
  if (!IsSafeId(a.name) || a.name.size() < 3 || a.name.size() > 32) {
    return ReportError(Status::InvalidArgument("invalid drive name '" + a.name + "'"), 2);
  }
  if (cfg->HasName(a.name)) {
    return ReportError(Status::AlreadyExists("drive '" + a.name + "' already exists."), 2);
  }
  VirtualDriveConfig d{a.name, a.path, std::nullopt};
  if (!a.max_size.empty()) {
    auto size = ParseTapeSize(a.max_size);
    if (!size.ok()) return ReportError(size.status(), 2);
    d.max_size = *size;
  }
  Status st = MkdirAll(PosixFilesystem(), a.path, 0755);
  if (!st.ok()) return ReportError(st, 1);
  cfg->virtual_drives.push_back(d);
  st = SaveConfig(g, "tape.cfg", cfg->ToString());
  return st.ok() ? 0 : ReportError(st, 1);
}

int DriveList(GlobalOptions& g) {
  auto cfg = LoadDrives(g);
  if (!cfg.ok()) return ReportError(cfg.status(), 2);
  boost::json::array rows;
  for (const auto& d : cfg->virtual_drives) {
    boost::json::object o;
    o["name"] = d.name;
    o["type"] = "virtual";
    o["path"] = d.path;
    o["max-size"] = d.max_size.value_or(kVirtualDriveDefaultMaxSize);
    rows.push_back(std::move(o));
  }
  for (const auto& d : cfg->lto_drives) {
    boost::json::object o;
    o["name"] = d.name;
    o["type"] = "lto";
    o["path"] = d.path;
    if (d.changer) o["changer"] = *d.changer;
    rows.push_back(std::move(o));
  }
  TableOptions t = DefaultTableOptions();
  t.sort_by = {{"name", false}};
  return PrintList(g, rows,
                   {{"name", "Name"},
                    {"type", "Type"},
                    {"path", "Path"},
                    {"max-size", "Max Size", true,
                     [](const boost::json::value& v, const boost::json::object&) {
                       return v.is_number() ? HumanBytes(v.to_number<uint64_t>()) : std::string();
                     }}},
                   t);
}

struct PoolArgs {
  std::string name, allocation, retention, template_, comment;
};

int PoolCreate(GlobalOptions& g, const PoolArgs& a) {
  auto cfg = LoadPools(g);
  if (!cfg.ok()) return ReportError(cfg.status(), 2);
  if (!IsSafeId(a.name) || a.name.size() < 3 || a.name.size() > 32) {
    return ReportError(Status::InvalidArgument("invalid pool name '" + a.name + "'"), 2);
  }
  if (cfg->Find(a.name) != nullptr) {
    return ReportError(Status::AlreadyExists("media pool '" + a.name + "' already exists"), 2);
  }
  MediaPoolConfig p;
  p.name = a.name;
  auto opt = [](const std::string& s) {
    return s.empty() ? std::nullopt : std::optional<std::string>(s);
  };
  p.allocation = opt(a.allocation);
  p.retention = opt(a.retention);
  p.template_ = opt(a.template_);
  p.comment = opt(a.comment);
  cfg->pools.push_back(p);
  Status st = SaveConfig(g, "media-pool.cfg", cfg->ToString());
  return st.ok() ? 0 : ReportError(st, 1);
}

int PoolList(GlobalOptions& g) {
  auto cfg = LoadPools(g);
  if (!cfg.ok()) return ReportError(cfg.status(), 2);
  boost::json::array rows;
  for (const auto& p : cfg->pools) {
    boost::json::object o;
    o["name"] = p.name;
    if (p.allocation) o["allocation"] = *p.allocation;
    if (p.retention) o["retention"] = *p.retention;
    if (p.template_) o["template"] = *p.template_;
    if (p.encrypt) o["encrypt"] = *p.encrypt;
    if (p.comment) o["comment"] = *p.comment;
    rows.push_back(std::move(o));
  }
  TableOptions t = DefaultTableOptions();
  t.sort_by = {{"name", false}};
  return PrintList(g, rows,
                   {{"name", "Name"},
                    {"allocation", "Allocation"},
                    {"retention", "Retention"},
                    {"template", "Template"},
                    {"encrypt", "Encrypt"}},
                   t);
}

// ---------------------------------------------------------------- label / media

struct LabelArgs {
  std::string drive, label_text, pool;
  bool force = false;
};

int Label(GlobalOptions& g, const LabelArgs& a) {
  auto d = ResolveDrive(g, a.drive);
  if (!d.ok()) return ReportError(d.status(), 2);
  if (!a.pool.empty()) {
    auto pools = LoadPools(g);
    if (!pools.ok()) return ReportError(pools.status(), 2);
    if (pools->Find(a.pool) == nullptr) {
      return ReportError(Status::InvalidArgument("no such media pool '" + a.pool + "'"), 2);
    }
  }
  if (a.label_text.empty() || a.label_text.find('/') != std::string::npos) {
    return ReportError(Status::InvalidArgument("invalid label text '" + a.label_text + "'"), 2);
  }
  auto drive = OpenDrive(*d);
  if (!drive.ok()) return ReportError(drive.status(), 1);
  TapeStatusDir state(PosixFilesystem(), TapeDir(g));
  auto id =
      LabelTape(drive->get(), d->name, state, a.label_text,
                a.pool.empty() ? std::nullopt : std::optional<std::string>(a.pool), a.force, Now());
  if (!id.ok()) return ReportError(id.status(), ExitCodeFor(id.status()));
  if (g.output_format == "text") {
    std::cout << "Label media '" << a.label_text << "' in drive '" << d->name << "'\n"
              << "Write media label\n"
              << "media uuid: " << UuidToString(id->label.uuid) << "\n";
  }
  return 0;
}

struct MediaListArgs {
  std::string pool;
};

int MediaList(GlobalOptions& g, const MediaListArgs& a) {
  TapeStatusDir state(PosixFilesystem(), TapeDir(g));
  auto inv = Inventory::Load(state.fs(), state.dir());
  if (!inv.ok()) return ReportError(inv.status(), 1);
  boost::json::array rows;
  for (const auto& e : inv->entries()) {
    std::optional<std::string> pool = e.id.label.pool;
    if (e.id.media_set_label) pool = e.id.media_set_label->pool;
    if (!a.pool.empty() && pool != a.pool) continue;
    boost::json::object o;
    o["label-text"] = e.id.label.label_text;
    o["uuid"] = UuidToString(e.id.label.uuid);
    o["ctime"] = e.id.label.ctime;
    if (pool) o["pool"] = *pool;
    o["location"] = e.location.value_or("offline");
    std::string status = e.status.value_or("");
    bool has_set = e.id.media_set_label && !e.id.media_set_label->IsUnassigned();
    if (status.empty()) status = "writable";  // PBS: no persisted status = usable
    o["status"] = status;
    bool catalog = true;
    if (has_set) {
      const auto& s = *e.id.media_set_label;
      o["media-set-uuid"] = UuidToString(s.uuid);
      o["media-set-ctime"] = s.ctime;
      o["seq-nr"] = s.seq_nr;
      auto exists = state.CatalogExists(e.id.label.uuid);
      catalog = exists.ok() && *exists;
    }
    o["catalog"] = catalog;
    o["expired"] = false;
    rows.push_back(std::move(o));
  }
  TableOptions t = DefaultTableOptions();
  t.sort_by = {{"pool", false}, {"media-set-ctime", false}, {"seq-nr", false}};
  auto ok = [](const boost::json::value& v, const boost::json::object&) {
    return std::string(v.is_bool() && v.as_bool() ? "ok" : "missing");
  };
  return PrintList(g, rows,
                   {{"label-text", "Label Text"},
                    {"pool", "Pool"},
                    {"media-set-uuid", "Media Set Uuid"},
                    {"seq-nr", "Seq Nr", true},
                    {"status", "Status"},
                    {"location", "Location"},
                    {"catalog", "Catalog", false, ok}},
                   t);
}

// Snapshots per medium from the `.index` caches (proxmox-tape media content).
int MediaContent(GlobalOptions& g, const MediaListArgs& a) {
  TapeStatusDir state(PosixFilesystem(), TapeDir(g));
  auto inv = Inventory::Load(state.fs(), state.dir());
  if (!inv.ok()) return ReportError(inv.status(), 1);
  boost::json::array rows;
  for (const auto& e : inv->entries()) {
    if (!e.id.media_set_label || e.id.media_set_label->IsUnassigned()) continue;
    const auto& set = *e.id.media_set_label;
    if (!a.pool.empty() && set.pool != a.pool) continue;
    auto list = state.SnapshotList(e.id);
    if (!list.ok()) {
      std::cerr << "warning: media '" << e.id.label.label_text << "': " << list.status().message()
                << "\n";
      continue;
    }
    for (const auto& [store, snapshot] : *list) {
      boost::json::object o;
      o["label-text"] = e.id.label.label_text;
      o["uuid"] = UuidToString(e.id.label.uuid);
      o["pool"] = set.pool;
      o["media-set-uuid"] = UuidToString(set.uuid);
      o["media-set-ctime"] = set.ctime;
      o["seq-nr"] = set.seq_nr;
      o["store"] = store;
      o["snapshot"] = snapshot;
      o["backup-time"] = 0;
      auto pos = snapshot.rfind('/');
      if (pos != std::string::npos) {
        auto t = ParseBackupTime(snapshot.substr(pos + 1));
        if (t.ok()) o["backup-time"] = *t;
      }
      rows.push_back(std::move(o));
    }
  }
  TableOptions t = DefaultTableOptions();
  t.sort_by = {
      {"media-set-ctime", false}, {"seq-nr", false}, {"store", false}, {"snapshot", false}};
  return PrintList(g, rows,
                   {{"label-text", "Label Text"},
                    {"pool", "Pool"},
                    {"media-set-uuid", "Media Set Uuid"},
                    {"seq-nr", "Seq Nr", true},
                    {"store", "Store"},
                    {"snapshot", "Snapshot"}},
                   t);
}

// ---------------------------------------------------------------- backup

struct BackupArgs {
  std::string store, pool, drive, ns;
  std::vector<std::string> group_filter;
  int64_t max_depth = -1;
  bool latest_only = false, force_media_set = false;
};

int Backup(GlobalOptions& g, const BackupArgs& a) {
  auto d = ResolveDrive(g, a.drive);
  if (!d.ok()) return ReportError(d.status(), 2);
  auto pools = LoadPools(g);
  if (!pools.ok()) return ReportError(pools.status(), 2);
  const auto* pool = pools->Find(a.pool);
  if (pool == nullptr) {
    return ReportError(Status::InvalidArgument("no such media pool '" + a.pool + "'"), 2);
  }
  auto ns = ParseNamespaceArg(a.ns);
  if (!ns.ok()) return ReportError(ns.status(), 2);
  auto opened = OpenStoreArg(g, a.store);
  if (!opened.ok()) return ReportStoreError(opened.status());
  auto drive = OpenDrive(*d);
  if (!drive.ok()) return ReportError(drive.status(), 1);
  TapeStatusDir state(PosixFilesystem(), TapeDir(g));
  TapeBackupOptions o;
  o.pool = *pool;
  o.drive_name = d->name;
  o.ns = *ns;
  if (a.max_depth >= 0) o.max_depth = static_cast<uint64_t>(a.max_depth);
  o.group_filter = a.group_filter;
  o.latest_only = a.latest_only;
  o.force_media_set = a.force_media_set;
  o.log = Logger(g);
  auto r = RunTapeBackup(opened->store, drive->get(), state, o);
  if (!r.ok()) return ReportError(r.status(), ExitCodeFor(r.status()) == 2 ? 2 : 1);
  if (g.output_format == "text") {
    std::cout << "TASK OK: " << r->snapshots.size() << " snapshots, " << r->chunks_written
              << " chunks written to media set " << UuidToString(r->media_set) << " (tapes:";
    for (const auto& t : r->used_tapes) std::cout << " " << t;
    std::cout << ")\n";
  } else {
    boost::json::object out;
    out["media-set"] = UuidToString(r->media_set);
    boost::json::array snaps, tapes;
    for (const auto& s : r->snapshots) snaps.push_back(boost::json::value(s));
    for (const auto& t : r->used_tapes) tapes.push_back(boost::json::value(t));
    out["snapshots"] = snaps;
    out["used-tapes"] = tapes;
    out["chunks-written"] = r->chunks_written;
    out["bytes-written"] = r->bytes_written;
    PrintJson(std::cout, out, g.output_format);
  }
  return 0;
}

// ---------------------------------------------------------------- catalog reindex / restore

struct ReindexArgs {
  std::string drive;
  bool scan = false, force = false, verbose = false;
};

int Reindex(GlobalOptions& g, const ReindexArgs& a) {
  auto d = ResolveDrive(g, a.drive);
  if (!d.ok()) return ReportError(d.status(), 2);
  auto drive = OpenDrive(*d);
  if (!drive.ok()) return ReportError(drive.status(), 1);
  TapeStatusDir state(PosixFilesystem(), TapeDir(g));
  ReindexOptions o;
  o.drive_name = d->name;
  o.scan = a.scan;
  o.force = a.force;
  o.verbose = a.verbose;
  o.log = Logger(g);
  auto r = ReindexDrive(drive->get(), state, o);
  if (!r.ok()) return ReportError(r.status(), ExitCodeFor(r.status()));
  if (g.output_format == "text") {
    std::cout << r->ToText();
  } else {
    PrintJson(std::cout, r->ToJson(), g.output_format);
  }
  return r->ok() ? 0 : 1;
}

struct RestoreArgs {
  std::string media_set, store, drive;
  std::vector<std::string> snapshots;
  std::string owner = "root@pam";
};

int Restore(GlobalOptions& g, const RestoreArgs& a) {
  auto d = ResolveDrive(g, a.drive);
  if (!d.ok()) return ReportError(d.status(), 2);
  auto set = ParseUuid(a.media_set);
  if (!set.ok()) return ReportError(set.status(), 2);
  auto opened = OpenStoreArg(g, a.store);
  if (!opened.ok()) return ReportStoreError(opened.status());
  auto drive = OpenDrive(*d);
  if (!drive.ok()) return ReportError(drive.status(), 1);
  TapeStatusDir state(PosixFilesystem(), TapeDir(g));
  TapeRestoreOptions o;
  o.media_set = *set;
  o.drive_name = d->name;
  o.snapshots = a.snapshots;
  o.owner = a.owner;
  o.log = Logger(g);
  auto r = RestoreMediaSet(drive->get(), state, opened->store, o);
  if (!r.ok()) return ReportError(r.status(), ExitCodeFor(r.status()));
  if (g.output_format == "text") {
    std::cout << r->ToText();
  } else {
    PrintJson(std::cout, r->ToJson(), g.output_format);
  }
  return r->ok() ? 0 : 1;
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto* tape = app.add_subcommand("tape", "PBS tape backup on virtual tape drives (proxmox-tape)");
  tape->require_subcommand(1);

  auto* drive = tape->add_subcommand("drive", "tape drive configuration (tape.cfg)");
  drive->require_subcommand(1);
  auto da = std::make_shared<DriveArgs>();
  auto* dc = drive->add_subcommand("create", "add a drive");
  dc->add_option("name", da->name, "drive name")->required();
  dc->add_option("--type", da->type, "drive type (virtual)");
  dc->add_option("--path", da->path, "directory of the virtual drive")->required();
  dc->add_option("--max-size", da->max_size, "virtual tape size (default 64 MiB)");
  dc->callback([&g, da] { g.exit_code = DriveCreate(g, *da); });
  drive->add_subcommand("list", "list drives")->callback([&g] { g.exit_code = DriveList(g); });

  auto* pool = tape->add_subcommand("pool", "media pool configuration (media-pool.cfg)");
  pool->require_subcommand(1);
  auto pa = std::make_shared<PoolArgs>();
  auto* pc = pool->add_subcommand("create", "add a media pool");
  pc->add_option("name", pa->name, "pool name")->required();
  pc->add_option("--allocation", pa->allocation, "media set allocation policy (continue|always)");
  pc->add_option("--retention", pa->retention, "media retention policy (keep|overwrite|span)");
  pc->add_option("--template", pa->template_, "media set naming template");
  pc->add_option("--comment", pa->comment, "comment");
  pc->callback([&g, pa] { g.exit_code = PoolCreate(g, *pa); });
  pool->add_subcommand("list", "list media pools")->callback([&g] { g.exit_code = PoolList(g); });

  auto la = std::make_shared<LabelArgs>();
  auto* label = tape->add_subcommand("label", "label a tape (writes file 0, new media uuid)");
  label->add_option("--drive", la->drive, "drive name");
  label->add_option("--label-text", la->label_text, "label text")->required();
  label->add_option("--pool", la->pool, "reserve the tape for this pool");
  label->add_flag("--force", la->force, "overwrite an existing label");
  label->callback([&g, la] { g.exit_code = Label(g, *la); });

  auto* media = tape->add_subcommand("media", "media inventory");
  media->require_subcommand(1);
  auto ma = std::make_shared<MediaListArgs>();
  auto* ml = media->add_subcommand("list", "list media (inventory.json)");
  ml->add_option("--pool", ma->pool, "only media of this pool");
  ml->callback([&g, ma] { g.exit_code = MediaList(g, *ma); });
  auto* mc = media->add_subcommand("content", "list the snapshots on each medium (.index caches)");
  mc->add_option("--pool", ma->pool, "only media of this pool");
  mc->callback([&g, ma] { g.exit_code = MediaContent(g, *ma); });

  auto ba = std::make_shared<BackupArgs>();
  auto* backup = tape->add_subcommand("backup", "back up a datastore to a media pool");
  backup->add_option("store", ba->store, "datastore name or path")->required();
  backup->add_option("--pool", ba->pool, "media pool")->required();
  backup->add_option("--drive", ba->drive, "drive name");
  backup->add_option("--ns", ba->ns, "namespace to back up (with its children)");
  backup->add_option("--max-depth", ba->max_depth, "namespace recursion depth");
  backup->add_option("--group-filter", ba->group_filter, "group filter (repeatable)");
  backup->add_flag("--latest-only", ba->latest_only, "only the latest snapshot of each group");
  backup->add_flag("--force-media-set", ba->force_media_set, "start a new media set");
  backup->callback([&g, ba] { g.exit_code = Backup(g, *ba); });

  auto* catalog = tape->add_subcommand("catalog", "media catalogs");
  catalog->require_subcommand(1);
  auto ra = std::make_shared<ReindexArgs>();
  auto* reindex = catalog->add_subcommand(
      "reindex", "rebuild the media catalogs of every tape in the drive from tape content");
  reindex->add_option("--drive", ra->drive, "drive name");
  reindex->add_flag("--scan", ra->scan, "skip the fast path (catalog archives), scan every file");
  reindex->add_flag("--force", ra->force, "rebuild catalogs that exist");
  reindex->add_flag("--verbose", ra->verbose, "log every chunk digest");
  reindex->callback([&g, ra] { g.exit_code = Reindex(g, *ra); });

  auto rs = std::make_shared<RestoreArgs>();
  auto* restore = tape->add_subcommand("restore", "restore snapshots of a media set");
  restore->add_option("media-set", rs->media_set, "media set uuid")->required();
  restore->add_option("--store", rs->store, "target datastore")->required();
  restore->add_option("--drive", rs->drive, "drive name");
  restore->add_option("--snapshots", rs->snapshots,
                      "only these snapshots ([store:][ns/..]type/id/time)");
  restore->add_option("--owner", rs->owner, "owner of restored groups (default root@pam)");
  restore->callback([&g, rs] { g.exit_code = Restore(g, *rs); });
}

}  // namespace

PBSKIT_REGISTER_COMMAND(88, Setup);

}  // namespace pbskit::cli
