#include "pbskit/server/api_server.h"

#include <ctime>

#include "api.h"
#include "backup_protocol.h"
#include "pbskit/formats/names.h"

namespace pbskit::server {

struct ApiServer::Routes {
  std::vector<Route> list;
  std::vector<std::vector<std::string>> patterns;  // split patterns, parallel to list
};

namespace {

std::vector<std::string> SplitPattern(const std::string& p) { return SplitAclPath(p); }

bool MatchPattern(const std::vector<std::string>& pattern, const std::vector<std::string>& path,
                  std::map<std::string, std::string>* out) {
  if (pattern.size() != path.size()) return false;
  std::map<std::string, std::string> params;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const auto& p = pattern[i];
    if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
      params[p.substr(1, p.size() - 2)] = path[i];
    } else if (p != path[i]) {
      return false;
    }
  }
  *out = std::move(params);
  return true;
}

HttpResponse TextError(int status, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.body = message;
  return r;
}

std::string CookieValue(const std::string& cookies, const std::string& name) {
  size_t pos = 0;
  while (pos < cookies.size()) {
    size_t end = cookies.find(';', pos);
    if (end == std::string::npos) end = cookies.size();
    std::string part = cookies.substr(pos, end - pos);
    pos = end + 1;
    size_t a = part.find_first_not_of(' ');
    if (a == std::string::npos) continue;
    part = part.substr(a);
    auto eq = part.find('=');
    if (eq == std::string::npos) continue;
    if (part.substr(0, eq) == name) return PercentDecode(part.substr(eq + 1));
  }
  return "";
}

}  // namespace

int HttpStatusFor(const Status& status) {
  switch (status.code()) {
    case Code::kNotFound:
      return 404;
    case Code::kPermissionDenied:
      return 403;
    case Code::kIoError:
      return 500;
    default:
      return 400;
  }
}

ApiServer::ApiServer(const ServeOptions& options, std::shared_ptr<const AuthKeys> keys)
    : options_(options), access_(options.config_dir), keys_(std::move(keys)),
      routes_(std::make_unique<Routes>()) {
  AddAccessRoutes(&routes_->list);
  AddDatastoreRoutes(&routes_->list);
  AddFileBrowseRoutes(&routes_->list);
  auto tasks = std::make_shared<TaskManager>();
  AddProtocolRoutes(&routes_->list, tasks);
  AddTaskRoutes(&routes_->list, tasks);
  for (const auto& r : routes_->list) routes_->patterns.push_back(SplitPattern(r.pattern));
}

ApiServer::~ApiServer() = default;

Result<std::unique_ptr<ApiServer>> ApiServer::Create(const ServeOptions& options) {
  PBSKIT_ASSIGN_OR_RETURN(auto keys, AuthKeys::LoadOrCreate(options.config_dir));
  return std::unique_ptr<ApiServer>(new ApiServer(options, std::move(keys)));
}

size_t ApiServer::MaxBodySize(const HttpRequest& request) const {
  auto comps = SplitAclPath(request.path);
  std::vector<std::string> decoded;
  for (const auto& c : comps) decoded.push_back(PercentDecode(c));
  if (decoded.size() > 2 && decoded[0] == "api2") {
    std::vector<std::string> rel(decoded.begin() + 2, decoded.end());
    for (size_t i = 0; i < routes_->list.size(); ++i) {
      std::map<std::string, std::string> p;
      if (routes_->list[i].method == request.method && MatchPattern(routes_->patterns[i], rel, &p)) {
        return routes_->list[i].max_body;
      }
    }
  }
  return 512 * 1024;
}

Result<Authid> ApiServer::Authenticate(const HttpRequest& request) {
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  std::string ticket;
  if (const std::string* cookies = request.Header("cookie")) {
    ticket = CookieValue(*cookies, "__Host-PBSAuthCookie");
    if (ticket.empty()) ticket = CookieValue(*cookies, "PBSAuthCookie");
  }
  if (!ticket.empty()) {
    PBSKIT_ASSIGN_OR_RETURN(std::string userid, keys_->VerifyTicket(ticket, now));
    PBSKIT_ASSIGN_OR_RETURN(Authid id, Authid::Parse(userid));
    if (!access_.IsActive(id)) {
      return Status::PermissionDenied("user account disabled or expired.");
    }
    if (request.method != "GET") {
      const std::string* csrf = request.Header("csrfpreventiontoken");
      if (!csrf) return Status::PermissionDenied("missing CSRF prevention token");
      PBSKIT_RETURN_IF_ERROR(keys_->VerifyCsrfToken(userid, *csrf, now));
    }
    return id;
  }
  const std::string* auth = request.Header("authorization");
  const std::string prefix = "PBSAPIToken";
  if (!auth || auth->compare(0, prefix.size(), prefix) != 0 || auth->size() <= prefix.size() ||
      ((*auth)[prefix.size()] != ' ' && (*auth)[prefix.size()] != '=')) {
    return Status::PermissionDenied("no authentication credentials provided.");
  }
  std::string value = auth->substr(prefix.size() + 1);
  auto colon = value.find(':');
  if (colon == std::string::npos) return Status::PermissionDenied("failed to split API token header");
  PBSKIT_ASSIGN_OR_RETURN(Authid id, Authid::Parse(value.substr(0, colon)));
  if (!id.is_token()) return Status::PermissionDenied("not an API token");
  if (!access_.IsActive(id)) {
    return Status::PermissionDenied("user account or token disabled or expired.");
  }
  PBSKIT_RETURN_IF_ERROR(access_.VerifyTokenSecret(id, PercentDecode(value.substr(colon + 1))));
  return id;
}

HttpResponse ApiServer::Handle(HttpRequest& request) {
  // Normalise: drop empty components, percent-decode, refuse components starting with '.'.
  std::vector<std::string> comps;
  for (const auto& raw : SplitAclPath(request.path)) {
    std::string c = PercentDecode(raw);
    if (c.empty()) continue;
    if (c[0] == '.' || c.find('/') != std::string::npos || c.find('\0') != std::string::npos) {
      return TextError(400, "path contains illegal components");
    }
    comps.push_back(std::move(c));
  }
  std::string full_path = "/";
  for (size_t i = 0; i < comps.size(); ++i) full_path += (i ? "/" : "") + comps[i];
  if (comps.empty() || comps[0] != "api2") {
    return TextError(404, "Path '" + full_path + "' not found.");
  }
  if (comps.size() < 2) return TextError(404, "invalid api path '" + full_path + "'");
  const std::string& format = comps[1];
  if (format != "json" && format != "extjs") {
    return TextError(400, "Unsupported output format '" + format + "'.");
  }
  bool extjs = format == "extjs";
  auto error_response = [&](int status, const std::string& message) {
    if (!extjs) return TextError(status, message);
    boost::json::object o{{"success", false}, {"status", status}, {"message", message},
                          {"data", nullptr}};
    HttpResponse r;
    r.body = boost::json::serialize(o);
    return r;
  };
  std::vector<std::string> rel(comps.begin() + 2, comps.end());

  const Route* route = nullptr;
  std::map<std::string, std::string> path_params;
  for (size_t i = 0; i < routes_->list.size(); ++i) {
    if (routes_->list[i].method == request.method &&
        MatchPattern(routes_->patterns[i], rel, &path_params)) {
      route = &routes_->list[i];
      break;
    }
  }

  ApiCall call;
  call.server = this;
  call.request = &request;
  if (!route || !route->world) {
    auto id = Authenticate(request);
    if (!id.ok()) {
      HttpResponse r = TextError(401, "authentication failed");
      r.min_delay = options_.auth_failure_delay;
      return r;
    }
    call.auth_id = *id;
  }
  if (!route) return error_response(404, "Path '" + full_path + "' not found.");

  auto params = ParseParameters(*route, request, path_params);
  if (!params.ok()) return error_response(400, params.status().message());
  call.params = std::move(params).value();

  auto result = route->handler(call);
  if (!result.ok()) {
    int status = HttpStatusFor(result.status());
    HttpResponse r = error_response(status, result.status().message());
    if (status == 403) r.min_delay = options_.forbidden_delay;
    return r;
  }
  if (result->raw) return std::move(*result->raw);
  boost::json::object envelope = std::move(result->extra);
  envelope["data"] = std::move(result->data);
  if (extjs) {
    envelope["success"] = true;
    envelope["status"] = 200;
  }
  HttpResponse r;
  r.body = boost::json::serialize(envelope);
  return r;
}

}  // namespace pbskit::server
