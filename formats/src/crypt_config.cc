#include "pbskit/formats/crypt_config.h"

#include <cstring>
#include <vector>

#include "pbskit/formats/crypto.h"

namespace pbskit {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

Digest DeriveIdKey(const std::array<uint8_t, 32>& enc_key) {
  std::vector<uint8_t> out = Pbkdf2Sha256(enc_key, Bytes("_id_key"), 10, 32);
  Digest d;
  std::memcpy(d.data(), out.data(), d.size());
  return d;
}

// Function-local so other translation units' static initialisers may compute fingerprints.
const Digest& FingerprintInput() {
  static const Digest d = Sha256(std::string_view("Proxmox Backup Encryption Key Fingerprint"));
  return d;
}

}  // namespace

const Digest kFingerprintInput = FingerprintInput();

CryptConfig::CryptConfig(const std::array<uint8_t, 32>& enc_key)
    : enc_key_(enc_key), id_key_(DeriveIdKey(enc_key)) {}

Digest CryptConfig::ComputeDigest(std::span<const uint8_t> plaintext) const {
  Sha256Stream h;
  h.Update(plaintext);
  h.Update(id_key_);
  return h.Finish();
}

Digest CryptConfig::Fingerprint() const {
  Sha256Stream h;
  h.Update(FingerprintInput());
  h.Update(id_key_);
  return h.Finish();
}

std::string CryptConfig::FingerprintString() const { return FormatFingerprint(Fingerprint()); }

Digest CryptConfig::Sign(std::span<const uint8_t> message) const {
  return HmacSha256(id_key_, message);
}

static std::string ColonHex(std::span<const uint8_t> bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 3);
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i) out.push_back(':');
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 15]);
  }
  return out;
}

std::string FormatFingerprint(const Digest& fp) { return ColonHex(fp); }

std::string ShortFingerprint(const Digest& fp) {
  return ColonHex(std::span<const uint8_t>(fp.data(), 8));
}

Result<Digest> ParseFingerprint(std::string_view text) {
  std::string hex;
  hex.reserve(text.size());
  for (char c : text) {
    if (c != ':') hex.push_back(c);
  }
  if (hex.size() != 64) {
    return Status::InvalidArgument("invalid fingerprint '" + std::string(text) +
                                   "': expected 32 hex bytes");
  }
  auto d = DigestFromHex(hex);
  if (!d.ok()) {
    return Status::InvalidArgument("invalid fingerprint '" + std::string(text) +
                                   "': not hexadecimal");
  }
  return *d;
}

Digest ComputeChunkDigest(std::span<const uint8_t> plaintext, const CryptConfig* crypt) {
  return crypt ? crypt->ComputeDigest(plaintext) : Sha256(plaintext);
}

}  // namespace pbskit
