// CryptConfig: the 32-byte encryption key of a PBS client and the values derived from it
// (id_key, fingerprint), plus the chunk digest rule for plain and encrypted datastores.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "pbskit/formats/hex.h"
#include "pbskit/formats/status.h"

namespace pbskit {

// SHA256("Proxmox Backup Encryption Key Fingerprint"): the fixed prefix hashed with id_key to
// form a key fingerprint.
extern const Digest kFingerprintInput;

// Holds an encryption key and its derived id_key. Immutable after construction; all methods are
// const and thread safe. Copyable (the key material is copied).
class CryptConfig {
 public:
  // Derives id_key = PBKDF2-HMAC-SHA256(enc_key, "_id_key", 10 iterations, 32 bytes).
  explicit CryptConfig(const std::array<uint8_t, 32>& enc_key);

  // The AES-256-GCM key used for blobs.
  const std::array<uint8_t, 32>& enc_key() const { return enc_key_; }
  // The derived key used for chunk digests, manifest signatures and the fingerprint.
  const Digest& id_key() const { return id_key_; }

  // Digest of an encrypted chunk: SHA256(plaintext || id_key).
  Digest ComputeDigest(std::span<const uint8_t> plaintext) const;
  // SHA256(kFingerprintInput || id_key).
  Digest Fingerprint() const;
  // Fingerprint() as colon separated lower-case hex ("aa:bb:...", 95 characters).
  std::string FingerprintString() const;
  // HMAC-SHA256 of `message` keyed with id_key (manifest signature).
  Digest Sign(std::span<const uint8_t> message) const;

 private:
  std::array<uint8_t, 32> enc_key_;
  Digest id_key_;
};

// Colon separated lower-case hex of a fingerprint (95 characters for 32 bytes).
std::string FormatFingerprint(const Digest& fp);
// The first 8 bytes of a fingerprint in the same form ("short key ID" PBS logs).
std::string ShortFingerprint(const Digest& fp);
// Parses a fingerprint: all ':' are removed, then exactly 64 hex digits are required.
// InvalidArgument (naming the text) otherwise.
Result<Digest> ParseFingerprint(std::string_view text);

// The chunk digest rule (§2.6): plain SHA-256 when crypt == nullptr, SHA256(data || id_key)
// otherwise. Thread safe.
Digest ComputeChunkDigest(std::span<const uint8_t> plaintext, const CryptConfig* crypt);

}  // namespace pbskit
