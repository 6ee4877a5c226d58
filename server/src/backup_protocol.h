// Shared pieces of the HTTP/2 backup and reader protocols (PROTOCOL.md §4, §5): the endpoint
// table type, parameter parsing with the REST rules (§1.3), the `{"data": ...}` envelope and
// plain-text errors, and the upgrade routes that start a session.
#pragma once

#include <boost/json.hpp>
#include <functional>
#include <string>
#include <vector>

#include "api.h"
#include "pbskit/server/h2_server.h"
#include "pbskit/server/task_manager.h"

namespace pbskit::server {

// An error answer with an explicit HTTP status (PBS: 400 unless stated otherwise).
struct ProtocolError {
  int status = 400;
  std::string message;
};

// One endpoint inside an HTTP/2 session. `route` supplies method, path (relative, no leading
// '/'), parameter schema and whether the body is payload (raw_body).
template <typename Session>
struct H2Endpoint {
  Route route;
  std::function<H2Response(Session&, H2Request&, const boost::json::object& params)> handler;
};

// Successful JSON answer {"data": value}.
H2Response DataResponse(boost::json::value value);
// Plain-text error answer (the body is the message).
H2Response ErrorResponse(int status, const std::string& message);
// Status -> answer: NotFound 404, everything else 400 (PBS's `bail!`).
H2Response ErrorResponse(const Status& status);
// Raw bytes (downloads).
H2Response OctetResponse(std::string bytes);

// Finds the endpoint for `request` among `endpoints` (path components after normalising
// slashes) and validates its parameters; on failure *error is the answer to send (404 for an
// unknown path or method, 400 for parameter errors). The parameter object is returned on success.
template <typename Session>
const H2Endpoint<Session>* FindEndpoint(const std::vector<H2Endpoint<Session>>& endpoints,
                                        const H2Request& request, boost::json::object* params,
                                        H2Response* error);

// Parses `request`'s parameters against `route` (query for raw-body routes, else the §1.3
// rules). InvalidArgument with PBS's text.
Result<boost::json::object> ParseH2Parameters(const Route& route, const H2Request& request);

// The relative path of a request ("/dynamic_chunk" -> "dynamic_chunk", "//" -> "").
std::string NormalizeH2Path(const std::string& path);

// Options of the HTTP/2 connections started by the upgrade routes (process-wide; tests may
// shorten the idle timeout before starting the server).
H2ServerOptions& ProtocolH2Options();

// GET backup (backup protocol upgrade) and GET reader (reader protocol upgrade). A finished
// backup of a store with `verify-new` starts a verify task on `tasks`.
void AddProtocolRoutes(std::vector<Route>* routes, std::shared_ptr<TaskManager> tasks);

// ---- template definition ----

template <typename Session>
const H2Endpoint<Session>* FindEndpoint(const std::vector<H2Endpoint<Session>>& endpoints,
                                        const H2Request& request, boost::json::object* params,
                                        H2Response* error) {
  std::string rel = NormalizeH2Path(request.path);
  for (const auto& e : endpoints) {
    if (e.route.pattern != rel || e.route.method != request.method) continue;
    auto p = ParseH2Parameters(e.route, request);
    if (!p.ok()) {
      *error = ErrorResponse(400, p.status().message());
      return nullptr;
    }
    *params = std::move(p).value();
    return &e;
  }
  // proxmox-rest-server's H2Service: an unknown method on a known path is also "not found".
  *error = ErrorResponse(404, "Path '" + request.path + "' not found.");
  return nullptr;
}

}  // namespace pbskit::server
