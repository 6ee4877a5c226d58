// Internal pieces of garbage collection shared by gc.cc, gc_mark.cc and gc_sweep.cc.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "pbskit/datastore/chunk_store.h"
#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/gc.h"
#include "pbskit/datastore/task_log.h"

namespace pbskit::gc_internal {

// Phase 1: touches every chunk referenced by an index file (walk + namespace iteration + PBS's
// move journal). `cache_capacity` 0 disables the digest cache. Aborted once `*abort` is set.
Status MarkUsedChunks(DataStore& store, uint64_t cache_capacity, const std::atomic<bool>* abort,
                      GarbageCollectionStatus* status, TaskLogger* log);

// Phase 2: removes / counts chunk files by atime (PBS sweep_unused_chunks + cond_sweep_chunk).
// Aborted once `*abort` is set (checked before each chunk file).
Status SweepUnusedChunks(ChunkStore& chunks, const std::string& store_name, int64_t oldest_writer,
                         int64_t min_atime, const std::atomic<bool>* abort,
                         GarbageCollectionStatus* status, TaskLogger* log);

// Rust's `{:?}` of a path: the text in double quotes with '"' and '\' escaped.
std::string DebugQuote(const std::string& path);

// Logs through `log` when it is set.
inline void Info(TaskLogger* log, const std::string& msg) {
  if (log) log->Info(msg);
}
inline void Warn(TaskLogger* log, const std::string& msg) {
  if (log) log->Warn(msg);
}

}  // namespace pbskit::gc_internal
