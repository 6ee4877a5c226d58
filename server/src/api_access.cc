// /access/ticket (login, renewal) and /version.
#include <ctime>

#include "api.h"
#include "pbskit/server/api_server.h"

namespace pbskit::server {
namespace {

Result<ApiResult> CreateTicket(ApiCall& call) {
  ApiServer& server = *call.server;
  std::string username = call.Str("username");
  std::string password = call.Str("password");
  int64_t now = static_cast<int64_t>(std::time(nullptr));

  auto fail = [&]() -> Result<ApiResult> {
    ApiResult r;
    HttpResponse resp;
    resp.status = 401;
    resp.body = "permission check failed.";
    resp.min_delay = server.options().auth_failure_delay;
    r.raw = std::move(resp);
    return r;
  };

  auto id = Authid::Parse(username);
  if (!id.ok() || id->is_token()) return fail();
  bool ok = false;
  if (password.rfind("PBS:", 0) == 0) {
    // Ticket renewal: a valid ticket of the same user works as password.
    auto user = server.keys().VerifyTicket(password, now);
    ok = user.ok() && *user == username;
  } else {
    ok = server.access().VerifyPassword(username, password).ok();
  }
  if (!ok || !server.access().IsActive(*id)) return fail();

  PBSKIT_ASSIGN_OR_RETURN(std::string ticket, server.keys().CreateTicket(username, now));
  boost::json::object data;
  data["username"] = username;
  data["ticket"] = ticket;
  data["CSRFPreventionToken"] = server.keys().CreateCsrfToken(username, now);
  ApiResult r = ApiResult::Of(std::move(data));
  r.extra["status"] = 200;
  r.extra["success"] = true;
  return r;
}

Result<ApiResult> Version(ApiCall&) {
  // Reported as a PBS 4.2 server so 4.x push sync uses the modern delete API (PROTOCOL.md §8).
  boost::json::object o;
  o["version"] = "4.2";
  o["release"] = "3";
  o["repoid"] = "pbskit";
  return ApiResult::Of(std::move(o));
}

}  // namespace

void AddAccessRoutes(std::vector<Route>* routes) {
  Route ticket;
  ticket.method = "POST";
  ticket.pattern = "access/ticket";
  ticket.world = true;
  ticket.params = {
      {"username", ParamType::kString, false, 3, 64, nullptr},
      {"password", ParamType::kString, false, 1, 64 * 1024, nullptr},
      {"path", ParamType::kString, true},
      {"privs", ParamType::kString, true},
      {"port", ParamType::kInteger, true, 1, 65535},
      {"tfa-challenge", ParamType::kString, true},
      {"http-only", ParamType::kBoolean, true},
  };
  ticket.handler = CreateTicket;
  routes->push_back(std::move(ticket));

  Route version;
  version.method = "GET";
  version.pattern = "version";
  version.handler = Version;
  routes->push_back(std::move(version));
}

}  // namespace pbskit::server
