// H2Connection: the client side of PBS's HTTP/2 protocols (PROTOCOL.md §4.1, §4.2, §5, §6).
//
// Opens a TLS connection to a PBS-compatible server (fingerprint pinning as in
// http_client.h), sends the HTTP/1.1 upgrade request (`GET /api2/json/backup?...` with
// `Upgrade: proxmox-backup-protocol-v1`, or the reader protocol), and after
// `101 Switching Protocols` speaks HTTP/2 on the same stream with the Rust client's settings
// (2^31-2 stream and connection windows, 4 MiB frames, no push).
//
// This is only the transport: requests inside the session are `METHOD /path?query` with an
// optional body; the backup/reader protocol clients build on it. Requests may be issued from
// several threads at once and are multiplexed on the connection (Submit pipelines them without
// extra threads). One I/O thread per connection does all socket and nghttp2 work. The first
// connection sets SIGPIPE to ignored when it still has its default action (a vanished server
// must fail a write with EPIPE instead of ending the process), as Rust programs do.
#pragma once

#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pbskit/formats/status.h"

namespace pbskit::server {

inline constexpr char kBackupProtocolId[] = "proxmox-backup-protocol-v1";
inline constexpr char kReaderProtocolId[] = "proxmox-backup-reader-protocol-v1";

struct H2ClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8007;
  // Expected SHA-256 fingerprint of the server's leaf certificate ("ab:cd:..."), required.
  std::string fingerprint;
  // Full `Authorization` header value, e.g. "PBSAPIToken root@pam!t:SECRET"; empty = none.
  std::string authorization;
  // Further headers of the upgrade request (e.g. a ticket cookie).
  std::vector<std::pair<std::string, std::string>> extra_headers;
  // Bound on waiting for the 101 and, per request, for the next byte of progress.
  int timeout_seconds = 120;
};

struct H2ClientResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case names
  std::string body;
  const std::string* Header(std::string_view name) const;
};

// What the server answered instead of 101 (status and plain-text body).
struct UpgradeRefusal {
  int status = 0;
  std::string body;
};

class H2Connection {
 public:
  // Connects, sends `GET <path_and_query>` with `Upgrade: <protocol>` and switches to HTTP/2
  // on 101. `path_and_query` is e.g. "/api2/json/backup?store=s&backup-type=host&...".
  // Errors: IoError for transport failures and timeouts; PermissionDenied for a fingerprint
  // mismatch or a 401/403 answer; NotFound for 404; InvalidArgument for other non-101
  // answers. The server's status and body of a non-101 answer also land in *refusal
  // (optional). Thread safe.
  static Result<std::unique_ptr<H2Connection>> Upgrade(const H2ClientOptions& options,
                                                       const std::string& path_and_query,
                                                       const std::string& protocol,
                                                       UpgradeRefusal* refusal = nullptr);
  // Closes the connection gracefully (GOAWAY) and joins the I/O thread.
  ~H2Connection();
  H2Connection(const H2Connection&) = delete;
  H2Connection& operator=(const H2Connection&) = delete;

  // Starts a request. `path` has no /api2/json prefix ("/fixed_chunk"); `query` is the raw,
  // already encoded query (may be empty); `content_type` is sent when not empty. The future
  // yields the response (any status), or IoError when the connection broke, the stream was
  // reset before a full response, or no progress happened for timeout_seconds.
  // Thread safe; never blocks on the network.
  std::future<Result<H2ClientResponse>> Submit(const std::string& method, const std::string& path,
                                               const std::string& query = "",
                                               std::string body = "",
                                               const std::string& content_type = "");
  // Submit + wait.
  Result<H2ClientResponse> Request(const std::string& method, const std::string& path,
                                   const std::string& query = "", std::string body = "",
                                   const std::string& content_type = "");

  // Drops the TCP connection at once, without GOAWAY or TLS close (simulates a client that
  // vanished mid-session). Pending requests fail with IoError.
  void Abort();
  // Graceful close: GOAWAY, then the connection is shut down once pending requests are done.
  void Close();
  // False once the connection is broken or closed.
  bool alive() const;

  // Test helper for malformed input: performs the upgrade like Upgrade(), then writes `bytes`
  // raw on the TLS stream (instead of an HTTP/2 preface) and returns what the server sends
  // back until it closes the connection or `timeout_seconds` pass. The 101 response itself is
  // not included.
  static Result<std::string> UpgradeAndSendRaw(const H2ClientOptions& options,
                                               const std::string& path_and_query,
                                               const std::string& protocol,
                                               const std::string& bytes, int timeout_seconds);

  struct Impl;

 private:
  explicit H2Connection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Query string from (key, value) pairs with percent-encoding (repeat a key for arrays).
std::string EncodeH2Query(const std::vector<std::pair<std::string, std::string>>& params);

}  // namespace pbskit::server
