// The chunk store: <base>/.chunks/<4 hex>/<64 hex digest> files holding encoded DataBlobs, and the
// process lock file <base>/.lock (FORMATS.md §1.1, §1.2, §8.1, §8.7).
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pbskit/datastore/fs.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/status.h"

namespace pbskit {

namespace detail {
struct ProcessLocker;
}

// Digest of the 4 MiB all-zero chunk (inserted by the atime safety check).
inline constexpr char kZeroChunkDigestHex[] =
    "bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8";

// A process lock on <base>/.lock (shared or exclusive). Released on destruction.
// Not copyable; may be moved between threads.
class ProcessLockGuard {
 public:
  virtual ~ProcessLockGuard() = default;
  virtual bool exclusive() const = 0;
};

// One entry of a .chunks prefix directory as seen by ForEachChunkFile.
struct ChunkFileInfo {
  enum class Kind { kChunk, kBad, kUsing };
  Kind kind = Kind::kChunk;
  Digest digest{};
  int bad_index = -1;  // N of "<digest>.<N>.bad", -1 otherwise
  std::string name;    // file name within the prefix directory
  std::string path;    // full path
  struct stat st {};   // lstat result (atime decides liveness for GC)
};

class ChunkStore {
 public:
  // Creates <base> (0755, parents as needed; an existing directory is used as is), <base>/.chunks
  // (0750), an empty <base>/.lock (0644) and the 65536 prefix directories (0750), in PBS's
  // order. Requires an absolute path (InvalidArgument). AlreadyExists if <base>/.chunks exists;
  // IoError on any failure. `progress` (optional) gets the percentage while creating dirs.
  static Result<std::unique_ptr<ChunkStore>> Create(
      const std::string& base, Filesystem* fs, SyncLevel level,
      const std::function<void(int)>& progress = {});
  // Opens an existing chunk store; requires <base>/.chunks to be a directory (NotFound
  // otherwise). Opening never writes anything (the .lock file is only opened, and created when
  // missing, by LockShared / TryLockExclusive).
  static Result<std::unique_ptr<ChunkStore>> Open(const std::string& base, Filesystem* fs,
                                                  SyncLevel level);
  ~ChunkStore();

  // "<base>/.chunks/abcd/abcd…" for digest abcd….
  std::string ChunkPath(const Digest& d) const;
  // "<base>/.chunks/abcd".
  std::string PrefixDir(const Digest& d) const;

  struct InsertResult {
    bool existed = false;       // the chunk file was already there (kept, touched)
    uint64_t encoded_size = 0;  // size of the encoded blob passed in
  };
  // Inserts an encoded DataBlob under digest `d`, FORMATS §8.1 exactly: an existing file of the
  // same size is touched (atime) and kept; an existing zero-length file is replaced; an existing
  // plain file is never replaced by an encrypted blob (InvalidArgument); an existing encrypted
  // uncompressed file is not replaced by an uncompressed blob (InvalidArgument); an encrypted
  // new blob or a smaller existing file is otherwise kept and touched; a bigger existing file is
  // replaced. Writes go through "<digest>.tmp_XXXXXX" + rename; fsync per sync level. The
  // temp file is written outside the store's mutex (the bulk of a blob of 64 KiB or more with
  // O_DIRECT, falling back to buffered writes where the file system refuses it); the decision is
  // repeated under the mutex before the rename, so concurrent inserts of one digest keep one.
  // Requires: encoded_blob is at least a blob header (InvalidArgument otherwise); the caller
  // checked that the blob belongs to `d`. Thread safe.
  Result<InsertResult> InsertChunk(const Digest& d, std::span<const uint8_t> encoded_blob);

  // Raw bytes of a chunk file. NotFound when missing; IoError otherwise.
  Result<std::vector<uint8_t>> LoadChunk(const Digest& d) const;
  // Like LoadChunk but reuses *out's capacity (hot path of verify/restore).
  Status LoadChunkInto(const Digest& d, std::vector<uint8_t>* out) const;
  // atime = now, mtime kept. NotFound if missing.
  Status TouchChunk(const Digest& d);
  // Touches when present: true; false when missing. IoError otherwise.
  Result<bool> CondTouchChunk(const Digest& d);
  // Renames a corrupt chunk to "<digest>.<N>.bad", N the first free of 0..9 (9 is overwritten
  // when all are taken). Returns the new path. NotFound if the chunk is missing.
  Result<std::string> RenameCorruptChunk(const Digest& d);
  // Inode number of a chunk file (for reading in inode order). NotFound if missing.
  Result<uint64_t> ChunkInode(const Digest& d) const;
  // lstat of a chunk file. NotFound if missing.
  Result<struct stat> StatChunk(const Digest& d) const;

  // Process locks on <base>/.lock (fcntl record locks, non-blocking), PBS's ProcessLocker.
  // Shared: held by writers for the whole session; several shared holders (any process)
  // coexist. Exclusive: GC; Busy "unable to get exclusive lock - ..." while ANOTHER process
  // holds a shared or exclusive lock, or when this process already holds it exclusively.
  // Shared locks of this process do not block it (fcntl locks are per process, and GC uses
  // OldestSharedLockTime for them); a shared request while another process holds the
  // exclusive lock is Busy "unable to get shared lock - ...". Releasing the exclusive lock
  // downgrades to shared when this process still has shared holders. In-process bookkeeping
  // is shared by all ChunkStore objects whose .lock is the same file.
  Result<std::unique_ptr<ProcessLockGuard>> LockShared();
  Result<std::unique_ptr<ProcessLockGuard>> TryLockExclusive();
  // Start time (Unix seconds) of the oldest shared lock this process holds, if any (GC's
  // oldest-writer rule).
  std::optional<int64_t> OldestSharedLockTime() const;

  // Calls fn for every chunk, bad chunk and .using marker in all prefix directories (in prefix
  // order; tmp files and foreign names skipped; only regular files). A missing prefix
  // directory is skipped. Stops at and returns the first non-OK status from fn.
  // `progress` (optional) is called after each prefix directory with its index 0..65535.
  Status ForEachChunkFile(const std::function<Status(const ChunkFileInfo&)>& fn,
                          const std::function<void(int)>& progress = {}) const;

  const std::string& base() const { return base_; }
  std::string chunk_dir() const { return base_ + "/.chunks"; }
  std::string lock_path() const { return base_ + "/.lock"; }
  Filesystem* fs() const { return fs_; }
  SyncLevel sync_level() const { return level_; }

 private:
  ChunkStore(std::string base, Filesystem* fs, SyncLevel level);
  Result<std::shared_ptr<detail::ProcessLocker>> Locker() const;
  // Whether InsertChunk keeps the file at `path` (touching it) or writes `blob` there
  // (FORMATS §8.1), with the size of the file found (0 when there is none); or the error that
  // refuses the insert.
  struct InsertDecision {
    bool keep = false;
    uint64_t old_size = 0;
  };
  Result<InsertDecision> DecideInsert(const std::string& path, const std::string& hex,
                                      std::span<const uint8_t> blob) const;
  // Writes `blob` to a new "<path>.tmp_XXXXXX" (*tmp), the block-aligned bulk with O_DIRECT
  // where the file system allows it; fsync per sync level. Removes the temp file on failure.
  Status WriteChunkTemp(const std::string& path, std::span<const uint8_t> blob, std::string* tmp);

  std::string base_;
  Filesystem* fs_;
  SyncLevel level_;
  mutable std::mutex insert_mu_;
  mutable std::mutex locker_mu_;
  mutable std::shared_ptr<detail::ProcessLocker> locker_;
};

// Parses a .chunks entry name: 64 hex (chunk), 64 hex + ".N.bad" or 64 hex + ".using".
// Returns nullopt for anything else (tmp files, foreign names, upper-case hex).
std::optional<ChunkFileInfo> ParseChunkFileName(const std::string& name);

}  // namespace pbskit
