// ReaderClient: the client side of PBS's reader protocol (PROTOCOL.md §5), shaped after
// proxmox-backup-client's BackupReader: download the manifest, files and chunks of one
// snapshot, and restore an archive to a byte stream checking everything on the way:
//   * the manifest blob's CRC, and with a key its signature and key fingerprint;
//   * each downloaded file against the manifest (index csum and size, blob SHA-256 and size);
//   * every chunk: CRC, magic against the archive's crypt mode, decryption, digest (keyed with
//     a key) and length.
// Not thread safe: one call at a time (chunk downloads are pipelined internally).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pbskit/formats/crypt_config.h"
#include "pbskit/formats/dynamic_index.h"
#include "pbskit/formats/fixed_index.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/manifest.h"
#include "pbskit/formats/names.h"
#include "pbskit/formats/status.h"
#include "pbskit/server/h2_client.h"
#include "pbskit/server/http_client.h"

namespace pbskit::server {

struct ReaderSessionOptions {
  BackupNamespace ns;
  std::string backup_type = "host";
  std::string backup_id;
  int64_t backup_time = 0;
  bool debug = false;
  const CryptConfig* crypt = nullptr;  // needed for encrypted snapshots; borrowed
  size_t max_pending_downloads = 8;    // chunk requests in flight during a restore
};

struct RestoreStats {
  uint64_t chunks = 0;      // chunks decoded (repeats included)
  uint64_t downloaded = 0;  // chunk downloads
  uint64_t raw_bytes = 0;   // encoded bytes downloaded
  uint64_t bytes = 0;       // decoded bytes delivered
};

class ReaderClient {
 public:
  // Receives decoded bytes in archive order; a non-OK status stops the restore.
  using Sink = std::function<Status(std::span<const uint8_t>)>;

  // Authenticates, upgrades to the reader protocol and downloads index.json.blob. Errors:
  // PermissionDenied (401/403, fingerprint), the server's refusal text (e.g. "snapshot ...
  // does not exist." / "no permissions on /datastore/..."), Corruption for a damaged
  // manifest, InvalidArgument for key problems ("missing key - manifest was created with key
  // <fp>", "wrong key ..."), IoError for transport errors.
  static Result<std::unique_ptr<ReaderClient>> Start(const RepositoryConnectOptions& connect,
                                                     const ReaderSessionOptions& options);
  ~ReaderClient();
  ReaderClient(const ReaderClient&) = delete;
  ReaderClient& operator=(const ReaderClient&) = delete;

  const Manifest& manifest() const { return manifest_; }
  // Raw bytes of the manifest blob as downloaded.
  const std::vector<uint8_t>& manifest_blob() const { return manifest_blob_; }

  // Raw bytes of a snapshot file (GET /download). Files listed in the manifest are checked
  // against it (Corruption "wrong size ..." / "wrong checksum ..."); others (client.log.blob)
  // are returned as they are. NotFound for a missing file.
  Result<std::vector<uint8_t>> DownloadFile(const std::string& name);
  // The decoded payload of a blob (checked against the manifest when listed).
  Result<std::vector<uint8_t>> DownloadBlob(const std::string& name);
  // Parsed indexes (downloaded and checked against the manifest; the server then allows their
  // chunks).
  Result<FixedIndex> DownloadFixedIndex(const std::string& name);
  Result<DynamicIndex> DownloadDynamicIndex(const std::string& name);
  // Raw chunk bytes (GET /chunk): only digests of indexes downloaded in this session are
  // allowed by the server (PermissionDenied otherwise).
  Result<std::vector<uint8_t>> DownloadChunk(const Digest& digest);

  // Restores archive `name` (.fidx, .didx or .blob) to `sink`, checking every chunk as
  // described above. Errors: NotFound when the manifest does not list the archive,
  // Corruption for any check that fails (naming the chunk), InvalidArgument for an
  // encrypted archive without key, the sink's status, IoError for transport errors.
  Status RestoreArchive(const std::string& name, const Sink& sink, RestoreStats* stats = nullptr);

  // GET /speedtest: 1 MiB of 'A' bytes.
  Result<std::string> Speedtest();

 private:
  ReaderClient() = default;
  Result<std::string> Get(const std::string& path, const std::string& query);
  Status CheckAgainstManifest(const std::string& name, uint64_t size, const Digest& csum) const;

  ReaderSessionOptions options_;
  std::unique_ptr<H2Connection> h2_;
  Manifest manifest_;
  std::vector<uint8_t> manifest_blob_;
};

}  // namespace pbskit::server
