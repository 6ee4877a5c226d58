// WritebackPacer: writes a datastore's dirty pages back while a backup or an import is still
// producing chunks.
//
// With sync-level filesystem (PBS's default) a snapshot ends in syncfs(2). Left alone, the
// kernel keeps the new chunk files in the page cache until then, and the writer waits for the
// whole write at the end with idle cores. A pacer runs syncfs on the store's file system on a
// background thread whenever enough new chunk bytes were written (coalesced: at most one
// request pending), so the disk writes overlap the hashing and compression and the final
// syncfs finds little left. Its own syncfs errors are ignored: the final syncfs reports them.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/fs.h"

namespace pbskit {

class WritebackPacer {
 public:
  // Bytes of new chunk data between two background syncfs calls.
  static constexpr uint64_t kDefaultStep = 256ull << 20;

  // Starts the thread only when `store` syncs its file system at the end (sync-level
  // filesystem) and uses the real file system (a fault-injecting one in tests then sees exactly
  // the calls the writer makes); otherwise the pacer does nothing. `store` must outlive it.
  explicit WritebackPacer(DataStore& store, uint64_t step = kDefaultStep);
  // Waits for a syncfs in progress, then stops the thread.
  ~WritebackPacer();
  WritebackPacer(const WritebackPacer&) = delete;
  WritebackPacer& operator=(const WritebackPacer&) = delete;

  // Counts `bytes` of new chunk data; every `step` bytes asks for one syncfs. Never blocks on
  // the disk. Thread safe.
  void Add(uint64_t bytes);

 private:
  void Loop();

  Filesystem* fs_ = nullptr;
  ScopedFd fd_;
  uint64_t step_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t since_kick_ = 0;
  bool pending_ = false, stop_ = false;
  std::thread thread_;
};

}  // namespace pbskit
