#include "pbskit/formats/key_config.h"

#include <boost/json.hpp>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "pbskit/formats/crypt_config.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/json.h"

namespace pbskit {
namespace json = boost::json;

namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

Status Bad(const std::string& what) { return Status::InvalidArgument("key file: " + what); }

Result<uint64_t> GetUint(const json::object& o, const char* name, const char* where) {
  const json::value* v = o.if_contains(name);
  if (!v) return Bad(std::string("missing field '") + name + "' in " + where);
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64() && v->get_int64() >= 0) return static_cast<uint64_t>(v->get_int64());
  return Bad(std::string("field '") + name + "' in " + where + " must be a non-negative integer");
}

Result<std::string> GetString(const json::object& o, const char* name) {
  const json::value* v = o.if_contains(name);
  if (!v) return Bad(std::string("missing field '") + name + "'");
  if (!v->is_string()) return Bad(std::string("field '") + name + "' must be a string");
  return std::string(v->get_string());
}

Result<std::vector<uint8_t>> GetBase64(const json::object& o, const char* name) {
  PBSKIT_ASSIGN_OR_RETURN(std::string text, GetString(o, name));
  auto bytes = Base64Decode(text);
  if (!bytes.ok()) return Bad(std::string("field '") + name + "' is not valid base64");
  return std::move(bytes).value();
}

Result<std::array<uint8_t, 32>> DeriveKey(const KeyConfig& kc, std::string_view password) {
  std::vector<uint8_t> derived;
  if (kc.kdf == Kdf::kScrypt) {
    PBSKIT_ASSIGN_OR_RETURN(
        derived, Scrypt(Bytes(password), kc.salt, kc.scrypt_n, kc.scrypt_r, kc.scrypt_p, 32));
  } else {
    derived = Pbkdf2Sha256(Bytes(password), kc.salt, kc.pbkdf2_iter, 32);
  }
  std::array<uint8_t, 32> key;
  std::memcpy(key.data(), derived.data(), 32);
  return key;
}

}  // namespace

const char* KdfName(Kdf kdf) {
  switch (kdf) {
    case Kdf::kNone:
      return "none";
    case Kdf::kScrypt:
      return "scrypt";
    case Kdf::kPbkdf2:
      return "pbkdf2";
  }
  return "none";
}

Result<Kdf> ParseKdf(std::string_view name) {
  if (name == "none") return Kdf::kNone;
  if (name == "scrypt") return Kdf::kScrypt;
  if (name == "pbkdf2") return Kdf::kPbkdf2;
  return Status::InvalidArgument("unknown key derivation function '" + std::string(name) +
                                 "' (expected none, scrypt or pbkdf2)");
}

Result<int64_t> Rfc3339ToEpoch(std::string_view s) {
  auto bad = [&]() {
    return Status::InvalidArgument("not an RFC 3339 time: '" + std::string(s) + "'");
  };
  auto num = [&](size_t pos, size_t n, int* out) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (size_t i = 0; i < n; ++i) {
      char c = s[pos + i];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    *out = v;
    return true;
  };
  int year, mon, day, hour, min, sec;
  if (!num(0, 4, &year) || s.size() < 20 || s[4] != '-' || !num(5, 2, &mon) || s[7] != '-' ||
      !num(8, 2, &day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !num(11, 2, &hour) ||
      s[13] != ':' || !num(14, 2, &min) || s[16] != ':' || !num(17, 2, &sec)) {
    return bad();
  }
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) {
    return bad();
  }
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {  // fractional seconds are accepted and dropped
    ++pos;
    size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return bad();
  }
  int64_t offset = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    if (pos + 1 != s.size()) return bad();
  } else {
    int oh, om;
    if (pos + 6 != s.size() || (s[pos] != '+' && s[pos] != '-') || !num(pos + 1, 2, &oh) ||
        s[pos + 3] != ':' || !num(pos + 4, 2, &om) || oh > 23 || om > 59) {
      return bad();
    }
    offset = (s[pos] == '-' ? -1 : 1) * (oh * 3600 + om * 60);
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  return static_cast<int64_t>(timegm(&tm)) - offset;
}

std::string LocalTimeRfc3339() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  long off = tm.tm_gmtoff;
  char sign = off < 0 ? '-' : '+';
  if (off < 0) off = -off;
  char zone[48];
  std::snprintf(zone, sizeof zone, "%c%02ld:%02ld", sign, off / 3600, (off % 3600) / 60);
  return std::string(buf) + zone;
}

Result<KeyConfig> KeyConfig::Parse(std::string_view text) {
  boost::system::error_code ec;
  json::value root = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec) return Bad("invalid JSON: " + ec.message());
  if (!root.is_object()) return Bad("expected a JSON object");
  const json::object& o = root.get_object();

  KeyConfig kc;
  const json::value* kdf = o.if_contains("kdf");
  if (!kdf || kdf->is_null()) {
    kc.kdf = Kdf::kNone;
  } else if (kdf->is_object() && kdf->get_object().size() == 1) {
    const auto& entry = *kdf->get_object().begin();
    if (!entry.value().is_object()) return Bad("kdf parameters must be an object");
    const json::object& params = entry.value().get_object();
    if (entry.key() == "Scrypt") {
      kc.kdf = Kdf::kScrypt;
      PBSKIT_ASSIGN_OR_RETURN(kc.scrypt_n, GetUint(params, "n", "Scrypt"));
      PBSKIT_ASSIGN_OR_RETURN(kc.scrypt_r, GetUint(params, "r", "Scrypt"));
      PBSKIT_ASSIGN_OR_RETURN(kc.scrypt_p, GetUint(params, "p", "Scrypt"));
    } else if (entry.key() == "PBKDF2") {
      kc.kdf = Kdf::kPbkdf2;
      PBSKIT_ASSIGN_OR_RETURN(uint64_t iter, GetUint(params, "iter", "PBKDF2"));
      if (iter == 0 || iter > 0xffffffffu) return Bad("PBKDF2 iteration count out of range");
      kc.pbkdf2_iter = static_cast<uint32_t>(iter);
    } else {
      return Bad("unknown kdf '" + std::string(entry.key()) + "' (expected Scrypt or PBKDF2)");
    }
    PBSKIT_ASSIGN_OR_RETURN(kc.salt, GetBase64(params, "salt"));
  } else {
    return Bad("kdf must be null or an object with one of Scrypt, PBKDF2");
  }

  PBSKIT_ASSIGN_OR_RETURN(kc.created, GetString(o, "created"));
  PBSKIT_ASSIGN_OR_RETURN(kc.modified, GetString(o, "modified"));
  if (!Rfc3339ToEpoch(kc.created).ok()) {
    return Bad("'created' is not an RFC 3339 time: " + kc.created);
  }
  if (!Rfc3339ToEpoch(kc.modified).ok()) {
    return Bad("'modified' is not an RFC 3339 time: " + kc.modified);
  }
  PBSKIT_ASSIGN_OR_RETURN(kc.data, GetBase64(o, "data"));

  if (const json::value* fp = o.if_contains("fingerprint"); fp && !fp->is_null()) {
    if (!fp->is_string()) return Bad("'fingerprint' must be a string");
    std::string text_fp(fp->get_string());
    PBSKIT_ASSIGN_OR_RETURN(Digest parsed, ParseFingerprint(text_fp));
    kc.fingerprint = FormatFingerprint(parsed);
  }
  if (const json::value* hint = o.if_contains("hint"); hint && !hint->is_null()) {
    if (!hint->is_string()) return Bad("'hint' must be a string");
    kc.hint = std::string(hint->get_string());
  }
  return kc;
}

std::string KeyConfig::ToJson() const {
  auto str = [](std::string_view s) {
    std::string quoted;
    AppendSerdeString(s, &quoted);
    return quoted;
  };
  std::string out = "{\"kdf\":";
  switch (kdf) {
    case Kdf::kNone:
      out += "null";
      break;
    case Kdf::kScrypt:
      out += "{\"Scrypt\":{\"n\":" + std::to_string(scrypt_n) +
             ",\"r\":" + std::to_string(scrypt_r) + ",\"p\":" + std::to_string(scrypt_p) +
             ",\"salt\":" + str(Base64Encode(salt)) + "}}";
      break;
    case Kdf::kPbkdf2:
      out += "{\"PBKDF2\":{\"iter\":" + std::to_string(pbkdf2_iter) +
             ",\"salt\":" + str(Base64Encode(salt)) + "}}";
      break;
  }
  out += ",\"created\":" + str(created);
  out += ",\"modified\":" + str(modified);
  out += ",\"data\":" + str(Base64Encode(data));
  if (fingerprint) out += ",\"fingerprint\":" + str(*fingerprint);
  if (hint) out += ",\"hint\":" + str(*hint);
  out += "}";
  return out;
}

Result<KeyConfig> KeyConfig::Create(const std::array<uint8_t, 32>& key, Kdf kdf,
                                    std::string_view password) {
  KeyConfig kc;
  kc.kdf = kdf;
  kc.created = LocalTimeRfc3339();
  kc.modified = kc.created;
  kc.fingerprint = CryptConfig(key).FingerprintString();
  if (kdf == Kdf::kNone) {
    kc.data.assign(key.begin(), key.end());
    return kc;
  }
  if (password.size() < 5) return Status::InvalidArgument("Passphrase is too short!");
  kc.salt.resize(32);
  RandomBytes(kc.salt);
  if (kdf == Kdf::kScrypt) {
    kc.scrypt_n = kDefaultScryptN;
    kc.scrypt_r = kDefaultScryptR;
    kc.scrypt_p = kDefaultScryptP;
  } else {
    kc.pbkdf2_iter = kDefaultPbkdf2Iter;
  }
  PBSKIT_ASSIGN_OR_RETURN(auto derived, DeriveKey(kc, password));
  std::array<uint8_t, 16> iv;
  RandomBytes(iv);
  std::array<uint8_t, 16> tag;
  std::vector<uint8_t> ciphertext;
  PBSKIT_RETURN_IF_ERROR(Aes256GcmEncrypt(derived, iv, key, &ciphertext, &tag));
  kc.data.assign(iv.begin(), iv.end());
  kc.data.insert(kc.data.end(), tag.begin(), tag.end());
  kc.data.insert(kc.data.end(), ciphertext.begin(), ciphertext.end());
  return kc;
}

Result<std::array<uint8_t, 32>> KeyConfig::Decrypt(std::string_view password) const {
  std::vector<uint8_t> plain;
  if (kdf != Kdf::kNone) {
    if (password.size() < 5) return Status::InvalidArgument("Passphrase is too short!");
    PBSKIT_ASSIGN_OR_RETURN(auto derived, DeriveKey(*this, password));
    if (data.size() < 32) return Status::InvalidArgument("Unable to decrypt key - short data");
    std::span<const uint8_t> all(data);
    Status st = Aes256GcmDecrypt(derived, all.subspan<0, 16>(), all.subspan<16, 16>(),
                                 all.subspan(32), &plain);
    if (!st.ok()) {
      if (hint)
        return Status::InvalidArgument("Unable to decrypt key (password hint: " + *hint + ")");
      return Status::InvalidArgument("Unable to decrypt key (wrong password?)");
    }
  } else {
    plain = data;
  }
  if (plain.size() != 32) {
    return Status::InvalidArgument("key file: got strange key length (" +
                                   std::to_string(plain.size()) + " != 32)");
  }
  std::array<uint8_t, 32> key;
  std::memcpy(key.data(), plain.data(), 32);
  if (fingerprint) {
    std::string actual = CryptConfig(key).FingerprintString();
    auto stored = ParseFingerprint(*fingerprint);
    if (!stored.ok() || FormatFingerprint(*stored) != actual) {
      return Status::InvalidArgument("KeyConfig contains wrong fingerprint " + *fingerprint +
                                     ", contained key has fingerprint " + actual);
    }
  }
  return key;
}

}  // namespace pbskit
