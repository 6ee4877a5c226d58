// GC phase 2: walk the chunk store one prefix directory at a time and decide by atime.
#include <string>

#include "gc_internal.h"

namespace pbskit::gc_internal {

Status SweepUnusedChunks(ChunkStore& chunks, const std::string& store_name, int64_t oldest_writer,
                         int64_t min_atime, const std::atomic<bool>* abort,
                         GarbageCollectionStatus* status, TaskLogger* log) {
  Filesystem* fs = chunks.fs();
  uint64_t chunk_count = 0;
  int last_percentage = 0;

  bool callback_failed = false;
  auto sweep_one = [&](const ChunkFileInfo& info) -> Status {
    PBSKIT_RETURN_IF_ERROR(CheckTaskAbort(abort));
    // PBS reports progress with the first entry of a prefix directory whose percentage differs.
    const int prefix = (info.digest[0] << 8) | info.digest[1];
    const int percentage = prefix * 100 / 0x10000;
    if (percentage != last_percentage) {
      last_percentage = percentage;
      Info(log, "processed " + std::to_string(percentage) + "% (" + std::to_string(chunk_count) +
                    " chunks)");
    }
    if (info.kind == ChunkFileInfo::Kind::kUsing) {
      // S3 "in use" markers only matter during a run on an S3 cache; locally they always go.
      Status st = fs->Unlink(info.path);
      if (!st.ok() && !st.IsNotFound()) {
        return Status(st.code(), "unlinking chunk using marker " + DebugQuote(info.name) +
                                     " failed - " + st.message());
      }
      return Status::OK();
    }
    const bool bad = info.kind == ChunkFileInfo::Kind::kBad;
    chunk_count += 1;
    const int64_t atime = static_cast<int64_t>(info.st.st_atim.tv_sec);
    const uint64_t size = static_cast<uint64_t>(info.st.st_size);

    if (atime < min_atime) {
      // Re-check right before unlinking: an in-process writer may have touched the chunk since
      // the directory was read.
      auto now = fs->Stat(info.path, false);
      if (!now.ok()) {
        if (now.status().IsNotFound()) return Status::OK();
        return now.status();
      }
      if (static_cast<int64_t>(now->st_atim.tv_sec) >= min_atime) {
        if (!bad) status->disk_chunks += 1;
        status->disk_bytes += static_cast<uint64_t>(now->st_size);
        return Status::OK();
      }
      Status st = fs->Unlink(info.path);
      if (!st.ok()) {
        if (bad) status->still_bad += 1;
        return Status(st.code(), "unlinking chunk " + DebugQuote(info.name) + " failed on store '" +
                                     store_name + "' - " + st.message());
      }
      if (bad) {
        status->removed_bad += 1;
      } else {
        status->removed_chunks += 1;
      }
      status->removed_bytes += size;
    } else if (atime < oldest_writer) {
      if (bad) {
        status->still_bad += 1;
      } else {
        status->pending_chunks += 1;
      }
      status->pending_bytes += size;
    } else {
      if (!bad) status->disk_chunks += 1;
      status->disk_bytes += size;
    }
    return Status::OK();
  };

  auto sweep = [&](const ChunkFileInfo& info) -> Status {
    Status st = sweep_one(info);
    callback_failed = !st.ok();
    return st;
  };

  Status st = chunks.ForEachChunkFile(sweep);
  if (!st.ok() && callback_failed) return st;
  if (!st.ok()) {
    return Status(st.code(), "chunk iterator on chunk store '" + store_name + "' failed - " +
                                 st.message());
  }
  return Status::OK();
}

}  // namespace pbskit::gc_internal
