#include "pbskit/server/certificate.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <memory>

#include "file_util.h"
#include "pbskit/formats/hex.h"

namespace pbskit::server {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == 0) return "localhost";
  return buf;
}

std::string RandomUuid() {
  std::array<uint8_t, 16> b{};
  RAND_bytes(b.data(), static_cast<int>(b.size()));
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);
  std::string hex = ToHex(std::span<const uint8_t>(b.data(), b.size()));
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

Status AddExt(X509* cert, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) return Status::Aborted("unable to build certificate extension '" + value + "'");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return Status::OK();
}

}  // namespace

Result<bool> EnsureProxyCertificate(const std::string& config_dir,
                                    const CertificateOptions& options) {
  std::string cert_path = config_dir + "/" + kProxyCertFile;
  std::string key_path = config_dir + "/" + kProxyKeyFile;
  if (::access(cert_path.c_str(), F_OK) == 0 && ::access(key_path.c_str(), F_OK) == 0) {
    return false;
  }
  PBSKIT_RETURN_IF_ERROR(EnsureDirectory(config_dir));

  Ptr<EVP_PKEY_CTX> kctx(EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, nullptr));
  EVP_PKEY* raw_key = nullptr;
  if (!kctx || EVP_PKEY_keygen_init(kctx.get()) <= 0 ||
      EVP_PKEY_CTX_set_rsa_keygen_bits(kctx.get(), options.rsa_bits) <= 0 ||
      EVP_PKEY_keygen(kctx.get(), &raw_key) <= 0) {
    return Status::Aborted("unable to generate RSA key for the proxy certificate");
  }
  Ptr<EVP_PKEY> key(raw_key);

  Ptr<X509> cert(X509_new());
  X509_set_version(cert.get(), 2);
  std::array<uint8_t, 16> serial{};
  RAND_bytes(serial.data(), static_cast<int>(serial.size()));
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_time_adj_ex(X509_getm_notAfter(cert.get()), options.validity_days, 0, nullptr);
  X509_set_pubkey(cert.get(), key.get());

  std::string host = HostName();
  std::string uuid = RandomUuid();
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("pbskit"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(uuid.c_str()), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(host.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);

  std::string san = "IP:127.0.0.1,IP:::1,DNS:localhost";
  if (host != "localhost") san += ",DNS:" + host;
  PBSKIT_RETURN_IF_ERROR(AddExt(cert.get(), NID_subject_alt_name, san));
  PBSKIT_RETURN_IF_ERROR(AddExt(cert.get(), NID_basic_constraints, "critical,CA:FALSE"));
  PBSKIT_RETURN_IF_ERROR(
      AddExt(cert.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment"));
  PBSKIT_RETURN_IF_ERROR(AddExt(cert.get(), NID_ext_key_usage, "serverAuth"));

  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) {
    return Status::Aborted("unable to sign the proxy certificate");
  }

  Ptr<BIO> kbio(BIO_new(BIO_s_mem()));
  Ptr<BIO> cbio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(kbio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) ||
      !PEM_write_bio_X509(cbio.get(), cert.get())) {
    return Status::Aborted("unable to encode the proxy certificate as PEM");
  }
  PBSKIT_RETURN_IF_ERROR(ReplaceFile(key_path, BioText(kbio.get()), 0600));
  PBSKIT_RETURN_IF_ERROR(ReplaceFile(cert_path, BioText(cbio.get()), 0640));
  return true;
}

Result<std::string> CertificateFingerprintFromPem(std::string_view pem) {
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Ptr<X509> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return Status::InvalidArgument("no PEM certificate found");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!X509_digest(cert.get(), EVP_sha256(), md, &len)) {
    return Status::Aborted("unable to compute certificate fingerprint");
  }
  std::string out;
  char buf[4];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof(buf), "%02x", md[i]);
    if (i) out += ':';
    out += buf;
  }
  return out;
}

Result<std::string> CertificateFingerprint(const std::string& pem_path) {
  PBSKIT_ASSIGN_OR_RETURN(std::string pem, ReadFileText(pem_path));
  auto fp = CertificateFingerprintFromPem(pem);
  if (!fp.ok()) return fp.status().WithContext(pem_path);
  return fp;
}

}  // namespace pbskit::server
