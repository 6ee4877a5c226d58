// The protocol upgrade routes GET /api2/json/backup and GET /api2/json/reader (PROTOCOL.md
// §4.1, §5) and the helpers shared by both HTTP/2 sessions.
#include "backup_protocol.h"

#include "api_tasks.h"
#include "backup_session.h"
#include "datastore_access.h"
#include "pbskit/datastore/datastore_config.h"
#include "pbskit/datastore/verify.h"
#include "pbskit/formats/names.h"
#include "pbskit/server/access_control.h"
#include "pbskit/server/api_server.h"
#include "pbskit/server/h2_client.h"
#include "pbskit/server/task_manager.h"
#include "reader_session.h"

namespace pbskit::server {

H2Response DataResponse(boost::json::value value) {
  H2Response r;
  boost::json::object envelope;
  envelope["data"] = std::move(value);
  r.body = boost::json::serialize(envelope);
  return r;
}

H2Response ErrorResponse(int status, const std::string& message) {
  H2Response r;
  r.status = status;
  r.body = message;
  return r;
}

H2Response ErrorResponse(const Status& status) {
  return ErrorResponse(status.IsNotFound() ? 404 : 400, status.message());
}

H2Response OctetResponse(std::string bytes) {
  H2Response r;
  r.content_type = "application/octet-stream";
  r.body = std::move(bytes);
  return r;
}

std::string NormalizeH2Path(const std::string& path) {
  std::string out;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string::npos) end = path.size();
    if (end > pos) {
      if (!out.empty()) out += '/';
      out += PercentDecode(path.substr(pos, end - pos));
    }
    pos = end + 1;
  }
  return out;
}

Result<boost::json::object> ParseH2Parameters(const Route& route, const H2Request& request) {
  HttpRequest r;
  r.method = request.method;
  r.path = request.path;
  r.query = request.query;
  r.headers = request.headers;
  if (!route.raw_body) r.body = request.body;  // raw bodies are payload, never parameters
  return ParseParameters(route, r, {});
}

H2ServerOptions& ProtocolH2Options() {
  static H2ServerOptions options;
  return options;
}

namespace {

struct UpgradeTarget {
  std::string store_name;
  BackupNamespace ns;
  BackupDir dir;
};

Result<UpgradeTarget> ReadTarget(ApiCall& call) {
  UpgradeTarget t;
  t.store_name = call.Str("store");
  PBSKIT_ASSIGN_OR_RETURN(t.ns, BackupNamespace::Parse(call.Str("ns")));
  PBSKIT_ASSIGN_OR_RETURN(BackupType type, ParseBackupType(call.Str("backup-type")));
  t.dir = BackupDir{BackupGroup{type, call.Str("backup-id")}, call.Int("backup-time")};
  return t;
}

std::string AclPathText(const std::vector<std::string>& path) {
  std::string p;
  for (const auto& c : path) p += "/" + c;
  return p.empty() ? "/" : p;
}

// The Upgrade header must name exactly `protocol` (case-insensitive header name).
Status CheckUpgradeHeader(const HttpRequest& request, const char* protocol) {
  const std::string* up = request.Header("upgrade");
  if (!up) return Status::InvalidArgument("missing Upgrade header");
  if (*up != protocol) return Status::InvalidArgument("invalid protocol name");
  return Status::OK();
}

// The configured store, checked against its maintenance mode for writing (backup) or reading
// (reader) as PBS's lookup_datastore does; a missing one is a plain error (PBS: 400).
Result<std::shared_ptr<DataStore>> LookupStore(ApiCall& call, const std::string& name,
                                               bool write) {
  auto store = OpenStoreFor(call, name, write);
  if (!store.ok() && store.status().IsNotFound()) {
    return Status::InvalidArgument(store.status().message());
  }
  return store;
}

// `after` (may be empty) runs on the connection's thread once the session ended.
template <typename Session>
HttpResponse SwitchProtocols(std::shared_ptr<Session> session, const char* protocol,
                             std::function<void(Session&)> after = {}) {
  HttpResponse r;
  r.status = 101;
  r.headers = {{"connection", "upgrade"}, {"upgrade", protocol}};
  r.on_upgrade = [session, after](std::unique_ptr<UpgradedStream> stream) {
    H2ConnectionStats stats = ServeH2Connection(*stream, *session, ProtocolH2Options());
    stream->Close();
    session->End(stats);
    if (after) after(*session);
  };
  return r;
}

// PBS's verify_after_complete: with the store option verify-new, a finished backup starts a
// "verify" task of the new snapshot (worker id "<store>:<type>/<id>/<TIME in hex>").
void VerifyAfterComplete(const std::shared_ptr<TaskManager>& tasks, const std::string& state_dir,
                         const std::string& config_dir, std::shared_ptr<DataStore> store,
                         const std::string& store_name, const BackupNamespace& ns,
                         const BackupDir& dir, const Authid& auth) {
  auto cfg = DatastoreConfig::Load(config_dir);
  if (!cfg.ok()) return;
  const DatastoreConfigEntry* e = cfg->Find(store_name);
  if (!e) return;
  auto verify_new = e->verify_new();
  if (!verify_new.ok() || !*verify_new) return;
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08llX", static_cast<unsigned long long>(dir.time));
  std::string worker_id =
      store_name + ":" + BackupTypeName(dir.group.type) + "/" + dir.group.id + "/" + hex;
  VerifyOptions options;
  if (auto tuning = e->tuning(); tuning.ok()) options.inode_order = tuning->InodeChunkOrder();
  auto body = [store, ns, dir, options](WorkerTask& worker) -> Status {
    worker.log()->Info("Automatically verifying newly added snapshot");
    VerifyWorker verifier(store, worker.log(), worker.upid_str(), options);
    if (!verifier.VerifySnapshot(ns, dir)) {
      return Status::Corruption("verification failed - please check the log for details");
    }
    return Status::OK();
  };
  auto upid = tasks->Spawn(state_dir, "verify", worker_id, auth.ToString(), body);
  (void)upid;  // PBS only logs this failure in the finished backup task; ours has ended
}

Result<ApiResult> UpgradeBackup(ApiCall& call, const std::shared_ptr<TaskManager>& tasks) {
  PBSKIT_ASSIGN_OR_RETURN(UpgradeTarget t, ReadTarget(call));
  const Authid& auth = *call.auth_id;
  auto acl_path = DatastoreAclPath(t.store_name, t.ns);
  uint64_t privs = call.server->access().LookupPrivs(auth, acl_path);
  if ((privs & kPrivDatastoreBackup) != kPrivDatastoreBackup) {
    return Status::PermissionDenied("missing permissions 'Datastore.Backup' on '" +
                                    AclPathText(acl_path) + "'");
  }
  PBSKIT_ASSIGN_OR_RETURN(auto store, LookupStore(call, t.store_name, true));
  PBSKIT_RETURN_IF_ERROR(CheckUpgradeHeader(*call.request, kBackupProtocolId));
  PBSKIT_ASSIGN_OR_RETURN(bool ns_exists, store->NamespaceExists(t.ns));
  if (!ns_exists) return Status::NotFound("namespace not found");
  bool benchmark = call.Bool("benchmark");
  bool is_benchmark_group = t.dir.group.type == BackupType::kHost && t.dir.group.id == "benchmark";
  if (is_benchmark_group && !benchmark) {
    return Status::InvalidArgument("unable to run benchmark without --benchmark flags");
  }
  if (!is_benchmark_group && benchmark) {
    return Status::InvalidArgument("benchmark flags is only allowed on 'host/benchmark'");
  }
  BackupSessionParams p;
  p.store = store;
  p.ns = t.ns;
  p.dir = t.dir;
  p.auth_id = auth;
  p.benchmark = benchmark;
  p.debug = call.Bool("debug");
  p.state_dir = call.server->options().state_dir;
  p.peer = call.request->peer;
  auto session = BackupSession::Start(std::move(p));
  if (!session.ok()) {
    // Every failure of the locking/ownership steps is a plain 400 in PBS.
    if (session.status().code() == Code::kIoError) return session.status();
    return Status::InvalidArgument(session.status().message());
  }
  ApiResult res;
  std::function<void(BackupSession&)> after;
  if (!benchmark) {
    after = [tasks, state_dir = call.server->options().state_dir,
             config_dir = call.server->options().config_dir, store, name = t.store_name,
             ns = t.ns, dir = t.dir, auth](BackupSession& s) {
      if (s.finished()) {
        VerifyAfterComplete(tasks, state_dir, config_dir, store, name, ns, dir, auth);
      }
    };
  }
  res.raw = SwitchProtocols(std::shared_ptr<BackupSession>(std::move(session).value()),
                            kBackupProtocolId, after);
  return res;
}

Result<ApiResult> UpgradeReader(ApiCall& call) {
  PBSKIT_ASSIGN_OR_RETURN(UpgradeTarget t, ReadTarget(call));
  const Authid& auth = *call.auth_id;
  auto acl_path = DatastoreAclPath(t.store_name, t.ns);
  uint64_t privs = call.server->access().LookupPrivs(auth, acl_path);
  bool priv_read = (privs & kPrivDatastoreRead) != 0;
  bool priv_backup = (privs & kPrivDatastoreBackup) != 0;
  if (!priv_read && !priv_backup) {
    return Status::InvalidArgument("no permissions on " + AclPathText(acl_path));
  }
  PBSKIT_ASSIGN_OR_RETURN(auto store, LookupStore(call, t.store_name, false));
  PBSKIT_RETURN_IF_ERROR(CheckUpgradeHeader(*call.request, kReaderProtocolId));
  if (!priv_read) {
    auto owner = store->GetOwner(t.ns, t.dir.group);
    if (!owner.ok()) return Status::InvalidArgument(owner.status().message());
    if (!OwnerMatches(*owner, auth)) return Status::InvalidArgument("backup owner check failed!");
  }
  ReaderSessionParams p;
  p.store = store;
  p.ns = t.ns;
  p.dir = t.dir;
  p.auth_id = auth;
  p.debug = call.Bool("debug");
  p.state_dir = call.server->options().state_dir;
  p.peer = call.request->peer;
  auto session = ReaderSession::Start(std::move(p));
  if (!session.ok()) {
    if (session.status().code() == Code::kIoError) return session.status();
    return Status::InvalidArgument(session.status().message());
  }
  ApiResult res;
  res.raw = SwitchProtocols(std::shared_ptr<ReaderSession>(std::move(session).value()),
                            kReaderProtocolId);
  return res;
}

}  // namespace

void AddProtocolRoutes(std::vector<Route>* routes, std::shared_ptr<TaskManager> tasks) {
  auto base = [] {
    return std::vector<ParamDef>{StoreParam(),
                                 NsParam(),
                                 BackupTypeParam(),
                                 BackupIdParam(),
                                 BackupTimeParam(),
                                 ParamDef{"debug", ParamType::kBoolean, true}};
  };
  Route backup;
  backup.method = "GET";
  backup.pattern = "backup";
  backup.params = base();
  backup.params.push_back(ParamDef{"benchmark", ParamType::kBoolean, true});
  backup.params.push_back(ParamDef{"no-cache", ParamType::kBoolean, true});
  backup.handler = [tasks](ApiCall& call) { return UpgradeBackup(call, tasks); };
  routes->push_back(std::move(backup));

  Route reader;
  reader.method = "GET";
  reader.pattern = "reader";
  reader.params = base();
  reader.handler = UpgradeReader;
  routes->push_back(std::move(reader));
}

}  // namespace pbskit::server
