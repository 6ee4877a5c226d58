// `pbskit datastore create|list|status`: the datastore registry (datastore.cfg) and disk usage.
#include <sys/statvfs.h>
#include <unistd.h>

#include <iostream>

#include <fmt/format.h>

#include "output.h"
#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/datastore_config.h"
#include "pbskit/datastore/gc.h"
#include "registry.h"
#include "store_args.h"

namespace pbskit::cli {
namespace {

struct CreateArgs {
  std::string name;
  std::string path;
  std::string comment;
  std::string tuning;
};

std::string AbsolutePath(const std::string& p) {
  if (!p.empty() && p[0] == '/') return p;
  char buf[4096];
  if (::getcwd(buf, sizeof(buf)) == nullptr) return p;
  std::string cwd = buf;
  std::string rel = p;
  while (rel.rfind("./", 0) == 0) rel = rel.substr(2);
  return rel.empty() || rel == "." ? cwd : cwd + "/" + rel;
}

int RunCreate(const GlobalOptions& g, const CreateArgs& a) {
  Status st = CheckDatastoreName(a.name);
  if (!st.ok()) return ReportError(st, 2);
  DataStoreOptions options;
  bool atime_check = true;
  if (!a.tuning.empty()) {
    auto tuning = DatastoreTuning::Parse(a.tuning);
    if (!tuning.ok()) return ReportError(tuning.status(), 2);
    options.sync_level = tuning->EffectiveSyncLevel();
    atime_check = tuning->EffectiveAtimeSafetyCheck();
  }
  std::string path = AbsolutePath(a.path);
  while (path.size() > 1 && path.back() == '/') path.pop_back();

  auto lock = LockDatastoreConfig(g.config_dir);
  if (!lock.ok()) return ReportError(lock.status(), 1);
  auto cfg = DatastoreConfig::Load(g.config_dir);
  if (!cfg.ok()) return ReportError(cfg.status(), 2);
  if (cfg->Find(a.name)) {
    return ReportError(Status::AlreadyExists("datastore '" + a.name + "' already exists."), 2);
  }
  if (const auto* other = cfg->FindByPath(path)) {
    return ReportError(Status::AlreadyExists("path '" + path + "' is already used by datastore '" +
                                             other->name + "'"),
                       2);
  }
  auto store = DataStore::Create(path, a.name, PosixFilesystem(), options);
  if (!store.ok()) return ReportError(store.status(), 1);
  // Like PBS >= 3.3.7: GC decides liveness by atime, so refuse a filesystem where atime
  // updates do not work (inserts the 4 MiB zero chunk).
  std::string atime_msg = "Access time update check skipped.";
  if (atime_check) {
    st = RunAtimeSafetyCheck((*store)->chunk_store(), nullptr);
    if (!st.ok()) return ReportError(st, 1);
    atime_msg = "Access time update check successful.";
  }

  DatastoreConfigEntry entry;
  entry.name = a.name;
  entry.Set("path", path);
  if (!a.comment.empty()) entry.Set("comment", a.comment);
  if (!a.tuning.empty()) entry.Set("tuning", a.tuning);
  st = cfg->Add(std::move(entry));
  if (st.ok()) st = cfg->Save(g.config_dir);
  if (!st.ok()) return ReportError(st, 1);
  if (g.output_format == "text") {
    std::cout << atime_msg << "\n";
    std::cout << "created datastore '" << a.name << "' at " << path << "\n";
  } else {
    boost::json::object o;
    o["name"] = a.name;
    o["path"] = path;
    PrintJson(std::cout, o, g.output_format);
  }
  return 0;
}

int RunList(const GlobalOptions& g) {
  auto cfg = DatastoreConfig::Load(g.config_dir);
  if (!cfg.ok()) return ReportError(cfg.status(), 2);
  boost::json::array data;
  for (const auto& e : cfg->entries()) {
    boost::json::object o;
    o["name"] = e.name;
    for (const auto& [k, v] : e.properties) o[k] = v;
    data.push_back(std::move(o));
  }
  TableOptions options = DefaultTableOptions();
  options.sort_by = {{"name", false}};
  return PrintList(g, std::move(data),
                   {Column{"name", "", false, nullptr}, Column{"path", "", false, nullptr},
                    Column{"comment", "", false, nullptr}},
                   options);
}

// "<bytes> (<pct> %)" like proxmox-backup-client status.
std::string RenderWithPercent(const boost::json::value& v, const boost::json::object& rec) {
  if (!v.is_uint64() && !v.is_int64()) return "";
  uint64_t value = v.to_number<uint64_t>();
  auto it = rec.find("total");
  uint64_t total = it != rec.end() ? it->value().to_number<uint64_t>() : 0;
  if (total == 0) return HumanBytes(value);
  uint64_t pct = (value + total / 200) * 100 / total;
  return fmt::format("{} ({} %)", HumanBytes(value), pct);
}

int RunStatus(const GlobalOptions& g, const std::string& store_arg) {
  std::vector<std::pair<std::string, std::string>> stores;  // name, path
  if (!store_arg.empty()) {
    auto opened = OpenStoreArg(g, store_arg);
    if (!opened.ok()) return ReportStoreError(opened.status());
    stores.emplace_back(opened->store->name(), opened->store->base());
  } else {
    auto cfg = DatastoreConfig::Load(g.config_dir);
    if (!cfg.ok()) return ReportError(cfg.status(), 2);
    for (const auto& e : cfg->entries()) stores.emplace_back(e.name, e.path());
  }
  boost::json::array data;
  int rc = 0;
  for (const auto& [name, path] : stores) {
    boost::json::object o;
    o["store"] = name;
    o["path"] = path;
    struct statvfs vfs;
    if (::statvfs(path.c_str(), &vfs) != 0) {
      o["error"] = fmt::format("unable to stat '{}': {}", path, std::strerror(errno));
      rc = 1;
    } else {
      uint64_t total = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
      uint64_t avail = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
      uint64_t used = total - static_cast<uint64_t>(vfs.f_bfree) * vfs.f_frsize;
      o["avail"] = avail;
      o["total"] = total;
      o["used"] = used;
    }
    data.push_back(std::move(o));
  }
  auto bytes = [](const boost::json::value& v, const boost::json::object&) {
    return v.is_null() ? std::string() : HumanBytes(v.to_number<uint64_t>());
  };
  PrintList(g, std::move(data),
            {Column{"store", "", false, nullptr}, Column{"path", "", false, nullptr},
             Column{"total", "", true, bytes}, Column{"used", "", true, RenderWithPercent},
             Column{"avail", "", true, RenderWithPercent}, Column{"error", "", false, nullptr}});
  return rc;
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto* ds = app.add_subcommand("datastore", "create and list datastores (datastore.cfg)");
  ds->require_subcommand(1);

  auto* create = ds->add_subcommand(
      "create", "create a new datastore (.chunks with 65536 dirs, .lock) and register it");
  auto ca = std::make_shared<CreateArgs>();
  create->add_option("name", ca->name, "datastore name (3-32 characters, SAFE_ID)")->required();
  create->add_option("path", ca->path, "directory for the datastore (created if missing)")
      ->required();
  create->add_option("--comment", ca->comment, "comment");
  create->add_option("--tuning", ca->tuning,
                     "tuning property string (chunk-order, sync-level, gc-atime-safety-check, "
                     "gc-atime-cutoff, gc-cache-capacity)");
  create->callback([&g, ca] { g.exit_code = RunCreate(g, *ca); });

  auto* list = ds->add_subcommand("list", "list the configured datastores");
  list->callback([&g] { g.exit_code = RunList(g); });

  auto* status = ds->add_subcommand("status", "disk usage of the configured datastores");
  auto store = std::make_shared<std::string>();
  AddStoreOption(status, store.get(), false);
  status->add_option("store-arg", *store, "datastore name or path (default: all configured)");
  status->callback([&g, store] { g.exit_code = RunStatus(g, *store); });
}

}  // namespace
}  // namespace pbskit::cli

PBSKIT_REGISTER_COMMAND(10, pbskit::cli::Setup);
