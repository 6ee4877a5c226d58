#include "pbskit/server/ticket.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "file_util.h"
#include "pbskit/formats/crypto.h"

namespace pbskit::server {

struct AuthKeys::Keys {
  EVP_PKEY* key = nullptr;
  std::vector<uint8_t> csrf_secret;
  ~Keys() { EVP_PKEY_free(key); }
};

namespace {

std::string B64NoPad(const std::vector<uint8_t>& data) {
  std::string s = Base64Encode(data);
  while (!s.empty() && s.back() == '=') s.pop_back();
  return s;
}

Result<std::vector<uint8_t>> B64DecodeNoPad(std::string_view s) {
  std::string padded(s);
  if (padded.find('=') != std::string::npos) return Status::InvalidArgument("padding in base64");
  while (padded.size() % 4 != 0) padded += '=';
  return Base64Decode(padded);
}

std::string Hex8(int64_t t) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%08llX", static_cast<unsigned long long>(t));
  return buf;
}

// Percent-encode control characters and ':' (TICKET_ASCIISET).
std::string TicketEncode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7f || c == ':') {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() &&
        std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

Result<std::vector<uint8_t>> Sign(EVP_PKEY* key, const std::string& data) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const EVP_MD* md = EVP_PKEY_id(key) == EVP_PKEY_ED25519 ? nullptr : EVP_sha256();
  size_t len = 0;
  std::vector<uint8_t> sig;
  bool ok = EVP_DigestSignInit(ctx, nullptr, md, nullptr, key) == 1 &&
            EVP_DigestSign(ctx, nullptr, &len,
                           reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSign(ctx, sig.data(), &len, reinterpret_cast<const unsigned char*>(data.data()),
                        data.size()) == 1;
    sig.resize(len);
  }
  EVP_MD_CTX_free(ctx);
  if (!ok) return Status::Aborted("error signing ticket");
  return sig;
}

bool VerifySig(EVP_PKEY* key, const std::string& data, const std::vector<uint8_t>& sig) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const EVP_MD* md = EVP_PKEY_id(key) == EVP_PKEY_ED25519 ? nullptr : EVP_sha256();
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, md, nullptr, key) == 1 &&
            EVP_DigestVerify(ctx, sig.data(), sig.size(),
                             reinterpret_cast<const unsigned char*>(data.data()),
                             data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

std::vector<uint8_t> HmacSha3(const std::vector<uint8_t>& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha3_256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::vector<uint8_t>(out, out + len);
}

std::string PemOf(EVP_PKEY* key, bool priv) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (priv) {
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  } else {
    PEM_write_bio_PUBKEY(bio, key);
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

}  // namespace

AuthKeys::AuthKeys(std::unique_ptr<Keys> keys) : keys_(std::move(keys)) {}
AuthKeys::~AuthKeys() = default;

Result<std::shared_ptr<const AuthKeys>> AuthKeys::LoadOrCreate(const std::string& config_dir) {
  PBSKIT_RETURN_IF_ERROR(EnsureDirectory(config_dir));
  auto keys = std::make_unique<Keys>();
  std::string priv_path = config_dir + "/authkey.key";
  std::string pub_path = config_dir + "/authkey.pub";
  auto pem = ReadFileText(priv_path);
  if (pem.ok()) {
    BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
    keys->key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (!keys->key) return Status::InvalidArgument("failed to decode private key from PEM - " +
                                                   priv_path);
  } else if (pem.status().IsNotFound()) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
    if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_keygen(ctx, &keys->key) <= 0) {
      EVP_PKEY_CTX_free(ctx);
      return Status::Aborted("failed to generate EC PKey");
    }
    EVP_PKEY_CTX_free(ctx);
    PBSKIT_RETURN_IF_ERROR(ReplaceFile(priv_path, PemOf(keys->key, true), 0600));
  } else {
    return pem.status();
  }
  if (::access(pub_path.c_str(), F_OK) != 0) {
    PBSKIT_RETURN_IF_ERROR(ReplaceFile(pub_path, PemOf(keys->key, false), 0640));
  }

  std::string csrf_path = config_dir + "/csrf.key";
  auto csrf = ReadFileText(csrf_path);
  if (csrf.ok()) {
    std::string text = *csrf;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    auto decoded = B64DecodeNoPad(text);
    // Legacy secrets that are not base64 are used as raw bytes, like PBS does.
    keys->csrf_secret = decoded.ok() ? *decoded : std::vector<uint8_t>(csrf->begin(), csrf->end());
  } else if (csrf.status().IsNotFound()) {
    keys->csrf_secret.resize(64);
    RandomBytes(keys->csrf_secret);
    PBSKIT_RETURN_IF_ERROR(ReplaceFile(csrf_path, B64NoPad(keys->csrf_secret), 0640));
  } else {
    return csrf.status();
  }
  return std::shared_ptr<const AuthKeys>(new AuthKeys(std::move(keys)));
}

Result<std::string> AuthKeys::CreateTicket(const std::string& userid, int64_t now) const {
  std::string data = "PBS:" + TicketEncode(userid) + ":" + Hex8(now);
  PBSKIT_ASSIGN_OR_RETURN(auto sig, Sign(keys_->key, data));
  return data + "::" + B64NoPad(sig);
}

Result<std::string> AuthKeys::VerifyTicket(std::string_view ticket, int64_t now) const {
  auto bad = [](const std::string& why) { return Status::PermissionDenied(why); };
  auto sep = ticket.rfind("::");
  if (sep == std::string_view::npos) return bad("ticket without signature");
  std::string data(ticket.substr(0, sep));
  std::string_view sig_text = ticket.substr(sep + 2);
  auto first = data.find(':');
  auto last = data.rfind(':');
  if (first == std::string::npos || last == first) return bad("ticket is not in the right format");
  if (data.substr(0, first) != "PBS") return bad("ticket with invalid prefix");
  std::string time_text = data.substr(last + 1);
  if (time_text.empty() || time_text.size() > 16) return bad("ticket with invalid time stamp");
  for (char c : time_text) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return bad("ticket with invalid time stamp");
  }
  int64_t time = static_cast<int64_t>(std::stoull(time_text, nullptr, 16));
  auto sig = B64DecodeNoPad(sig_text);
  if (!sig.ok() || !VerifySig(keys_->key, data, *sig)) return bad("ticket with invalid signature");
  int64_t age = now - time;
  if (age < -300) return bad("ticket is too new");
  if (age > kTicketLifetime) return bad("ticket expired");
  std::string userid = PercentDecode(data.substr(first + 1, last - first - 1));
  if (userid.rfind("!tfa!", 0) == 0) return bad("ticket is only a partial (TFA) ticket");
  return userid;
}

std::string AuthKeys::CreateCsrfToken(const std::string& userid, int64_t now) const {
  std::string ts = Hex8(now);
  return ts + ":" + B64NoPad(HmacSha3(keys_->csrf_secret, ts + ":" + userid + ":"));
}

Status AuthKeys::VerifyCsrfToken(const std::string& userid, std::string_view token,
                                 int64_t now) const {
  auto bad = [](const std::string& why) {
    return Status::PermissionDenied("invalid csrf token - " + why);
  };
  auto colon = token.find(':');
  if (colon == std::string_view::npos || token.find(':', colon + 1) != std::string_view::npos) {
    return bad("format error - wrong number of parts.");
  }
  std::string ts(token.substr(0, colon));
  auto sig = B64DecodeNoPad(token.substr(colon + 1));
  if (!sig.ok()) return bad("could not base64 decode csrf signature");
  if (ts.empty() || ts.size() > 16) return bad("timestamp format error");
  for (char c : ts) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return bad("timestamp format error");
  }
  int64_t time = static_cast<int64_t>(std::stoull(ts, nullptr, 16));
  auto expected = HmacSha3(keys_->csrf_secret, ts + ":" + userid + ":");
  if (expected.size() != sig->size() ||
      CRYPTO_memcmp(expected.data(), sig->data(), expected.size()) != 0) {
    return bad("invalid signature.");
  }
  int64_t age = now - time;
  if (age < -300) return bad("timestamp newer than expected.");
  if (age > kTicketLifetime) return bad("timestamp too old.");
  return Status::OK();
}

}  // namespace pbskit::server
