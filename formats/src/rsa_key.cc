// RSA master key wrapping of key files (rsa-encrypted.key.blob payloads).
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <cstring>
#include <memory>
#include <string>

#include "pbskit/formats/key_config.h"

namespace pbskit {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;

// The most recent OpenSSL error as text; clears the error queue.
std::string OpenSslError() {
  unsigned long code = ERR_get_error();
  std::string text = "unknown error";
  if (code) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    text = buf;
  }
  ERR_clear_error();
  return text;
}

std::unique_ptr<BIO, BioFree> MemBio(std::string_view pem) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Reads "PUBLIC KEY" (SPKI) or "RSA PUBLIC KEY" (PKCS#1) PEM.
Result<PkeyPtr> ReadPublicKey(std::string_view pem) {
  auto bio = MemBio(pem);
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (!key) {
    ERR_clear_error();
    EVP_PKEY* decoded = nullptr;
    OSSL_DECODER_CTX* dctx = OSSL_DECODER_CTX_new_for_pkey(&decoded, "PEM", "type-specific", "RSA",
                                                           EVP_PKEY_PUBLIC_KEY, nullptr, nullptr);
    auto bio2 = MemBio(pem);
    if (dctx && OSSL_DECODER_from_bio(dctx, bio2.get()) == 1) key = decoded;
    OSSL_DECODER_CTX_free(dctx);
  }
  if (!key) {
    return Status::InvalidArgument("Unable to decode PEM data - " + OpenSslError());
  }
  PkeyPtr ptr(key);
  if (EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
    return Status::InvalidArgument("master public key is not an RSA key");
  }
  return ptr;
}

int PasswordCallback(char* buf, int size, int /*rwflag*/, void* user) {
  auto* pw = static_cast<std::string_view*>(user);
  if (pw->size() > static_cast<size_t>(size)) return -1;
  std::memcpy(buf, pw->data(), pw->size());
  return static_cast<int>(pw->size());
}

}  // namespace

Result<std::vector<uint8_t>> RsaEncryptKeyConfig(std::string_view public_pem,
                                                 const KeyConfig& plain) {
  PBSKIT_ASSIGN_OR_RETURN(PkeyPtr key, ReadPublicKey(public_pem));
  std::string json = plain.ToJson();
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new(key.get(), nullptr));
  size_t out_len = 0;
  if (!ctx || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1 ||
      EVP_PKEY_encrypt(ctx.get(), nullptr, &out_len,
                       reinterpret_cast<const unsigned char*>(json.data()), json.size()) != 1) {
    return Status::InvalidArgument("RSA encryption setup failed - " + OpenSslError());
  }
  std::vector<uint8_t> out(out_len);
  if (EVP_PKEY_encrypt(ctx.get(), out.data(), &out_len,
                       reinterpret_cast<const unsigned char*>(json.data()), json.size()) != 1) {
    return Status::InvalidArgument("RSA encryption of the key config failed (" +
                                   std::to_string(json.size()) + " bytes for a " +
                                   std::to_string(EVP_PKEY_get_bits(key.get())) + "-bit key) - " +
                                   OpenSslError());
  }
  if (out_len != static_cast<size_t>(EVP_PKEY_get_size(key.get()))) {
    return Status::InvalidArgument("got unexpected length from RSA public encrypt");
  }
  out.resize(out_len);
  return out;
}

Result<KeyConfig> RsaDecryptKeyConfig(std::string_view private_pem, std::string_view pem_password,
                                      std::span<const uint8_t> payload) {
  auto bio = MemBio(private_pem);
  std::string_view pw = pem_password;
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, PasswordCallback, &pw));
  if (!key) {
    return Status::InvalidArgument("failed to read PEM-formatted private key - " + OpenSslError());
  }
  if (EVP_PKEY_base_id(key.get()) != EVP_PKEY_RSA) {
    return Status::InvalidArgument("not a valid private RSA key");
  }
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new(key.get(), nullptr));
  size_t out_len = 0;
  if (!ctx || EVP_PKEY_decrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1 ||
      EVP_PKEY_decrypt(ctx.get(), nullptr, &out_len, payload.data(), payload.size()) != 1) {
    return Status::Corruption("failed to decrypt KeyConfig using RSA - " + OpenSslError());
  }
  std::vector<uint8_t> out(out_len);
  if (EVP_PKEY_decrypt(ctx.get(), out.data(), &out_len, payload.data(), payload.size()) != 1) {
    return Status::Corruption("failed to decrypt KeyConfig using RSA - " + OpenSslError());
  }
  std::string_view json(reinterpret_cast<const char*>(out.data()), out_len);
  auto kc = KeyConfig::Parse(json);
  if (!kc.ok()) {
    return Status::Corruption("RSA-decrypted key config is not valid (wrong master key?): " +
                              kc.status().message());
  }
  return std::move(kc).value();
}

Result<MasterKeyPair> GenerateMasterKey(int bits, std::string_view password) {
  if (bits < 3072) {  // a key file JSON (~260 bytes) must fit one PKCS#1 v1.5 block
    return Status::InvalidArgument("RSA master keys need at least 3072 bits");
  }
  if (password.empty()) return Status::InvalidArgument("master key password must not be empty");
  PkeyPtr key(EVP_RSA_gen(static_cast<unsigned int>(bits)));
  if (!key) return Status::IoError("RSA key generation failed - " + OpenSslError());
  auto to_string = [](BIO* bio) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<size_t>(len));
  };
  std::unique_ptr<BIO, BioFree> pub(BIO_new(BIO_s_mem()));
  std::unique_ptr<BIO, BioFree> priv(BIO_new(BIO_s_mem()));
  if (!pub || !priv || PEM_write_bio_PUBKEY(pub.get(), key.get()) != 1 ||
      PEM_write_bio_PKCS8PrivateKey(priv.get(), key.get(), EVP_aes_256_cbc(),
                                    const_cast<char*>(password.data()),
                                    static_cast<int>(password.size()), nullptr, nullptr) != 1) {
    return Status::IoError("writing the master key PEM failed - " + OpenSslError());
  }
  return MasterKeyPair{to_string(pub.get()), to_string(priv.get())};
}

Result<RsaPublicKeyInfo> DescribeRsaPublicKey(std::string_view public_pem) {
  PBSKIT_ASSIGN_OR_RETURN(PkeyPtr key, ReadPublicKey(public_pem));
  BIGNUM* n = nullptr;
  BIGNUM* e = nullptr;
  if (EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
      EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
    BN_free(n);
    BN_free(e);
    return Status::InvalidArgument("unable to read RSA key parameters - " + OpenSslError());
  }
  RsaPublicKeyInfo info;
  char* hex = BN_bn2hex(n);
  char* dec = BN_bn2dec(e);
  info.modulus = hex ? hex : "";
  info.exponent = dec ? dec : "";
  info.length = EVP_PKEY_get_size(key.get()) * 8;
  OPENSSL_free(hex);
  OPENSSL_free(dec);
  BN_free(n);
  BN_free(e);
  return info;
}

}  // namespace pbskit
