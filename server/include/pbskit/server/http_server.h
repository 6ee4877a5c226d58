// HTTPS/1.1 server on Boost.Asio/Beast with OpenSSL: the transport under `pbskit serve`.
//
// One acceptor, a fixed pool of I/O threads, one strand per connection. Every request is
// bounded: header size, URI length (PBS: 3072 bytes -> 414), body size (per route, decided by
// the handler after the header arrived), and timeouts for the TLS handshake, the header, the
// body and idle keep-alive connections, so slow or hostile clients cannot pin resources.
// Connections above `max_connections` are answered 503 (a bounded number at a time, the rest
// are closed right after accept); accept errors such as EMFILE back off briefly instead of
// stopping the server.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pbskit/formats/status.h"

namespace pbskit::server {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // raw request target ("/api2/json/x?y=1")
  std::string path;    // target without the query, not decoded
  std::string query;   // raw query string (after '?'), not decoded
  // Header names lower-cased; repeated headers are joined with ", " (cookies with "; ").
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string peer;  // "ip:port"
  std::chrono::steady_clock::time_point start;  // when the header was complete

  // Value of header `name` (lower-case), or nullptr.
  const std::string* Header(std::string_view name) const;
};

// A stream that was switched to another protocol (HTTP/2) after a 101 response. The server
// hands it to the response's upgrade callback; the callee owns it from then on.
class UpgradedStream {
 public:
  virtual ~UpgradedStream() = default;
  // Blocking read of up to `n` bytes; returns 0 at end of stream. IoError on failure.
  virtual Result<size_t> Read(uint8_t* buf, size_t n) = 0;
  // Blocking write of all bytes. IoError on failure.
  virtual Status Write(const uint8_t* buf, size_t n) = 0;
  // Closes the connection (TLS shutdown is skipped); further calls fail.
  virtual void Close() = 0;
  // Bytes the HTTP/1.1 parser already read past the upgrade request.
  virtual std::string TakeLeftover() = 0;
  // Bounds every later Read/Write: when one makes no progress for `timeout` the connection
  // is shut down and the call fails with IoError "connection timed out ...". 0 disables it
  // (the default). Call before the first Read; not thread safe with Read/Write.
  virtual void SetIdleTimeout(std::chrono::milliseconds timeout) = 0;
  // Like Read, but never waits for the peer: returns std::nullopt when no decrypted byte is
  // available without reading more from the socket than is there. Same errors as Read.
  virtual Result<std::optional<size_t>> ReadAvailable(uint8_t* buf, size_t n) = 0;
  // Waits until the socket has input or `wake_fd` (an eventfd or pipe, -1 for none) becomes
  // readable, or `timeout` passes; returns whether the socket has input. Call it only after
  // ReadAvailable returned std::nullopt (TLS may hold input that poll() cannot see).
  virtual Result<bool> WaitReadable(int wake_fd, std::chrono::milliseconds timeout) = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json;charset=UTF-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  // Respond no earlier than this long after HttpRequest::start (PBS delays 401 by 3 s and
  // 403 by 0.5 s to slow down guessing).
  std::chrono::milliseconds min_delay{0};
  bool close = false;  // close the connection after this response
  // Set on a 101 response: called on a separate thread with the raw TLS stream once the 101
  // was written. The connection is then no longer an HTTP/1.1 connection.
  std::function<void(std::unique_ptr<UpgradedStream>)> on_upgrade;
  // Set for a body produced piece by piece instead of `body` (downloads larger than memory):
  // called on an I/O thread after the header went out, each time the previous piece was
  // written; replaces *piece with the next bytes and returns true while more follow. The pieces
  // must add up to `body_stream_size` (the Content-Length). An error, or a wrong total, ends
  // the connection: the header is already out, so the client sees a short body.
  std::function<Result<bool>(std::string* piece)> body_stream;
  uint64_t body_stream_size = 0;
  // The length is not known in advance (archives made while they are sent): the body goes out
  // with `Transfer-Encoding: chunked`, one chunk per piece, and `body_stream_size` is ignored.
  // The last piece may come with `false`; an error ends the connection without the final
  // empty chunk, so the client sees an incomplete body.
  bool body_stream_chunked = false;
};

// Application side of the server. Thread safe: called concurrently from the I/O threads.
class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Largest body accepted for a request (called once the header is in). Larger bodies are
  // answered with 413 and the connection is closed.
  virtual size_t MaxBodySize(const HttpRequest& request) const = 0;
  virtual HttpResponse Handle(HttpRequest& request) = 0;
};

struct HttpServerOptions {
  std::string listen = "0.0.0.0:8007";  // "ADDR:PORT" or "[v6]:PORT"; port 0 picks a free one
  std::string cert_file;                 // PEM certificate chain
  std::string key_file;                  // PEM private key
  int threads = 4;
  size_t max_connections = 4096;
  // Connections beyond max_connections still get "503 too many connections (limit N), try
  // again later" (after the handshake and their request header), up to this many at a time;
  // further ones are closed right after accept.
  size_t max_refusing = 64;
  size_t max_header_bytes = 64 * 1024;
  size_t max_uri_length = 3072;          // path + query, PBS MAX_URI_QUERY_LENGTH
  // Each phase is bounded as a whole (a client trickling bytes gains nothing): the TLS
  // handshake; a request header from its first byte (for a keep-alive connection, from the
  // first byte of the next request); the request body; writing a response (body_timeout);
  // and the wait of a keep-alive connection for the next request's first byte (idle).
  // A timed-out connection is closed without an answer.
  std::chrono::seconds handshake_timeout{10};  // PBS: 10 s (proxmox-rest-server accept)
  std::chrono::seconds header_timeout{60};
  std::chrono::seconds body_timeout{300};
  std::chrono::seconds idle_timeout{120};
};

struct HttpServerStats {
  uint64_t accepted = 0;
  uint64_t rejected = 0;  // refused (503 or closed) because of max_connections
  uint64_t active = 0;
  uint64_t refusing = 0;  // connections above max_connections being answered 503
};

class HttpServer {
 public:
  // Binds and starts serving on background threads. `handler` must outlive the server.
  // Errors: InvalidArgument for a bad listen address, IoError when binding fails or the
  // certificate/key cannot be loaded.
  static Result<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                   HttpHandler* handler);
  ~HttpServer();  // Stop()s

  // Port actually bound (useful with port 0).
  uint16_t port() const;
  HttpServerStats stats() const;
  // Stops accepting, closes every connection and joins the I/O threads. Idempotent.
  void Stop();
  // Blocks until Stop() was called (from another thread or a signal handler thread).
  void Wait();

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pbskit::server
