// Node task endpoints (PBS src/api2/node/tasks.rs): list, status, log and stop, over the task
// files of datastore/task_log.h; tasks of this server come from its TaskManager.
#include "api_tasks.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "pbskit/datastore/task_log.h"
#include "pbskit/server/access_control.h"
#include "pbskit/server/api_server.h"

namespace pbskit::server {
namespace {

const std::vector<std::string> kSystemTasksPath = {"system", "tasks"};

// PBS check_job_privs: a user may see tasks of jobs it could run itself.
bool JobPrivsAllow(ApiCall& call, const Upid& upid) {
  if (!upid.worker_id) return false;
  const std::string& id = *upid.worker_id;
  AccessControl& access = call.server->access();
  if (upid.worker_type == "verificationjob") {
    auto colon = id.find(':');
    if (colon == std::string::npos || !IsSafeId(id.substr(0, colon))) return false;
    return access.LookupPrivs(*call.auth_id, {"datastore", id.substr(0, colon)}) &
           kPrivDatastoreVerify;
  }
  if (upid.worker_type == "garbage_collection") {
    return access.LookupPrivs(*call.auth_id, {"datastore", id}) & kPrivDatastoreModify;
  }
  if (upid.worker_type == "prune" || upid.worker_type == "prunejob") {
    // "<store>[:<ns>[:<group>]]": the ACL path is the store plus the namespace.
    std::vector<std::string> parts;
    size_t pos = 0;
    for (;;) {
      size_t colon = id.find(':', pos);
      parts.push_back(id.substr(pos, colon == std::string::npos ? colon : colon - pos));
      if (colon == std::string::npos) break;
      pos = colon + 1;
    }
    if (parts.empty() || parts.size() > 3) return false;
    std::vector<std::string> path = {"datastore", parts[0]};
    if (parts.size() >= 2) {
      auto ns = BackupNamespace::Parse(parts[1]);
      if (!ns.ok()) return false;
      for (const auto& c : ns->components()) path.push_back(c);
    }
    return access.LookupPrivs(*call.auth_id, path) & kPrivDatastoreModify;
  }
  return false;
}

bool OwnsTask(const Authid& me, const std::string& task_auth) {
  auto owner = Authid::Parse(task_auth);
  if (!owner.ok()) return false;
  return *owner == me || (owner->is_token() && Authid{owner->user, ""} == me);
}

// PBS check_task_access.
Status CheckTaskAccess(ApiCall& call, const Upid& upid) {
  if (OwnsTask(*call.auth_id, upid.auth_id)) return Status::OK();
  if (call.server->access().LookupPrivs(*call.auth_id, kSystemTasksPath) & kPrivSysAudit) {
    return Status::OK();
  }
  if (JobPrivsAllow(call, upid)) return Status::OK();
  return Status::InvalidArgument("task access not allowed");
}

// PBS check_job_store: whether a task belongs to datastore `store`.
bool TaskOfStore(const Upid& upid, const std::string& store) {
  if (!upid.worker_id) return false;
  const std::string& id = *upid.worker_id;
  const std::string& type = upid.worker_type;
  if (type.rfind("verif", 0) == 0) {
    auto colon = id.find(':');
    if (colon != std::string::npos && IsSafeId(id.substr(0, colon))) {
      return id.substr(0, colon) == store;
    }
    return id == store;
  }
  if (type == "prune" || type == "prunejob" || type == "backup" || type == "garbage_collection") {
    return id == store || id.rfind(store + ":", 0) == 0;
  }
  return false;
}

Result<Upid> UpidParam(ApiCall& call) { return Upid::Parse(call.Str("upid")); }

// Whether a task still runs: ours while the manager holds it; another process's (or another
// manager's) while that process lives and the log has no result line yet.
bool TaskRunning(ApiCall& call, TaskManager& tasks, const Upid& upid, const std::string& text) {
  if (tasks.IsActive(text)) return true;
  if (!UpidProcessRunning(upid)) return false;
  auto state = ReadTaskState(call.server->options().state_dir, upid);
  return state.ok() && state->kind == TaskState::Kind::kUnknown;
}

const char* StateTypeName(const TaskState& s) {
  switch (s.kind) {
    case TaskState::Kind::kOk:
      return "ok";
    case TaskState::Kind::kWarnings:
      return "warning";
    case TaskState::Kind::kError:
      return "error";
    default:
      return "unknown";
  }
}

Result<ApiResult> ListNodeTasks(ApiCall& call, TaskManager& tasks) {
  (void)tasks;
  bool list_all =
      call.server->access().LookupPrivs(*call.auth_id, kSystemTasksPath) & kPrivSysAudit;
  bool running = call.Bool("running");
  bool errors = call.Bool("errors");
  uint64_t start = static_cast<uint64_t>(call.Int("start", 0));
  uint64_t limit = static_cast<uint64_t>(call.Int("limit", 50));
  if (limit == 0) limit = UINT64_MAX;
  std::optional<int64_t> since, until;
  if (call.Has("since")) since = call.Int("since");
  if (call.Has("until")) until = call.Int("until");
  std::vector<std::string> statusfilter = call.StrList("statusfilter");
  bool has_statusfilter = call.Has("statusfilter");

  PBSKIT_ASSIGN_OR_RETURN(std::vector<TaskListEntry> list,
                          ListTasks(call.server->options().state_dir, !running));
  boost::json::array out;
  uint64_t skipped = 0;
  for (const auto& e : list) {
    if (until && e.upid.starttime > *until) continue;
    if (since) {
      if (e.state && e.state->endtime < *since) break;
      if (e.upid.starttime < *since) continue;
    }
    if (!list_all && !CheckTaskAccess(call, e.upid).ok()) continue;
    if (call.Has("userfilter") &&
        e.upid.auth_id.find(call.Str("userfilter")) == std::string::npos) {
      continue;
    }
    if (call.Has("store") && !TaskOfStore(e.upid, call.Str("store"))) continue;
    if (call.Has("typefilter") &&
        e.upid.worker_type.find(call.Str("typefilter")) == std::string::npos) {
      continue;
    }
    if (e.state && running) continue;
    if (e.state && e.state->kind == TaskState::Kind::kOk && errors) continue;
    if (has_statusfilter) {
      if (!e.state) continue;
      std::string type = StateTypeName(*e.state);
      if (std::find(statusfilter.begin(), statusfilter.end(), type) == statusfilter.end()) {
        continue;
      }
    }
    if (skipped < start) {
      ++skipped;
      continue;
    }
    boost::json::object item;
    item["upid"] = e.upid_str;
    item["node"] = "localhost";
    item["pid"] = e.upid.pid;
    item["pstart"] = e.upid.pstart;
    item["starttime"] = e.upid.starttime;
    item["worker_type"] = e.upid.worker_type;
    if (e.upid.worker_id) {
      item["worker_id"] = *e.upid.worker_id;
    } else {
      item["worker_id"] = nullptr;
    }
    item["user"] = e.upid.auth_id;
    if (e.state) {
      item["endtime"] = e.state->endtime;
      item["status"] = e.state->StatusText();
    }
    out.push_back(std::move(item));
    if (out.size() >= limit) break;
  }
  uint64_t count = out.size() + start;
  if (!out.empty() && out.size() >= limit) ++count;  // PBS's "there is more" virtual entry
  ApiResult r = ApiResult::Of(std::move(out));
  r.extra["total"] = count;
  return r;
}

Result<ApiResult> TaskStatus(ApiCall& call, TaskManager& tasks) {
  PBSKIT_ASSIGN_OR_RETURN(Upid upid, UpidParam(call));
  PBSKIT_RETURN_IF_ERROR(CheckTaskAccess(call, upid));
  PBSKIT_ASSIGN_OR_RETURN(Authid owner, Authid::Parse(upid.auth_id));
  boost::json::object o;
  o["upid"] = call.Str("upid");
  o["node"] = upid.node;
  o["pid"] = upid.pid;
  o["pstart"] = upid.pstart;
  o["starttime"] = upid.starttime;
  o["type"] = upid.worker_type;
  if (upid.worker_id) {
    o["id"] = *upid.worker_id;
  } else {
    o["id"] = nullptr;
  }
  o["user"] = owner.user;
  if (owner.is_token()) o["tokenid"] = owner.token;
  if (TaskRunning(call, tasks, upid, call.Str("upid"))) {
    o["status"] = "running";
  } else {
    auto state = ReadTaskState(call.server->options().state_dir, upid);
    TaskState s;
    if (state.ok()) s = *state;
    o["status"] = "stopped";
    o["exitstatus"] = s.StatusText();
    if (s.endtime > 0) o["endtime"] = s.endtime;
  }
  return ApiResult::Of(std::move(o));
}

Result<ApiResult> TaskLogLines(ApiCall& call, TaskManager& tasks) {
  PBSKIT_ASSIGN_OR_RETURN(Upid upid, UpidParam(call));
  PBSKIT_RETURN_IF_ERROR(CheckTaskAccess(call, upid));
  const std::string path = TaskLogPath(call.server->options().state_dir, upid);
  bool download = call.Bool("download");
  if (download) {
    if (call.Has("start") || call.Has("limit") || call.Has("test-status")) {
      return Status::InvalidArgument("Parameter 'download' cannot be used with other parameters");
    }
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::InvalidArgument("unable to open task log of '" + call.Str("upid") + "' - " +
                                   std::strerror(errno));
  }
  if (download) {
    HttpResponse r;
    r.content_type = "text/plain";
    r.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    r.headers.emplace_back("Content-Disposition", "attachment; filename=task-" + upid.node + "-" +
                                                      upid.worker_type + "-" +
                                                      FormatUtcRfc3339(upid.starttime) + ".log");
    ApiResult res;
    res.raw = std::move(r);
    return res;
  }
  uint64_t start = static_cast<uint64_t>(call.Int("start", 0));
  uint64_t limit = static_cast<uint64_t>(call.Int("limit", 50));
  bool until_end = limit == 0;
  uint64_t count = 0;
  boost::json::array lines;
  std::string line;
  while (std::getline(in, line)) {
    ++count;
    if (count < start) continue;
    if (!until_end) {
      if (limit == 0) continue;
      --limit;
    }
    lines.push_back(boost::json::object{{"n", count}, {"t", line}});
  }
  ApiResult r = ApiResult::Of(std::move(lines));
  r.extra["total"] = count;
  r.extra["success"] = 1;
  if (call.Bool("test-status")) {
    r.extra["active"] = TaskRunning(call, tasks, upid, call.Str("upid"));
  }
  return r;
}

Result<ApiResult> StopTask(ApiCall& call, TaskManager& tasks) {
  PBSKIT_ASSIGN_OR_RETURN(Upid upid, UpidParam(call));
  if (call.auth_id->ToString() != upid.auth_id) {
    PBSKIT_RETURN_IF_ERROR(CheckPrivsInHandler(call, kSystemTasksPath, kPrivSysModify, false));
  }
  if (tasks.Abort(call.Str("upid")).ok()) return ApiResult::Null();
  if (UpidProcessRunning(upid) && upid.pid != static_cast<int32_t>(::getpid())) {
    auto state = ReadTaskState(call.server->options().state_dir, upid);
    if (state.ok() && state->kind == TaskState::Kind::kUnknown) {
      return Status::InvalidArgument("unable to abort task '" + call.Str("upid") +
                                     "' - it runs in another process (pid " +
                                     std::to_string(upid.pid) + ")");
    }
  }
  // Finished tasks: nothing to do, as PBS's abort_worker_nowait.
  return ApiResult::Null();
}

ParamDef NodeParam() {
  ParamDef d{"node", ParamType::kString, false, 1, 63, nullptr};
  d.check = [](const std::string& s) {
    for (size_t i = 0; i < s.size(); ++i) {
      char c = s[i];
      bool ok =
          std::isalnum(static_cast<unsigned char>(c)) || (c == '-' && i > 0 && i + 1 < s.size());
      if (!ok) return Status::InvalidArgument("value does not match the regex pattern");
    }
    return Status::OK();
  };
  return d;
}

ParamDef UpidDef() {
  ParamDef d{"upid", ParamType::kString, false, 1, 256, nullptr};
  d.check = [](const std::string& s) {
    auto u = Upid::Parse(s);
    return u.ok() ? Status::OK()
                  : Status::InvalidArgument("value does not match the regex pattern");
  };
  return d;
}

Route TaskRoute(std::string method, std::string pattern, std::vector<ParamDef> params,
                std::shared_ptr<TaskManager> tasks,
                Result<ApiResult> (*fn)(ApiCall&, TaskManager&)) {
  Route r;
  r.method = std::move(method);
  r.pattern = std::move(pattern);
  r.params = std::move(params);
  r.handler = [tasks, fn](ApiCall& call) { return fn(call, *tasks); };
  return r;
}

}  // namespace

Status CheckPrivsInHandler(ApiCall& call, const std::vector<std::string>& path, uint64_t privs,
                           bool partial) {
  Status st = call.server->access().CheckPrivs(*call.auth_id, path, privs, partial);
  if (st.ok() || st.code() != Code::kPermissionDenied) return st;
  return Status::InvalidArgument(st.message());
}

void AddTaskRoutes(std::vector<Route>* routes, std::shared_ptr<TaskManager> tasks) {
  std::vector<ParamDef> list = {
      NodeParam(),
      {"start", ParamType::kInteger, true, 0},
      {"limit", ParamType::kInteger, true, 0},
      {"store", ParamType::kString, true, 3, 32, StoreParam().check},
      {"running", ParamType::kBoolean, true},
      {"errors", ParamType::kBoolean, true},
      {"userfilter", ParamType::kString, true},
      {"since", ParamType::kInteger, true},
      {"until", ParamType::kInteger, true},
      {"typefilter", ParamType::kString, true},
      {"statusfilter", ParamType::kStringArray, true, 0, 16,
       [](const std::string& s) {
         if (s == "ok" || s == "warning" || s == "error" || s == "unknown") return Status::OK();
         return Status::InvalidArgument("value '" + s + "' is not defined in the enumeration.");
       }},
  };
  routes->push_back(TaskRoute("GET", "nodes/{node}/tasks", list, tasks, ListNodeTasks));
  routes->push_back(TaskRoute("GET", "nodes/{node}/tasks/{upid}/status", {NodeParam(), UpidDef()},
                              tasks, TaskStatus));
  routes->push_back(TaskRoute("GET", "nodes/{node}/tasks/{upid}/log",
                              {NodeParam(),
                               UpidDef(),
                               {"start", ParamType::kInteger, true, 0},
                               {"limit", ParamType::kInteger, true, 0},
                               {"download", ParamType::kBoolean, true},
                               {"test-status", ParamType::kBoolean, true}},
                              tasks, TaskLogLines));
  routes->push_back(
      TaskRoute("DELETE", "nodes/{node}/tasks/{upid}", {NodeParam(), UpidDef()}, tasks, StopTask));
  AddDatastoreTaskRoutes(routes, tasks);
}

}  // namespace pbskit::server
