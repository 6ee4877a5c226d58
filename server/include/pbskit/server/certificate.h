// The server's TLS certificate: `proxy.pem` / `proxy.key` in the configuration directory, as PBS
// names them. A self-signed certificate is made on first start; clients pin its fingerprint.
#pragma once

#include <string>
#include <string_view>

#include "pbskit/formats/status.h"

namespace pbskit::server {

inline constexpr const char* kProxyCertFile = "proxy.pem";
inline constexpr const char* kProxyKeyFile = "proxy.key";

struct CertificateOptions {
  int rsa_bits = 4096;     // PBS makes RSA-4096 certificates
  int validity_days = 365000;  // PBS: 1000 years
};

// Makes sure `<config_dir>/proxy.pem` and `proxy.key` exist. When either is missing a new
// self-signed RSA certificate (SHA-256 signature, CN = host name, SAN 127.0.0.1, ::1, localhost
// and the host name) is written atomically (key mode 0600). Returns true when it created one.
// Thread safety: callers serialise (done once at server start / by the CLI).
// Errors: IoError for file problems, Aborted when OpenSSL fails.
Result<bool> EnsureProxyCertificate(const std::string& config_dir,
                                    const CertificateOptions& options = {});

// Fingerprint of the first (leaf) certificate of a PEM text: SHA-256 of its DER encoding as 32
// lower-case hex byte pairs joined by ':' (the form proxmox-backup-client pins).
// InvalidArgument when the text holds no certificate.
Result<std::string> CertificateFingerprintFromPem(std::string_view pem);

// Same for a PEM file. NotFound / IoError for file problems.
Result<std::string> CertificateFingerprint(const std::string& pem_path);

}  // namespace pbskit::server
