// SnapshotWriter: writes one new snapshot into a datastore the way a PBS backup session does
// (FORMATS.md §3.5, §4.3, §8.1, Appendix A):
//   Begin   shared process lock on <base>/.lock, group lock, group + `owner` (O_EXCL) when new,
//           owner check, "newer than the last backup" check, snapshot directory + its lock;
//   Add*    archives: fixed index (4 MiB chunks) or dynamic index (buzhash) from a byte stream,
//           or a blob. Chunks are digested, and only chunks not yet in the store are encoded
//           and inserted (existing ones are touched). An index is written to "<x>.tmp_fidx" /
//           "<x>.tmp_didx" and renamed into place after all its chunks are in;
//   Finish  index.json.blob last (signed, with key-fingerprint, when a key is used; with
//           chunk_upload_stats), then syncing per the datastore's sync-level.
// Any failure, Abort() or destruction before Finish removes the unfinished snapshot directory
// (and the group, when this writer created it and it is empty again).
//
// Streaming: memory is bounded by a few chunk buffers whatever the input size.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "pbskit/datastore/chunk_store.h"
#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/locks.h"
#include "pbskit/formats/crypt_config.h"
#include "pbskit/formats/manifest.h"
#include "pbskit/formats/names.h"
#include "pbskit/formats/status.h"

namespace pbskit {

inline constexpr uint64_t kDefaultFixedChunkSize = 4 * 1024 * 1024;
inline constexpr size_t kDefaultDynamicChunkSize = 4 * 1024 * 1024;

// A sequential byte stream. Used by one thread at a time.
class ByteSource {
 public:
  virtual ~ByteSource();
  // Reads up to buf.size() bytes. Fewer bytes only at the end of the data; 0 means end.
  // IoError on read failure.
  virtual Result<size_t> Read(std::span<uint8_t> buf) = 0;
};

// Reads a file descriptor (not owned) until EOF, retrying short reads and EINTR.
class FdByteSource : public ByteSource {
 public:
  FdByteSource(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  Result<size_t> Read(std::span<uint8_t> buf) override;

 private:
  int fd_;
  std::string name_;
};

// Reads a borrowed buffer.
class MemoryByteSource : public ByteSource {
 public:
  explicit MemoryByteSource(std::span<const uint8_t> data) : data_(data) {}
  Result<size_t> Read(std::span<uint8_t> buf) override;

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

struct SnapshotWriterOptions {
  BackupNamespace ns;
  BackupDir dir;                     // group and backup time (>= 1)
  std::string auth_id = "root@pam";  // owner for a new group; must own an existing group
  CryptMode crypt_mode = CryptMode::kNone;
  const CryptConfig* crypt = nullptr;  // required for kEncrypt / kSignOnly; borrowed
  bool compress = true;                // zstd level 1 for chunks and blobs
  size_t work_threads = 2;             // digest/compress/encrypt threads
};

// Per-archive upload accounting (what proxmox-backup-client reports).
struct ArchiveUploadStats {
  uint64_t chunk_count = 0;      // index entries
  uint64_t unique_chunks = 0;    // distinct digests in this archive not seen earlier in session
  uint64_t new_chunks = 0;       // chunks written to the chunk store
  uint64_t reused_chunks = 0;    // distinct chunks already present (touched, not written)
  uint64_t size = 0;             // archive size in bytes (blob: plaintext size)
  uint64_t new_size = 0;         // plaintext bytes of the chunks written
  uint64_t reused_size = 0;      // plaintext bytes of every entry whose chunk was not written
  uint64_t compressed_size = 0;  // encoded bytes written (chunk files or the blob file)
  double seconds = 0;
};

struct ArchiveResult {
  FileInfo info;  // the manifest entry
  ArchiveUploadStats stats;
};

class SnapshotWriter {
 public:
  // Starts a snapshot. Errors: InvalidArgument for bad options (missing key for encrypt or
  // sign-only, time < 1, "backup timestamp is older than last backup."); PermissionDenied
  // "backup owner check failed (<auth> != <owner>)"; NotFound for a missing namespace;
  // AlreadyExists "backup directory already exists."; Busy when the group, the previous
  // snapshot or the process lock cannot be taken (GC running); IoError otherwise.
  static Result<std::unique_ptr<SnapshotWriter>> Begin(std::shared_ptr<DataStore> store,
                                                       SnapshotWriterOptions options);
  // Aborts (removes the snapshot) unless Finish succeeded.
  ~SnapshotWriter();
  SnapshotWriter(const SnapshotWriter&) = delete;
  SnapshotWriter& operator=(const SnapshotWriter&) = delete;

  // Writes a fixed index `archive` (name ending .fidx) from `source` split into `chunk_size`
  // pieces (a power of two 64 KiB..4 MiB). InvalidArgument for a bad/duplicate name, a bad
  // chunk size, or an empty source (a fixed index cannot describe 0 bytes); IoError / Busy /
  // Corruption from the source or the chunk store. On error the writer is unusable
  // (only Abort / destruction remain).
  Result<ArchiveResult> AddFixedIndex(const std::string& archive, ByteSource& source,
                                      uint64_t chunk_size = kDefaultFixedChunkSize);
  // Writes a dynamic index `archive` (.didx) from `source`, chunked with PBS's buzhash at
  // `avg_chunk_size` (power of two, 64 KiB..4 MiB). An empty source gives an empty index.
  Result<ArchiveResult> AddDynamicIndex(const std::string& archive, ByteSource& source,
                                        size_t avg_chunk_size = kDefaultDynamicChunkSize);
  // Writes a blob `archive` (.blob) holding `data` (<= 128 MiB), encrypted in encrypt mode.
  Result<ArchiveResult> AddBlob(const std::string& archive, std::span<const uint8_t> data);

  // Writes index.json.blob and syncs; the snapshot is finished afterwards. InvalidArgument
  // "backup does not contain valid files (file count == 0)" without archives.
  Result<Manifest> Finish();
  // Removes the unfinished snapshot now. Safe to call more than once.
  void Abort();

  const std::string& snapshot_path() const { return snapshot_path_; }
  // Session totals in chunk_upload_stats terms (count, size, compressed_size, duplicates).
  uint64_t upload_count() const { return upload_count_; }
  uint64_t upload_duplicates() const { return upload_duplicates_; }
  uint64_t upload_size() const { return upload_size_; }
  uint64_t upload_compressed_size() const { return upload_compressed_size_; }
  // The newest finished snapshot before this one that counted as a valid base, if any.
  const std::optional<BackupDir>& previous() const { return previous_; }

 private:
  explicit SnapshotWriter(std::shared_ptr<DataStore> store, SnapshotWriterOptions options);
  Status CheckNewArchive(const std::string& archive, ArchiveType want);
  // Digest, dedup and insert one chunk's plaintext; thread safe.
  Status StoreChunk(std::span<const uint8_t> data, Digest* digest, ArchiveUploadStats* stats);
  Status WriteIndexFile(const std::string& archive, std::span<const uint8_t> bytes);
  Status Fail(Status st);  // aborts and returns st

  std::shared_ptr<DataStore> store_;
  SnapshotWriterOptions options_;
  std::string snapshot_path_;
  std::unique_ptr<ProcessLockGuard> process_lock_;
  LockGuardPtr group_lock_, snapshot_lock_, previous_lock_;
  std::optional<BackupDir> previous_;
  bool created_group_ = false;
  bool finished_ = false;
  bool aborted_ = false;
  bool failed_ = false;
  std::vector<FileInfo> files_;

  std::mutex mu_;  // guards the session digest set and totals while workers run
  struct DigestHash {
    size_t operator()(const Digest& d) const {
      size_t h;
      std::memcpy(&h, d.data(), sizeof h);
      return h;
    }
  };
  std::unordered_set<Digest, DigestHash> session_chunks_;
  uint64_t upload_count_ = 0, upload_duplicates_ = 0, upload_size_ = 0,
           upload_compressed_size_ = 0;
};

}  // namespace pbskit
