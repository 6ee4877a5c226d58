// Private to the snapshot writer: the upload threads shared by its push-style dynamic indexes.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "pbskit/datastore/snapshot_writer.h"

namespace pbskit {

// A fixed set of threads digesting, encoding and inserting chunks for the streams of one
// SnapshotWriter. The queue holds at most `capacity` chunks; Submit blocks while it is full, so
// memory stays bounded by (capacity + threads + kMaxSpare) chunk buffers, plus the one the
// producer fills. Thread safe.
class ChunkUploader {
 public:
  ChunkUploader(SnapshotWriter* writer, size_t threads, size_t capacity);
  ~ChunkUploader();
  ChunkUploader(const ChunkUploader&) = delete;
  ChunkUploader& operator=(const ChunkUploader&) = delete;

  // Queues chunk `index` of `stream`; the stream's ChunkDone is called exactly once for it
  // (with Aborted when the uploader shuts down before the chunk ran). Returns Aborted after
  // Shutdown (ChunkDone is not called then).
  Status Submit(DynamicIndexStream* stream, size_t index, std::vector<uint8_t> data);
  // An empty buffer for the next chunk: one a finished chunk gave back (its pages already
  // mapped, so filling it costs no page faults), else a new one.
  std::vector<uint8_t> TakeBuffer();
  // Drops queued chunks (reporting Aborted to their streams), waits for the running ones and
  // joins the threads. Idempotent.
  void Shutdown();

 private:
  struct Job {
    DynamicIndexStream* stream;
    size_t index;
    std::vector<uint8_t> data;
  };
  void Loop();

  SnapshotWriter* writer_;
  size_t capacity_;
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<Job> queue_;
  std::vector<std::vector<uint8_t>> spare_;  // at most kMaxSpare buffers of finished chunks
  static constexpr size_t kMaxSpare = 2;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace pbskit
