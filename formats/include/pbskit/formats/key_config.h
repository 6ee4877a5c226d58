// KeyConfig: the PBS encryption key file (client `encryption-key.json`, server-side sync keys),
// and RSA master key wrapping (`rsa-encrypted.key.blob`). See docs/formats/keys.md.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/formats/status.h"

namespace pbskit {

enum class Kdf { kNone, kScrypt, kPbkdf2 };

// "none", "scrypt", "pbkdf2" (the `key show` wording).
const char* KdfName(Kdf kdf);
// Parses "none" | "scrypt" | "pbkdf2". InvalidArgument otherwise.
Result<Kdf> ParseKdf(std::string_view name);

// Parameters PBS uses for new keys.
inline constexpr uint64_t kDefaultScryptN = 65536;
inline constexpr uint64_t kDefaultScryptR = 8;
inline constexpr uint64_t kDefaultScryptP = 1;
inline constexpr uint32_t kDefaultPbkdf2Iter = 65535;

// The key file (§5.3), members in the order PBS writes them. Plain value type.
struct KeyConfig {
  Kdf kdf = Kdf::kNone;
  uint64_t scrypt_n = 0, scrypt_r = 0, scrypt_p = 0;  // valid for kScrypt
  uint32_t pbkdf2_iter = 0;                           // valid for kPbkdf2
  std::vector<uint8_t> salt;                          // kScrypt / kPbkdf2
  std::string created, modified;                      // RFC 3339 as found in the file
  std::vector<uint8_t> data;  // kNone: the raw 32-byte key; else IV(16) TAG(16) ciphertext(32)
  std::optional<std::string> fingerprint;  // colon hex, as written
  std::optional<std::string> hint;

  // Parses key file JSON. InvalidArgument naming the field for malformed content.
  static Result<KeyConfig> Parse(std::string_view json);
  // Compact JSON exactly as proxmox-backup-client writes it (field order kdf, created, modified,
  // data, fingerprint, hint; optional fields omitted when unset).
  std::string ToJson() const;

  // A new key file for `key`, protected by `password` with `kdf` (kNone ignores the password).
  // created = modified = now, local time with offset. Fingerprint is filled in.
  // InvalidArgument for a protected kdf with a password shorter than 5 bytes.
  static Result<KeyConfig> Create(const std::array<uint8_t, 32>& key, Kdf kdf,
                                  std::string_view password);

  // Returns the raw key. InvalidArgument "Unable to decrypt - wrong password?" for a wrong
  // password, InvalidArgument for a too-short password or malformed data, and InvalidArgument
  // when the stored fingerprint does not match the key.
  Result<std::array<uint8_t, 32>> Decrypt(std::string_view password) const;
};

// Parses an RFC 3339 time ("2020-06-26T15:56:05+02:00", "...Z", optional fractional seconds,
// which are dropped) into epoch seconds. InvalidArgument naming the text otherwise.
Result<int64_t> Rfc3339ToEpoch(std::string_view text);

// Current local time as RFC 3339 with numeric offset ("2024-06-26T15:56:05+02:00").
std::string LocalTimeRfc3339();

// RSA master key wrapping (§5.5): PKCS#1 v1.5 encryption of plain.ToJson() with a PEM public key
// (PKCS#1 "RSA PUBLIC KEY" or SPKI "PUBLIC KEY"). `plain` should have kdf kNone.
// InvalidArgument for an unreadable key or a payload too large for the modulus.
Result<std::vector<uint8_t>> RsaEncryptKeyConfig(std::string_view public_pem,
                                                 const KeyConfig& plain);
// Decrypts the payload of rsa-encrypted.key.blob with a PEM private key (encrypted PKCS#8 needs
// `pem_password`) and parses the key file inside. InvalidArgument for a wrong PEM password or an
// unreadable key, Corruption when the payload does not decrypt or parse.
Result<KeyConfig> RsaDecryptKeyConfig(std::string_view private_pem, std::string_view pem_password,
                                      std::span<const uint8_t> payload);

// A new RSA master key pair, as `proxmox-backup-client key create-master-key` writes it: the
// public key as SPKI PEM ("PUBLIC KEY"), the private key as PKCS#8 PEM encrypted with
// AES-256-CBC under `password`. InvalidArgument for an empty password or bits < 3072 (PBS uses
// 4096).
struct MasterKeyPair {
  std::string public_pem;
  std::string private_pem;
};
Result<MasterKeyPair> GenerateMasterKey(int bits, std::string_view password);

// Facts about an RSA public key (PBS's RsaPubKeyInfo): modulus as upper-case hex (OpenSSL
// BN_bn2hex), exponent in decimal, length in bits. InvalidArgument for unreadable PEM.
struct RsaPublicKeyInfo {
  std::string modulus;
  std::string exponent;
  int length = 0;
};
Result<RsaPublicKeyInfo> DescribeRsaPublicKey(std::string_view public_pem);

}  // namespace pbskit
