// `pbskit task list [--all]` and `pbskit task log UPID`: the worker tasks pbskit (or PBS, when
// --state-dir points at /var/lib/proxmox-backup) recorded under <state-dir>/tasks.
#include <fstream>
#include <iostream>
#include <memory>

#include "output.h"
#include "pbskit/datastore/task_log.h"
#include "registry.h"

namespace pbskit::cli {
namespace {

int RunList(GlobalOptions& g, bool all) {
  auto tasks = ListTasks(g.state_dir, all);
  if (!tasks.ok()) return ReportError(tasks.status(), 1);
  boost::json::array rows;
  for (const auto& t : *tasks) {
    boost::json::object o;
    o["upid"] = t.upid_str;
    o["node"] = t.upid.node;
    o["pid"] = t.upid.pid;
    o["pstart"] = t.upid.pstart;
    o["starttime"] = t.upid.starttime;
    o["worker_type"] = t.upid.worker_type;
    if (t.upid.worker_id) o["worker_id"] = *t.upid.worker_id;
    o["user"] = t.upid.auth_id;
    if (t.state) {
      o["endtime"] = t.state->endtime;
      o["status"] = t.state->StatusText();
    }
    rows.push_back(std::move(o));
  }
  auto epoch = [](const boost::json::value& v, const boost::json::object&) {
    return v.is_null() ? std::string() : FormatLocalRfc3339(v.to_number<int64_t>());
  };
  std::vector<Column> columns = {
      {"starttime", "starttime", false, epoch},
      {"endtime", "endtime", false, epoch},
      {"upid", "upid", false, nullptr},
      {"status", "status", false,
       [](const boost::json::value& v, const boost::json::object&) {
         return v.is_null() ? std::string("running") : std::string(v.as_string());
       }},
  };
  return PrintList(g, std::move(rows), columns);
}

int RunLog(GlobalOptions& g, const std::string& upid_text) {
  auto upid = Upid::Parse(upid_text);
  if (!upid.ok()) return ReportError(upid.status(), 2);
  std::string path = TaskLogPath(g.state_dir, *upid);
  std::ifstream in(path);
  if (!in) return ReportError(Status::NotFound("no task log " + path), 2);
  std::cout << in.rdbuf();
  return 0;
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto* task = app.add_subcommand("task", "worker task logs kept under <state-dir>/tasks");
  task->require_subcommand(1);
  auto all = std::make_shared<bool>(false);
  auto* list = task->add_subcommand("list", "list running tasks (and finished ones with --all)");
  list->add_flag("--all", *all, "include finished tasks from the archive");
  list->callback([&g, all] { g.exit_code = RunList(g, *all); });
  auto upid = std::make_shared<std::string>();
  auto* log = task->add_subcommand("log", "print the log of a task");
  log->add_option("UPID", *upid, "the task's UPID")->required();
  log->callback([&g, upid] { g.exit_code = RunLog(g, *upid); });
}

}  // namespace

PBSKIT_REGISTER_COMMAND(90, Setup);

}  // namespace pbskit::cli
