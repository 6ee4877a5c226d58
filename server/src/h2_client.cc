#include "pbskit/server/h2_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

namespace pbskit::server {

const std::string* H2ClientResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

std::string EncodeH2Query(const std::vector<std::pair<std::string, std::string>>& params) {
  static const char* hex = "0123456789ABCDEF";
  auto enc = [](const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 15];
      }
    }
    return out;
  };
  std::string q;
  for (const auto& [k, v] : params) {
    if (!q.empty()) q += '&';
    q += enc(k) + "=" + enc(v);
  }
  return q;
}

namespace {

constexpr int32_t kClientWindow = 2147483646;  // 2^31 - 2, as the Rust client
constexpr uint32_t kClientMaxFrame = 4u * 1024 * 1024;

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  if (!e) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

std::string LowerCase(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string CertFingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(cert, EVP_sha256(), md, &len);
  std::string out;
  char b[4];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(b, sizeof b, "%02x", md[i]);
    if (i) out += ':';
    out += b;
  }
  return out;
}

// A blocking TLS connection (socket timeouts bound every call) used until the upgrade is done.
struct TlsConn {
  int fd = -1;
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  ~TlsConn() {
    if (ssl) SSL_free(ssl);
    if (ctx) SSL_CTX_free(ctx);
    if (fd >= 0) ::close(fd);
  }
  Status WriteAll(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      int n = SSL_write(ssl, data.data() + off,
                        static_cast<int>(std::min<size_t>(data.size() - off, INT_MAX)));
      if (n <= 0) return Status::IoError("TLS write failed: " + OpenSslError());
      off += static_cast<size_t>(n);
    }
    return Status::OK();
  }
};

Status Connect(const H2ClientOptions& o, TlsConn* c) {
  // OpenSSL writes with write(2): a peer that vanished must give EPIPE, not kill the process.
  struct sigaction old{};
  if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) {
    ::signal(SIGPIPE, SIG_IGN);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(o.port);
  if (int rv = ::getaddrinfo(o.host.c_str(), port.c_str(), &hints, &res); rv != 0) {
    return Status::IoError("unable to resolve '" + o.host + "': " + gai_strerror(rv));
  }
  std::string last = "no address";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    struct timeval tv{};
    tv.tv_sec = o.timeout_seconds;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      c->fd = fd;
      break;
    }
    last = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  if (c->fd < 0) {
    return Status::IoError("unable to connect to " + o.host + ":" + port + ": " + last);
  }
  int one = 1;
  ::setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->ctx = SSL_CTX_new(TLS_client_method());
  if (!c->ctx) return Status::IoError("TLS setup failed: " + OpenSslError());
  SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, nullptr);  // pinned below instead
  c->ssl = SSL_new(c->ctx);
  if (!c->ssl) return Status::IoError("TLS setup failed: " + OpenSslError());
  SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_set_tlsext_host_name(c->ssl, o.host.c_str());
  SSL_set_fd(c->ssl, c->fd);
  if (SSL_connect(c->ssl) != 1) return Status::IoError("TLS handshake failed: " + OpenSslError());
  X509* cert = SSL_get1_peer_certificate(c->ssl);
  if (!cert) return Status::PermissionDenied("server sent no certificate");
  std::string fp = CertFingerprint(cert);
  X509_free(cert);
  if (LowerCase(o.fingerprint) != fp) {
    return Status::PermissionDenied("certificate fingerprint mismatch (expected " +
                                    o.fingerprint + ", got " + fp + ")");
  }
  return Status::OK();
}

// Sends the upgrade request and reads the response header. On 101 returns the bytes read past
// the header; otherwise the error (and *refusal).
Result<std::string> DoUpgrade(const H2ClientOptions& o, TlsConn* c, const std::string& target,
                              const std::string& protocol, UpgradeRefusal* refusal) {
  std::string req = "GET " + target + " HTTP/1.1\r\n";
  req += "host: " + o.host + ":" + std::to_string(o.port) + "\r\n";
  req += "user-agent: proxmox-backup-client/1.0\r\n";
  req += "content-type: application/x-www-form-urlencoded\r\n";
  if (!o.authorization.empty()) req += "authorization: " + o.authorization + "\r\n";
  for (const auto& [k, v] : o.extra_headers) req += k + ": " + v + "\r\n";
  req += "connection: upgrade\r\nupgrade: " + protocol + "\r\n\r\n";
  PBSKIT_RETURN_IF_ERROR(c->WriteAll(req));

  std::string in;
  size_t header_end = std::string::npos;
  char buf[16384];
  while ((header_end = in.find("\r\n\r\n")) == std::string::npos) {
    if (in.size() > 64 * 1024) return Status::IoError("upgrade response header too large");
    int n = SSL_read(c->ssl, buf, sizeof buf);
    if (n <= 0) return Status::IoError("connection closed while waiting for the upgrade response");
    in.append(buf, static_cast<size_t>(n));
  }
  std::string head = in.substr(0, header_end);
  std::string rest = in.substr(header_end + 4);
  // "HTTP/1.1 101 Switching Protocols"
  int status = 0;
  if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0 ||
      std::sscanf(head.c_str() + head.find(' '), " %d", &status) != 1) {
    return Status::IoError("malformed upgrade response status line");
  }
  if (status == 101) return rest;

  // Error answer: read the body (Content-Length, bounded).
  size_t length = 0;
  std::string lower = LowerCase(head);
  if (auto p = lower.find("\r\ncontent-length:"); p != std::string::npos) {
    length = std::strtoull(lower.c_str() + p + 17, nullptr, 10);
  }
  length = std::min<size_t>(length, 1 << 20);
  while (rest.size() < length) {
    int n = SSL_read(c->ssl, buf, sizeof buf);
    if (n <= 0) break;
    rest.append(buf, static_cast<size_t>(n));
  }
  rest.resize(std::min(rest.size(), length));
  if (refusal) *refusal = UpgradeRefusal{status, rest};
  std::string msg = rest.empty() ? "upgrade refused with HTTP status " + std::to_string(status)
                                 : rest;
  if (status == 401 || status == 403) return Status::PermissionDenied(msg);
  if (status == 404) return Status::NotFound(msg);
  if (status >= 500) return Status::IoError(msg);
  return Status::InvalidArgument(msg);
}

struct Pending {
  std::promise<Result<H2ClientResponse>> promise;
  std::string method, path, query, content_type;
  std::string body;
  size_t sent = 0;
  H2ClientResponse response;
  bool ended = false;
};

}  // namespace

struct H2Connection::Impl {
  H2ClientOptions options;
  std::unique_ptr<TlsConn> conn;
  nghttp2_session* session = nullptr;
  int wake[2] = {-1, -1};
  std::thread io;

  std::mutex mu;
  std::deque<std::unique_ptr<Pending>> queue;
  bool closing = false;
  bool dead = false;
  std::string dead_reason;
  std::atomic<bool> alive{true};

  // I/O thread only.
  std::map<int32_t, std::unique_ptr<Pending>> active;
  std::string out;
  size_t out_off = 0;
  bool goaway_sent = false;
  std::chrono::steady_clock::time_point last_progress;

  ~Impl() {
    if (session) nghttp2_session_del(session);
    for (int fd : wake) {
      if (fd >= 0) ::close(fd);
    }
  }

  void Wake() {
    char c = 1;
    ssize_t ignored = ::write(wake[1], &c, 1);
    (void)ignored;
  }
  Status Init(const std::string& leftover);
  void Loop();
  Status Step(bool* progressed);
  void FailAll(const std::string& reason);

  static Impl* Self(void* p) { return static_cast<Impl*>(p); }
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                      void* user) {
    auto* self = Self(user);
    auto it = self->active.find(frame->hd.stream_id);
    if (it == self->active.end()) return 0;
    std::string k(reinterpret_cast<const char*>(name), namelen);
    std::string v(reinterpret_cast<const char*>(value), valuelen);
    if (k == ":status") {
      it->second->response.status = std::atoi(v.c_str());
    } else if (!k.empty() && k[0] != ':') {
      it->second->response.headers.emplace_back(std::move(k), std::move(v));
    }
    return 0;
  }
  static int OnData(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                    void* user) {
    auto* self = Self(user);
    auto it = self->active.find(stream_id);
    if (it != self->active.end()) {
      it->second->response.body.append(reinterpret_cast<const char*>(data), len);
    }
    return 0;
  }
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* self = Self(user);
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      auto it = self->active.find(frame->hd.stream_id);
      if (it != self->active.end() && it->second->response.status >= 200) {
        it->second->ended = true;
      }
    }
    return 0;
  }
  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                           void* user) {
    auto* self = Self(user);
    auto it = self->active.find(stream_id);
    if (it == self->active.end()) return 0;
    auto p = std::move(it->second);
    self->active.erase(it);
    if (p->ended) {
      p->promise.set_value(std::move(p->response));
    } else {
      p->promise.set_value(Status::IoError(std::string("HTTP/2 stream ") + p->path +
                                           " closed before a complete response: " +
                                           nghttp2_http2_strerror(error_code)));
    }
    return 0;
  }
  static ssize_t ReadLength(nghttp2_session*, uint8_t, int32_t, int32_t session_window,
                            int32_t stream_window, uint32_t max_frame, void*) {
    int64_t n = std::min<int64_t>({session_window, stream_window, max_frame, 1 << 20});
    return static_cast<ssize_t>(std::max<int64_t>(n, 1));
  }
  static ssize_t ReadBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                          uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* p = static_cast<Pending*>(source->ptr);
    size_t n = std::min(length, p->body.size() - p->sent);
    if (n) std::memcpy(buf, p->body.data() + p->sent, n);
    p->sent += n;
    if (p->sent == p->body.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      std::string().swap(p->body);
      p->sent = 0;
    }
    return static_cast<ssize_t>(n);
  }
};

Status H2Connection::Impl::Init(const std::string& leftover) {
  if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    return Status::FromErrno(errno, "unable to create wake pipe");
  }
  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return Status::IoError("out of memory");
  nghttp2_session_callbacks_set_on_header_callback(cbs, OnHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, OnData);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, OnFrameRecv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, OnStreamClose);
  nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, ReadLength);
  int rv = nghttp2_session_client_new(&session, cbs, this);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) return Status::IoError(std::string("nghttp2: ") + nghttp2_strerror(rv));
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kClientWindow)},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, kClientMaxFrame},
  };
  rv = nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, iv, 3);
  if (rv == 0) rv = nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, kClientWindow);
  if (rv != 0) return Status::IoError(std::string("nghttp2: ") + nghttp2_strerror(rv));
  if (!leftover.empty()) {
    ssize_t n = nghttp2_session_mem_recv(session, reinterpret_cast<const uint8_t*>(leftover.data()),
                                         leftover.size());
    if (n < 0) return Status::IoError(std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n)));
  }
  int flags = ::fcntl(conn->fd, F_GETFL);
  if (flags < 0 || ::fcntl(conn->fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return Status::FromErrno(errno, "unable to make the socket non-blocking");
  }
  last_progress = std::chrono::steady_clock::now();
  return Status::OK();
}

// One round: submit queued requests, write what nghttp2 produced, read what arrived.
Status H2Connection::Impl::Step(bool* progressed) {
  *progressed = false;
  std::deque<std::unique_ptr<Pending>> fresh;
  bool want_close = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    fresh.swap(queue);
    want_close = closing;
  }
  for (auto& p : fresh) {
    std::string path = p->path + (p->query.empty() ? "" : "?" + p->query);
    std::string authority = options.host + ":" + std::to_string(options.port);
    std::vector<std::pair<std::string, std::string>> fields = {
        {":method", p->method}, {":scheme", "https"}, {":authority", authority}, {":path", path}};
    if (!p->content_type.empty()) fields.emplace_back("content-type", p->content_type);
    // As hyper does for a body of known size; lets the server size its buffer once.
    if (!p->body.empty()) fields.emplace_back("content-length", std::to_string(p->body.size()));
    std::vector<nghttp2_nv> nva;
    for (auto& [k, v] : fields) {
      nva.push_back({reinterpret_cast<uint8_t*>(k.data()), reinterpret_cast<uint8_t*>(v.data()),
                     k.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    nghttp2_data_provider provider{};
    provider.source.ptr = p.get();
    provider.read_callback = ReadBody;
    bool has_body = !p->body.empty() || p->method == "POST" || p->method == "PUT";
    int32_t id = nghttp2_submit_request(session, nullptr, nva.data(), nva.size(),
                                        has_body ? &provider : nullptr, nullptr);
    if (id < 0) {
      p->promise.set_value(Status::IoError(std::string("unable to submit HTTP/2 request: ") +
                                           nghttp2_strerror(id)));
      continue;
    }
    active[id] = std::move(p);
    *progressed = true;
  }
  if (want_close && !goaway_sent && active.empty()) {
    nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
    goaway_sent = true;
  }

  // Write: produce more only once the previous batch is fully written (SSL_write retries must
  // see the same bytes).
  for (;;) {
    if (out_off == out.size()) {
      out.clear();
      out_off = 0;
      while (out.size() < (1u << 20)) {
        const uint8_t* data = nullptr;
        ssize_t n = nghttp2_session_mem_send(session, &data);
        if (n < 0) return Status::IoError(std::string("nghttp2: ") + nghttp2_strerror(static_cast<int>(n)));
        if (n == 0) break;
        out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
      }
      if (out.empty()) break;
    }
    int n = SSL_write(conn->ssl, out.data() + out_off,
                      static_cast<int>(std::min<size_t>(out.size() - out_off, INT_MAX)));
    if (n > 0) {
      out_off += static_cast<size_t>(n);
      *progressed = true;
      last_progress = std::chrono::steady_clock::now();
      continue;
    }
    int err = SSL_get_error(conn->ssl, n);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) break;
    return Status::IoError("connection write failed: " + OpenSslError());
  }

  // Read everything available.
  char buf[65536];
  for (;;) {
    int n = SSL_read(conn->ssl, buf, sizeof buf);
    if (n > 0) {
      *progressed = true;
      last_progress = std::chrono::steady_clock::now();
      ssize_t rv = nghttp2_session_mem_recv(session, reinterpret_cast<const uint8_t*>(buf),
                                            static_cast<size_t>(n));
      if (rv < 0) {
        return Status::IoError(std::string("HTTP/2 protocol error from server: ") +
                               nghttp2_strerror(static_cast<int>(rv)));
      }
      continue;
    }
    int err = SSL_get_error(conn->ssl, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) break;
    if (err == SSL_ERROR_ZERO_RETURN) return Status::IoError("connection closed by server");
    if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
      return Status::IoError("connection closed by server");
    }
    return Status::IoError("connection read failed: " + OpenSslError());
  }
  return Status::OK();
}

void H2Connection::Impl::FailAll(const std::string& reason) {
  std::deque<std::unique_ptr<Pending>> rest;
  {
    std::lock_guard<std::mutex> lock(mu);
    dead = true;
    dead_reason = reason;
    rest.swap(queue);
  }
  alive = false;
  for (auto& [id, p] : active) p->promise.set_value(Status::IoError(reason));
  active.clear();
  for (auto& p : rest) p->promise.set_value(Status::IoError(reason));
}

void H2Connection::Impl::Loop() {
  std::string reason = "connection closed";
  for (;;) {
    bool progressed = false;
    Status st = Step(&progressed);
    if (!st.ok()) {
      reason = st.message();
      break;
    }
    if (goaway_sent && active.empty() && out_off == out.size()) {
      reason = "connection closed";
      break;
    }
    if (!nghttp2_session_want_read(session) && !nghttp2_session_want_write(session)) {
      reason = "connection closed by server (GOAWAY)";
      break;
    }
    if (progressed) continue;
    pollfd fds[2] = {{conn->fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
    if (out_off < out.size()) fds[0].events |= POLLOUT;
    ::poll(fds, 2, 1000);
    if (fds[1].revents & POLLIN) {
      char drain[64];
      while (::read(wake[0], drain, sizeof drain) > 0) {
      }
    }
    if (!active.empty() &&
        std::chrono::steady_clock::now() - last_progress >
            std::chrono::seconds(options.timeout_seconds)) {
      reason = "timed out waiting for the server (" + std::to_string(options.timeout_seconds) +
               " s without progress)";
      break;
    }
  }
  FailAll(reason);
  ::shutdown(conn->fd, SHUT_RDWR);
}

H2Connection::H2Connection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

H2Connection::~H2Connection() {
  Close();
  if (impl_->io.joinable()) impl_->io.join();
}

Result<std::unique_ptr<H2Connection>> H2Connection::Upgrade(const H2ClientOptions& options,
                                                            const std::string& path_and_query,
                                                            const std::string& protocol,
                                                            UpgradeRefusal* refusal) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->conn = std::make_unique<TlsConn>();
  PBSKIT_RETURN_IF_ERROR(Connect(options, impl->conn.get()));
  PBSKIT_ASSIGN_OR_RETURN(std::string leftover,
                          DoUpgrade(options, impl->conn.get(), path_and_query, protocol, refusal));
  PBSKIT_RETURN_IF_ERROR(impl->Init(leftover));
  Impl* raw = impl.get();
  impl->io = std::thread([raw] { raw->Loop(); });
  return std::unique_ptr<H2Connection>(new H2Connection(std::move(impl)));
}

std::future<Result<H2ClientResponse>> H2Connection::Submit(const std::string& method,
                                                           const std::string& path,
                                                           const std::string& query,
                                                           std::string body,
                                                           const std::string& content_type) {
  auto p = std::make_unique<Pending>();
  p->method = method;
  p->path = path;
  p->query = query;
  p->body = std::move(body);
  p->content_type = content_type;
  auto fut = p->promise.get_future();
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->dead || impl_->closing) {
      p->promise.set_value(Status::IoError(impl_->dead ? impl_->dead_reason
                                                       : std::string("connection is closing")));
      return fut;
    }
    impl_->queue.push_back(std::move(p));
  }
  impl_->Wake();
  return fut;
}

Result<H2ClientResponse> H2Connection::Request(const std::string& method, const std::string& path,
                                               const std::string& query, std::string body,
                                               const std::string& content_type) {
  return Submit(method, path, query, std::move(body), content_type).get();
}

void H2Connection::Abort() {
  ::shutdown(impl_->conn->fd, SHUT_RDWR);
  impl_->Wake();
  if (impl_->io.joinable()) impl_->io.join();
}

void H2Connection::Close() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->closing = true;
  }
  impl_->Wake();
}

bool H2Connection::alive() const { return impl_->alive.load(); }

Result<std::string> H2Connection::UpgradeAndSendRaw(const H2ClientOptions& options,
                                                    const std::string& path_and_query,
                                                    const std::string& protocol,
                                                    const std::string& bytes,
                                                    int timeout_seconds) {
  TlsConn conn;
  PBSKIT_RETURN_IF_ERROR(Connect(options, &conn));
  PBSKIT_ASSIGN_OR_RETURN(std::string got,
                          DoUpgrade(options, &conn, path_and_query, protocol, nullptr));
  struct timeval tv{};
  tv.tv_sec = 1;
  ::setsockopt(conn.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  PBSKIT_RETURN_IF_ERROR(conn.WriteAll(bytes));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  char buf[16384];
  while (std::chrono::steady_clock::now() < deadline && got.size() < (1u << 20)) {
    int n = SSL_read(conn.ssl, buf, sizeof buf);
    if (n > 0) {
      got.append(buf, static_cast<size_t>(n));
      continue;
    }
    int err = SSL_get_error(conn.ssl, n);
    if (err == SSL_ERROR_WANT_READ) continue;  // receive timeout tick
    if (err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    break;  // closed
  }
  return got;
}

}  // namespace pbskit::server
