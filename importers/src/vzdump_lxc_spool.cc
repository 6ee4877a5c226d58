// Container tar import: the spool file writer (file contents of compressed archives).
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "vzdump_lxc_internal.h"

namespace pbskit {

LxcSpoolWriter::LxcSpoolWriter(int fd, std::string dir) : fd_(fd), dir_(std::move(dir)) {}

LxcSpoolWriter::~LxcSpoolWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status LxcSpoolWriter::Append(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    if (cur_.capacity() < kBufferSize) cur_.reserve(kBufferSize);
    size_t take = std::min(n, kBufferSize - cur_.size());
    cur_.insert(cur_.end(), p, p + take);
    p += take;
    n -= take;
    if (cur_.size() == kBufferSize) PBSKIT_RETURN_IF_ERROR(HandOff());
  }
  return Status::OK();
}

Status LxcSpoolWriter::HandOff() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
  // Bounded: at most kBuffers buffers wait for the writer.
  cv_.wait(lock, [&] { return full_.size() < kBuffers || !error_.ok(); });
  if (!error_.ok()) return error_;
  const uint64_t at = handed_;
  handed_ += cur_.size();
  full_.emplace_back(at, std::move(cur_));
  cur_ = std::vector<uint8_t>();
  if (!free_.empty()) {
    cur_ = std::move(free_.back());
    free_.pop_back();
  }
  cur_.clear();
  cv_.notify_all();
  return Status::OK();
}

Status LxcSpoolWriter::Flush() {
  if (!cur_.empty()) PBSKIT_RETURN_IF_ERROR(HandOff());
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return (full_.empty() && !busy_) || !error_.ok(); });
  return error_;
}

void LxcSpoolWriter::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !full_.empty(); });
    if (stop_) return;
    auto [at, buf] = std::move(full_.front());
    full_.pop_front();
    busy_ = true;
    lock.unlock();
    Status st = Write(at, buf);
    lock.lock();
    busy_ = false;
    if (!st.ok() && error_.ok()) error_ = st;
    buf.clear();
    free_.push_back(std::move(buf));
    cv_.notify_all();
    if (!error_.ok()) return;
  }
}

Status LxcSpoolWriter::Write(uint64_t at, const std::vector<uint8_t>& buf) {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t w = pwrite(fd_, buf.data() + done, buf.size() - done, static_cast<off_t>(at + done));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Status::FromErrno(errno, "write to the spool file in '" + dir_ + "'");
    done += static_cast<size_t>(w);
  }
  return Status::OK();
}

}  // namespace pbskit
