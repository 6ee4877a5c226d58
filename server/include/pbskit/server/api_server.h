// The REST API behind `pbskit serve`: path normalisation, authentication (ticket cookie +
// CSRF token, or API token header), parameter parsing and validation the way PBS's
// proxmox-rest-server does it, routing, and the `{"data": ...}` envelope with plain-text errors.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "pbskit/formats/status.h"
#include "pbskit/server/access_control.h"
#include "pbskit/server/http_server.h"
#include "pbskit/server/ticket.h"

namespace pbskit::server {

struct ServeOptions {
  std::string config_dir;
  std::string state_dir;
  std::string node_name = "localhost";
  // PBS answers failed authentication no earlier than 3 s after the request started and
  // permission failures after 0.5 s.
  std::chrono::milliseconds auth_failure_delay{3000};
  std::chrono::milliseconds forbidden_delay{500};
};

class ApiServer final : public HttpHandler {
 public:
  // Loads (creating when missing) the ticket keys in `options.config_dir`. IoError/Aborted on
  // failure.
  static Result<std::unique_ptr<ApiServer>> Create(const ServeOptions& options);
  ~ApiServer() override;

  size_t MaxBodySize(const HttpRequest& request) const override;
  HttpResponse Handle(HttpRequest& request) override;

  const ServeOptions& options() const { return options_; }
  AccessControl& access() { return access_; }
  const AuthKeys& keys() const { return *keys_; }

  struct Routes;

 private:
  ApiServer(const ServeOptions& options, std::shared_ptr<const AuthKeys> keys);
  // Authenticates the request: the auth id, or the reason it failed.
  Result<Authid> Authenticate(const HttpRequest& request);

  ServeOptions options_;
  AccessControl access_;
  std::shared_ptr<const AuthKeys> keys_;
  std::unique_ptr<Routes> routes_;
};

}  // namespace pbskit::server
