// DataBlob: the container of every chunk file and every `.blob` file of a PBS datastore.
//
//   plain:     magic(8) crc32(4, LE) payload            (payload = data or zstd frames)
//   encrypted: magic(8) crc32(4, LE) iv(16) tag(16) ciphertext   (header 44 bytes)
//
// The CRC covers every byte after the header. See docs/formats/blob.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "pbskit/formats/crypt_config.h"
#include "pbskit/formats/status.h"

namespace pbskit {

// First 8 bytes of SHA-256 of "Proxmox Backup uncompressed blob v1.0" etc.
inline constexpr std::array<uint8_t, 8> kUncompressedBlobMagic = {66,  171, 56,  7,
                                                                  190, 131, 112, 161};
inline constexpr std::array<uint8_t, 8> kCompressedBlobMagic = {49,  185, 88,  66,
                                                                111, 182, 163, 127};
inline constexpr std::array<uint8_t, 8> kEncryptedBlobMagic = {123, 103, 133, 190, 34, 45, 76, 240};
inline constexpr std::array<uint8_t, 8> kEncrCompressedBlobMagic = {230, 89,  27,  191,
                                                                    11,  191, 216, 11};

inline constexpr size_t kMaxBlobSize = 128 * 1024 * 1024;  // plaintext limit (MAX_BLOB_SIZE)
inline constexpr size_t kBlobHeaderSize = 12;              // magic + crc
inline constexpr size_t kEncryptedBlobHeaderSize = 44;     // magic + crc + iv + tag (packed)

// Owns the encoded bytes of one blob. Not synchronised: share only const instances.
class DataBlob {
 public:
  // Takes the raw file bytes. Corruption when shorter than the header (12 bytes, 44 for an
  // encrypted magic), for an unknown magic, or (check_crc) when the stored CRC differs from the
  // computed one (the message gives both).
  static Result<DataBlob> FromRaw(std::vector<uint8_t> raw, bool check_crc = true);

  // Encodes `data`: zstd level 1 single-shot into a buffer of len(data) bytes when `compress`
  // (stored uncompressed when it does not fit), then AES-256-GCM with a random 16-byte IV when
  // `crypt` is set. InvalidArgument when data exceeds kMaxBlobSize. `crypt` is borrowed.
  static Result<DataBlob> Encode(std::span<const uint8_t> data, const CryptConfig* crypt,
                                 bool compress);
  // Encode with a caller-chosen IV (test vectors, deterministic output); same contract as Encode.
  static Result<DataBlob> EncodeWithIv(std::span<const uint8_t> data, const CryptConfig* crypt,
                                       bool compress, const std::array<uint8_t, 16>& iv);

  const std::vector<uint8_t>& raw() const { return raw_; }
  std::vector<uint8_t> TakeRaw() && { return std::move(raw_); }
  size_t size() const { return raw_.size(); }

  bool is_encrypted() const;
  bool is_compressed() const;
  // The CRC stored in the header / computed over the bytes after the header.
  uint32_t stored_crc() const;
  uint32_t ComputeCrc() const;
  // Overwrites the stored CRC (the server recomputes the CRC of uploaded chunks, as PBS does:
  // set_crc(ComputeCrc())).
  void set_crc(uint32_t crc);

  // Decodes into *out, replacing its contents and reusing its capacity. InvalidArgument
  // "missing key" for an encrypted blob without `crypt`; Corruption when the GCM tag does not
  // verify (wrong key or damaged data), when zstd fails, or when the result exceeds kMaxBlobSize.
  // Does not check the CRC again. Thread safe for const blobs.
  Status DecodeTo(const CryptConfig* crypt, std::vector<uint8_t>* out) const;
  Result<std::vector<uint8_t>> Decode(const CryptConfig* crypt) const;

 private:
  explicit DataBlob(std::vector<uint8_t> raw) : raw_(std::move(raw)) {}
  std::vector<uint8_t> raw_;
};

// Zero-copy variants over a borrowed raw buffer (verify/restore hot path).
// Same checks and errors as DataBlob::FromRaw.
Status CheckBlobHeader(std::span<const uint8_t> raw, bool check_crc);
// Same as DataBlob::DecodeTo; `raw` must already have passed CheckBlobHeader (the magic and size
// are checked again, the CRC is not). Uses a per-thread zstd decompression context.
Status DecodeBlob(std::span<const uint8_t> raw, const CryptConfig* crypt,
                  std::vector<uint8_t>* out);

// PBS's verify_unencrypted: decodes a plain or zstd chunk into *scratch and checks its length
// and SHA-256 digest. Corruption "detected chunk with wrong length (a != b)" / "detected chunk
// with wrong digest." (PBS wording) or a decode error; InvalidArgument for an encrypted chunk.
// Does not check the CRC. Thread safe.
Status VerifyUnencryptedChunk(std::span<const uint8_t> raw, size_t expected_size,
                              const Digest& expected_digest, std::vector<uint8_t>* scratch);

// Recomputes the CRC of an encoded blob in place. InvalidArgument when `raw` is not a blob.
Status RewriteBlobCrc(std::span<uint8_t> raw);

}  // namespace pbskit
