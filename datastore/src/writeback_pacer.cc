#include "pbskit/datastore/writeback_pacer.h"

#include <fcntl.h>

namespace pbskit {

WritebackPacer::WritebackPacer(DataStore& store, uint64_t step) : step_(step) {
  if (store.sync_level() != SyncLevel::kFilesystem || store.fs() != PosixFilesystem()) return;
  auto fd = store.fs()->Open(store.base(), O_RDONLY | O_DIRECTORY);
  if (!fd.ok()) return;
  fd_ = ScopedFd(store.fs(), *fd);
  fs_ = store.fs();
  thread_ = std::thread([this] { Loop(); });
}

WritebackPacer::~WritebackPacer() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void WritebackPacer::Add(uint64_t bytes) {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    since_kick_ += bytes;
    if (since_kick_ < step_) return;
    since_kick_ = 0;
    pending_ = true;
  }
  cv_.notify_one();
}

void WritebackPacer::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || pending_; });
    if (stop_) return;
    pending_ = false;
    lock.unlock();
    (void)fs_->SyncFs(fd_.get());
    lock.lock();
  }
}

}  // namespace pbskit
