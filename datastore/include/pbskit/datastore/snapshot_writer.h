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
//
// Push-style dynamic indexes (BeginDynamicIndex) serve producers that generate the stream
// themselves (pxar encoder, catalog writer): several may be open at once (e.g. root.mpxar.didx,
// root.ppxar.didx and catalog.pcat1.didx of one directory backup). Their chunks go through one
// pool of work_threads upload threads per writer with a bounded queue.
#pragma once

#include <chrono>
#include <condition_variable>
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
#include "pbskit/formats/chunker.h"
#include "pbskit/formats/dynamic_index.h"
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

// How a push-style dynamic index cuts its stream (FORMATS.md §7.2 / §7.3).
enum class DynamicChunkerKind {
  kRegular,  // buzhash; cuts do not depend on how the stream is split into Write calls
  kPayload,  // PBS's payload chunker (.ppxar): buzhash plus suggested boundaries
};

class SnapshotWriter;
class ChunkUploader;  // private to snapshot_writer.cc

// One dynamic index being written by push (SnapshotWriter::BeginDynamicIndex). The producer
// calls Write with the stream bytes in order, then Close. Every call on a writer and its
// streams must come from one thread at a time (chunk digesting, compression, encryption and
// insertion run on the writer's upload threads). Memory per stream: the current unfinished
// chunk (at most 4 * avg_chunk_size) plus the last Write's data; index entries take 40 bytes
// per chunk.
//
// Any non-OK result from Write / AppendKnownChunk / Close fails the whole writer (the snapshot
// is removed, like AddDynamicIndex); afterwards every call returns Aborted. The stream must not
// outlive its writer. Destroying a stream that was not closed discards the archive (its chunks
// stay in the store for GC) and frees its name.
class DynamicIndexStream {
 public:
  ~DynamicIndexStream();
  DynamicIndexStream(const DynamicIndexStream&) = delete;
  DynamicIndexStream& operator=(const DynamicIndexStream&) = delete;

  // Appends `data` to the stream. For kPayload each call is one read buffer as PBS's client
  // chunk stream receives it (the cut rule looks at what is buffered after each piece; to
  // reproduce a client's chunks feed the pieces its 256 KiB BufWriter would send). For
  // kRegular the split does not matter. Blocks while the upload queue is full. Errors:
  // IoError / Busy / Corruption from the chunk store, Aborted after a failure.
  Status Write(std::span<const uint8_t> data);
  // kPayload: queues a suggested boundary at absolute stream offset `offset` (must be sent
  // before the bytes at `offset` are written, in increasing order). Ignored for kRegular.
  void SuggestBoundary(uint64_t offset);
  // Appends an existing chunk of the store as the next index entry (metadata change-detection
  // mode reusing the previous snapshot's payload chunks): the bytes written so far and not yet
  // cut are cut as one chunk first, the chunk is touched, and the stream position advances by
  // `size` (the chunker restarts after it). `digest` is the chunk name in this writer's crypt
  // mode. Errors: InvalidArgument for size 0 or > 16 MiB, NotFound "chunk <hex> is not in the
  // datastore" when absent (the writer fails), chunk store errors, Aborted.
  Status AppendKnownChunk(const Digest& digest, uint64_t size);
  // Cuts the last chunk, waits for this stream's uploads, writes "<x>.tmp_didx" and renames it
  // to the archive name, and adds the manifest entry. An empty stream gives an empty index.
  // Errors: as Write, IoError writing the index, InvalidArgument when closed twice.
  Result<ArchiveResult> Close();

  const std::string& archive() const { return archive_; }
  // Stream bytes accounted so far (written plus appended known chunks).
  uint64_t position() const { return consumed_ + buf_.size(); }

 private:
  friend class SnapshotWriter;
  friend class ChunkUploader;
  DynamicIndexStream(SnapshotWriter* writer, std::string archive, size_t avg,
                     DynamicChunkerKind kind);
  Status CheckUsable() const;
  Status CutFront(size_t len);   // hands buf_[0, len) to the uploader
  Status TakeUploadError();      // first upload failure of this stream, if any
  void WaitIdle();               // until no upload of this stream is pending
  void ChunkDone(size_t index, const Digest& d, const Status& st);  // upload thread

  SnapshotWriter* writer_;  // null once the writer aborted
  std::string archive_;
  DynamicChunkerKind kind_;
  Chunker chunker_;
  PayloadChunker payload_chunker_;
  std::vector<uint8_t> buf_;  // stream bytes [consumed_, consumed_ + size) not yet cut
  size_t scan_pos_ = 0;       // buf_[0, scan_pos_) already scanned
  uint64_t consumed_ = 0;     // stream offset of buf_[0]
  bool closed_ = false;
  std::chrono::steady_clock::time_point t0_;

  std::mutex mu_;  // guards the fields below (upload threads report here)
  std::condition_variable idle_cv_;
  std::vector<DynamicEntry> entries_;
  size_t pending_ = 0;
  Status upload_error_;
  ArchiveUploadStats stats_;  // counters updated under the writer's mu_
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
  // For importers that cut and digest a fixed-size image themselves (clusters arriving out of
  // order, on their own threads): stores one chunk of plaintext the way AddFixedIndex does
  // (digest in this writer's crypt mode, session dedup, touch when present, else encode and
  // insert) and counts it in `stats` and the session totals. Thread safe, also concurrently
  // with other StoreChunkData calls; `stats` is only updated under the writer's lock. Errors:
  // chunk store errors (the writer is not failed by them: the caller decides), Aborted when
  // the writer already failed or finished.
  Result<Digest> StoreChunkData(std::span<const uint8_t> data, ArchiveUploadStats* stats);
  // Writes a fixed index `archive` (.fidx) describing an image of `size` bytes cut into
  // `chunk_size` pieces whose digests, in order, are `digests` (each stored with
  // StoreChunkData in this session). `stats` (from those calls) is returned with chunk_count,
  // size and seconds filled in. InvalidArgument for a bad/duplicate name, a bad chunk size,
  // size 0, or a digest count other than ceil(size / chunk_size); IoError writing the index.
  // Any error fails the writer.
  Result<ArchiveResult> AddFixedIndexFromDigests(const std::string& archive, uint64_t size,
                                                 std::span<const Digest> digests,
                                                 const ArchiveUploadStats& stats,
                                                 uint64_t chunk_size = kDefaultFixedChunkSize);
  // Writes a dynamic index `archive` (.didx) from `source`, chunked with PBS's buzhash at
  // `avg_chunk_size` (power of two, 64 KiB..4 MiB). An empty source gives an empty index.
  Result<ArchiveResult> AddDynamicIndex(const std::string& archive, ByteSource& source,
                                        size_t avg_chunk_size = kDefaultDynamicChunkSize);
  // Opens a push-style dynamic index `archive` (.didx) chunked at `avg_chunk_size` (power of
  // two, 64 KiB..4 MiB, or 512 KiB as PBS uses for catalog.pcat1.didx) with `kind`. The name
  // is reserved until the stream is closed or destroyed. InvalidArgument for a bad, duplicate
  // or open name or a bad size; Aborted after a failure. See DynamicIndexStream.
  Result<std::unique_ptr<DynamicIndexStream>> BeginDynamicIndex(
      const std::string& archive, size_t avg_chunk_size = kDefaultDynamicChunkSize,
      DynamicChunkerKind kind = DynamicChunkerKind::kRegular);

  // Writes a blob `archive` (.blob) holding `data` (<= 128 MiB), encrypted in encrypt mode.
  Result<ArchiveResult> AddBlob(const std::string& archive, std::span<const uint8_t> data);

  // Writes index.json.blob and syncs; the snapshot is finished afterwards. InvalidArgument
  // "backup does not contain valid files (file count == 0)" without archives, or when a
  // push-style index is still open.
  Result<Manifest> Finish();
  // Removes the unfinished snapshot now. Safe to call more than once.
  void Abort();

  const std::string& snapshot_path() const { return snapshot_path_; }
  const std::shared_ptr<DataStore>& store() const { return store_; }
  // The options the writer was begun with (crypt points at the caller's config).
  const SnapshotWriterOptions& options() const { return options_; }
  // Session totals in chunk_upload_stats terms (count, size, compressed_size, duplicates).
  uint64_t upload_count() const { return upload_count_; }
  uint64_t upload_duplicates() const { return upload_duplicates_; }
  uint64_t upload_size() const { return upload_size_; }
  uint64_t upload_compressed_size() const { return upload_compressed_size_; }
  // The newest finished snapshot before this one that counted as a valid base, if any.
  const std::optional<BackupDir>& previous() const { return previous_; }

 private:
  friend class DynamicIndexStream;
  friend class ChunkUploader;
  explicit SnapshotWriter(std::shared_ptr<DataStore> store, SnapshotWriterOptions options);
  Status CheckNewArchive(const std::string& archive, ArchiveType want);
  // Push-style streams: registration, chunk hand-off and the known-chunk path.
  Status SubmitChunk(DynamicIndexStream* stream, size_t index, std::vector<uint8_t> data);
  std::vector<uint8_t> TakeChunkBuffer();  // a recycled (or new) empty chunk buffer
  Status AppendKnown(DynamicIndexStream* stream, const Digest& digest, uint64_t size);
  void ForgetStream(DynamicIndexStream* stream);
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
  std::vector<DynamicIndexStream*> open_streams_;
  std::unique_ptr<ChunkUploader> uploader_;  // started by the first BeginDynamicIndex

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
