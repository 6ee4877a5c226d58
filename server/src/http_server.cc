#include "pbskit/server/http_server.h"

#include <array>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

namespace pbskit::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

const std::string* HttpRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

const char* ReasonFor(int status) {
  auto r = http::obsolete_reason(static_cast<http::status>(status));
  return r.empty() ? "Unknown" : r.data();
}

}  // namespace

struct HttpServer::Impl {
  HttpServerOptions options;
  HttpHandler* handler = nullptr;
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> rejected{0};
  std::atomic<uint64_t> active{0};
  std::atomic<uint64_t> refusing{0};  // sessions answering 503 above max_connections

  // Upgraded connections run on their own threads; Stop() closes them and waits.
  std::mutex upgraded_mu;
  std::condition_variable upgraded_cv;
  std::set<TlsStream*> upgraded;

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopped = false;

  ssl::context tls{ssl::context::tls_server};  // outlives the io_context's sessions
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  net::steady_timer accept_backoff{ioc};
  std::vector<std::thread> threads;

  void Accept();
};

namespace {

// Shared between a BlockingUpgradedStream and its watchdog timer (which runs on the I/O
// threads): the deadline of the Read/Write in progress and the stream to shut down.
struct UpgradeWatch {
  explicit UpgradeWatch(net::io_context& ioc) : timer(ioc) {}
  std::mutex mu;
  TlsStream* stream = nullptr;  // null once the owner is gone
  std::atomic<int64_t> deadline_ns{0};  // steady clock; 0 = no operation in progress
  std::atomic<bool> fired{false};
  net::steady_timer timer;
};

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void ArmWatch(std::shared_ptr<UpgradeWatch> w) {
  w->timer.expires_after(std::chrono::milliseconds(250));
  w->timer.async_wait([w](beast::error_code ec) {
    if (ec) return;
    std::lock_guard<std::mutex> lock(w->mu);
    if (!w->stream) return;
    int64_t d = w->deadline_ns.load();
    if (d != 0 && SteadyNowNs() > d) {
      w->fired = true;
      beast::error_code ignored;
      beast::get_lowest_layer(*w->stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
      return;
    }
    ArmWatch(w);
  });
}

class BlockingUpgradedStream final : public UpgradedStream {
 public:
  BlockingUpgradedStream(HttpServer::Impl* impl, std::unique_ptr<TlsStream> stream,
                         std::string leftover)
      : impl_(impl), stream_(std::move(stream)), leftover_(std::move(leftover)) {
    std::lock_guard<std::mutex> lock(impl_->upgraded_mu);
    impl_->upgraded.insert(stream_.get());
  }
  ~BlockingUpgradedStream() override {
    Close();
    if (watch_) {
      {
        std::lock_guard<std::mutex> lock(watch_->mu);
        watch_->stream = nullptr;
      }
      net::post(impl_->ioc, [w = watch_] { w->timer.cancel(); });
      // Dropped while the server still waits for this stream: once the stream is erased
      // below, Stop() may return and the io_context (the timer's service) be destroyed.
      watch_.reset();
    }
    std::lock_guard<std::mutex> lock(impl_->upgraded_mu);
    impl_->upgraded.erase(stream_.get());
    stream_.reset();
    impl_->active.fetch_sub(1);
    impl_->upgraded_cv.notify_all();
  }
  Result<size_t> Read(uint8_t* buf, size_t n) override {
    Begin();
    beast::error_code ec;
    size_t got = stream_->read_some(net::buffer(buf, n), ec);
    End();
    if (TimedOut()) return TimeoutError();
    if (ec == net::error::eof || ec == ssl::error::stream_truncated) return size_t{0};
    if (ec) return Status::IoError("connection read failed: " + ec.message());
    return got;
  }
  Status Write(const uint8_t* buf, size_t n) override {
    Begin();
    beast::error_code ec;
    net::write(*stream_, net::buffer(buf, n), ec);
    End();
    if (TimedOut()) return TimeoutError();
    if (ec) return Status::IoError("connection write failed: " + ec.message());
    return Status::OK();
  }
  void Close() override {
    beast::error_code ec;
    beast::get_lowest_layer(*stream_).socket().shutdown(tcp::socket::shutdown_both, ec);
  }
  Result<std::optional<size_t>> ReadAvailable(uint8_t* buf, size_t n) override {
    // The socket is non-blocking only for this call: TLS consumes what it already holds first
    // and reads the socket only when that is not enough, so "would block" means no input.
    auto& sock = beast::get_lowest_layer(*stream_).socket();
    beast::error_code ec;
    sock.non_blocking(true, ec);
    if (ec) return Status::IoError("connection read failed: " + ec.message());
    Begin();
    size_t got = stream_->read_some(net::buffer(buf, n), ec);
    End();
    beast::error_code ignored;
    sock.non_blocking(false, ignored);
    if (ec == net::error::would_block || ec == net::error::try_again) {
      return std::optional<size_t>();
    }
    if (TimedOut()) return TimeoutError();
    if (ec == net::error::eof || ec == ssl::error::stream_truncated) {
      return std::optional<size_t>(0);
    }
    if (ec) return Status::IoError("connection read failed: " + ec.message());
    return std::optional<size_t>(got);
  }
  Result<bool> WaitReadable(int wake_fd, std::chrono::milliseconds timeout) override {
    pollfd fds[2] = {};
    fds[0].fd = beast::get_lowest_layer(*stream_).socket().native_handle();
    fds[0].events = POLLIN;
    fds[1].fd = wake_fd;
    fds[1].events = POLLIN;
    int rv = ::poll(fds, wake_fd >= 0 ? 2 : 1, static_cast<int>(timeout.count()));
    if (rv < 0 && errno != EINTR) {
      return Status::IoError(std::string("connection poll failed: ") + std::strerror(errno));
    }
    return rv > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
  }
  std::string TakeLeftover() override { return std::exchange(leftover_, std::string()); }
  void SetIdleTimeout(std::chrono::milliseconds timeout) override {
    timeout_ = timeout;
    if (timeout_.count() > 0 && !watch_) {
      watch_ = std::make_shared<UpgradeWatch>(impl_->ioc);
      watch_->stream = stream_.get();
      net::post(impl_->ioc, [w = watch_] { ArmWatch(w); });
    }
  }

 private:
  void Begin() {
    if (watch_ && timeout_.count() > 0) {
      watch_->deadline_ns =
          SteadyNowNs() +
          std::chrono::duration_cast<std::chrono::nanoseconds>(timeout_).count();
    }
  }
  void End() {
    if (watch_) watch_->deadline_ns = 0;
  }
  bool TimedOut() const { return watch_ && watch_->fired.load(); }
  Status TimeoutError() const {
    return Status::IoError("connection timed out (no progress for " +
                           std::to_string(timeout_.count()) + " ms)");
  }

  HttpServer::Impl* impl_;
  std::unique_ptr<TlsStream> stream_;
  std::string leftover_;
  std::chrono::milliseconds timeout_{0};
  std::shared_ptr<UpgradeWatch> watch_;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  // `refuse`: the server is at max_connections; the session only answers 503 and closes.
  Session(HttpServer::Impl* impl, tcp::socket socket, bool refuse = false)
      : impl_(impl),
        refuse_(refuse),
        stream_(std::make_unique<TlsStream>(std::move(socket), impl->tls)),
        timer_(stream_->get_executor()) {
    beast::error_code ec;
    auto ep = beast::get_lowest_layer(*stream_).socket().remote_endpoint(ec);
    if (!ec) peer_ = ep.address().to_string() + ":" + std::to_string(ep.port());
    auto& sock = beast::get_lowest_layer(*stream_).socket();
    sock.set_option(tcp::no_delay(true), ec);
    sock.set_option(net::socket_base::keep_alive(true), ec);
  }
  ~Session() {
    if (refuse_) {
      impl_->refusing.fetch_sub(1);
    } else if (!upgraded_) {
      impl_->active.fetch_sub(1);
    }
  }

  void Start() {
    beast::get_lowest_layer(*stream_).expires_after(impl_->options.handshake_timeout);
    stream_->async_handshake(ssl::stream_base::server,
                             [self = shared_from_this()](beast::error_code ec) {
                               if (!ec) self->ReadHeader();
                             });
  }

 private:
  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(impl_->options.max_header_bytes));
    // The real limit is set once the header is known (it depends on the route); until then
    // a Content-Length must not trip the parser.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    if (requests_ > 0 && buffer_.size() == 0) {
      // Keep-alive: the idle timeout covers only the wait for the next request's first byte.
      // From that byte on the header timeout applies as for a first request, so a client
      // cannot trickle a header for as long as the idle timeout.
      beast::get_lowest_layer(*stream_).expires_after(impl_->options.idle_timeout);
      stream_->async_read_some(buffer_.prepare(kFirstReadBytes),
                               [self = shared_from_this()](beast::error_code ec, size_t n) {
                                 if (ec) return self->OnHeader(ec);
                                 self->buffer_.commit(n);
                                 self->ReadHeaderRest();
                               });
      return;
    }
    ReadHeaderRest();
  }

  void ReadHeaderRest() {
    beast::get_lowest_layer(*stream_).expires_after(impl_->options.header_timeout);
    http::async_read_header(*stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              self->OnHeader(ec);
                            });
  }

  void OnHeader(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::eof || ec == ssl::error::stream_truncated ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset) {
      return Shutdown();
    }
    if (ec == http::error::header_limit) {
      return SendError(431, "request header too large");
    }
    if (ec) return SendError(400, "bad request - " + ec.message());
    ++requests_;
    if (refuse_) {
      auto length = parser_->content_length();
      drain_left_ = length ? std::min<uint64_t>(*length, kMaxDrainBytes) : 0;
      return SendError(503, "too many connections (limit " +
                                std::to_string(impl_->options.max_connections) +
                                "), try again later");
    }

    auto& h = parser_->get();
    request_ = HttpRequest();
    request_.start = std::chrono::steady_clock::now();
    request_.method = std::string(h.method_string());
    request_.target = std::string(h.target());
    request_.peer = peer_;
    auto q = request_.target.find('?');
    request_.path = request_.target.substr(0, q);
    if (q != std::string::npos) request_.query = request_.target.substr(q + 1);
    for (const auto& field : h) {
      std::string name = Lower(field.name_string());
      std::string value(field.value());
      bool merged = false;
      for (auto& [k, v] : request_.headers) {
        if (k == name) {
          v += (name == "cookie" ? "; " : ", ") + value;
          merged = true;
          break;
        }
      }
      if (!merged) request_.headers.emplace_back(std::move(name), std::move(value));
    }
    if (request_.target.size() > impl_->options.max_uri_length) {
      return SendError(414, "URI Too Long");
    }
    size_t limit = impl_->handler->MaxBodySize(request_);
    auto length = parser_->content_length();
    if (length && *length > limit) {
      drain_left_ = std::min<uint64_t>(*length, kMaxDrainBytes);
      return SendError(413, "request body too large (" + std::to_string(*length) + " > " +
                                std::to_string(limit) + " bytes)");
    }
    parser_->body_limit(limit);
    if (parser_->is_done()) return OnBody({});
    beast::get_lowest_layer(*stream_).expires_after(impl_->options.body_timeout);
    http::async_read(*stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->OnBody(ec);
                     });
  }

  void OnBody(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      drain_left_ = kMaxDrainBytes;
      return SendError(413, "request body too large");
    }
    if (ec == beast::error::timeout || ec == net::error::eof ||
        ec == ssl::error::stream_truncated || ec == net::error::operation_aborted ||
        ec == http::error::end_of_stream || ec == http::error::partial_message) {
      return Shutdown();
    }
    if (ec) return SendError(400, "bad request - " + ec.message());
    keep_alive_ = parser_->get().keep_alive();
    request_.body = std::move(parser_->get().body());
    beast::get_lowest_layer(*stream_).expires_never();
    HttpResponse response = impl_->handler->Handle(request_);
    auto due = request_.start + response.min_delay;
    if (response.min_delay.count() > 0 && std::chrono::steady_clock::now() < due) {
      auto held = std::make_shared<HttpResponse>(std::move(response));
      timer_.expires_at(due);
      timer_.async_wait([self = shared_from_this(), held](beast::error_code) {
        self->Send(std::move(*held));
      });
      return;
    }
    Send(std::move(response));
  }

  void SendError(int status, std::string message) {
    keep_alive_ = false;
    HttpResponse r;
    r.status = status;
    r.body = std::move(message);
    r.close = true;
    Send(std::move(r));
  }

  void Send(HttpResponse response) {
    if (response.body_stream) return SendStream(std::move(response));
    auto res = std::make_shared<http::response<http::string_body>>();
    res->result(static_cast<unsigned>(response.status));
    res->reason(ReasonFor(response.status));
    res->version(11);
    if (response.status != 101) res->set(http::field::content_type, response.content_type);
    for (const auto& [k, v] : response.headers) res->set(k, v);
    res->body() = std::move(response.body);
    bool close = response.close || !keep_alive_;
    upgrade_ = std::move(response.on_upgrade);
    if (response.status == 101) {
      close = false;
    } else {
      res->keep_alive(!close);
      res->prepare_payload();
    }
    close_after_ = close;
    beast::get_lowest_layer(*stream_).expires_after(impl_->options.body_timeout);
    http::async_write(*stream_, *res, [self = shared_from_this(), res](beast::error_code ec,
                                                                        size_t) {
      self->OnWrite(ec);
    });
  }

  // A response whose body comes from HttpResponse::body_stream: the header with its
  // Content-Length, then one piece at a time, each written before the next is produced.
  void SendStream(HttpResponse response) {
    auto res = std::make_shared<http::response<http::empty_body>>();
    res->result(static_cast<unsigned>(response.status));
    res->reason(ReasonFor(response.status));
    res->version(11);
    res->set(http::field::content_type, response.content_type);
    for (const auto& [k, v] : response.headers) res->set(k, v);
    close_after_ = response.close || !keep_alive_;
    res->keep_alive(!close_after_);
    chunked_ = response.body_stream_chunked;
    if (chunked_) {
      res->chunked(true);
      stream_left_ = UINT64_MAX;
    } else {
      res->content_length(response.body_stream_size);
      stream_left_ = response.body_stream_size;
    }
    producer_ = std::move(response.body_stream);
    auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*res);
    beast::get_lowest_layer(*stream_).expires_after(impl_->options.body_timeout);
    http::async_write_header(*stream_, *sr, [self = shared_from_this(), res, sr](
                                                 beast::error_code ec, size_t) {
      if (ec) return self->Shutdown();
      self->StreamNext();
    });
  }

  // Chunked variant of StreamNext: each piece framed as one chunk, the final empty chunk after
  // the producer reported the end.
  void StreamNextChunk() {
    if (stream_left_ == 0) {
      producer_ = nullptr;
      std::string().swap(piece_);
      return OnWrite({});
    }
    auto more = producer_(&piece_);
    if (!more.ok()) {
      producer_ = nullptr;
      close_after_ = true;
      beast::error_code ignored;
      beast::get_lowest_layer(*stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
      return Shutdown();
    }
    chunk_head_.clear();
    chunk_tail_.clear();
    if (!piece_.empty()) {
      char size[32];
      std::snprintf(size, sizeof size, "%zx\r\n", piece_.size());
      chunk_head_ = size;
      chunk_tail_ = "\r\n";
    }
    if (!*more) {
      chunk_tail_ += "0\r\n\r\n";
      stream_left_ = 0;
    }
    std::array<net::const_buffer, 3> bufs = {net::buffer(chunk_head_), net::buffer(piece_),
                                             net::buffer(chunk_tail_)};
    beast::get_lowest_layer(*stream_).expires_after(impl_->options.body_timeout);
    net::async_write(*stream_, bufs, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Shutdown();
      self->StreamNextChunk();
    });
  }

  void StreamNext() {
    if (chunked_) return StreamNextChunk();
    if (stream_left_ == 0) {
      producer_ = nullptr;
      std::string().swap(piece_);
      return OnWrite({});
    }
    auto more = producer_(&piece_);
    if (!more.ok() || piece_.size() > stream_left_ || (piece_.empty() && !*more)) {
      // Cannot be reported any more: the header said 200. Ending the connection early is
      // what tells the client the body is incomplete.
      producer_ = nullptr;
      close_after_ = true;
      beast::error_code ignored;
      beast::get_lowest_layer(*stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
      return Shutdown();
    }
    stream_left_ -= piece_.size();
    beast::get_lowest_layer(*stream_).expires_after(impl_->options.body_timeout);
    net::async_write(*stream_, net::buffer(piece_),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return self->Shutdown();
                       self->StreamNext();
                     });
  }

  void OnWrite(beast::error_code ec) {
    if (ec) return Shutdown();
    if (upgrade_) return Upgrade();
    if (close_after_) return drain_left_ > 0 ? Drain() : Shutdown();
    ReadHeader();
  }

  // After refusing a request body, read and discard what the client is still sending (bounded
  // in bytes and time) before closing: closing at once would reset the connection and the
  // client could lose the error response it has not read yet.
  void Drain() {
    beast::get_lowest_layer(*stream_).expires_after(std::chrono::seconds(2));
    auto buf = std::make_shared<std::array<char, 65536>>();
    stream_->async_read_some(net::buffer(*buf), [self = shared_from_this(), buf](
                                                    beast::error_code ec, size_t n) {
      if (ec || n >= self->drain_left_) return self->Shutdown();
      self->drain_left_ -= n;
      self->Drain();
    });
  }

  void Upgrade() {
    beast::get_lowest_layer(*stream_).expires_never();
    std::string leftover(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    buffer_.consume(buffer_.size());
    upgraded_ = true;  // the upgraded stream now owns the connection count
    auto up = std::make_unique<BlockingUpgradedStream>(impl_, std::move(stream_),
                                                       std::move(leftover));
    auto fn = std::move(upgrade_);
    std::thread([fn = std::move(fn), up = std::move(up)]() mutable { fn(std::move(up)); })
        .detach();
  }

  void Shutdown() {
    if (!stream_) return;
    beast::get_lowest_layer(*stream_).expires_after(std::chrono::seconds(5));
    stream_->async_shutdown([self = shared_from_this()](beast::error_code) {
      beast::error_code ec;
      beast::get_lowest_layer(*self->stream_).socket().close(ec);
    });
  }

  HttpServer::Impl* impl_;
  bool refuse_ = false;
  std::unique_ptr<TlsStream> stream_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpRequest request_;
  std::string peer_;
  std::function<void(std::unique_ptr<UpgradedStream>)> upgrade_;
  uint64_t requests_ = 0;
  bool keep_alive_ = true;
  bool close_after_ = false;
  bool upgraded_ = false;
  static constexpr uint64_t kMaxDrainBytes = 32ull * 1024 * 1024;
  static constexpr size_t kFirstReadBytes = 16 * 1024;  // first read of a keep-alive request
  uint64_t drain_left_ = 0;  // bytes of a refused body still to discard before closing
  // Streamed response body (SendStream): its producer, the bytes still to send, the piece
  // being written.
  std::function<Result<bool>(std::string*)> producer_;
  uint64_t stream_left_ = 0;
  std::string piece_;
  bool chunked_ = false;
  std::string chunk_head_, chunk_tail_;
};

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      // EMFILE/ENFILE and friends: wait a little so existing connections can finish.
      accept_backoff.expires_after(std::chrono::milliseconds(50));
      accept_backoff.async_wait([this](beast::error_code e) {
        if (!e) Accept();
      });
      return;
    }
    accepted.fetch_add(1);
    if (active.load() >= options.max_connections) {
      rejected.fetch_add(1);
      if (refusing.load() < options.max_refusing) {
        // Tell the client why (503 after reading its request) instead of a bare reset.
        refusing.fetch_add(1);
        std::make_shared<Session>(this, std::move(socket), true)->Start();
      } else {
        beast::error_code ignored;
        socket.close(ignored);
      }
    } else {
      active.fetch_add(1);
      std::make_shared<Session>(this, std::move(socket))->Start();
    }
    Accept();
  });
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                      HttpHandler* handler) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->handler = handler;

  // Address parsing: "host:port", "[v6]:port".
  std::string host, port;
  const std::string& l = options.listen;
  if (!l.empty() && l[0] == '[') {
    auto close = l.find(']');
    if (close == std::string::npos || close + 1 >= l.size() || l[close + 1] != ':') {
      return Status::InvalidArgument("invalid listen address '" + l + "'");
    }
    host = l.substr(1, close - 1);
    port = l.substr(close + 2);
  } else {
    auto colon = l.rfind(':');
    if (colon == std::string::npos) {
      return Status::InvalidArgument("invalid listen address '" + l + "' (expected ADDR:PORT)");
    }
    host = l.substr(0, colon);
    port = l.substr(colon + 1);
  }
  beast::error_code ec;
  auto address = net::ip::make_address(host, ec);
  if (ec) return Status::InvalidArgument("invalid listen address '" + host + "'");
  unsigned long port_num = 0;
  try {
    size_t pos = 0;
    port_num = std::stoul(port, &pos);
    if (pos != port.size() || port_num > 65535) throw std::out_of_range("port");
  } catch (const std::exception&) {
    return Status::InvalidArgument("invalid listen port '" + port + "'");
  }

  auto& tls = impl->tls;
  tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::single_dh_use);
  tls.use_certificate_chain_file(options.cert_file, ec);
  if (ec) return Status::IoError("unable to load certificate '" + options.cert_file + "': " +
                                 ec.message());
  tls.use_private_key_file(options.key_file, ssl::context::pem, ec);
  if (ec) return Status::IoError("unable to load private key '" + options.key_file + "': " +
                                 ec.message());
  // Mozilla "intermediate" cipher list, as PBS uses for TLS 1.2.
  SSL_CTX_set_cipher_list(tls.native_handle(),
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                          "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                          "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                          "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384");

  tcp::endpoint endpoint(address, static_cast<uint16_t>(port_num));
  auto& acc = impl->acceptor;
  acc.open(endpoint.protocol(), ec);
  if (!ec) acc.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec && address.is_v6()) acc.set_option(net::ip::v6_only(false), ec);
  if (!ec) acc.bind(endpoint, ec);
  if (!ec) acc.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Status::IoError("unable to listen on " + options.listen + ": " + ec.message());

  impl->Accept();
  int n = std::max(1, options.threads);
  for (int i = 0; i < n; ++i) {
    impl->threads.emplace_back([p = impl.get()] { p->ioc.run(); });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

uint16_t HttpServer::port() const {
  beast::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

HttpServerStats HttpServer::stats() const {
  return {impl_->accepted.load(), impl_->rejected.load(), impl_->active.load(),
          impl_->refusing.load()};
}

void HttpServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->stop_mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
  }
  net::post(impl_->ioc, [p = impl_.get()] {
    beast::error_code ec;
    p->acceptor.close(ec);
    p->accept_backoff.cancel();
  });
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  {
    std::unique_lock<std::mutex> lock(impl_->upgraded_mu);
    for (TlsStream* s : impl_->upgraded) {
      beast::error_code ec;
      beast::get_lowest_layer(*s).socket().shutdown(tcp::socket::shutdown_both, ec);
    }
    impl_->upgraded_cv.wait(lock, [&] { return impl_->upgraded.empty(); });
  }
  impl_->stop_cv.notify_all();
}

void HttpServer::Wait() {
  std::unique_lock<std::mutex> lock(impl_->stop_mu);
  impl_->stop_cv.wait(lock, [&] { return impl_->stopped; });
}

}  // namespace pbskit::server
