#include "backup_client_common.h"

#include <memory>

namespace pbskit::server {

Result<H2ClientOptions> ProtocolConnectOptions(const RepositoryConnectOptions& connect) {
  const BackupRepository& repo = connect.repository;
  H2ClientOptions o;
  o.host = repo.host;
  if (o.host.size() > 2 && o.host.front() == '[') o.host = o.host.substr(1, o.host.size() - 2);
  o.port = repo.port;
  o.fingerprint = connect.fingerprint;
  o.timeout_seconds = connect.timeout_seconds;
  if (repo.is_token()) {
    // Token secrets are percent-decoded by the server; UUID secrets need no encoding.
    o.authorization = "PBSAPIToken " + repo.auth_id + ":" + connect.secret;
    return o;
  }
  PBSKIT_ASSIGN_OR_RETURN(std::unique_ptr<HttpClient> rest, ConnectRepository(connect));
  for (auto& [k, v] : rest->AuthHeaders()) {
    if (k == "Authorization") {
      o.authorization = v;
    } else {
      o.extra_headers.emplace_back(k, v);
    }
  }
  return o;
}

Status StatusOfHttpError(int status, const std::string& body, const std::string& what) {
  std::string msg = body.empty() ? what + ": HTTP status " + std::to_string(status) : body;
  if (status == 401 || status == 403) return Status::PermissionDenied(msg);
  if (status == 404) return Status::NotFound(msg);
  if (status >= 500) return Status::IoError(msg);
  return Status::InvalidArgument(msg);
}

Result<boost::json::value> DataOfResponse(const H2ClientResponse& r, const std::string& what) {
  if (r.status != 200) return StatusOfHttpError(r.status, r.body, what);
  if (r.body.empty()) return boost::json::value(nullptr);
  boost::system::error_code ec;
  auto v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("data")) {
    return Status::Corruption("unexpected answer to " + what + ": no JSON object with data");
  }
  return v.as_object()["data"];
}

}  // namespace pbskit::server
