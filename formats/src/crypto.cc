#include "pbskit/formats/crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <zlib.h>

#include <climits>
#include <cstring>

#include "crc32_fold.h"

namespace pbskit {

uint32_t Crc32(std::span<const uint8_t> data, uint32_t seed) {
  uLong crc = seed;
  const uint8_t* p = data.data();
  size_t n = data.size();
  if (n >= 256 && internal::Crc32FoldAvailable()) {
    // The folding kernel takes whole 16-byte blocks; zlib finishes the tail.
    const size_t blocks = n & ~static_cast<size_t>(15);
    crc = ~internal::Crc32Fold(~seed, p, blocks);
    p += blocks;
    n -= blocks;
  }
  while (n > 0) {  // zlib takes uInt lengths
    uInt step = n > UINT_MAX ? UINT_MAX : static_cast<uInt>(n);
    crc = crc32(crc, p, step);
    p += step;
    n -= step;
  }
  return static_cast<uint32_t>(crc);
}

Digest Sha256(std::span<const uint8_t> data) {
  Digest d;
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

Sha256Stream::Sha256Stream() : ctx_(EVP_MD_CTX_new()) { Reset(); }
Sha256Stream::~Sha256Stream() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Sha256Stream::Reset() {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}
void Sha256Stream::Update(std::span<const uint8_t> data) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size());
}
Digest Sha256Stream::Finish() {
  Digest d;
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), d.data(), &len);
  return d;
}

Digest HmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> message) {
  Digest d;
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), message.data(), message.size(),
       d.data(), &len);
  return d;
}

std::vector<uint8_t> Pbkdf2Sha256(std::span<const uint8_t> password, std::span<const uint8_t> salt,
                                  uint32_t iterations, size_t out_len) {
  std::vector<uint8_t> out(out_len);
  PKCS5_PBKDF2_HMAC(reinterpret_cast<const char*>(password.data()),
                    static_cast<int>(password.size()), salt.data(), static_cast<int>(salt.size()),
                    static_cast<int>(iterations), EVP_sha256(), static_cast<int>(out_len),
                    out.data());
  return out;
}

Result<std::vector<uint8_t>> Scrypt(std::span<const uint8_t> password,
                                    std::span<const uint8_t> salt, uint64_t n, uint64_t r,
                                    uint64_t p, size_t out_len) {
  std::vector<uint8_t> out(out_len);
  // maxmem as PBS sets it (1025 MiB) so n=65536,r=8 works.
  if (EVP_PBE_scrypt(reinterpret_cast<const char*>(password.data()), password.size(),
                     salt.data(), salt.size(), n, r, p, 1025ull * 1024 * 1024, out.data(),
                     out_len) != 1) {
    return Status::InvalidArgument("scrypt failed for n=" + std::to_string(n) +
                                   " r=" + std::to_string(r) + " p=" + std::to_string(p));
  }
  return out;
}

void RandomBytes(std::span<uint8_t> out) {
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) std::abort();
}

namespace {
struct CipherCtx {
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  ~CipherCtx() { EVP_CIPHER_CTX_free(c); }
};
}  // namespace

Status Aes256GcmEncrypt(std::span<const uint8_t, 32> key, std::span<const uint8_t, 16> iv,
                        std::span<const uint8_t> plaintext, std::vector<uint8_t>* ciphertext,
                        std::array<uint8_t, 16>* tag) {
  CipherCtx ctx;
  int len = 0;
  ciphertext->resize(plaintext.size());
  if (EVP_EncryptInit_ex(ctx.c, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.c, EVP_CTRL_GCM_SET_IVLEN, 16, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.c, nullptr, nullptr, key.data(), iv.data()) != 1 ||
      EVP_EncryptUpdate(ctx.c, nullptr, &len, nullptr, 0) != 1)
    return Status::IoError("AES-256-GCM encrypt init failed");
  size_t done = 0;
  while (done < plaintext.size()) {  // OpenSSL takes int lengths
    int step = static_cast<int>(std::min<size_t>(plaintext.size() - done, 1 << 30));
    if (EVP_EncryptUpdate(ctx.c, ciphertext->data() + done, &len, plaintext.data() + done, step) != 1)
      return Status::IoError("AES-256-GCM encrypt failed");
    done += static_cast<size_t>(len);
  }
  if (EVP_EncryptFinal_ex(ctx.c, ciphertext->data() + done, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.c, EVP_CTRL_GCM_GET_TAG, 16, tag->data()) != 1)
    return Status::IoError("AES-256-GCM encrypt finalize failed");
  return Status::OK();
}

Status Aes256GcmDecrypt(std::span<const uint8_t, 32> key, std::span<const uint8_t, 16> iv,
                        std::span<const uint8_t, 16> tag, std::span<const uint8_t> ciphertext,
                        std::vector<uint8_t>* plaintext) {
  CipherCtx ctx;
  int len = 0;
  plaintext->resize(ciphertext.size());
  if (EVP_DecryptInit_ex(ctx.c, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.c, EVP_CTRL_GCM_SET_IVLEN, 16, nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.c, nullptr, nullptr, key.data(), iv.data()) != 1 ||
      EVP_DecryptUpdate(ctx.c, nullptr, &len, nullptr, 0) != 1)
    return Status::IoError("AES-256-GCM decrypt init failed");
  size_t done = 0;
  while (done < ciphertext.size()) {
    int step = static_cast<int>(std::min<size_t>(ciphertext.size() - done, 1 << 30));
    if (EVP_DecryptUpdate(ctx.c, plaintext->data() + done, &len, ciphertext.data() + done, step) != 1)
      return Status::Corruption("AES-256-GCM decrypt failed");
    done += static_cast<size_t>(len);
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.c, EVP_CTRL_GCM_SET_TAG, 16, const_cast<uint8_t*>(tag.data())) != 1)
    return Status::IoError("AES-256-GCM set tag failed");
  if (EVP_DecryptFinal_ex(ctx.c, plaintext->data() + done, &len) != 1)
    return Status::Corruption("AES-256-GCM authentication tag mismatch (wrong key or damaged data)");
  return Status::OK();
}

std::string Base64Encode(std::span<const uint8_t> data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(),
                          static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::vector<uint8_t>> Base64Decode(std::string_view text) {
  if (text.size() % 4) return Status::InvalidArgument("invalid base64 length");
  std::vector<uint8_t> out(text.size() / 4 * 3 + 1);
  int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return Status::InvalidArgument("invalid base64 data");
  size_t pad = 0;
  if (!text.empty() && text.back() == '=') pad++;
  if (text.size() > 1 && text[text.size() - 2] == '=') pad++;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

namespace {

constexpr uint8_t kBase64Invalid = 0xff;

uint8_t Base64Value(uint8_t c) {
  if (c >= 'A' && c <= 'Z') return static_cast<uint8_t>(c - 'A');
  if (c >= 'a' && c <= 'z') return static_cast<uint8_t>(c - 'a' + 26);
  if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0' + 52);
  if (c == '+') return 62;
  if (c == '/') return 63;
  return kBase64Invalid;
}

Status InvalidSymbol(size_t offset, uint8_t byte) {
  return Status::InvalidArgument("Invalid symbol " + std::to_string(byte) + ", offset " +
                                 std::to_string(offset) + ".");
}

}  // namespace

Result<std::vector<uint8_t>> Base64DecodeIndifferentPad(std::string_view text) {
  // The crate's order of checks: a stray last byte of a 4n+1 input, the complete quads before
  // the last one, then the last (possibly partial, possibly padded) quad.
  const auto* in = reinterpret_cast<const uint8_t*>(text.data());
  const size_t len = text.size(), rem = len % 4;
  if (rem == 1 && in[len - 1] != '=' && Base64Value(in[len - 1]) == kBase64Invalid)
    return InvalidSymbol(len - 1, in[len - 1]);
  size_t body = len - rem;
  if (rem == 0) body = len >= 4 ? len - 4 : 0;
  std::vector<uint8_t> out;
  out.reserve(len / 4 * 3 + 3);
  for (size_t i = 0; i < body; i += 4) {
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      uint8_t m = Base64Value(in[i + k]);
      if (m == kBase64Invalid) return InvalidSymbol(i + k, in[i + k]);
      v = (v << 6) | m;
    }
    out.push_back(static_cast<uint8_t>(v >> 16));
    out.push_back(static_cast<uint8_t>(v >> 8));
    out.push_back(static_cast<uint8_t>(v));
  }
  uint8_t morsels[4] = {0, 0, 0, 0};
  size_t count = 0, padding = 0, first_pad = 0;
  uint8_t last = 0;
  for (size_t i = body; i < len; ++i) {
    const uint8_t b = in[i];
    if (b == '=') {
      if (i - body < 2) return InvalidSymbol(i, b);
      if (padding++ == 0) first_pad = i;
      continue;
    }
    if (padding > 0) return InvalidSymbol(first_pad, '=');
    const uint8_t m = Base64Value(b);
    if (m == kBase64Invalid) return InvalidSymbol(i, b);
    last = b;
    morsels[count++] = m;
  }
  if (len > 0 && count < 2)
    return Status::InvalidArgument("Invalid input length: " + std::to_string(body + count));
  const size_t bytes = count * 6 / 8;
  uint32_t v = (uint32_t{morsels[0]} << 26) | (uint32_t{morsels[1]} << 20) |
               (uint32_t{morsels[2]} << 14) | (uint32_t{morsels[3]} << 8);
  const uint32_t mask = bytes >= 4 ? 0 : ~uint32_t{0} >> (bytes * 8);
  if ((v & mask) != 0)
    return Status::InvalidArgument("Invalid last symbol " + std::to_string(last) + ", offset " +
                                   std::to_string(body + count - 1) + ".");
  for (size_t k = 0; k < bytes; ++k) {
    out.push_back(static_cast<uint8_t>(v >> 24));
    v <<= 8;
  }
  return out;
}

}  // namespace pbskit
