// Cryptographic primitives PBS uses, over OpenSSL 3 and zlib. All functions are thread safe.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "pbskit/formats/hex.h"
#include "pbskit/formats/status.h"

namespace pbskit {

// Standard CRC-32 (zlib/IEEE, the crc32fast value PBS stores in blob headers).
uint32_t Crc32(std::span<const uint8_t> data, uint32_t seed = 0);

Digest Sha256(std::span<const uint8_t> data);
inline Digest Sha256(std::string_view s) {
  return Sha256(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

// Incremental SHA-256 (stream hashes, index csums). Not copyable.
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void Update(std::span<const uint8_t> data);
  void Update(std::string_view s) {
    Update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  }
  // Returns the digest; the stream must not be used afterwards except via Reset().
  Digest Finish();
  void Reset();

 private:
  void* ctx_;
};

Digest HmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> message);

// PBKDF2-HMAC-SHA256 with `out_len` bytes of output.
std::vector<uint8_t> Pbkdf2Sha256(std::span<const uint8_t> password, std::span<const uint8_t> salt,
                                  uint32_t iterations, size_t out_len);

// scrypt (RFC 7914). Fails with InvalidArgument for parameters OpenSSL refuses.
Result<std::vector<uint8_t>> Scrypt(std::span<const uint8_t> password,
                                    std::span<const uint8_t> salt, uint64_t n, uint64_t r,
                                    uint64_t p, size_t out_len);

// Cryptographically secure random bytes.
void RandomBytes(std::span<uint8_t> out);

// AES-256-GCM with a 16-byte IV and 16-byte tag, empty AAD (PBS's blob and key-file cipher).
// Encrypt writes ciphertext (same length as plaintext) and the tag.
Status Aes256GcmEncrypt(std::span<const uint8_t, 32> key, std::span<const uint8_t, 16> iv,
                        std::span<const uint8_t> plaintext, std::vector<uint8_t>* ciphertext,
                        std::array<uint8_t, 16>* tag);
// Decrypt fails with Corruption when the tag does not verify.
Status Aes256GcmDecrypt(std::span<const uint8_t, 32> key, std::span<const uint8_t, 16> iv,
                        std::span<const uint8_t, 16> tag, std::span<const uint8_t> ciphertext,
                        std::vector<uint8_t>* plaintext);

// Standard base64 (padded), as serde/proxmox write key material.
std::string Base64Encode(std::span<const uint8_t> data);
Result<std::vector<uint8_t>> Base64Decode(std::string_view text);
// Standard base64 with optional padding, decoded exactly as PBS's proxmox_base64::decode does
// (the base64 crate's GeneralPurpose engine, padding indifferent, no trailing bits): nothing
// but the alphabet and up to two '=' ending the last quad. InvalidArgument with the crate's
// messages: "Invalid symbol <byte>, offset <n>.", "Invalid input length: <n>", "Invalid last
// symbol <byte>, offset <n>.". Pure.
Result<std::vector<uint8_t>> Base64DecodeIndifferentPad(std::string_view text);

}  // namespace pbskit
