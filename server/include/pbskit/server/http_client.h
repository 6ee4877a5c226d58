// A PBS API client over HTTPS/1.1 (Boost.Beast + OpenSSL): certificate fingerprint pinning as
// proxmox-backup-client does it, API token or ticket authentication (with CSRF token), the
// `{"data": ...}` envelope and plain-text errors. Used by the tests and by the sync code.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pbskit/formats/status.h"

namespace pbskit::server {

struct HttpClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8007;
  // Expected SHA-256 fingerprint of the server's leaf certificate ("ab:cd:..."). Required:
  // the connection fails when it does not match (no CA verification is attempted).
  std::string fingerprint;
  int timeout_seconds = 120;
};

struct ClientResponse {
  int status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  const std::string* Header(std::string_view name) const;
};

// A PBS repository as proxmox-backup-client spells it: [[AUTHID@]HOST[:PORT]:]STORE, e.g.
// "root@pam!sync@pbs.example:8007:store1" or "backup@pbs@[::1]:store1". IPv6 hosts are
// bracketed. Defaults: auth id root@pam, host localhost, port 8007.
struct BackupRepository {
  std::string auth_id = "root@pam";
  std::string host = "localhost";
  uint16_t port = 8007;
  std::string store;

  // InvalidArgument "unable to parse repository url '<text>'" when the text does not match
  // PBS's repository pattern (auth id, host name / IPv4 / [IPv6], port 1..65535, SAFE_ID store).
  static Result<BackupRepository> Parse(std::string_view text);
  // Canonical form "<auth>@<host>:<port>:<store>".
  std::string ToString() const;
  bool is_token() const { return auth_id.find('!') != std::string::npos; }
};

// What a client needs to reach a repository: the pinned certificate fingerprint and the
// secret (API token secret when the auth id is a token, else the password for ticket login).
struct RepositoryConnectOptions {
  BackupRepository repository;
  std::string fingerprint;
  std::string secret;
  int timeout_seconds = 120;
};

class HttpClient;
// Connects (fingerprint pinned) and authenticates: token header for token ids, else ticket
// login (PermissionDenied with the server's text on failure). IoError for transport errors.
Result<std::unique_ptr<HttpClient>> ConnectRepository(const RepositoryConnectOptions& options);

class HttpClient {
 public:
  // Connects and completes the TLS handshake, checking the fingerprint. IoError when the
  // connection fails; PermissionDenied "certificate fingerprint mismatch ..." when pinning
  // fails. Not thread safe: one request at a time.
  static Result<std::unique_ptr<HttpClient>> Connect(const HttpClientOptions& options);
  ~HttpClient();

  // Authenticate further requests with an API token ("user@realm!name", secret).
  void UseToken(const std::string& token_id, const std::string& secret);
  // POST /api2/json/access/ticket; on success later requests carry the ticket cookie and the
  // CSRF token. PermissionDenied with the server's text on failure.
  Status Login(const std::string& userid, const std::string& password);

  // One raw request on the keep-alive connection (reconnecting once when the server closed
  // it). `path` includes the query. Adds authentication headers. IoError on transport errors.
  Result<ClientResponse> Request(const std::string& method, const std::string& path,
                                 const std::string& body = "",
                                 const std::string& content_type = "",
                                 const std::vector<std::pair<std::string, std::string>>& extra =
                                     {});

  // API call below /api2/json: GET/PUT/DELETE send `params` as query string, POST as JSON body
  // (the Rust client's encoding). Returns `data`. Errors carry the server's message; the
  // Status code follows the HTTP status (401/403 PermissionDenied, 404 NotFound, else
  // InvalidArgument; 5xx IoError).
  Result<boost::json::value> Call(const std::string& method, const std::string& path,
                                  const boost::json::object& params = {});

  // Sends `bytes` verbatim on a fresh TLS connection and returns whatever the server answers
  // until it closes the connection or `timeout_seconds` pass (for malformed-input tests).
  static Result<std::string> RawExchange(const HttpClientOptions& options,
                                         const std::string& bytes, int timeout_seconds = 10);

  // Query string of `params` (arrays repeat the key), percent-encoded.
  static std::string EncodeQuery(const boost::json::object& params);

  // The authentication headers a request of this client carries (ticket cookie plus CSRF
  // token after Login, else the API token header; empty when unauthenticated). Used to
  // authenticate protocol upgrades on a separate connection.
  std::vector<std::pair<std::string, std::string>> AuthHeaders() const;
  const HttpClientOptions& options() const;

  struct Impl;

 private:
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pbskit::server
