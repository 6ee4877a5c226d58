// `pbskit serve` under load and against slow or hostile clients, over loopback TLS:
//  * 1000 TLS connections open at the same time, each with authenticated REST requests, all
//    answered with 200 and PBS's JSON, none refused;
//  * slowloris (request headers a byte at a time): disconnected by the header timeout while
//    other clients are served;
//  * a request body sent slower than the body timeout allows: cut off, nothing changes;
//  * an HTTP/2 backup session that stalls in the middle of an upload: the server ends it after
//    its idle timeout and removes the unfinished snapshot;
//  * a client that pipelines large downloads and never reads (REST, and the HTTP/2 reader
//    protocol): the others are served, and the server gives up on it after its timeout;
//  * above max_connections (PBS has no cap; pbskit's default is 4096) a connection is answered
//    503 with the reason, and is served again once a slot is free;
//  * a connection that never completes its TLS handshake is closed after the handshake timeout.
// Each check compares a fingerprint of the datastore tree before and after. Timeouts are set
// small through ServeConfig so the suite runs in seconds; nothing asserts on durations, every
// wait is bounded by socket timeouts or a capped number of polls.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <csignal>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/hex.h"
#include "pbskit/server/backup_client.h"
#include "pbskit/server/certificate.h"
#include "pbskit/server/h2_client.h"
#include "pbskit/server/http_client.h"
#include "pbskit/server/serve.h"
#include "test_server.h"
#include "test_support.h"

namespace pbskit::server {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

constexpr int64_t kSnapshotTime = 1700000000;
constexpr size_t kBigBlobBytes = 4 * 1024 * 1024;

// ---- a minimal blocking TLS client with socket timeouts (no Asio, so every read is bounded) --

struct RawResponse {
  int status = 0;
  std::string head;
  std::string body;
};

class TlsConn {
 public:
  // Connects to 127.0.0.1:port and completes the TLS handshake. Reads and writes fail after
  // `timeout_s` seconds without progress. nullptr and *error on failure.
  static std::unique_ptr<TlsConn> Open(SSL_CTX* ctx, uint16_t port, std::string* error,
                                       int timeout_s = 60) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      *error = std::string("socket: ") + std::strerror(errno);
      return nullptr;
    }
    auto conn = std::unique_ptr<TlsConn>(new TlsConn(fd));
    timeval tv{timeout_s, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      *error = std::string("connect: ") + std::strerror(errno);
      return nullptr;
    }
    conn->ssl_ = SSL_new(ctx);
    SSL_set_fd(conn->ssl_, fd);
    if (SSL_connect(conn->ssl_) != 1) {
      *error = "TLS handshake failed: " + conn->LastError();
      return nullptr;
    }
    return conn;
  }
  ~TlsConn() {
    if (ssl_) SSL_free(ssl_);
    ::close(fd_);
  }

  bool Send(std::string_view bytes, std::string* error) {
    while (!bytes.empty()) {
      int n = SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()));
      if (n <= 0) {
        *error = "write failed: " + LastError();
        return false;
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one HTTP/1.1 response framed by Content-Length (none: header only, as for 101).
  bool ReadResponse(RawResponse* r, std::string* error) {
    size_t end;
    while ((end = in_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill(error)) return false;
    }
    r->head = in_.substr(0, end + 2);
    in_.erase(0, end + 4);
    if (r->head.compare(0, 9, "HTTP/1.1 ") != 0 || r->head.size() < 12) {
      *error = "not an HTTP/1.1 response: " + r->head;
      return false;
    }
    r->status = std::stoi(r->head.substr(9, 3));
    size_t length = 0;
    std::string lower = r->head;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto cl = lower.find("\r\ncontent-length:");
    if (cl != std::string::npos) length = std::stoul(lower.substr(cl + 17));
    while (in_.size() < length) {
      if (!Fill(error)) return false;
    }
    r->body = in_.substr(0, length);
    in_.erase(0, length);
    return true;
  }

  // True when the server sent application data or closed the connection within `ms`
  // milliseconds. TLS records without application data (TLS 1.3 session tickets) are consumed
  // and do not count.
  bool Readable(int ms) {
    if (!in_.empty() || closed_) return true;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      pollfd p{fd_, POLLIN, 0};
      if (SSL_pending(ssl_) == 0 &&
          ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left, 0))) <= 0) {
        return false;
      }
      // Input is there: read it without blocking.
      int flags = ::fcntl(fd_, F_GETFL);
      ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
      char buf[16384];
      int n = SSL_read(ssl_, buf, sizeof(buf));
      int err = n > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl_, n);
      ::fcntl(fd_, F_SETFL, flags);
      if (n > 0) {
        in_.append(buf, static_cast<size_t>(n));
        return true;
      }
      if (err != SSL_ERROR_WANT_READ) {
        closed_ = true;
        return true;
      }
      if (left <= 0) return false;
    }
  }

  // Reads until the server closes the connection; returns the bytes received (buffered ones
  // included). *closed is false when a read timed out instead.
  std::string ReadToClose(bool* closed) {
    std::string all = std::exchange(in_, std::string());
    *closed = closed_;
    if (closed_) return all;
    for (;;) {
      std::string error;
      if (!Fill(&error)) {
        *closed = !timed_out_;
        all += in_;
        return all;
      }
      all += in_;
      in_.clear();
    }
  }

  // Bytes received so far and still buffered (after ReadResponse calls).
  size_t buffered() const { return in_.size(); }

 private:
  explicit TlsConn(int fd) : fd_(fd) {}

  bool Fill(std::string* error) {
    char buf[16384];
    int n = SSL_read(ssl_, buf, sizeof(buf));
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
      return true;
    }
    int err = SSL_get_error(ssl_, n);
    timed_out_ = (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ||
                  (err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)));
    *error = timed_out_ ? "read timed out" : "connection closed by the server";
    return false;
  }

  std::string LastError() {
    unsigned long e = ERR_get_error();
    if (e != 0) {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof(buf));
      return buf;
    }
    return std::strerror(errno);
  }

  int fd_;
  SSL* ssl_ = nullptr;
  std::string in_;
  bool timed_out_ = false;
  bool closed_ = false;  // seen by Readable
};

// ---- HTTP/2 frames written by hand (for a stream whose body never completes) ----

void AppendFrame(std::string* out, uint8_t type, uint8_t flags, uint32_t stream,
                 const std::string& payload) {
  size_t n = payload.size();
  out->push_back(static_cast<char>((n >> 16) & 0xff));
  out->push_back(static_cast<char>((n >> 8) & 0xff));
  out->push_back(static_cast<char>(n & 0xff));
  out->push_back(static_cast<char>(type));
  out->push_back(static_cast<char>(flags));
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((stream >> shift) & 0xff));
  }
  *out += payload;
}

// HPACK integer with a 7-bit prefix (string lengths, no Huffman coding).
void AppendHpackLength(std::string* out, size_t n) {
  if (n < 127) {
    out->push_back(static_cast<char>(n));
    return;
  }
  out->push_back(static_cast<char>(127));
  n -= 127;
  while (n >= 128) {
    out->push_back(static_cast<char>((n & 0x7f) | 0x80));
    n >>= 7;
  }
  out->push_back(static_cast<char>(n));
}

// Header block of literal fields "without indexing, new name".
std::string HpackBlock(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    out.push_back('\0');
    AppendHpackLength(&out, name.size());
    out += name;
    AppendHpackLength(&out, value.size());
    out += value;
  }
  return out;
}

// ---- the datastore's state ----

// Names, sizes and content hashes of everything in the store outside `.chunks`, plus the names
// of the chunk files. Equal fingerprints mean no snapshot, group, namespace, index, blob or chunk
// was added, removed or changed.
std::string StoreFingerprint(const std::string& root) {
  std::set<std::string> lines;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::string rel = fs::relative(it->path(), root).string();
    bool in_chunks = rel.rfind(".chunks/", 0) == 0;
    if (it->is_directory()) {
      if (!in_chunks) lines.insert("d " + rel);
      continue;
    }
    if (in_chunks) {
      lines.insert("c " + rel);
    } else {
      lines.insert("f " + rel + " " + test::Sha256Hex(test::ReadFile(it->path().string())));
    }
  }
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  return all;
}

// Waits (bounded) until `done` holds; returns its last value.
template <typename F>
bool WaitFor(F done, int polls = 600,
             std::chrono::milliseconds step = std::chrono::milliseconds(50)) {
  for (int i = 0; i < polls; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(step);
  }
  return done();
}

// What a response must be: 200 and PBS's JSON for /version or the datastore list.
std::string CheckResponse(bool version, const RawResponse& r) {
  if (r.status != 200) {
    return "status " + std::to_string(r.status) + ": " + r.body;
  }
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("data"))
    return "not a data envelope: " + r.body;
  const json::value& data = v.at("data");
  if (version) {
    if (!data.is_object() || data.at("version") != "4.2" || data.at("release") != "3") {
      return "unexpected version: " + r.body;
    }
  } else {
    if (!data.is_array() || data.as_array().size() != 1 ||
        data.as_array()[0].at("store") != "store1") {
      return "unexpected datastore list: " + r.body;
    }
  }
  return "";
}

class ServerLoadTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::signal(SIGPIPE, SIG_IGN);  // writes to connections the server closed must fail, not kill
    // Client and server ends of 1000 connections live in this process.
    struct rlimit rl {};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &rl), 0);
    ASSERT_TRUE(rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= 2 * kConnections + 512)
        << "hard open file limit " << rl.rlim_max << " is too low for " << kConnections
        << " loopback connections";

    dir_ = new test::TempDir();
    ServeConfig cfg = test::LoopbackServeConfig(*dir_);
    cfg.http.handshake_timeout = std::chrono::seconds(60);
    cfg.http.header_timeout = std::chrono::seconds(2);
    cfg.http.body_timeout = std::chrono::seconds(2);
    cfg.http.idle_timeout = std::chrono::seconds(120);
    H2ServerOptions h2;
    h2.idle_timeout = std::chrono::milliseconds(1000);
    cfg.protocol_h2 = h2;
    auto s = Serve::Start(cfg);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    serve_ = s->release();
    ASSERT_TRUE(serve_->default_setup().has_value());
    secret_ = new std::string(serve_->default_setup()->secret);
    ASSERT_GE(cfg.http.max_connections, static_cast<size_t>(kConnections));

    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);

    // One finished snapshot with a 4 MiB blob (large downloads) and a small config blob.
    RepositoryConnectOptions connect;
    connect.repository.auth_id = "root@pam!pbskit";
    connect.repository.host = "127.0.0.1";
    connect.repository.port = serve_->port();
    connect.repository.store = "store1";
    connect.fingerprint = serve_->fingerprint();
    connect.secret = *secret_;
    BackupSessionOptions bo;
    bo.backup_type = "host";
    bo.backup_id = "load";
    bo.backup_time = kSnapshotTime;
    auto client = BackupClient::Start(connect, bo);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    std::string big = test::Pattern(kBigBlobBytes, 7);
    ASSERT_TRUE(
        (*client)
            ->UploadBlob("big.blob", std::span<const uint8_t>(
                                         reinterpret_cast<const uint8_t*>(big.data()), big.size()))
            .ok());
    std::string conf = "hostname: load\n";
    ASSERT_TRUE((*client)
                    ->UploadBlob("host.conf.blob",
                                 std::span<const uint8_t>(
                                     reinterpret_cast<const uint8_t*>(conf.data()), conf.size()))
                    .ok());
    auto finished = (*client)->Finish();
    ASSERT_TRUE(finished.ok()) << finished.status().ToString();
  }
  static void TearDownTestSuite() {
    if (ctx_) SSL_CTX_free(ctx_);
    delete serve_;
    delete secret_;
    delete dir_;
  }

  static std::string StorePath() { return *dir_ / "store1"; }
  static std::string TokenHeader() {
    return "Authorization: PBSAPIToken=root@pam!pbskit:" + *secret_ + "\r\n";
  }
  static std::string Get(const std::string& path, bool close = false) {
    return "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: pbskit-load-test\r\n" +
           TokenHeader() + (close ? "Connection: close\r\n" : "") + "\r\n";
  }
  // A fresh keep-alive API client (fingerprint pinned, token auth).
  static std::unique_ptr<HttpClient> Client() {
    HttpClientOptions o;
    o.port = serve_->port();
    o.fingerprint = serve_->fingerprint();
    o.timeout_seconds = 60;
    auto c = HttpClient::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (!c.ok()) return nullptr;
    (*c)->UseToken("root@pam!pbskit", *secret_);
    return std::move(c).value();
  }
  // One API round trip on a new connection; empty on success, else what went wrong.
  static std::string ServedNormally() {
    auto c = Client();
    if (!c) return "connect failed";
    auto v = c->Call("GET", "/version");
    if (!v.ok()) return "GET /version: " + v.status().ToString();
    if (v->at("version") != "4.2") return "GET /version: unexpected " + json::serialize(*v);
    auto g = c->Call("GET", "/admin/datastore/store1/groups");
    if (!g.ok()) return "GET groups: " + g.status().ToString();
    if (!g->is_array() || g->as_array().size() != 1) {
      return "GET groups: unexpected " + json::serialize(*g);
    }
    return "";
  }

  static void RunSlowloris(bool keep_alive);

  static constexpr int kConnections = 1000;
  static constexpr int kThreads = 25;

  static test::TempDir* dir_;
  static Serve* serve_;
  static std::string* secret_;
  static SSL_CTX* ctx_;
};

test::TempDir* ServerLoadTest::dir_ = nullptr;
Serve* ServerLoadTest::serve_ = nullptr;
std::string* ServerLoadTest::secret_ = nullptr;
SSL_CTX* ServerLoadTest::ctx_ = nullptr;

TEST_F(ServerLoadTest, ThousandParallelConnectionsAreAllServed) {
  const std::string before = StoreFingerprint(StorePath());
  const uint64_t rejected_before = serve_->http().stats().rejected;
  const uint64_t active_before = serve_->http().stats().active;
  const std::string version_req = Get("/api2/json/version");
  const std::string list_req = Get("/api2/json/admin/datastore");

  std::vector<std::vector<std::unique_ptr<TlsConn>>> conns(kThreads);
  std::mutex mu;
  std::vector<std::string> failures;
  auto fail = [&](int id, const std::string& what) {
    std::lock_guard<std::mutex> lock(mu);
    failures.push_back("connection " + std::to_string(id) + ": " + what);
  };

  // Phase 1: every thread opens its share of connections and does one request on each, keeping
  // them all open.
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < kConnections; i += kThreads) {
        std::string error;
        auto c = TlsConn::Open(ctx_, serve_->port(), &error);
        if (!c) return fail(i, error);
        bool version = i % 2 == 0;
        RawResponse r;
        if (!c->Send(version ? version_req : list_req, &error) || !c->ReadResponse(&r, &error)) {
          return fail(i, "first request: " + error);
        }
        if (auto e = CheckResponse(version, r); !e.empty()) return fail(i, "first request: " + e);
        conns[t].push_back(std::move(c));
      }
    });
  }
  for (auto& th : threads) th.join();
  threads.clear();
  ASSERT_TRUE(failures.empty()) << failures.size() << " failures, first: " << failures.front();

  // All 1000 are open at the same time on the server.
  EXPECT_GE(serve_->http().stats().active, active_before + kConnections);

  // Phase 2: every connection sends the other request at once, then all answers are read.
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto& mine = conns[t];
      for (size_t k = 0; k < mine.size(); ++k) {
        std::string error;
        int id = t + static_cast<int>(k) * kThreads;
        if (!mine[k]->Send(id % 2 == 0 ? list_req : version_req, &error)) fail(id, error);
      }
      for (size_t k = 0; k < mine.size(); ++k) {
        std::string error;
        int id = t + static_cast<int>(k) * kThreads;
        RawResponse r;
        if (!mine[k]->ReadResponse(&r, &error)) {
          fail(id, "second request: " + error);
          continue;
        }
        if (auto e = CheckResponse(id % 2 != 0, r); !e.empty()) fail(id, "second request: " + e);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_TRUE(failures.empty()) << failures.size() << " failures, first: " << failures.front();
  EXPECT_EQ(serve_->http().stats().rejected, rejected_before);
  conns.clear();

  // The server is still up, lets the closed connections go, and the datastore is unchanged.
  EXPECT_EQ(ServedNormally(), "");
  EXPECT_TRUE(WaitFor([&] { return serve_->http().stats().active <= active_before; }))
      << "connections still counted active: " << serve_->http().stats().active;
  EXPECT_EQ(StoreFingerprint(StorePath()), before);
}

// 200 connections trickle a request header a byte every 100 ms (with `keep_alive`, after one
// complete request on the same connection). Each must be closed by the server without an
// answer, while ordinary clients are served.
void ServerLoadTest::RunSlowloris(bool keep_alive) {
  const std::string before = StoreFingerprint(StorePath());
  constexpr int kSlowThreads = 8;
  constexpr int kSlowPerThread = 25;
  // A header that never ends; one byte every 100 ms of it lasts far beyond the 2 s timeout.
  const std::string header = "GET /api2/json/version HTTP/1.1\r\nHost: localhost\r\n" +
                             TokenHeader() + "X-Padding: " + std::string(600, 'a');
  std::atomic<int> started{0};
  std::mutex mu;
  std::vector<std::string> failures;
  std::vector<std::thread> threads;
  for (int t = 0; t < kSlowThreads; ++t) {
    threads.emplace_back([&] {
      std::vector<std::unique_ptr<TlsConn>> conns;
      auto fail = [&](const std::string& what) {
        std::lock_guard<std::mutex> lock(mu);
        failures.push_back(what);
      };
      for (int i = 0; i < kSlowPerThread; ++i) {
        std::string error;
        auto c = TlsConn::Open(ctx_, serve_->port(), &error, 30);
        if (!c) return fail(error);
        if (keep_alive) {
          RawResponse r;
          if (!c->Send(Get("/api2/json/version"), &error) || !c->ReadResponse(&r, &error)) {
            return fail("first request: " + error);
          }
          if (auto e = CheckResponse(true, r); !e.empty()) return fail("first request: " + e);
        }
        conns.push_back(std::move(c));
      }
      std::vector<bool> closed(conns.size(), false);
      size_t open = conns.size();
      for (size_t pos = 0; pos < header.size() && open > 0; ++pos) {
        for (size_t k = 0; k < conns.size(); ++k) {
          if (closed[k]) continue;
          std::string error;
          if (!conns[k]->Readable(0)) {
            if (conns[k]->Send(header.substr(pos, 1), &error)) continue;
          }
          // The server closed it (or sent something): nothing but the close may arrive.
          bool eof = false;
          std::string got = conns[k]->ReadToClose(&eof);
          if (!eof) fail("slow connection neither closed nor answered");
          if (!got.empty()) fail("slow connection received data: " + got.substr(0, 200));
          closed[k] = true;
          --open;
        }
        if (pos == 2) started.fetch_add(1);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (open > 0) fail(std::to_string(open) + " slow connections were never disconnected");
    });
  }
  // While those trickle, ordinary clients get their answers.
  EXPECT_TRUE(WaitFor([&] { return started.load() == kSlowThreads; }));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(ServedNormally(), "");
  for (auto& th : threads) th.join();
  EXPECT_TRUE(failures.empty()) << failures.size() << " failures, first: " << failures.front();
  EXPECT_EQ(ServedNormally(), "");
  EXPECT_EQ(StoreFingerprint(StorePath()), before);
}

TEST_F(ServerLoadTest, SlowlorisHeadersAreDisconnectedWhileOthersAreServed) { RunSlowloris(false); }

// The header timeout also bounds the second request of a keep-alive connection once its first
// byte arrived (the idle timeout only covers the wait for that byte).
TEST_F(ServerLoadTest, SlowlorisAfterAKeepAliveRequestIsDisconnected) { RunSlowloris(true); }

TEST_F(ServerLoadTest, SlowBodyIsCutOffAndChangesNothing) {
  const std::string before = StoreFingerprint(StorePath());
  const std::string body = R"({"name":"slowns"})";
  auto request = [&](const std::string& b) {
    return "POST /api2/json/admin/datastore/store1/namespace HTTP/1.1\r\nHost: localhost\r\n" +
           TokenHeader() +
           "Content-Type: application/json\r\nContent-Length: " + std::to_string(b.size()) +
           "\r\n\r\n";
  };
  std::string error;
  auto c = TlsConn::Open(ctx_, serve_->port(), &error);
  ASSERT_TRUE(c) << error;
  ASSERT_TRUE(c->Send(request(body), &error)) << error;
  // One byte every 250 ms: the body would take 4 s, the server allows 2 s.
  bool cut = false;
  for (size_t i = 0; i + 1 < body.size() && !cut; ++i) {
    if (c->Readable(250)) {
      cut = true;
      break;
    }
    if (!c->Send(body.substr(i, 1), &error)) cut = true;
  }
  bool eof = false;
  std::string got = c->ReadToClose(&eof);
  EXPECT_TRUE(cut) << "the server waited for the whole slow body";
  EXPECT_TRUE(eof);
  EXPECT_EQ(got, "");
  EXPECT_FALSE(fs::exists(StorePath() + "/ns/slowns"));
  EXPECT_EQ(StoreFingerprint(StorePath()), before);

  // The same request at normal speed is accepted (so the refusal above was the timeout's).
  auto fast = TlsConn::Open(ctx_, serve_->port(), &error);
  ASSERT_TRUE(fast) << error;
  RawResponse r;
  ASSERT_TRUE(fast->Send(request(body) + body, &error) && fast->ReadResponse(&r, &error)) << error;
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(fs::exists(StorePath() + "/ns/slowns"));
  auto api = Client();
  ASSERT_TRUE(api);
  ASSERT_TRUE(api->Call("DELETE", "/admin/datastore/store1/namespace", {{"ns", "slowns"}}).ok());
}

TEST_F(ServerLoadTest, StalledBackupUploadIsEndedAndRemoved) {
  const std::string before = StoreFingerprint(StorePath());
  const int64_t t = kSnapshotTime + 100;
  const std::string snapshot = StorePath() + "/host/stall/2023-11-14T22:15:00Z";
  std::string error;
  auto c = TlsConn::Open(ctx_, serve_->port(), &error);
  ASSERT_TRUE(c) << error;
  std::string upgrade = "GET /api2/json/backup?backup-id=stall&backup-time=" + std::to_string(t) +
                        "&backup-type=host&benchmark=false&debug=false&store=store1 HTTP/1.1\r\n"
                        "Host: localhost\r\n" +
                        TokenHeader() +
                        "Connection: upgrade\r\nUpgrade: proxmox-backup-protocol-v1\r\n\r\n";
  RawResponse r;
  ASSERT_TRUE(c->Send(upgrade, &error) && c->ReadResponse(&r, &error)) << error;
  ASSERT_EQ(r.status, 101) << r.body;
  ASSERT_TRUE(fs::exists(snapshot));

  // HTTP/2: preface, SETTINGS, then a blob upload whose body stops after 1000 of 65536 bytes.
  std::string frames = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  AppendFrame(&frames, 0x4, 0, 0, "");
  AppendFrame(&frames, 0x1, 0x4, 1,
              HpackBlock({{":method", "POST"},
                          {":scheme", "https"},
                          {":path", "/blob?file-name=stall.blob&encoded-size=65536"},
                          {":authority", "localhost:8007"},
                          {"content-type", "application/octet-stream"}}));
  AppendFrame(&frames, 0x0, 0, 1, std::string(1000, 'x'));
  ASSERT_TRUE(c->Send(frames, &error)) << error;

  // The client stays connected and silent; the server's 1 s idle timeout ends the session.
  bool eof = false;
  std::string got = c->ReadToClose(&eof);
  EXPECT_TRUE(eof) << "the server did not end the stalled session";
  // Only connection-level frames came back (SETTINGS, its ACK, WINDOW_UPDATE), no response.
  size_t pos = 0;
  while (pos + 9 <= got.size()) {
    size_t len = (static_cast<uint8_t>(got[pos]) << 16) |
                 (static_cast<uint8_t>(got[pos + 1]) << 8) | static_cast<uint8_t>(got[pos + 2]);
    uint8_t type = static_cast<uint8_t>(got[pos + 3]);
    EXPECT_TRUE(type == 0x4 || type == 0x8 || type == 0x7 || type == 0x6)
        << "unexpected frame type " << int(type) << " from the server";
    pos += 9 + len;
  }
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(StorePath() + "/host/stall"); }))
      << "the unfinished snapshot of the stalled session was not removed";
  EXPECT_EQ(StoreFingerprint(StorePath()), before);

  // The group lock was released: a new session for the same group starts at once.
  H2ClientOptions o;
  o.port = serve_->port();
  o.fingerprint = serve_->fingerprint();
  o.authorization = "PBSAPIToken root@pam!pbskit:" + *secret_;
  o.timeout_seconds = 60;
  std::string path = "/api2/json/backup?" + EncodeH2Query({{"store", "store1"},
                                                           {"backup-type", "host"},
                                                           {"backup-id", "stall"},
                                                           {"backup-time", std::to_string(t)}});
  auto again = H2Connection::Upgrade(o, path, kBackupProtocolId);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  auto prev = (*again)->Request("GET", "/previous_backup_time");
  ASSERT_TRUE(prev.ok()) << prev.status().ToString();
  EXPECT_EQ(prev->status, 200) << prev->body;
  (*again)->Abort();
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(StorePath() + "/host/stall"); }));
  EXPECT_EQ(StoreFingerprint(StorePath()), before);
}

TEST_F(ServerLoadTest, ClientThatNeverReadsDoesNotBlockOthers) {
  const std::string before = StoreFingerprint(StorePath());
  const uint64_t active_before = serve_->http().stats().active;
  constexpr int kRequests = 16;  // 64 MiB of answers, far more than the socket buffers hold
  std::string download =
      Get("/api2/json/admin/datastore/store1/download?backup-type=host&backup-id=load"
          "&backup-time=" +
          std::to_string(kSnapshotTime) + "&file-name=big.blob");
  std::string error;
  auto c = TlsConn::Open(ctx_, serve_->port(), &error);
  ASSERT_TRUE(c) << error;
  std::string pipelined;
  for (int i = 0; i < kRequests; ++i) pipelined += download;
  ASSERT_TRUE(c->Send(pipelined, &error)) << error;

  // While its answers pile up unread, everybody else is served.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(ServedNormally(), "");

  // The server gives up on the stuck connection after its write timeout...
  EXPECT_TRUE(WaitFor([&] { return serve_->http().stats().active <= active_before; }))
      << "the connection of the client that never reads is still open";
  // ...so reading now ends early with the connection closed, not with all 16 answers.
  bool eof = false;
  std::string got = c->ReadToClose(&eof);
  EXPECT_TRUE(eof);
  EXPECT_LT(got.size(), kRequests * kBigBlobBytes);
  EXPECT_EQ(got.compare(0, 15, "HTTP/1.1 200 OK"), 0);
  EXPECT_EQ(ServedNormally(), "");
  EXPECT_EQ(StoreFingerprint(StorePath()), before);
}

// The same on the HTTP/2 reader protocol: a reader that opens its flow-control windows, asks for
// the 4 MiB blob 16 times and never reads is dropped by the session's idle timeout once its
// socket is full; other clients are served meanwhile.
TEST_F(ServerLoadTest, ReaderThatNeverReadsIsDropped) {
  const std::string before = StoreFingerprint(StorePath());
  const uint64_t active_before = serve_->http().stats().active;
  constexpr int kRequests = 16;
  std::string error;
  auto c = TlsConn::Open(ctx_, serve_->port(), &error);
  ASSERT_TRUE(c) << error;
  std::string upgrade =
      "GET /api2/json/reader?backup-id=load&backup-time=" + std::to_string(kSnapshotTime) +
      "&backup-type=host&store=store1 HTTP/1.1\r\nHost: localhost\r\n" + TokenHeader() +
      "Connection: upgrade\r\nUpgrade: proxmox-backup-reader-protocol-v1\r\n\r\n";
  RawResponse r;
  ASSERT_TRUE(c->Send(upgrade, &error) && c->ReadResponse(&r, &error)) << error;
  ASSERT_EQ(r.status, 101) << r.body;

  std::string frames = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  // SETTINGS_INITIAL_WINDOW_SIZE = 2^31-1, and the connection window opened as far.
  AppendFrame(&frames, 0x4, 0, 0, std::string("\x00\x04\x7f\xff\xff\xff", 6));
  AppendFrame(&frames, 0x8, 0, 0, std::string("\x7f\xff\x00\x00", 4));
  for (int i = 0; i < kRequests; ++i) {
    AppendFrame(&frames, 0x1, 0x5, static_cast<uint32_t>(2 * i + 1),
                HpackBlock({{":method", "GET"},
                            {":scheme", "https"},
                            {":path", "/download?file-name=big.blob"},
                            {":authority", "localhost:8007"}}));
  }
  ASSERT_TRUE(c->Send(frames, &error)) << error;

  for (int i = 0; i < 5; ++i) EXPECT_EQ(ServedNormally(), "");
  EXPECT_TRUE(WaitFor([&] { return serve_->http().stats().active <= active_before; }))
      << "the reader session that never reads is still open";
  bool eof = false;
  std::string got = c->ReadToClose(&eof);
  EXPECT_TRUE(eof);
  EXPECT_LT(got.size(), kRequests * kBigBlobBytes);
  EXPECT_GT(got.size(), kBigBlobBytes / 2) << "the server sent hardly anything";
  EXPECT_EQ(ServedNormally(), "");
  EXPECT_EQ(StoreFingerprint(StorePath()), before);
}

// ---- the connection cap, on a bare HttpServer (no datastore needed) ----

class OkHandler : public HttpHandler {
 public:
  size_t MaxBodySize(const HttpRequest&) const override { return 1024; }
  HttpResponse Handle(HttpRequest&) override {
    HttpResponse r;
    r.body = R"({"data":"ok"})";
    return r;
  }
};

TEST(ConnectionCapTest, ConnectionsAboveTheCapGet503AndAreServedOnceASlotIsFree) {
  std::signal(SIGPIPE, SIG_IGN);
  test::TempDir dir;
  CertificateOptions cert;
  cert.rsa_bits = 2048;
  ASSERT_TRUE(EnsureProxyCertificate(dir.path(), cert).ok());
  HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  o.cert_file = dir / kProxyCertFile;
  o.key_file = dir / kProxyKeyFile;
  o.threads = 2;
  o.max_connections = 2;
  o.max_refusing = 2;
  OkHandler handler;
  auto server = HttpServer::Start(o, &handler);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  uint16_t port = (*server)->port();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  const std::string get = "GET /api2/json/version HTTP/1.1\r\nHost: localhost\r\n\r\n";
  auto served = [&](TlsConn& c) {
    std::string error;
    RawResponse r;
    if (!c.Send(get, &error) || !c.ReadResponse(&r, &error)) return error;
    return r.status == 200 && r.body == R"({"data":"ok"})"
               ? std::string()
               : std::to_string(r.status) + " " + r.body;
  };
  std::string error;
  auto a = TlsConn::Open(ctx, port, &error);
  ASSERT_TRUE(a) << error;
  auto b = TlsConn::Open(ctx, port, &error);
  ASSERT_TRUE(b) << error;
  EXPECT_EQ(served(*a), "");
  EXPECT_EQ(served(*b), "");
  EXPECT_EQ((*server)->stats().active, 2u);

  // The third connection is told why it is not served, then closed.
  auto c = TlsConn::Open(ctx, port, &error);
  ASSERT_TRUE(c) << error;
  RawResponse r;
  ASSERT_TRUE(c->Send(get, &error) && c->ReadResponse(&r, &error)) << error;
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "too many connections (limit 2), try again later");
  bool eof = false;
  EXPECT_EQ(c->ReadToClose(&eof), "");
  EXPECT_TRUE(eof);
  c.reset();
  ASSERT_TRUE(WaitFor([&] { return (*server)->stats().refusing == 0; }));

  // At most max_refusing connections are answered at a time; beyond them the server closes
  // new connections at once (the TLS handshake fails).
  auto d = TlsConn::Open(ctx, port, &error);
  ASSERT_TRUE(d) << error;
  auto e = TlsConn::Open(ctx, port, &error);
  ASSERT_TRUE(e) << error;
  auto f = TlsConn::Open(ctx, port, &error);
  EXPECT_FALSE(f) << "a connection beyond max_connections + max_refusing was accepted";
  EXPECT_EQ((*server)->stats().rejected, 4u);
  d.reset();
  e.reset();

  // A free slot serves again; the server kept serving the first connection throughout.
  a.reset();
  EXPECT_TRUE(WaitFor([&] { return (*server)->stats().active == 1; }));
  auto g = TlsConn::Open(ctx, port, &error);
  ASSERT_TRUE(g) << error;
  EXPECT_EQ(served(*g), "");
  EXPECT_EQ(served(*b), "");
  g.reset();
  b.reset();
  SSL_CTX_free(ctx);
}

TEST(HandshakeTimeoutTest, SilentAndStalledHandshakesAreClosed) {
  test::TempDir dir;
  CertificateOptions cert;
  cert.rsa_bits = 2048;
  ASSERT_TRUE(EnsureProxyCertificate(dir.path(), cert).ok());
  HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  o.cert_file = dir / kProxyCertFile;
  o.key_file = dir / kProxyKeyFile;
  o.threads = 2;
  o.handshake_timeout = std::chrono::seconds(1);
  OkHandler handler;
  auto server = HttpServer::Start(o, &handler);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  // One connection sends nothing, one the first 5 bytes of a TLS record header; the server
  // must close both (FIN or reset) instead of holding them.
  for (const std::string& sent : {std::string(), std::string("\x16\x03\x01\x02\x00", 5)}) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((*server)->port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    if (!sent.empty()) {
      ASSERT_EQ(::send(fd, sent.data(), sent.size(), MSG_NOSIGNAL),
                static_cast<ssize_t>(sent.size()));
    }
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 60000), 1) << "the server kept a silent connection for 60 s";
    char buf[64];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    EXPECT_LE(n, 0) << "the server sent data to a client that never completed a handshake";
    ::close(fd);
  }
  EXPECT_TRUE(WaitFor([&] { return (*server)->stats().active == 0; }));
}

}  // namespace
}  // namespace pbskit::server
