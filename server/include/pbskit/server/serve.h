// `pbskit serve` as a library: certificate and key setup, the embedded default on first start,
// the REST handler and the HTTPS listener wired together. Used by the CLI and by tests that run
// the server in-process.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "pbskit/formats/status.h"
#include "pbskit/server/api_server.h"
#include "pbskit/server/h2_server.h"
#include "pbskit/server/http_server.h"

namespace pbskit::server {

struct ServeConfig {
  std::string config_dir;
  std::string state_dir;
  std::string listen = "0.0.0.0:8007";
  int threads = 4;
  int cert_bits = 4096;
  // Create datastore `store1` and the root@pam!pbskit token when the config dir holds neither
  // datastores nor users yet.
  bool create_default = true;
  std::string default_store_path;  // empty: "<config_dir>/../store1"
  HttpServerOptions http;          // limits and timeouts (listen/cert/key/threads overridden)
  // Limits and the idle timeout of the HTTP/2 connections of the backup and reader protocols.
  // These are process-wide: when set, Start() replaces them for every server of the process.
  std::optional<H2ServerOptions> protocol_h2;
  std::chrono::milliseconds auth_failure_delay{3000};
  std::chrono::milliseconds forbidden_delay{500};
};

// What the first start created; the secret is shown once and never stored in clear.
struct DefaultSetup {
  std::string store;
  std::string store_path;
  std::string token_id;  // "root@pam!pbskit"
  std::string secret;
};

// Creates the datastore, token and ACL of the embedded default when the config dir is empty.
// Returns nullopt when there was already a configuration. Uses the same library calls as
// `pbskit datastore create` / `pbskit token create` / `pbskit acl update`.
Result<std::optional<DefaultSetup>> CreateDefaultSetup(const std::string& config_dir,
                                                       const std::string& store_path);

// Raises the soft RLIMIT_NOFILE to the hard limit (one descriptor per connection plus the
// files requests open). Returns the soft limit in effect afterwards; when it is still below
// `needed`, a warning naming both numbers goes to stderr. Thread safe (process-wide limit).
uint64_t RaiseOpenFileLimit(uint64_t needed);

class Serve {
 public:
  // Sets up certificate, keys and (optionally) the default, raises the open file limit for
  // `http.max_connections` (RaiseOpenFileLimit), then starts listening.
  static Result<std::unique_ptr<Serve>> Start(const ServeConfig& config);
  ~Serve();
  uint16_t port() const { return http_->port(); }
  const std::string& fingerprint() const { return fingerprint_; }
  const std::optional<DefaultSetup>& default_setup() const { return default_; }
  HttpServer& http() { return *http_; }
  void Stop() { http_->Stop(); }
  void Wait() { http_->Wait(); }

 private:
  Serve() = default;
  std::unique_ptr<ApiServer> api_;
  std::unique_ptr<HttpServer> http_;
  std::string fingerprint_;
  std::optional<DefaultSetup> default_;
};

}  // namespace pbskit::server
