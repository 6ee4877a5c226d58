// The snapshot manifest (`index.json.blob` payload, FORMATS.md §4): schema, PBS-exact JSON
// output and the HMAC signature. The DataBlob container is handled by data_blob.h.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/formats/hex.h"
#include "pbskit/formats/status.h"

namespace pbskit {

enum class CryptMode { kNone, kEncrypt, kSignOnly };
// "none", "encrypt", "sign-only".
const char* CryptModeName(CryptMode m);
// InvalidArgument for anything else than the three names.
Result<CryptMode> ParseCryptMode(std::string_view s);

enum class ArchiveType { kFixedIndex, kDynamicIndex, kBlob };
// By the last extension only (".fidx", ".didx", ".blob"); InvalidArgument otherwise.
Result<ArchiveType> ArchiveTypeOf(std::string_view filename);

struct FileInfo {
  std::string filename;
  CryptMode crypt_mode = CryptMode::kNone;
  uint64_t size = 0;  // blob: file length; index: logical data size
  Digest csum{};      // blob: SHA-256 of the file; index: index csum
};

// A plain value: copyable; concurrent const use is safe, mutation needs external locking.
class Manifest {
 public:
  std::string backup_type;
  std::string backup_id;
  int64_t backup_time = 0;
  std::vector<FileInfo> files;
  boost::json::object unprotected;       // free-form, kept exactly (keys sorted on output)
  std::optional<std::string> signature;  // lower-case hex, absent/null = unsigned
  boost::json::object unknown;           // unknown top-level keys: kept, re-emitted

  // Parses manifest JSON. Missing crypt-mode -> none, missing unprotected -> {}. Corruption
  // (naming `name`) for invalid JSON, a non-object, missing/mistyped required keys, bad csum
  // hex, an unknown crypt-mode or a non-string signature.
  static Result<Manifest> Parse(std::string_view json, const std::string& name);
  // Decodes a raw `index.json.blob` (plain or zstd DataBlob, CRC checked) and parses its
  // payload. Corruption (naming `name`) for a damaged or encrypted blob and for everything Parse
  // rejects.
  static Result<Manifest> FromBlob(std::span<const uint8_t> raw, const std::string& name);
  // ToJson() as a zstd-compressed, unencrypted DataBlob: the bytes PBS stores as
  // `index.json.blob`. Fails only if the blob encoder does.
  Result<std::vector<uint8_t>> ToBlob() const;
  // Byte-exact what PBS writes: serde pretty JSON, keys sorted at every level, no trailing
  // newline, `"signature": null` when unsigned.
  std::string ToJson() const;
  // The JSON value ToJson() prints.
  boost::json::object ToValue() const;
  // The first entry with that filename, or null.
  const FileInfo* Lookup(std::string_view filename) const;
  // Canonical JSON of the four signed keys (backup-type, backup-id, backup-time, files).
  std::string SignedCanonicalJson() const;
  // HMAC-SHA256(id_key, SignedCanonicalJson()).
  Digest ComputeSignature(std::span<const uint8_t, 32> id_key) const;
  // Sets `signature` to the hex of ComputeSignature(id_key) and, when `fingerprint` is not
  // empty, unprotected["key-fingerprint"] to it (what the PBS client writes when signing).
  void Sign(std::span<const uint8_t, 32> id_key, std::string_view fingerprint = {});
  // If unprotected.key-fingerprint is present it must equal `fingerprint` ("aa:bb:..",
  // compared after normalising case and colons) else InvalidArgument ("wrong key"); then a
  // present signature must match (Corruption "wrong signature in manifest" otherwise). An
  // unsigned manifest is accepted (OK). PBS checks the fingerprint in check_fingerprint
  // (restore, sync) and in check_signature only for signed manifests; this does both.
  Status VerifySignature(std::span<const uint8_t, 32> id_key, std::string_view fingerprint) const;
  // unprotected["key-fingerprint"] when it is a string.
  std::optional<std::string> KeyFingerprint() const;
};

}  // namespace pbskit
