// `pbskit prune --store S [--ns NS] GROUP --keep-last N ... [--dry-run]`: PBS's prune selection
// for one group, printed like `proxmox-backup-client prune` (snapshot / date / action table, or
// the API's JSON rows). A real run is a "prune" worker task logged under <state-dir>/tasks.
#include <ctime>
#include <iostream>
#include <memory>

#include "output.h"
#include "pbskit/datastore/prune.h"
#include "pbskit/datastore/task_log.h"
#include "registry.h"
#include "store_args.h"

namespace pbskit::cli {
namespace {

struct PruneArgs {
  std::string store;
  std::string ns;
  std::string group;
  int64_t keep[6] = {-1, -1, -1, -1, -1, -1};  // last hourly daily weekly monthly yearly
  bool dry_run = false;
  bool quiet = false;
  std::string owner = "root@pam";
};

constexpr const char* kKeepNames[6] = {"last", "hourly", "daily", "weekly", "monthly", "yearly"};

std::string StrftimeLocalC(int64_t epoch) {
  time_t t = static_cast<time_t>(epoch);
  struct tm tm {};
  localtime_r(&t, &tm);
  char buf[128];
  size_t n = std::strftime(buf, sizeof buf, "%c", &tm);
  return std::string(buf, n);
}

// The API's row: serde_json sorts the keys (backup-id, backup-time, backup-type, keep, ns,
// protected) because PBS passes the rows through a serde_json::Value.
boost::json::object Row(const PruneResultItem& item) {
  boost::json::object o;
  o["backup-id"] = item.dir.group.id;
  o["backup-time"] = item.dir.time;
  o["backup-type"] = BackupTypeName(item.dir.group.type);
  o["keep"] = item.keep;
  if (!item.ns.IsRoot()) o["ns"] = item.ns.ToString();
  o["protected"] = item.is_protected;
  return o;
}

int RunPrune(GlobalOptions& g, const PruneArgs& a) {
  auto ref = ParseGroupArg(a.ns, a.group);
  if (!ref.ok()) return ReportError(ref.status(), 2);
  KeepOptions keep;
  std::optional<uint64_t>* slots[6] = {&keep.keep_last,   &keep.keep_hourly, &keep.keep_daily,
                                       &keep.keep_weekly, &keep.keep_monthly, &keep.keep_yearly};
  for (int i = 0; i < 6; ++i) {
    if (a.keep[i] == -1) continue;
    if (a.keep[i] < 1) {
      return ReportError(Status::InvalidArgument(std::string("parameter verification failed - "
                                                             "'keep-") +
                                                 kKeepNames[i] +
                                                 "': value must have a minimum value of 1 (got " +
                                                 std::to_string(a.keep[i]) + ")"),
                         2);
    }
    *slots[i] = static_cast<uint64_t>(a.keep[i]);
  }

  auto opened = OpenStoreArg(g, a.store);
  if (!opened.ok()) return ReportStoreError(opened.status());
  DataStore& store = *opened->store;

  std::unique_ptr<TaskLog> task;
  if (!a.dry_run) {
    auto upid = NewUpid("prune", PruneWorkerId(store.name(), ref->ns, ref->group), a.owner);
    if (!upid.ok()) return ReportError(upid.status(), 1);
    auto started = TaskLog::Start(g.state_dir, *upid);
    if (started.ok()) {
      task = std::move(started).value();
    } else {
      std::cerr << "warning: no task log written (" << started.status().message() << ")\n";
    }
  }
  MemoryTaskLogger memory;
  TaskLogger* log = task ? static_cast<TaskLogger*>(task.get()) : &memory;
  auto result = PruneGroup(store, ref->ns, ref->group, keep, a.dry_run, log);
  if (task) (void)task->Finish(result.ok() ? Status::OK() : result.status());
  if (!result.ok()) {
    return ReportError(result.status(), result.status().IsNotFound() ? 2 : 1);
  }

  int exit_code = 0;
  boost::json::array rows;
  for (const auto& item : *result) {
    if (!a.dry_run && !item.keep && !item.removed) {
      std::cerr << "warning: failed to remove snapshot " << item.dir.ToString()
                << " (see the prune task log)\n";
      exit_code = 1;
    }
    if (a.quiet && item.keep) continue;
    rows.push_back(Row(item));
  }

  std::vector<Column> columns = {
      {"backup-id", "snapshot", false,
       [](const boost::json::value&, const boost::json::object& r) {
         return std::string(r.at("backup-type").as_string()) + "/" +
                std::string(r.at("backup-id").as_string()) + "/" +
                FormatBackupTime(r.at("backup-time").to_number<int64_t>());
       }},
      {"backup-time", "date", false,
       [](const boost::json::value& v, const boost::json::object&) {
         return v.is_null() ? std::string() : StrftimeLocalC(v.to_number<int64_t>());
       }},
      {"keep", "action", false,
       [](const boost::json::value& v, const boost::json::object&) {
         return std::string(v.is_bool() ? (v.as_bool() ? "keep" : "remove") : "unknown");
       }},
  };
  TableOptions options = DefaultTableOptions();
  options.sort_by = {{"backup-type", false}, {"backup-id", false}, {"backup-time", false}};
  PrintList(g, std::move(rows), columns, options);
  return exit_code;
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto a = std::make_shared<PruneArgs>();
  auto* sub = app.add_subcommand(
      "prune", "prune a backup group: keep the snapshots the --keep-* options select (as PBS)");
  AddStoreOption(sub, &a->store);
  AddNamespaceOption(sub, &a->ns);
  sub->add_option("GROUP", a->group, "backup group (vm/100)")->required();
  const char* help[6] = {"number of backups to keep",
                         "number of hourly backups to keep",
                         "number of daily backups to keep",
                         "number of weekly backups to keep",
                         "number of monthly backups to keep",
                         "number of yearly backups to keep"};
  for (int i = 0; i < 6; ++i) {
    sub->add_option(std::string("--keep-") + kKeepNames[i], a->keep[i], help[i]);
  }
  sub->add_flag("--dry-run", a->dry_run, "just show what prune would do, but do not delete anything");
  sub->add_flag("--quiet", a->quiet, "minimal output - only show removals");
  sub->callback([&g, a] { g.exit_code = RunPrune(g, *a); });
}

}  // namespace

PBSKIT_REGISTER_COMMAND(54, Setup);

}  // namespace pbskit::cli
