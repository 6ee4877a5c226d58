// Garbage collection of a datastore's chunk store with PBS 4.x semantics (FORMATS.md §8.3, §8.4;
// pbs-datastore datastore.rs garbage_collection, chunk_store.rs sweep_unused_chunks).
//
//   1. exclusive process lock on <base>/.lock (fails while any other process writes);
//   2. atime safety check (unless gc-atime-safety-check=false): insert the 4 MiB zero chunk,
//      sleep 1 s, touch it and require its atime to move forward;
//   3. min_atime = start - (gc-atime-cutoff minutes, default 24 h 5 min); when a writer of this
//      process started earlier, min_atime = oldest_writer - 5 min;
//   4. phase 1 (mark): touch every chunk referenced by any .fidx/.didx found by a file-system
//      walk of <base> (hidden entries skipped) and by the namespace/group/snapshot iteration,
//      remembering touched digests in a cache of gc-cache-capacity entries; a missing chunk keeps
//      its <digest>.N.bad copies alive and is reported;
//   5. phase 2 (sweep): every chunk / bad chunk with atime < min_atime is removed; atime before
//      the oldest writer counts as pending; .using markers are removed;
//   6. the status is written to <base>/.gc-status as PBS writes it.
// Memory stays flat in the number of chunks: the walk keeps only index-file paths, indexes are
// read in 64 KiB blocks and the sweep handles one prefix directory at a time; the digest cache is
// one array fixed by its capacity. See docs/gc.md and docs/formats/gc-status.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pbskit/datastore/chunk_store.h"
#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/task_log.h"
#include "pbskit/formats/status.h"

namespace pbskit {

inline constexpr char kGcStatusFileName[] = ".gc-status";
inline constexpr int64_t kDefaultGcAtimeCutoffSeconds = 24 * 3600 + 300;
inline constexpr uint64_t kDefaultGcCacheCapacity = 1024 * 1024;
inline constexpr uint64_t kMaxGcCacheCapacity = 8 * 1024 * 1024;

struct GcCacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  bool operator==(const GcCacheStats&) const = default;
};

// PBS GarbageCollectionStatus.
struct GarbageCollectionStatus {
  std::optional<std::string> upid;
  uint64_t index_file_count = 0;
  uint64_t index_data_bytes = 0;  // sum of the logical sizes of all processed indexes
  uint64_t disk_bytes = 0;
  uint64_t disk_chunks = 0;
  uint64_t removed_bytes = 0;
  uint64_t removed_chunks = 0;
  uint64_t pending_bytes = 0;
  uint64_t pending_chunks = 0;
  uint64_t removed_bad = 0;
  uint64_t still_bad = 0;
  std::optional<GcCacheStats> cache_stats;

  // Compact JSON exactly as serde_json writes it for PBS: keys in declaration order
  // ("upid", "index-file-count", ..., "still-bad", then "cache-stats" only when set).
  std::string ToJson() const;
  // Parses a .gc-status text; missing fields default to 0/null, unknown fields are ignored
  // (older and newer PBS versions). InvalidArgument for text that is not a JSON object or has
  // values of the wrong type.
  static Result<GarbageCollectionStatus> FromJson(std::string_view text);

  bool operator==(const GarbageCollectionStatus&) const = default;
};

struct GcOptions {
  // datastore.cfg tuning.
  bool atime_safety_check = true;                  // gc-atime-safety-check
  std::optional<int64_t> atime_cutoff_minutes;     // gc-atime-cutoff (1..2880)
  std::optional<uint64_t> cache_capacity;          // gc-cache-capacity (0..8388608, 0 = off)
  // UPID of the task, recorded in .gc-status ("upid": null when empty).
  std::string upid;
  // Set by another thread to stop the run (borrowed; null = never). Polled per index file,
  // per chunk while marking and per chunk directory while sweeping.
  const std::atomic<bool>* abort = nullptr;
};

// Runs a garbage collection on `store`, logging PBS's task-log lines to `log` (may be null):
// "starting garbage collection on store <name>", the atime check result, the cutoff, phase
// headers, "marked N% (i of n index files)", "processed N% (n chunks)", the missing-chunk and
// unexpected-index warnings and the summary ("Removed garbage: ...", "Pending removals: ...",
// "Original data usage: ...", "On-Disk usage: ...", "On-Disk chunks: ...", "Deduplication
// factor: ...", "Average chunk size: ..."). Writes <base>/.gc-status on success.
// Errors (the status of a failed run is not written):
//   Busy / IoError   "unable to get exclusive lock - ..." while another process holds .lock
//   InvalidArgument  options out of range
//   (any)            "atime safety check failed: ..." when atime updates do not work
//   Corruption/IoError "marking used chunks failed: ..." for an index file that cannot be
//                    read or parsed (GC never guesses: an unreadable index stops it)
//   PermissionDenied "cannot continue garbage-collection safely, permission denied on: ..."
//   IoError          sweep failures ("unlinking chunk ... failed on store '...' - ...")
//   Aborted          "abort requested - aborting task" once options.abort is set
// Thread safety: one GC per datastore at a time (the exclusive lock enforces it across
// processes; in-process a second call fails with Busy "already locked exclusively").
Result<GarbageCollectionStatus> GarbageCollection(DataStore& store, const GcOptions& options,
                                                  TaskLogger* log);

// The atime safety check (FORMATS.md §8.4), also run by `datastore create` unless
// gc-atime-safety-check=false. Inserts the 4 MiB all-zero chunk bb9f8df6… if missing, sleeps
// 1 s, touches it and compares atimes. Errors: "access time safety check using pre-existing
// chunk failed, aborting GC!" (or "newly inserted") when the atime did not move forward (the
// timestamps go to `log` first), "chunk ... changed twice during access time safety check,
// cannot proceed." when the file was replaced twice meanwhile, IoError from the insert/stat.
Status RunAtimeSafetyCheck(ChunkStore& chunk_store, TaskLogger* log = nullptr);

// <base>/.gc-status.
std::string GcStatusPath(const std::string& base);
// Reads <base>/.gc-status. NotFound when no GC ran yet; InvalidArgument for a malformed file.
Result<GarbageCollectionStatus> LoadGcStatus(Filesystem* fs, const std::string& base);

}  // namespace pbskit
