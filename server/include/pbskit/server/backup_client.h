// BackupClient: the client side of PBS's backup protocol (PROTOCOL.md §4), shaped after
// proxmox-backup-client's BackupWriter, over the HTTP/2 transport of h2_client.h.
//
//   auto c = BackupClient::Start(connect, {.backup_type = "host", .backup_id = "web1",
//                                          .backup_time = now});
//   c->UploadBlob("qemu-server.conf.blob", conf);
//   c->UploadFixedIndex("drive-scsi0.img.fidx", image_source, image_size);
//   auto s = c->BeginDynamicIndex("root.pxar.didx");   // a pxar::PxarSink for the encoder
//   CreatePxarArchive(dir, s->get(), nullptr, {});
//   s->Close();
//   c->Finish();                                         // manifest + POST /finish
//
// Incremental backups work like the Rust client: Start downloads the previous snapshot's
// manifest (GET /previous_backup_time, /previous?archive-name=index.json.blob); before each
// index upload whose name the previous manifest lists, the previous index is downloaded
// (GET /previous, which also registers its chunks server-side) and checked against that
// manifest, and its digests become "known": such chunks, and chunks already uploaded in this
// session, are only referenced in the PUT append lists, never uploaded again. A previous
// manifest written with another key (or none when this one uses a key) is ignored.
//
// Encryption (crypt_mode encrypt): chunks and blobs are AES-256-GCM encrypted with the
// CryptConfig, chunk digests are keyed; sign-only: plain chunks, signed manifest. The manifest
// is uploaded unencrypted and, with a key, signed with its key-fingerprint recorded.
//
// Failure handling: any error fails the session; destroying a client that did not Finish
// drops the connection, and the server removes the unfinished snapshot (uploaded chunks stay
// in the chunk store until GC). Not thread safe: one call at a time (chunk uploads are
// pipelined on the connection internally).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/formats/chunker.h"
#include "pbskit/formats/crypt_config.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/manifest.h"
#include "pbskit/formats/names.h"
#include "pbskit/formats/pxar/encoder.h"
#include "pbskit/formats/status.h"
#include "pbskit/server/h2_client.h"
#include "pbskit/server/http_client.h"

namespace pbskit::server {

class BackupClient;

// A chunk that is already a data blob (as stored in a chunk store): what a sync job moves
// from one datastore to another without decoding it.
struct EncodedChunk {
  Digest digest{};
  uint64_t size = 0;           // plaintext bytes
  std::string blob;            // the encoded data blob's bytes (moved into the request)
};

// Delivers the chunks of one archive in index order.
class EncodedChunkSource {
 public:
  virtual ~EncodedChunkSource() = default;
  // The next chunk, or std::nullopt after the last one. Errors end the upload unchanged.
  virtual Result<std::optional<EncodedChunk>> Next() = 0;
};

struct BackupSessionOptions {
  BackupNamespace ns;
  std::string backup_type = "host";  // vm | ct | host
  std::string backup_id;
  int64_t backup_time = 0;  // epoch seconds, >= 1
  bool benchmark = false;   // only with host/benchmark (server rule)
  bool debug = false;
  CryptMode crypt_mode = CryptMode::kNone;
  const CryptConfig* crypt = nullptr;  // required for encrypt / sign-only; borrowed
  bool compress = true;                // zstd level 1 for chunks and blobs
  bool reuse_previous = true;          // known-chunk reuse from the previous snapshot
  size_t max_pending_uploads = 16;     // chunk uploads in flight per archive
};

// PBS client's per-archive upload statistics (backup_writer.rs UploadStats).
struct UploadStats {
  uint64_t chunk_count = 0;      // index entries
  uint64_t chunk_reused = 0;     // entries whose chunk was known (not uploaded)
  uint64_t size = 0;             // archive size (plaintext bytes)
  uint64_t size_reused = 0;      // plaintext bytes of reused entries
  uint64_t size_compressed = 0;  // encoded bytes uploaded
  uint64_t chunks_uploaded = 0;  // chunks sent
  std::chrono::microseconds duration{0};
  Digest csum{};  // index csum (blobs: SHA-256 of the blob file)
};

struct UploadResult {
  FileInfo info;  // the manifest entry
  UploadStats stats;
};

// proxmox-backup-client's summary lines for one archive, e.g.
//   "root.pxar: had to backup 1.2 MiB of 3 MiB (compressed 600 KiB) in 0.10 s (average 12 MiB/s)"
//   "root.pxar: backup was done incrementally, reused 1.8 MiB (60.0%)"
// (`archive` without its .didx/.fidx/.blob extension; the second line only when something was
// reused and the archive exceeds 1 MiB).
std::vector<std::string> UploadSummaryLines(const std::string& archive, const UploadStats& stats);

// A dynamic index being uploaded by push: Write the stream bytes in order, then Close. Cuts
// chunks with PBS's buzhash (formats/chunker.h) so chunks deduplicate with the Rust client.
// Also a pxar::PxarSink, so the pxar encoder can write into it directly. Must not outlive its
// client; destroying it unclosed fails the session.
class DynamicUpload : public pxar::PxarSink {
 public:
  ~DynamicUpload() override;
  Status Write(std::span<const uint8_t> data) override;
  // Cuts the last chunk, appends the remaining entries, closes the writer (chunk-count, size,
  // csum) and adds the manifest entry. An archive of 0 bytes cannot be closed (the protocol's
  // minimum is one chunk): InvalidArgument.
  Result<UploadResult> Close();
  const std::string& archive() const { return archive_; }

 private:
  friend class BackupClient;
  DynamicUpload(BackupClient* client, std::string archive, uint64_t wid, size_t avg);
  Status Cut(size_t len);

  BackupClient* client_;
  std::string archive_;
  uint64_t wid_;
  Chunker chunker_;
  std::vector<uint8_t> buf_;  // bytes of the current chunk not yet cut
  size_t scanned_ = 0;
  uint64_t offset_ = 0;  // stream offset of buf_[0]
  bool closed_ = false;
  std::chrono::steady_clock::time_point t0_;
  UploadStats stats_;
  Sha256Stream csum_;  // over (end offset LE64 || digest) of every entry
};

class BackupClient {
 public:
  // Authenticates (token header or ticket login), upgrades to the backup protocol
  // (GET /api2/json/backup ... Upgrade: proxmox-backup-protocol-v1) and, with reuse_previous,
  // loads the previous manifest. Errors: InvalidArgument for bad options (missing key for
  // encrypt / sign-only, time < 1) and the server's refusals (e.g. "backup timestamp is older
  // than last backup."), PermissionDenied for 401/403 and fingerprint mismatches, NotFound for
  // a missing namespace, IoError for transport errors.
  static Result<std::unique_ptr<BackupClient>> Start(const RepositoryConnectOptions& connect,
                                                     const BackupSessionOptions& options);
  // Drops the connection unless Finish succeeded (the server then removes the snapshot).
  ~BackupClient();
  BackupClient(const BackupClient&) = delete;
  BackupClient& operator=(const BackupClient&) = delete;

  // The previous snapshot's time and manifest, when the server has one and it was usable.
  std::optional<int64_t> previous_backup_time() const { return previous_time_; }
  const std::optional<Manifest>& previous_manifest() const { return previous_manifest_; }

  // Uploads a blob `name` (.blob) holding `data` (<= 128 MiB plaintext), encrypted in
  // encrypt mode. Server errors unchanged.
  Result<UploadResult> UploadBlob(const std::string& name, std::span<const uint8_t> data);
  // Uploads a fixed index (.fidx, 4 MiB chunks) of `source`. With `size` the source must
  // deliver exactly that many bytes (InvalidArgument otherwise); without it (4.x servers only)
  // the index grows. An empty source is InvalidArgument.
  Result<UploadResult> UploadFixedIndex(const std::string& archive, ByteSource& source,
                                        std::optional<uint64_t> size);
  // Uploads a fixed index (.fidx) whose chunks `source` delivers already encoded; the blobs
  // go out unchanged (the server still checks digest and size of unencrypted ones). Every
  // chunk but the last must hold 4 MiB and the sizes must add up to `size`
  // (InvalidArgument otherwise). Known chunks are not sent again.
  Result<UploadResult> UploadFixedIndexEncoded(const std::string& archive,
                                               EncodedChunkSource& source, uint64_t size);
  // Uploads a dynamic index (.didx) of everything `source` delivers.
  Result<UploadResult> UploadDynamicIndex(const std::string& archive, ByteSource& source,
                                          size_t avg_chunk_size = 4 * 1024 * 1024);
  // Opens a push-style dynamic index. Only one archive may be open at a time.
  Result<std::unique_ptr<DynamicUpload>> BeginDynamicIndex(const std::string& archive,
                                                           size_t avg_chunk_size = 4 * 1024 * 1024);

  // Uploads index.json.blob (the manifest of every uploaded file, signed with a key) and
  // POST /finish. Returns the manifest as uploaded (the server adds chunk_upload_stats).
  Result<Manifest> Finish();
  // Drops the connection at once (the server discards the unfinished snapshot).
  void Abort();

  // Chunk digests known in this session (previous indexes and uploaded chunks).
  size_t known_chunk_count() const { return known_.size(); }
  const BackupSessionOptions& options() const { return options_; }

 private:
  friend class DynamicUpload;
  struct PendingUpload {
    Digest digest;
    std::future<Result<H2ClientResponse>> response;
  };
  struct DigestHash {
    size_t operator()(const Digest& d) const;
  };
  BackupClient() = default;

  Status Fail(Status st);
  Status Usable() const;
  // Registers the previous index of `archive` as known when the previous manifest lists it.
  Status LoadPreviousIndex(const std::string& archive);
  Result<uint64_t> OpenWriter(const std::string& archive, std::optional<uint64_t> size);
  // OpenWriter for a name that must end in .fidx (InvalidArgument otherwise).
  Result<uint64_t> OpenFixedWriter(const std::string& archive, std::optional<uint64_t> size);
  // Digests, encodes and (unless known) uploads one chunk of `archive`'s writer; the index
  // entry is queued for the next append. offset: start (fixed) or end (dynamic) offset.
  Status AddChunk(bool fixed, uint64_t wid, std::span<const uint8_t> data, uint64_t start,
                  UploadStats* stats, Digest* digest);
  // Counts chunk `d` of `plain_size` bytes at `start` in `stats`; unless known, uploads the
  // blob `encode()` returns; queues the index entry.
  Status AddEncodedChunk(bool fixed, uint64_t wid, const Digest& d, uint64_t plain_size,
                         uint64_t start, const std::function<Result<std::string>()>& encode,
                         UploadStats* stats);
  // Waits for pending chunk uploads (all, or until fewer than `keep` are pending).
  Status DrainUploads(size_t keep);
  // Sends the queued entries of writer `wid` as PUT appends (after their uploads finished).
  Status FlushAppends(bool fixed, uint64_t wid);
  Result<UploadResult> CloseWriter(bool fixed, uint64_t wid, const std::string& archive,
                                   uint64_t size, UploadStats stats,
                                   std::chrono::steady_clock::time_point t0);
  // One request in the session: the `data` of a 200 JSON answer, or the server's message.
  Result<boost::json::value> Call(const std::string& method, const std::string& path,
                                  const std::string& query, std::string body = "",
                                  const std::string& content_type = "");

  BackupSessionOptions options_;
  std::unique_ptr<H2Connection> h2_;
  std::optional<int64_t> previous_time_;
  std::optional<Manifest> previous_manifest_;
  std::unordered_set<Digest, DigestHash> known_;
  std::vector<PendingUpload> pending_;
  std::vector<std::pair<Digest, uint64_t>> appends_;  // digest, offset of the open writer
  std::vector<FileInfo> files_;
  bool open_dynamic_ = false;
  bool failed_ = false;
  bool finished_ = false;
};

}  // namespace pbskit::server
