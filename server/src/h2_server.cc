#include "pbskit/server/h2_server.h"

#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace pbskit::server {

const std::string* H2Request::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

namespace {

constexpr size_t kOutputBatch = 1 << 20;    // coalesce frames into writes of up to 1 MiB
constexpr size_t kMaxDataFrame = 1 << 20;   // DATA payload we send per frame (peer max permitting)

// Worker threads shared by every HTTP/2 connection of the process for concurrent requests
// (CPU-bound chunk checks): one per core, at least two.
class HandlerPool {
 public:
  static HandlerPool& Shared() {
    static HandlerPool pool(std::max(2u, std::thread::hardware_concurrency()));
    return pool;
  }
  ~HandlerPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Post(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

 private:
  explicit HandlerPool(unsigned n) {
    for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this] { Work(); });
  }
  void Work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
};

// Responses of concurrent requests, handed from the workers to the connection's thread; the
// eventfd wakes that thread when it waits for input.
struct Completions {
  explicit Completions(int fd) : wake_fd(fd) {}
  ~Completions() {
    if (wake_fd >= 0) ::close(wake_fd);
  }
  void Push(int32_t stream_id, H2Response response) {
    {
      std::lock_guard<std::mutex> lock(mu);
      done.emplace_back(stream_id, std::move(response));
    }
    uint64_t one = 1;
    ssize_t w = ::write(wake_fd, &one, sizeof one);
    (void)w;  // the counter cannot overflow here; a failed write only delays the wake-up
  }
  std::vector<std::pair<int32_t, H2Response>> Take() {
    uint64_t v = 0;
    ssize_t r = ::read(wake_fd, &v, sizeof v);
    (void)r;  // EAGAIN: nothing signalled since the last Take
    std::lock_guard<std::mutex> lock(mu);
    return std::exchange(done, {});
  }
  const int wake_fd;
  std::mutex mu;
  std::vector<std::pair<int32_t, H2Response>> done;
};

struct StreamState {
  H2Request request;
  size_t header_bytes = 0;
  size_t max_body = 0;
  bool limit_known = false;
  bool too_large = false;
  bool request_done = false;  // END_STREAM received
  bool responded = false;
  bool dispatched = false;  // handed to a worker; the request is gone from here
  // Response body being sent.
  std::string response_body;
  size_t sent = 0;
};

class ServerConnection {
 public:
  ServerConnection(UpgradedStream& stream, H2Handler& handler, const H2ServerOptions& options)
      : stream_(stream), handler_(handler), options_(options) {}
  ~ServerConnection() {
    if (session_) nghttp2_session_del(session_);
  }

  H2ConnectionStats Run();

 private:
  static ServerConnection* Self(void* p) { return static_cast<ServerConnection*>(p); }
  Status Init();
  Status Flush();
  void Dispatch();
  // The next input into `buf`: bytes read (0: the peer closed), or std::nullopt when it only
  // waited (for worker results, or for input while workers run).
  Result<std::optional<size_t>> NextInput(std::vector<uint8_t>& buf);
  // Waits (at most 1 s) until a worker signals a finished request.
  void WaitForResults();
  // Answers the concurrent requests that finished since the last call.
  void Collect();
  // Waits for every concurrent request still running (their handler must not outlive Run).
  void Drain();
  void Respond(int32_t stream_id, StreamState& st, H2Response response);
  void Fail(std::string reason, uint32_t error_code);
  size_t BufferedBytes() const;

  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* user);
  static int OnDataChunk(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data,
                         size_t len, void* user);
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user);
  static ssize_t ReadLength(nghttp2_session*, uint8_t frame_type, int32_t stream_id,
                            int32_t session_window, int32_t stream_window, uint32_t max_frame,
                            void* user);
  static ssize_t ReadBody(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                          uint32_t* data_flags, nghttp2_data_source* source, void* user);

  UpgradedStream& stream_;
  H2Handler& handler_;
  H2ServerOptions options_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, std::unique_ptr<StreamState>> streams_;
  std::deque<int32_t> ready_;  // streams whose request is complete, in completion order
  H2ConnectionStats stats_;
  std::string out_;
  bool failed_ = false;
  std::shared_ptr<Completions> completions_;
  size_t in_flight_ = 0;  // concurrent requests handed to workers and not yet collected
};

Status ServerConnection::Init() {
  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return Status::IoError("out of memory");
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, OnBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs, OnHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, OnDataChunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, OnFrameRecv);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, OnFrameSend);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, OnStreamClose);
  nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, ReadLength);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // Our own limit on header bytes applies; nghttp2's HPACK table stays at its default.
  nghttp2_option_set_max_send_header_block_length(opt, 64 * 1024);
  int rv = nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) return Status::IoError(std::string("nghttp2: ") + nghttp2_strerror(rv));
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, options_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, options_.initial_window_size},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, options_.max_frame_size},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(options_.max_header_bytes)},
  };
  rv = nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
  if (rv == 0) {
    rv = nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                               static_cast<int32_t>(options_.initial_window_size));
  }
  if (rv != 0) return Status::IoError(std::string("nghttp2: ") + nghttp2_strerror(rv));
  return Status::OK();
}

H2ConnectionStats ServerConnection::Run() {
  Status st = Init();
  if (!st.ok()) {
    stats_.close_reason = st.message();
    return stats_;
  }
  int wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) {
    stats_.close_reason = std::string("eventfd failed: ") + std::strerror(errno);
    return stats_;
  }
  completions_ = std::make_shared<Completions>(wake);
  if (options_.idle_timeout.count() > 0) stream_.SetIdleTimeout(options_.idle_timeout);
  // Input goes to nghttp2 straight from where it was read: first what the HTTP/1.1 parser
  // read past the upgrade, then `buf`.
  const std::string leftover = stream_.TakeLeftover();
  const uint8_t* input = reinterpret_cast<const uint8_t*>(leftover.data());
  size_t input_len = leftover.size();
  std::vector<uint8_t> buf(256 * 1024);
  while (!failed_) {
    if (input_len > 0) {
      ssize_t rv = nghttp2_session_mem_recv(session_, input, input_len);
      input_len = 0;
      if (rv < 0) {
        Fail(std::string("HTTP/2 protocol error: ") + nghttp2_strerror(static_cast<int>(rv)),
             NGHTTP2_PROTOCOL_ERROR);
        break;
      }
    }
    if (!failed_ && BufferedBytes() > options_.max_buffered_bytes) {
      Fail("too many request body bytes buffered on one connection", NGHTTP2_ENHANCE_YOUR_CALM);
      break;
    }
    Collect();
    Dispatch();
    st = Flush();
    if (!st.ok()) {
      stats_.close_reason = st.message();
      break;
    }
    if (in_flight_ == 0 && !nghttp2_session_want_read(session_) &&
        !nghttp2_session_want_write(session_)) {
      break;
    }
    auto n = NextInput(buf);
    if (!n.ok()) {
      stats_.close_reason = n.status().message();
      break;
    }
    if (!*n) continue;      // only waited: results may be ready
    if (**n == 0) break;   // peer closed
    stats_.bytes_received += **n;
    input = buf.data();
    input_len = **n;
  }
  Drain();
  (void)Flush();  // GOAWAY, if any
  return stats_;
}

Result<std::optional<size_t>> ServerConnection::NextInput(std::vector<uint8_t>& buf) {
  if (in_flight_ == 0) {
    // Nothing running: a plain blocking read, bounded by the stream's idle timeout.
    PBSKIT_ASSIGN_OR_RETURN(size_t n, stream_.Read(buf.data(), buf.size()));
    return std::optional<size_t>(n);
  }
  if (in_flight_ >= options_.max_concurrent_handlers) {
    // Enough work queued for this connection: read nothing until some of it finishes.
    WaitForResults();
    return std::optional<size_t>();
  }
  PBSKIT_ASSIGN_OR_RETURN(std::optional<size_t> n, stream_.ReadAvailable(buf.data(), buf.size()));
  if (n) return n;
  // Workers are busy, so the connection is not idle: wait for input or a result.
  PBSKIT_RETURN_IF_ERROR(
      stream_.WaitReadable(completions_->wake_fd, std::chrono::milliseconds(1000)).status());
  return std::optional<size_t>();
}

void ServerConnection::WaitForResults() {
  pollfd p{completions_->wake_fd, POLLIN, 0};
  (void)::poll(&p, 1, 1000);
}

void ServerConnection::Collect() {
  if (in_flight_ == 0) return;
  for (auto& [id, response] : completions_->Take()) {
    --in_flight_;
    auto it = streams_.find(id);
    if (it == streams_.end() || failed_) continue;  // the peer reset the stream meanwhile
    Respond(id, *it->second, std::move(response));
  }
}

void ServerConnection::Drain() {
  while (in_flight_ > 0) {
    WaitForResults();
    in_flight_ -= completions_->Take().size();
  }
}

void ServerConnection::Fail(std::string reason, uint32_t error_code) {
  failed_ = true;
  stats_.close_reason = std::move(reason);
  nghttp2_session_terminate_session(session_, error_code);
}

size_t ServerConnection::BufferedBytes() const {
  size_t n = 0;
  for (const auto& [id, st] : streams_) {
    if (!st->request_done) n += st->request.body.size();
  }
  return n;
}

Status ServerConnection::Flush() {
  for (;;) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) return Status::IoError(std::string("nghttp2: ") + nghttp2_strerror(static_cast<int>(n)));
    if (n > 0) out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    if (n == 0 || out_.size() >= kOutputBatch) {
      if (!out_.empty()) {
        PBSKIT_RETURN_IF_ERROR(
            stream_.Write(reinterpret_cast<const uint8_t*>(out_.data()), out_.size()));
        stats_.bytes_sent += out_.size();
        out_.clear();
      }
      if (n == 0) return Status::OK();
    }
  }
}

void ServerConnection::Dispatch() {
  while (!ready_.empty() && !failed_) {
    int32_t id = ready_.front();
    auto it = streams_.find(id);
    if (it == streams_.end() || it->second->responded || it->second->dispatched) {
      ready_.pop_front();
      continue;
    }
    StreamState& st = *it->second;
    if (st.too_large) {
      ready_.pop_front();
      ++stats_.requests;
      H2Response r;
      r.status = 413;
      r.body = "request body too large (limit " + std::to_string(st.max_body) + " bytes)";
      Respond(id, st, std::move(r));
      continue;
    }
    bool concurrent = handler_.IsConcurrent(st.request);
    if (concurrent ? in_flight_ >= options_.max_concurrent_handlers : in_flight_ > 0) {
      return;  // waits for running requests (a later Collect dispatches it)
    }
    ready_.pop_front();
    ++stats_.requests;
    if (!concurrent) {
      H2Response r = handler_.Handle(st.request);
      Respond(id, st, std::move(r));
      continue;
    }
    st.dispatched = true;
    ++in_flight_;
    HandlerPool::Shared().Post(
        [done = completions_, handler = &handler_, id, request = std::move(st.request)]() mutable {
          done->Push(id, handler->Handle(request));
        });
  }
}

void ServerConnection::Respond(int32_t stream_id, StreamState& st, H2Response response) {
  st.responded = true;
  std::string status = std::to_string(response.status);
  std::vector<std::pair<std::string, std::string>> fields;
  fields.emplace_back(":status", status);
  if (!response.content_type.empty()) fields.emplace_back("content-type", response.content_type);
  for (auto& h : response.headers) fields.push_back(h);
  std::vector<nghttp2_nv> nva;
  for (auto& [k, v] : fields) {
    nva.push_back({reinterpret_cast<uint8_t*>(k.data()), reinterpret_cast<uint8_t*>(v.data()),
                   k.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
  }
  st.response_body = std::move(response.body);
  st.sent = 0;
  nghttp2_data_provider provider{};
  provider.read_callback = ReadBody;
  int rv = nghttp2_submit_response(session_, stream_id, nva.data(), nva.size(),
                                   &provider);
  if (rv != 0) Fail(std::string("nghttp2: ") + nghttp2_strerror(rv), NGHTTP2_INTERNAL_ERROR);
}

int ServerConnection::OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto st = std::make_unique<StreamState>();
  st->request.stream_id = frame->hd.stream_id;
  Self(user)->streams_[frame->hd.stream_id] = std::move(st);
  return 0;
}

int ServerConnection::OnHeader(nghttp2_session*, const nghttp2_frame* frame,
                               const uint8_t* name, size_t namelen, const uint8_t* value,
                               size_t valuelen, uint8_t, void* user) {
  auto* self = Self(user);
  auto it = self->streams_.find(frame->hd.stream_id);
  if (it == self->streams_.end() || it->second->request_done) return 0;  // trailers: ignored
  StreamState& st = *it->second;
  st.header_bytes += namelen + valuelen;
  if (st.header_bytes > self->options_.max_header_bytes) {
    self->streams_.erase(it);
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // nghttp2 resets the stream
  }
  std::string k(reinterpret_cast<const char*>(name), namelen);
  std::string v(reinterpret_cast<const char*>(value), valuelen);
  if (k == ":method") {
    st.request.method = std::move(v);
  } else if (k == ":path") {
    auto q = v.find('?');
    st.request.path = v.substr(0, q);
    if (q != std::string::npos) st.request.query = v.substr(q + 1);
  } else if (!k.empty() && k[0] != ':') {
    st.request.headers.emplace_back(std::move(k), std::move(v));
  }
  return 0;
}

int ServerConnection::OnDataChunk(nghttp2_session*, uint8_t, int32_t stream_id,
                                  const uint8_t* data, size_t len, void* user) {
  auto* self = Self(user);
  auto it = self->streams_.find(stream_id);
  if (it == self->streams_.end()) return 0;
  StreamState& st = *it->second;
  if (!st.limit_known) {
    st.max_body = self->handler_.MaxBodySize(st.request);
    st.limit_known = true;
    // One allocation for the whole body when the peer announced its size (within limits).
    if (const std::string* cl = st.request.Header("content-length")) {
      char* end = nullptr;
      unsigned long long n = std::strtoull(cl->c_str(), &end, 10);
      if (end && *end == '\0' && n <= st.max_body) st.request.body.reserve(n);
    }
  }
  if (st.too_large) return 0;
  if (st.request.body.size() + len > st.max_body) {
    st.too_large = true;
    st.request.body.clear();
    st.request.body.shrink_to_fit();
    // Answer at once; the rest of the body is discarded (OnFrameSend resets the stream).
    self->ready_.push_back(stream_id);
    return 0;
  }
  st.request.body.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int ServerConnection::OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = Self(user);
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
  auto it = self->streams_.find(frame->hd.stream_id);
  if (it == self->streams_.end()) return 0;
  StreamState& st = *it->second;
  st.request_done = true;
  if (!st.too_large) {
    if (!st.limit_known) {
      st.max_body = self->handler_.MaxBodySize(st.request);
      st.limit_known = true;
    }
    self->ready_.push_back(frame->hd.stream_id);
  }
  return 0;
}

int ServerConnection::OnFrameSend(nghttp2_session* session, const nghttp2_frame* frame,
                                  void* user) {
  auto* self = Self(user);
  if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    auto it = self->streams_.find(frame->hd.stream_id);
    if (it != self->streams_.end() && !it->second->request_done) {
      // We answered before the request body ended (refused upload): stop the upload.
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    }
  }
  return 0;
}

int ServerConnection::OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t, void* user) {
  Self(user)->streams_.erase(stream_id);
  return 0;
}

ssize_t ServerConnection::ReadLength(nghttp2_session*, uint8_t, int32_t, int32_t session_window,
                                     int32_t stream_window, uint32_t max_frame, void*) {
  int64_t n = std::min<int64_t>({session_window, stream_window, max_frame, kMaxDataFrame});
  return static_cast<ssize_t>(std::max<int64_t>(n, 1));
}

ssize_t ServerConnection::ReadBody(nghttp2_session*, int32_t stream_id, uint8_t* buf,
                                   size_t length, uint32_t* data_flags, nghttp2_data_source*,
                                   void* user) {
  auto* self = Self(user);
  auto it = self->streams_.find(stream_id);
  if (it == self->streams_.end()) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  StreamState& st = *it->second;
  size_t n = std::min(length, st.response_body.size() - st.sent);
  if (n) std::memcpy(buf, st.response_body.data() + st.sent, n);
  st.sent += n;
  if (st.sent == st.response_body.size()) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    std::string().swap(st.response_body);
    st.sent = 0;
  }
  return static_cast<ssize_t>(n);
}

}  // namespace

H2ConnectionStats ServeH2Connection(UpgradedStream& stream, H2Handler& handler,
                                    const H2ServerOptions& options) {
  ServerConnection conn(stream, handler, options);
  return conn.Run();
}

}  // namespace pbskit::server
