// Datastore endpoints that run as worker tasks (PBS src/api2/admin/datastore.rs): verify,
// garbage collection (start and status), prune of one group (dry run, synchronous task or
// use-task) and prune of a whole datastore / namespace tree.
#include <filesystem>

#include "api_tasks.h"
#include "datastore_access.h"
#include "pbskit/datastore/datastore_config.h"
#include "pbskit/datastore/gc.h"
#include "pbskit/datastore/prune.h"
#include "pbskit/datastore/verify.h"
#include "pbskit/server/access_control.h"
#include "pbskit/server/api_server.h"

namespace pbskit::server {
namespace {

constexpr uint64_t kNsPrivsOk =
    kPrivDatastoreModify | kPrivDatastoreRead | kPrivDatastoreBackup | kPrivDatastoreAudit;

std::string StoreAndNs(const std::string& store, const BackupNamespace& ns) {
  if (ns.IsRoot()) return "datastore '" + store + "', root namespace";
  return "datastore '" + store + "', namespace '" + ns.ToString() + "'";
}

std::string PercentDecodeMessage(const std::optional<std::string>& m) {
  return m ? PercentDecode(*m) : "";
}

struct GroupRef {
  BackupNamespace ns;
  BackupGroup group;
};

// PBS ListAccessibleBackupGroups::new_with_privs: groups of `ns` and its children down to
// `max_depth`; per namespace, `override_priv` shows every group, `owner_and_priv` (all bits)
// only the groups `auth_id` owns; with no auth id every group is listed. Errors listing a
// namespace are passed to `on_error` and skipped.
std::vector<GroupRef> AccessibleGroups(ApiServer* server, DataStore& store,
                                       const BackupNamespace& ns, size_t max_depth,
                                       uint64_t override_priv, uint64_t owner_and_priv,
                                       const std::optional<Authid>& auth_id,
                                       const std::function<void(const Status&)>& on_error) {
  std::vector<GroupRef> out;
  auto namespaces = store.ListNamespaces(ns, true);
  if (!namespaces.ok()) {
    on_error(namespaces.status());
    return out;
  }
  for (const auto& child : *namespaces) {
    if (child.depth() > ns.depth() + max_depth) continue;
    bool override_owner = !auth_id;
    if (auth_id) {
      uint64_t privs =
          server->access().LookupPrivs(*auth_id, DatastoreAclPath(store.name(), child));
      if ((privs & kNsPrivsOk) == 0) continue;
      if (privs & override_priv) {
        override_owner = true;
      } else if ((privs & owner_and_priv) != owner_and_priv) {
        continue;
      }
    }
    auto groups = store.ListGroups(child);
    if (!groups.ok()) {
      on_error(groups.status());
      continue;
    }
    for (const auto& g : *groups) {
      if (!override_owner) {
        auto owner = store.GetOwner(child, g);
        if (!owner.ok()) {
          on_error(owner.status());
          continue;
        }
        if (!OwnerMatches(*owner, *auth_id)) continue;
      }
      out.push_back({child, g});
    }
  }
  return out;
}

Result<KeepOptions> KeepFromCall(ApiCall& call) {
  KeepOptions keep;
  auto opt = [&](const char* name, std::optional<uint64_t>* out) {
    if (call.Has(name)) *out = static_cast<uint64_t>(call.Int(name));
  };
  opt("keep-last", &keep.keep_last);
  opt("keep-hourly", &keep.keep_hourly);
  opt("keep-daily", &keep.keep_daily);
  opt("keep-weekly", &keep.keep_weekly);
  opt("keep-monthly", &keep.keep_monthly);
  opt("keep-yearly", &keep.keep_yearly);
  PBSKIT_RETURN_IF_ERROR(keep.Validate());
  return keep;
}

boost::json::object PruneItem(const PruneResultItem& r, bool with_ns) {
  boost::json::object item;
  item["backup-type"] = BackupTypeName(r.dir.group.type);
  item["backup-id"] = r.dir.group.id;
  item["backup-time"] = r.dir.time;
  item["keep"] = r.keep;
  item["protected"] = r.is_protected;
  if (with_ns && !r.ns.IsRoot()) item["ns"] = r.ns.ToString();
  return item;
}

// ---- verify ----

Result<ApiResult> Verify(ApiCall& call, TaskManager& tasks) {
  const std::string name = call.Str("store");
  PBSKIT_ASSIGN_OR_RETURN(BackupNamespace ns, BackupNamespace::Parse(call.Str("ns")));
  PBSKIT_ASSIGN_OR_RETURN(bool owner_check, CheckNsPrivsFull(call, name, ns, kPrivDatastoreVerify,
                                                             kPrivDatastoreBackup));
  PBSKIT_ASSIGN_OR_RETURN(auto store, OpenStoreFor(call, name, false));
  bool has_type = call.Has("backup-type"), has_id = call.Has("backup-id");
  bool has_time = call.Has("backup-time");
  VerifyTarget target;
  target.ns = ns;
  if (call.Has("max-depth")) target.max_depth = static_cast<size_t>(call.Int("max-depth"));
  if (has_type && has_id) {
    PBSKIT_ASSIGN_OR_RETURN(BackupType type, ParseBackupType(call.Str("backup-type")));
    target.group = BackupGroup{type, call.Str("backup-id")};
    if (has_time) target.backup_time = call.Int("backup-time");
    if (owner_check) {
      PBSKIT_ASSIGN_OR_RETURN(std::string owner, store->GetOwner(ns, *target.group));
      if (!OwnerMatches(owner, *call.auth_id)) {
        return Status::InvalidArgument("backup owner check failed (" + call.auth_id->ToString() +
                                       " != " + owner + ")");
      }
    }
  } else if (has_type || has_id || has_time) {
    return Status::InvalidArgument("parameters do not specify a backup group or snapshot");
  }

  VerifyOptions options;
  options.ignore_verified = call.Bool("ignore-verified", true);
  if (call.Has("outdated-after")) options.outdated_after_days = call.Int("outdated-after");
  if (call.Has("read-threads"))
    options.read_threads = static_cast<size_t>(call.Int("read-threads"));
  if (call.Has("verify-threads")) {
    options.verify_threads = static_cast<size_t>(call.Int("verify-threads"));
  }
  if (auto cfg = DatastoreConfig::Load(call.server->options().config_dir); cfg.ok()) {
    if (const auto* e = cfg->Find(name)) {
      if (auto tuning = e->tuning(); tuning.ok()) options.inode_order = tuning->InodeChunkOrder();
    }
  }
  auto [worker_type, worker_id] = VerifyWorkerTypeAndId(name, target);
  std::optional<Authid> owner_filter;
  if (owner_check && !target.group) owner_filter = *call.auth_id;
  ApiServer* server = call.server;
  auto body = [store, target, options, owner_filter, server](WorkerTask& worker) mutable -> Status {
    options.abort = worker.abort_flag();
    if (!owner_filter) {
      return RunVerifyTask(store, target, options, worker.upid_str(), worker.log());
    }
    // Only the caller's own groups (Datastore.Backup without Datastore.Verify).
    TaskLogger* log = worker.log();
    VerifyWorker verifier(store, log, worker.upid_str(), options);
    log->Info("verify datastore " + store->name());
    log->Info("limiting to backups owned by " + owner_filter->ToString());
    auto groups = AccessibleGroups(
        server, *store, target.ns, target.max_depth, kPrivDatastoreVerify, kPrivDatastoreBackup,
        owner_filter, [](const Status&) {});  // not logged: the user might not see the group
    std::erase_if(groups, [](const GroupRef& g) {
      return g.group.type == BackupType::kHost && g.group.id == "benchmark";
    });
    std::stable_sort(groups.begin(), groups.end(),
                     [](const GroupRef& a, const GroupRef& b) { return a.group < b.group; });
    log->Info("found " + std::to_string(groups.size()) + " groups");
    std::vector<std::string> failed;
    for (const auto& g : groups) {
      PBSKIT_RETURN_IF_ERROR(worker.CheckAbort());
      auto f = verifier.VerifyGroup(g.ns, g.group);
      failed.insert(failed.end(), f.begin(), f.end());
    }
    PBSKIT_RETURN_IF_ERROR(worker.CheckAbort());
    if (!failed.empty()) {
      log->Info("Failed to verify the following snapshots/groups:");
      for (const auto& f : failed) log->Info("\t" + f);
      return Status::Corruption("verification failed - please check the log for details");
    }
    return Status::OK();
  };
  PBSKIT_ASSIGN_OR_RETURN(std::string upid,
                          tasks.Spawn(server->options().state_dir, worker_type, worker_id,
                                      call.auth_id->ToString(), std::move(body)));
  return ApiResult::Of(boost::json::string(upid));
}

// ---- garbage collection ----

// PBS ensure_not_nested: GC of a store inside another (or containing one) would sweep chunks
// the other store references.
Status CheckNotNested(const DatastoreConfig& cfg, const std::string& name) {
  namespace fs = std::filesystem;
  const DatastoreConfigEntry* own = cfg.Find(name);
  if (!own) return Status::OK();
  auto norm = [](const std::string& p) { return fs::weakly_canonical(fs::absolute(p)); };
  fs::path ours = norm(own->path());
  auto below = [](const fs::path& a, const fs::path& b) {  // a inside (or equal to) b
    auto ai = a.begin();
    for (auto bi = b.begin(); bi != b.end(); ++bi, ++ai) {
      if (ai == a.end() || *ai != *bi) return false;
    }
    return true;
  };
  for (const auto& e : cfg.entries()) {
    if (e.name == name || e.path().empty()) continue;
    fs::path other = norm(e.path());
    if (below(other, ours) || below(ours, other)) {
      return Status::InvalidArgument(
          "Aborting GC for safety reasons: nested datastores not "
          "allowed: '" +
          e.name + "' already in \"" + other.string() + "\"");
    }
  }
  return Status::OK();
}

Result<ApiResult> StartGc(ApiCall& call, TaskManager& tasks) {
  const std::string name = call.Str("store");
  if (!(call.server->access().LookupPrivs(*call.auth_id, {"datastore", name}) &
        kPrivDatastoreModify)) {
    return Status::PermissionDenied("permission check failed");
  }
  PBSKIT_ASSIGN_OR_RETURN(auto store, OpenStoreFor(call, name, true));
  if (tasks.HasActive("garbage_collection", name)) {
    return Status::InvalidArgument("garbage collection already running");
  }
  PBSKIT_ASSIGN_OR_RETURN(DatastoreConfig cfg,
                          DatastoreConfig::Load(call.server->options().config_dir));
  GcOptions options;
  if (const auto* e = cfg.Find(name)) {
    PBSKIT_ASSIGN_OR_RETURN(DatastoreTuning tuning, e->tuning());
    options.atime_safety_check = tuning.EffectiveAtimeSafetyCheck();
    options.atime_cutoff_minutes = tuning.gc_atime_cutoff;
    if (tuning.gc_cache_capacity) {
      options.cache_capacity = static_cast<uint64_t>(*tuning.gc_cache_capacity);
    }
  }
  Status nested = CheckNotNested(cfg, name);
  std::string path = cfg.Find(name) ? cfg.Find(name)->path() : "";
  auto body = [store, options, nested, path](WorkerTask& worker) mutable -> Status {
    if (!nested.ok()) {
      worker.log()->Info("Current datastore path: " + path);
      return nested;
    }
    PBSKIT_RETURN_IF_ERROR(worker.CheckAbort());
    options.upid = worker.upid_str();
    options.abort = worker.abort_flag();
    auto result = GarbageCollection(*store, options, worker.log());
    return result.ok() ? Status::OK() : result.status();
  };
  auto upid = tasks.Spawn(call.server->options().state_dir, "garbage_collection", name,
                          call.auth_id->ToString(), std::move(body));
  if (!upid.ok()) {
    return Status::InvalidArgument("unable to start garbage collection job on datastore " + name +
                                   " - " + upid.status().message());
  }
  return ApiResult::Of(boost::json::string(*upid));
}

Result<ApiResult> GcStatus(ApiCall& call, TaskManager& tasks) {
  (void)tasks;
  const std::string name = call.Str("store");
  if (!(call.server->access().LookupPrivs(*call.auth_id, {"datastore", name}) &
        kPrivDatastoreAudit)) {
    return Status::PermissionDenied("permission check failed");
  }
  PBSKIT_ASSIGN_OR_RETURN(DatastoreConfig cfg,
                          DatastoreConfig::Load(call.server->options().config_dir));
  PBSKIT_ASSIGN_OR_RETURN(auto store, OpenStoreFor(call, name, false));
  GarbageCollectionStatus status;
  auto loaded = LoadGcStatus(store->fs(), store->base());
  if (loaded.ok()) {
    status = std::move(loaded).value();
  } else if (!loaded.status().IsNotFound()) {
    return loaded.status();
  }
  boost::json::object o;
  o["store"] = name;
  boost::json::value parsed = boost::json::parse(status.ToJson());
  for (auto& [k, v] : parsed.as_object()) o[k] = v;
  if (const auto* e = cfg.Find(name); e && e->Get("gc-schedule")) {
    o["schedule"] = *e->Get("gc-schedule");
  }
  if (status.upid) {
    if (auto upid = Upid::Parse(*status.upid); upid.ok()) {
      auto state = ReadTaskState(call.server->options().state_dir, *upid);
      if (state.ok() && state->kind != TaskState::Kind::kUnknown) {
        o["last-run-endtime"] = state->endtime;
        o["last-run-state"] = state->StatusText();
        o["duration"] = state->endtime - upid->starttime;
      }
    }
  }
  return ApiResult::Of(std::move(o));
}

// ---- prune ----

Result<ApiResult> PruneGroupCall(ApiCall& call, TaskManager& tasks) {
  PBSKIT_ASSIGN_OR_RETURN(GroupTarget t,
                          ResolveGroup(call, kPrivDatastoreModify, kPrivDatastorePrune));
  PBSKIT_ASSIGN_OR_RETURN(t.store, OpenStoreFor(call, call.Str("store"), !call.Bool("dry-run")));
  PBSKIT_ASSIGN_OR_RETURN(KeepOptions keep, KeepFromCall(call));
  bool dry_run = call.Bool("dry-run");
  if (dry_run) {
    PBSKIT_ASSIGN_OR_RETURN(auto rows, PruneGroup(*t.store, t.ns, t.group, keep, true, nullptr));
    boost::json::array out;
    for (const auto& r : rows) out.push_back(PruneItem(r, true));
    return ApiResult::Of(std::move(out));
  }
  std::string worker_id = PruneWorkerId(t.store->name(), t.ns, t.group);
  const std::string& state_dir = call.server->options().state_dir;
  std::string auth = call.auth_id->ToString();
  if (call.Bool("use-task")) {
    auto body = [t, keep](WorkerTask& worker) -> Status {
      auto rows = PruneGroup(*t.store, t.ns, t.group, keep, false, worker.log());
      return rows.ok() ? Status::OK() : rows.status();
    };
    PBSKIT_ASSIGN_OR_RETURN(std::string upid,
                            tasks.Spawn(state_dir, "prune", worker_id, auth, std::move(body)));
    return ApiResult::Of(boost::json::string(upid));
  }
  // Without use-task PBS still writes a "prune" task log, but runs it in the request.
  PBSKIT_ASSIGN_OR_RETURN(Upid upid, NewUpid("prune", worker_id, auth));
  PBSKIT_ASSIGN_OR_RETURN(std::unique_ptr<TaskLog> log, TaskLog::Start(state_dir, upid));
  auto rows = PruneGroup(*t.store, t.ns, t.group, keep, false, log.get());
  (void)log->Finish(rows.ok() ? Status::OK() : rows.status());
  if (!rows.ok()) return rows.status();
  boost::json::array out;
  for (const auto& r : *rows) out.push_back(PruneItem(r, false));
  return ApiResult::Of(std::move(out));
}

Result<ApiResult> PruneDatastore(ApiCall& call, TaskManager& tasks) {
  const std::string name = call.Str("store");
  PBSKIT_ASSIGN_OR_RETURN(BackupNamespace ns, BackupNamespace::Parse(call.Str("ns")));
  PBSKIT_RETURN_IF_ERROR(CheckPrivsInHandler(call, DatastoreAclPath(name, ns),
                                             kPrivDatastoreModify | kPrivDatastorePrune, true));
  PBSKIT_ASSIGN_OR_RETURN(auto store, OpenStoreFor(call, name, true));
  PBSKIT_ASSIGN_OR_RETURN(KeepOptions keep, KeepFromCall(call));
  bool dry_run = call.Bool("dry-run");
  bool has_depth = call.Has("max-depth");
  size_t max_depth = has_depth ? static_cast<size_t>(call.Int("max-depth")) : kMaxNamespaceDepth;
  Authid auth = *call.auth_id;
  ApiServer* server = call.server;
  auto body = [=](WorkerTask& worker) -> Status {
    TaskLogger* log = worker.log();
    std::string depth =
        max_depth == kMaxNamespaceDepth
            ? "down to full depth"
            : (max_depth > 0 ? "to depth " + std::to_string(max_depth) : "non-recursive");
    log->Info("Starting datastore prune on " + StoreAndNs(name, ns) + ", " + depth);
    if (dry_run) log->Info("(dry test run)");
    bool keep_all = !keep.KeepsSomething();
    if (keep_all) {
      log->Warn("No prune selection - keeping all files.");
    } else {
      std::string opts;
      if (!ns.IsRoot()) opts += "--ns " + ns.ToString();
      if (has_depth)
        opts += std::string(opts.empty() ? "" : " ") + "--max-depth " + std::to_string(max_depth);
      std::string keep_args = keep.ToCliArgs();
      if (!keep_args.empty()) opts += (opts.empty() ? "" : " ") + keep_args;
      log->Info("retention options: " + opts);
    }
    Status list_error;
    auto groups = AccessibleGroups(server, *store, ns, max_depth, kPrivDatastoreModify,
                                   kPrivDatastorePrune, auth, [&](const Status& st) {
                                     if (list_error.ok()) list_error = st;
                                   });
    if (!list_error.ok()) return list_error;
    for (const auto& g : groups) {
      PBSKIT_RETURN_IF_ERROR(worker.CheckAbort());
      PBSKIT_ASSIGN_OR_RETURN(auto snaps, store->ListSnapshots(g.ns, g.group));
      std::vector<PruneSnapshot> list;
      for (const auto& s : snaps) list.push_back({s.dir, s.finished, s.is_protected});
      auto info = ComputePruneInfo(std::move(list), keep);
      std::reverse(info.begin(), info.end());  // remove older snapshots first
      log->Info("Pruning group " + g.ns.ToString() + ":\"" + g.group.ToString() + "\"");
      for (const auto& d : info) {
        bool keep_it = keep_all || PruneMarkKeeps(d.mark);
        const char* mark = d.mark == PruneMark::kProtected     ? "keep protected"
                           : d.mark == PruneMark::kKeep        ? "keep"
                           : d.mark == PruneMark::kKeepPartial ? "keep partial"
                                                               : "remove";
        log->Info(std::string(dry_run ? "would " : "") + mark + " " + d.snapshot.dir.ToString());
        if (!keep_it && !dry_run) {
          Status st = store->RemoveSnapshot(g.ns, d.snapshot.dir, false);
          if (!st.ok()) {
            std::string rel = g.ns.Path();
            rel += (rel.empty() ? "" : "/") + d.snapshot.dir.ToString();
            log->Warn("failed to remove dir \"" + rel + "\": " + st.message());
          }
        }
      }
    }
    return Status::OK();
  };
  PBSKIT_ASSIGN_OR_RETURN(
      std::string upid, tasks.Spawn(server->options().state_dir, "prune",
                                    name + ":" + ns.ToString(), auth.ToString(), std::move(body)));
  return ApiResult::Of(boost::json::string(upid));
}

Route StoreRoute(std::string method, std::string sub, std::vector<ParamDef> params,
                 std::shared_ptr<TaskManager> tasks,
                 Result<ApiResult> (*fn)(ApiCall&, TaskManager&)) {
  Route r;
  r.method = std::move(method);
  r.pattern = "admin/datastore/{store}/" + sub;
  r.params = std::move(params);
  r.params.insert(r.params.begin(), StoreParam());
  r.handler = [tasks, fn](ApiCall& call) { return fn(call, *tasks); };
  return r;
}

std::vector<ParamDef> KeepParams() {
  std::vector<ParamDef> p;
  for (const char* k :
       {"keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly"}) {
    p.emplace_back(k, ParamType::kInteger, true, 1);
  }
  return p;
}

}  // namespace

Result<std::shared_ptr<DataStore>> OpenStoreFor(ApiCall& call, const std::string& name,
                                                bool write) {
  PBSKIT_ASSIGN_OR_RETURN(DatastoreConfig cfg,
                          DatastoreConfig::Load(call.server->options().config_dir));
  const DatastoreConfigEntry* e = cfg.Find(name);
  if (!e) return Status::NotFound("datastore '" + name + "' does not exist");
  PBSKIT_ASSIGN_OR_RETURN(auto mode, e->maintenance_mode());
  if (mode) {
    std::string why;
    std::string msg = PercentDecodeMessage(mode->message);
    if (mode->type == "delete")
      why = "datastore is being deleted";
    else if (mode->type == "unmount")
      why = "datastore is being unmounted";
    else if (mode->type == "offline")
      why = "offline maintenance mode: " + msg;
    else if (mode->type == "s3-refresh")
      why = "S3 refresh maintenance mode: " + msg;
    else if (write)
      why = "read-only maintenance mode: " + msg;
    if (!why.empty()) {
      return Status::InvalidArgument("datastore '" + name + "' is unavailable: " + why);
    }
  }
  return OpenConfiguredStore(call, name);
}

void AddDatastoreTaskRoutes(std::vector<Route>* routes, std::shared_ptr<TaskManager> tasks) {
  ParamDef max_depth{"max-depth", ParamType::kInteger, true, 0,
                     static_cast<int64_t>(kMaxNamespaceDepth)};
  routes->push_back(StoreRoute("POST", "verify",
                               {NsParam(),
                                BackupTypeParam(true),
                                BackupIdParam(true),
                                BackupTimeParam(true),
                                {"ignore-verified", ParamType::kBoolean, true},
                                {"outdated-after", ParamType::kInteger, true, 1},
                                max_depth,
                                {"read-threads", ParamType::kInteger, true, 1, 32},
                                {"verify-threads", ParamType::kInteger, true, 1, 32}},
                               tasks, Verify));
  routes->push_back(StoreRoute("POST", "gc", {}, tasks, StartGc));
  routes->push_back(StoreRoute("GET", "gc", {}, tasks, GcStatus));
  std::vector<ParamDef> prune = {NsParam(),
                                 BackupTypeParam(),
                                 BackupIdParam(),
                                 {"dry-run", ParamType::kBoolean, true},
                                 {"use-task", ParamType::kBoolean, true}};
  for (auto& k : KeepParams()) prune.push_back(k);
  routes->push_back(StoreRoute("POST", "prune", prune, tasks, PruneGroupCall));
  std::vector<ParamDef> prune_ds = {NsParam(), max_depth, {"dry-run", ParamType::kBoolean, true}};
  for (auto& k : KeepParams()) prune_ds.push_back(k);
  routes->push_back(StoreRoute("POST", "prune-datastore", prune_ds, tasks, PruneDatastore));
}

}  // namespace pbskit::server
