// Reader session: the HTTP/2 endpoints of the reader protocol with PBS's checks and messages
// (pbs4: src/api2/reader/mod.rs, environment.rs).
#include "reader_session.h"

#include <cstring>

#include "pbskit/datastore/fs.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/names.h"

namespace pbskit::server {
namespace {

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

ParamDef SafeIdParam(const std::string& name) {
  return ParamDef{name, ParamType::kString, false, 0, INT64_MAX, [](const std::string& s) {
                    return IsSafeId(s) ? Status::OK()
                                       : Status::InvalidArgument(
                                             "value does not match the regex pattern");
                  }};
}

ParamDef DigestParam() {
  return ParamDef{"digest", ParamType::kString, false, 0, INT64_MAX, [](const std::string& s) {
                    return IsDigestHex(s) ? Status::OK()
                                          : Status::InvalidArgument(
                                                "value does not match the regex pattern");
                  }};
}

}  // namespace

size_t ReaderSession::DigestHash::operator()(const Digest& d) const {
  size_t h;
  std::memcpy(&h, d.data(), sizeof h);
  return h;
}

const std::vector<ReaderSession::Endpoint>& ReaderSession::Endpoints() {
  auto make = [](std::string path, std::vector<ParamDef> params, auto fn) {
    Endpoint e;
    e.route.method = "GET";
    e.route.pattern = std::move(path);
    e.route.params = std::move(params);
    e.route.raw_body = true;
    e.handler = [fn](ReaderSession& s, H2Request& r, const Params& p) { return (s.*fn)(r, p); };
    return e;
  };
  static const std::vector<Endpoint> endpoints = {
      make("", {}, &ReaderSession::ListSubdirs),
      make("download", {SafeIdParam("file-name")}, &ReaderSession::Download),
      make("chunk", {DigestParam()}, &ReaderSession::Chunk),
      make("speedtest", {}, &ReaderSession::Speedtest),
  };
  return endpoints;
}

Result<std::unique_ptr<ReaderSession>> ReaderSession::Start(ReaderSessionParams params) {
  std::unique_ptr<ReaderSession> s(new ReaderSession(std::move(params)));
  ReaderSessionParams& p = s->p_;
  PBSKIT_ASSIGN_OR_RETURN(bool exists,
                          PathExists(p.store->fs(), p.store->SnapshotPath(p.ns, p.dir)));
  if (!exists) return Status::InvalidArgument("snapshot " + p.dir.ToString() + " does not exist.");
  auto lock = p.store->LockSnapshotShared(p.ns, p.dir);
  if (!lock.ok()) {
    return Status::InvalidArgument("while reading snapshot '" + p.dir.ToString() + "': " +
                                   lock.status().message());
  }
  s->snapshot_lock_ = std::move(lock).value();
  if (!p.state_dir.empty()) {
    char time_hex[32];
    std::snprintf(time_hex, sizeof time_hex, "%08llX", static_cast<unsigned long long>(p.dir.time));
    std::string worker_id = p.store->name() + ":" + BackupTypeName(p.dir.group.type) + "/" +
                            p.dir.group.id + "/" + time_hex;
    auto upid = NewUpid("reader", worker_id, p.auth_id.ToString());
    if (upid.ok()) {
      auto task = TaskLog::Start(p.state_dir, *upid);
      if (task.ok()) s->task_ = std::move(task).value();
    }
  }
  s->Log("starting new backup reader datastore '" + p.store->name() + "': " +
         Quoted(p.store->base()));
  return s;
}

ReaderSession::~ReaderSession() {
  if (task_) (void)task_->Finish(Status::OK());
}

void ReaderSession::Log(const std::string& line) {
  if (task_) task_->Info(line);
}

void ReaderSession::End(const H2ConnectionStats& stats) {
  Status result = Status::OK();
  if (stats.close_reason.empty()) {
    Log("reader finished successfully");
  } else {
    result = Status::IoError(stats.close_reason);
  }
  if (task_) {
    (void)task_->Finish(result);
    task_.reset();
  }
  snapshot_lock_.reset();
}

size_t ReaderSession::MaxBodySize(const H2Request&) { return 64 * 1024; }

H2Response ReaderSession::Handle(H2Request& request) {
  Params params;
  H2Response error;
  const Endpoint* e = FindEndpoint(Endpoints(), request, &params, &error);
  if (!e) return error;
  return e->handler(*this, request, params);
}

H2Response ReaderSession::ListSubdirs(H2Request&, const Params&) {
  boost::json::array a;
  for (const char* n : {"chunk", "download", "speedtest"}) {
    boost::json::object o;
    o["subdir"] = n;
    a.push_back(std::move(o));
  }
  return DataResponse(std::move(a));
}

H2Response ReaderSession::Download(H2Request&, const Params& params) {
  std::string name(params.at("file-name").as_string());
  std::string path = p_.store->SnapshotPath(p_.ns, p_.dir) + "/" + name;
  Log("download " + Quoted(path));
  auto type = ArchiveTypeOf(name);
  if (!type.ok()) return ErrorResponse(400, type.status().message());
  if (*type == ArchiveType::kFixedIndex) {
    auto index = p_.store->OpenFixedIndex(p_.ns, p_.dir, name);
    if (!index.ok()) return ErrorResponse(400, index.status().message());
    Log("register chunks in '" + name + "' as downloadable.");
    for (const auto& d : index->digests()) allowed_chunks_.insert(d);
  } else if (*type == ArchiveType::kDynamicIndex) {
    auto index = p_.store->OpenDynamicIndex(p_.ns, p_.dir, name);
    if (!index.ok()) return ErrorResponse(400, index.status().message());
    Log("register chunks in '" + name + "' as downloadable.");
    for (const auto& e : index->entries()) allowed_chunks_.insert(e.digest);
  }
  auto data = ReadWholeFile(p_.store->fs(), path);
  if (!data.ok()) {
    if (data.status().IsNotFound()) {
      return ErrorResponse(404, "open file " + Quoted(path) + " failed - not found");
    }
    return ErrorResponse(400, "open file " + Quoted(path) + " failed: " + data.status().message());
  }
  return OctetResponse(std::string(data->begin(), data->end()));
}

H2Response ReaderSession::Chunk(H2Request&, const Params& params) {
  std::string hex(params.at("digest").as_string());
  auto digest = DigestFromHex(hex);
  if (!digest.ok()) return ErrorResponse(400, digest.status().message());
  if (!allowed_chunks_.count(*digest)) {
    Log("attempted to download chunk " + hex + " which is not in registered chunk list");
    return ErrorResponse(401, "download chunk " + hex + " not allowed");
  }
  auto data = p_.store->chunk_store().LoadChunk(*digest);
  if (!data.ok()) {
    return ErrorResponse(400, "reading file " + Quoted(p_.store->chunk_store().ChunkPath(*digest)) +
                                  " failed: " + data.status().message());
  }
  return OctetResponse(std::string(data->begin(), data->end()));
}

H2Response ReaderSession::Speedtest(H2Request&, const Params&) {
  return OctetResponse(std::string(1024 * 1024, 'A'));
}

}  // namespace pbskit::server
