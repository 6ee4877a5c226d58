// The atime safety check (PBS chunk_store.rs check_fs_atime_updates).
#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <thread>
#include <vector>

#include "gc_internal.h"
#include "pbskit/datastore/gc.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"

namespace pbskit {
namespace {

constexpr size_t kZeroChunkSize = 4096 * 1024;

// Rust's Debug of Option<SystemTime>.
std::string DebugTime(bool present, const struct timespec& ts) {
  if (!present) return "None";
  return "Some(SystemTime { tv_sec: " + std::to_string(ts.tv_sec) +
         ", tv_nsec: " + std::to_string(ts.tv_nsec) + " })";
}

std::string DescribeTimes(const std::string& path, const struct stat& st) {
  struct statx stx {};
  bool have_btime = ::statx(AT_FDCWD, path.c_str(), 0, STATX_BTIME, &stx) == 0 &&
                    (stx.stx_mask & STATX_BTIME) != 0;
  struct timespec btime {};
  btime.tv_sec = stx.stx_btime.tv_sec;
  btime.tv_nsec = stx.stx_btime.tv_nsec;
  return "accessed " + DebugTime(true, st.st_atim) + ", modified " + DebugTime(true, st.st_mtim) +
         ", created " + DebugTime(have_btime, btime);
}

bool Before(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

Status CheckOnce(ChunkStore& chunks, TaskLogger* log, bool retry_on_file_changed) {
  static const std::vector<uint8_t> zeros(kZeroChunkSize, 0);
  const Digest digest = Sha256(zeros);
  PBSKIT_ASSIGN_OR_RETURN(DataBlob blob, DataBlob::Encode(zeros, nullptr, /*compress=*/true));
  const std::string path = chunks.ChunkPath(digest);
  Filesystem* fs = chunks.fs();

  PBSKIT_ASSIGN_OR_RETURN(ChunkStore::InsertResult inserted, chunks.InsertChunk(digest, blob.raw()));

  // Timestamps have a granularity (jiffies on some filesystems): give the clock time to move.
  std::this_thread::sleep_for(std::chrono::seconds(1));

  auto before = fs->Stat(path, true);
  if (!before.ok()) {
    return before.status().WithContext("failed to get metadata for " + gc_internal::DebugQuote(path) +
                                       " before atime update");
  }
  // A second update for a pre-existing chunk (InsertChunk touched it already).
  PBSKIT_RETURN_IF_ERROR(chunks.TouchChunk(digest));
  auto now = fs->Stat(path, true);
  if (!now.ok()) {
    return now.status().WithContext("failed to get metadata for " + gc_internal::DebugQuote(path) +
                                    " after atime update");
  }

  if (before->st_ino != now->st_ino) {
    if (retry_on_file_changed) return CheckOnce(chunks, log, false);
    return Status::Aborted("chunk " + gc_internal::DebugQuote(path) +
                           " changed twice during access time safety check, cannot proceed.");
  }

  if (!Before(before->st_atim, now->st_atim)) {
    gc_internal::Warn(log, "Chunk metadata was not correctly updated during access time safety check:");
    gc_internal::Info(log, "Timestamps before update: " + DescribeTimes(path, *before));
    gc_internal::Info(log, "Timestamps after update: " + DescribeTimes(path, *now));
    return Status::Unsupported(std::string("access time safety check using ") +
                               (inserted.existed ? "pre-existing" : "newly inserted") +
                               " chunk failed, aborting GC!");
  }
  return Status::OK();
}

}  // namespace

Status RunAtimeSafetyCheck(ChunkStore& chunk_store, TaskLogger* log) {
  return CheckOnce(chunk_store, log, true);
}

}  // namespace pbskit
