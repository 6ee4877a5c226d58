// The REST layer's private building blocks: routes, parameter schemas, calls and results.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pbskit/formats/status.h"
#include "pbskit/server/acl.h"
#include "pbskit/server/http_server.h"

namespace pbskit::server {

class ApiServer;

enum class ParamType { kString, kInteger, kBoolean, kStringArray, kIntegerArray };

struct ParamDef {
  ParamDef() = default;
  ParamDef(std::string n, ParamType t = ParamType::kString, bool opt = true,
           int64_t lo = std::numeric_limits<int64_t>::min(),
           int64_t hi = std::numeric_limits<int64_t>::max(),
           std::function<Status(const std::string&)> chk = nullptr)
      : name(std::move(n)), type(t), optional(opt), min(lo), max(hi), check(std::move(chk)) {}
  std::string name;
  ParamType type = ParamType::kString;
  bool optional = true;
  int64_t min = std::numeric_limits<int64_t>::min();  // integers; string length for strings
  int64_t max = std::numeric_limits<int64_t>::max();
  // Extra check of string values (and array items); its message becomes the parameter error.
  std::function<Status(const std::string&)> check;
};

struct ApiCall {
  ApiServer* server = nullptr;
  HttpRequest* request = nullptr;
  std::optional<Authid> auth_id;  // empty only for world-accessible routes without credentials
  boost::json::object params;     // validated parameters, path parameters included

  bool Has(const std::string& name) const { return params.contains(name); }
  std::string Str(const std::string& name, const std::string& def = "") const;
  int64_t Int(const std::string& name, int64_t def = 0) const;
  bool Bool(const std::string& name, bool def = false) const;
  std::vector<std::string> StrList(const std::string& name) const;
  std::vector<int64_t> IntList(const std::string& name) const;
};

struct ApiResult {
  boost::json::value data;            // the `data` member
  boost::json::object extra;          // extra top-level members (total, active, ...)
  std::optional<HttpResponse> raw;    // sent unchanged (downloads, protocol upgrades)
  static ApiResult Null() { return ApiResult{}; }
  static ApiResult Of(boost::json::value v) {
    ApiResult r;
    r.data = std::move(v);
    return r;
  }
};

// An error with an explicit HTTP status (otherwise derived from the Status code).
struct HttpError {
  int status;
  std::string message;
};

using ApiHandlerFn = std::function<Result<ApiResult>(ApiCall&)>;

struct Route {
  std::string method;
  std::string pattern;          // "admin/datastore/{store}/groups" (below /api2/json)
  std::vector<ParamDef> params;
  bool world = false;           // no authentication needed
  bool raw_body = false;        // parameters only from the query, body is payload
  size_t max_body = 512 * 1024;
  ApiHandlerFn handler;
};

// Status -> HTTP status: NotFound 404, PermissionDenied 403, IoError 500, everything else 400
// (PBS's default for errors).
int HttpStatusFor(const Status& status);

// Parses `query`/form text into (key, value) pairs with percent-decoding ('+' is a space).
std::vector<std::pair<std::string, std::string>> ParseUrlEncoded(std::string_view text);
std::string PercentDecode(std::string_view text);
std::string PercentEncode(std::string_view text);

// Builds the validated parameter object for `route` from the request (§1.3 rules) plus
// `path_params`. InvalidArgument with PBS's "parameter verification failed ..." text.
Result<boost::json::object> ParseParameters(const Route& route, const HttpRequest& request,
                                            const std::map<std::string, std::string>& path_params);

// Common parameter definitions.
ParamDef StoreParam();                    // {store}, SAFE_ID 3..32
ParamDef NsParam();                       // ns, optional
ParamDef BackupTypeParam(bool optional = false);
ParamDef BackupIdParam(bool optional = false);
ParamDef BackupTimeParam(bool optional = false);

// Registration of the route groups (one per api_*.cc file).
void AddAccessRoutes(std::vector<Route>* routes);
void AddDatastoreRoutes(std::vector<Route>* routes);
void AddFileBrowseRoutes(std::vector<Route>* routes);  // catalog, pxar-file-download
class TaskManager;  // pbskit/server/task_manager.h
// `tasks` runs the tasks of the route table (also the backup protocol's verify-new tasks).
void AddTaskRoutes(std::vector<Route>* routes, std::shared_ptr<TaskManager> tasks);  // api_tasks.cc

}  // namespace pbskit::server
