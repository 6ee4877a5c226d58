// The server side of HTTP/2 over a connection that was switched from HTTP/1.1 with a
// `101 Switching Protocols` (PBS's backup and reader protocols, PROTOCOL.md §4.1, §5, §6).
//
// There is no h2c negotiation: right after the 101 the client sends the HTTP/2 connection
// preface on the same TLS stream and the server answers with its SETTINGS. The server
// advertises PBS's values (32 MiB stream and connection windows, 4 MiB frames) and bounds what
// a peer can make it hold: concurrent streams, header bytes, body bytes per request and per
// connection, and an idle timeout. Requests are handled in the order their bodies completed.
// Requests the handler calls concurrent (chunk uploads) run on a shared pool of worker threads,
// several at a time, while the connection's thread goes on decrypting and parsing input; every
// other request runs on the connection's thread once no concurrent one is running, so it sees
// the effects of all requests completed before it. A protocol error closes that connection only.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pbskit/formats/status.h"
#include "pbskit/server/http_server.h"

namespace pbskit::server {

struct H2Request {
  int32_t stream_id = 0;
  std::string method;  // ":method"
  std::string path;    // ":path" without the query, not decoded
  std::string query;   // raw query (after '?'), not decoded
  // Regular header fields, names lower-case (HTTP/2 requires that on the wire).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Value of header `name` (lower-case), or nullptr.
  const std::string* Header(std::string_view name) const;
};

struct H2Response {
  int status = 200;
  std::string content_type = "application/json;charset=UTF-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers, lower-case names
};

// The application behind one HTTP/2 connection. Called from the connection's thread, except
// Handle for requests IsConcurrent accepts (see there).
class H2Handler {
 public:
  virtual ~H2Handler() = default;
  // Whether Handle(request) may run on a worker thread, at the same time as other concurrent
  // requests of this connection (never at the same time as a request this answers false
  // for). Called on the connection's thread with the complete request. Default: false.
  virtual bool IsConcurrent(const H2Request& request) {
    (void)request;
    return false;
  }
  // Largest body accepted for `request` (headers only; body empty). Larger bodies are answered
  // with 413 "request body too large" without calling Handle.
  virtual size_t MaxBodySize(const H2Request& request) = 0;
  // Produces the response of a complete request.
  virtual H2Response Handle(H2Request& request) = 0;
};

struct H2ServerOptions {
  uint32_t initial_window_size = 32u * 1024 * 1024;  // stream and connection (PBS)
  uint32_t max_frame_size = 4u * 1024 * 1024;        // PBS
  uint32_t max_concurrent_streams = 128;
  size_t max_header_bytes = 64 * 1024;  // per request, names + values
  // Sum of the bodies of all requests still being received on one connection; above it the
  // connection is closed with GOAWAY (ENHANCE_YOUR_CALM).
  size_t max_buffered_bytes = 512ull * 1024 * 1024;
  // No byte received or sent for this long ends the connection. 0 disables it.
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(15)};
  // Concurrent requests of one connection being handled at a time; when reached, the
  // connection reads no more input until one finishes (TCP and HTTP/2 flow control then hold
  // the peer back).
  size_t max_concurrent_handlers = 6;
};

struct H2ConnectionStats {
  uint64_t requests = 0;        // requests handled (incl. refused ones)
  uint64_t bytes_received = 0;  // TLS payload bytes
  uint64_t bytes_sent = 0;
  std::string close_reason;     // why the connection ended ("" = the peer closed it cleanly)
};

// Runs the server side of one HTTP/2 connection on `stream` until the peer closes it, it
// times out, or the peer violates the protocol (then GOAWAY is sent if possible). Blocking;
// call it on the thread that owns `stream`. `handler` is borrowed. Returns the connection's
// statistics; close_reason says why it ended when the end was not a clean close.
H2ConnectionStats ServeH2Connection(UpgradedStream& stream, H2Handler& handler,
                                    const H2ServerOptions& options = {});

}  // namespace pbskit::server
