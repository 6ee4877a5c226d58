#include "pbskit/server/password.h"

#include <dlfcn.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>
#include <mutex>

namespace pbskit::server {
namespace {

// Layout of libxcrypt's `struct crypt_data` is opaque to us; it is 32768 bytes.
constexpr size_t kCryptDataSize = 32768;
constexpr const char* kHashPrefix = "$y$";
constexpr unsigned long kHashCost = 5;

using CryptRnFn = char* (*)(const char*, const char*, void*, int);
using GensaltRnFn = char* (*)(const char*, unsigned long, const char*, int, char*, int);

struct LibCrypt {
  CryptRnFn crypt_rn = nullptr;
  GensaltRnFn gensalt_rn = nullptr;
};

const LibCrypt& Lib() {
  static LibCrypt lib = [] {
    LibCrypt l;
    void* h = dlopen("libcrypt.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libcrypt.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libcrypt.so", RTLD_NOW | RTLD_LOCAL);
    if (h) {
      l.crypt_rn = reinterpret_cast<CryptRnFn>(dlsym(h, "crypt_rn"));
      l.gensalt_rn = reinterpret_cast<GensaltRnFn>(dlsym(h, "crypt_gensalt_rn"));
    }
    return l;
  }();
  return lib;
}

Result<std::string> Crypt(std::string_view password, const std::string& setting) {
  const auto& lib = Lib();
  if (!lib.crypt_rn) return Status::Unsupported("libcrypt (crypt_rn) is not available");
  std::string pw(password);
  if (pw.find('\0') != std::string::npos) return Status::InvalidArgument("password contains NUL");
  auto data = std::make_unique<char[]>(kCryptDataSize);
  std::memset(data.get(), 0, kCryptDataSize);
  char* out = lib.crypt_rn(pw.c_str(), setting.c_str(), data.get(), kCryptDataSize);
  if (!out || out[0] == '*') return Status::InvalidArgument("crypt failed for this hash setting");
  return std::string(out);
}

}  // namespace

Result<std::string> EncryptPassword(std::string_view password) {
  const auto& lib = Lib();
  if (!lib.gensalt_rn) return Status::Unsupported("libcrypt (crypt_gensalt_rn) is not available");
  unsigned char rbytes[32];
  if (RAND_bytes(rbytes, sizeof(rbytes)) != 1) return Status::Aborted("RAND_bytes failed");
  char salt[256] = {};
  if (!lib.gensalt_rn(kHashPrefix, kHashCost, reinterpret_cast<const char*>(rbytes),
                      sizeof(rbytes), salt, sizeof(salt)) ||
      salt[0] == '*') {
    return Status::Unsupported("libcrypt cannot create a yescrypt salt");
  }
  return Crypt(password, salt);
}

Status VerifyPassword(std::string_view password, const std::string& hash) {
  auto computed = Crypt(password, hash);
  if (!computed.ok()) return Status::PermissionDenied("invalid credentials");
  if (computed->size() != hash.size() ||
      CRYPTO_memcmp(computed->data(), hash.data(), hash.size()) != 0) {
    return Status::PermissionDenied("invalid credentials");
  }
  return Status::OK();
}

}  // namespace pbskit::server
