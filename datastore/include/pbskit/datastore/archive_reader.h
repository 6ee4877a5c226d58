// ArchiveReader: reads one archive of a snapshot back to its exact bytes (a `.fidx` image, a
// `.didx` byte stream, a `.blob` payload), checking everything on the way (FORMATS.md App. B):
//   1. the manifest: decoded with its CRC checked; when it carries a key fingerprint a key is
//      required and must match, and a signed manifest's HMAC must verify (PBS client rules);
//   2. the archive's file against the manifest entry: index csum and size, or blob size and
//      SHA-256 of the raw file;
//   3. every chunk: CRC, magic, crypt mode against the index's, decryption, digest and length.
// Nothing is ever written to the datastore.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/datastore/datastore.h"
#include "pbskit/formats/crypt_config.h"
#include "pbskit/formats/dynamic_index.h"
#include "pbskit/formats/fixed_index.h"
#include "pbskit/formats/manifest.h"
#include "pbskit/formats/status.h"

namespace pbskit {

// The server-side archive name for a name as a user types it (proxmox-backup-client rules):
// names ending in .fidx/.didx/.blob stay; .pxar/.mpxar/.ppxar/.pcat1 get ".didx"; .img gets
// ".fidx"; anything else gets ".blob" (e.g. "qemu-server.conf" -> "qemu-server.conf.blob").
std::string ServerArchiveName(std::string_view name);

// Checks the manifest against the key the way proxmox-backup-client does before reading:
// a manifest with unprotected.key-fingerprint needs a key (InvalidArgument "missing key -
// manifest was created with key <fp>"), the key's fingerprint must match (InvalidArgument
// "wrong key - ..."), and a present signature must verify (Corruption "wrong signature in
// manifest"). An unsigned manifest without fingerprint is accepted with or without key.
Status CheckManifestKey(const Manifest& manifest, const CryptConfig* crypt);

// Checks one chunk file's raw bytes and decodes the plaintext into *out (capacity reused):
// blob header and CRC, the chunk's crypt mode against `index_mode` (encrypt needs an encrypted
// magic; none/sign-only need a plain one), decryption with `crypt`, digest (keyed when crypt)
// and length. All failures are Corruption with a message "chunk <hex>: ..." except an
// encrypted chunk without key (InvalidArgument "... missing key"). Thread safe.
Status DecodeAndCheckChunk(std::span<const uint8_t> raw, const Digest& digest,
                           uint64_t expected_size, CryptMode index_mode, const CryptConfig* crypt,
                           std::vector<uint8_t>* out);

struct ArchiveReadStats {
  uint64_t chunks = 0;         // chunks read (repeats included)
  uint64_t raw_bytes = 0;      // encoded bytes read (chunk files or the blob file)
  uint64_t decoded_bytes = 0;  // bytes handed to the sink
};

class ArchiveReader {
 public:
  // Receives decoded bytes in archive order; a non-OK status stops the read and is returned.
  using Sink = std::function<Status(std::span<const uint8_t>)>;

  // Opens `archive` (server name, see ServerArchiveName) of snapshot `dir` in `ns`. Steps 1-2 of
  // the file comment run here. `crypt` is borrowed and must outlive the reader (may be null).
  // Errors: NotFound for a missing snapshot/manifest/archive file or an archive the manifest
  // does not list ("manifest does not contain file '<name>'"); Corruption for a damaged
  // manifest/index, "wrong size for file '<name>' (<manifest> != <actual>)" or "wrong checksum
  // for file '<name>'"; InvalidArgument for key problems (CheckManifestKey) or an encrypted
  // archive without key; IoError for read errors. Reading index.json.blob itself is refused
  // (InvalidArgument): it is not an archive. `check_manifest_key` false reads the way the
  // PBS server does (no key at hand): the manifest's key fingerprint and signature are not
  // checked, so sign-only snapshots read without key (encrypted archives are still refused).
  static Result<std::unique_ptr<ArchiveReader>> Open(std::shared_ptr<DataStore> store,
                                                     const BackupNamespace& ns,
                                                     const BackupDir& dir,
                                                     const std::string& archive,
                                                     const CryptConfig* crypt,
                                                     bool check_manifest_key = true);

  const Manifest& manifest() const { return manifest_; }
  const FileInfo& file_info() const { return info_; }
  ArchiveType type() const { return type_; }
  // Decoded size of an index archive (the manifest `size`); nullopt for a blob (known only
  // after decoding).
  std::optional<uint64_t> index_size() const;
  const FixedIndex* fixed_index() const { return fixed_ ? &*fixed_ : nullptr; }
  const DynamicIndex* dynamic_index() const { return dynamic_ ? &*dynamic_ : nullptr; }

  // Streams the whole decoded archive to `sink`, checking every chunk (step 3). A chunk used
  // several times is read each time. Errors: NotFound "chunk <hex>: missing in chunk store"
  // style for missing chunk files, Corruption from DecodeAndCheckChunk / the blob checks,
  // IoError for read errors, or the sink's status. Not thread safe (one read at a time).
  Status ReadAll(const Sink& sink, ArchiveReadStats* stats = nullptr);

 private:
  ArchiveReader() = default;

  std::shared_ptr<DataStore> store_;
  const CryptConfig* crypt_ = nullptr;
  Manifest manifest_;
  FileInfo info_;
  ArchiveType type_ = ArchiveType::kBlob;
  std::optional<FixedIndex> fixed_;
  std::optional<DynamicIndex> dynamic_;
  std::vector<uint8_t> blob_raw_;
};

// Restores an archive to `target`: "-" writes to standard output; otherwise the data goes to a
// temporary file "<target>.tmp_XXXXXX" beside the target which is fsynced and renamed to
// `target` only after every byte was checked, so a failed restore leaves no file under the
// target name. AlreadyExists when `target` exists (like proxmox-backup-client). Other errors as
// ArchiveReader::ReadAll, IoError for target write errors.
Status RestoreArchive(ArchiveReader& reader, const std::string& target,
                      ArchiveReadStats* stats = nullptr);

}  // namespace pbskit
