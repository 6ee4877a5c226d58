// Snapshot manifest codec and signature (FORMATS.md §4).
#include "pbskit/formats/manifest.h"

#include <algorithm>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/json.h"

namespace pbskit {

const char* CryptModeName(CryptMode m) {
  switch (m) {
    case CryptMode::kNone:
      return "none";
    case CryptMode::kEncrypt:
      return "encrypt";
    case CryptMode::kSignOnly:
      return "sign-only";
  }
  return "none";
}

Result<CryptMode> ParseCryptMode(std::string_view s) {
  if (s == "none") return CryptMode::kNone;
  if (s == "encrypt") return CryptMode::kEncrypt;
  if (s == "sign-only") return CryptMode::kSignOnly;
  return Status::InvalidArgument("unknown crypt-mode '" + std::string(s) +
                                 "' (expected none, encrypt or sign-only)");
}

Result<ArchiveType> ArchiveTypeOf(std::string_view filename) {
  size_t slash = filename.rfind('/');
  std::string_view base = slash == std::string_view::npos ? filename : filename.substr(slash + 1);
  size_t dot = base.rfind('.');
  if (dot != std::string_view::npos && dot > 0) {
    std::string_view ext = base.substr(dot + 1);
    if (ext == "fidx") return ArchiveType::kFixedIndex;
    if (ext == "didx") return ArchiveType::kDynamicIndex;
    if (ext == "blob") return ArchiveType::kBlob;
  }
  return Status::InvalidArgument("unknown archive type: \"" + std::string(filename) + "\"");
}

namespace {

std::string_view View(const boost::json::string& s) { return {s.data(), s.size()}; }

Result<std::string> GetString(const boost::json::object& o, std::string_view key,
                              const std::string& where) {
  auto it = o.find(key);
  if (it == o.end()) return Status::Corruption(where + ": missing \"" + std::string(key) + "\"");
  if (!it->value().is_string()) {
    return Status::Corruption(where + ": \"" + std::string(key) + "\" is not a string");
  }
  return std::string(View(it->value().get_string()));
}

Result<int64_t> GetI64(const boost::json::object& o, std::string_view key,
                       const std::string& where) {
  auto it = o.find(key);
  if (it == o.end()) return Status::Corruption(where + ": missing \"" + std::string(key) + "\"");
  const auto& v = it->value();
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v.get_uint64());
  }
  return Status::Corruption(where + ": \"" + std::string(key) + "\" is not an i64 integer");
}

Result<uint64_t> GetU64(const boost::json::object& o, std::string_view key,
                        const std::string& where) {
  auto it = o.find(key);
  if (it == o.end()) return Status::Corruption(where + ": missing \"" + std::string(key) + "\"");
  const auto& v = it->value();
  if (v.is_uint64()) return v.get_uint64();
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<uint64_t>(v.get_int64());
  return Status::Corruption(where + ": \"" + std::string(key) + "\" is not a u64 integer");
}

Result<FileInfo> ParseFileInfo(const boost::json::value& v, const std::string& where) {
  if (!v.is_object()) return Status::Corruption(where + ": entry is not an object");
  const auto& o = v.get_object();
  FileInfo f;
  PBSKIT_ASSIGN_OR_RETURN(f.filename, GetString(o, "filename", where));
  auto cm = o.find("crypt-mode");
  if (cm != o.end()) {  // absent in manifests older than 0.8.0
    if (!cm->value().is_string()) return Status::Corruption(where + ": crypt-mode is not a string");
    auto mode = ParseCryptMode(View(cm->value().get_string()));
    if (!mode.ok()) return Status::Corruption(where + ": " + mode.status().message());
    f.crypt_mode = *mode;
  }
  PBSKIT_ASSIGN_OR_RETURN(f.size, GetU64(o, "size", where));
  PBSKIT_ASSIGN_OR_RETURN(std::string csum, GetString(o, "csum", where));
  auto d = DigestFromHex(csum);
  if (!d.ok()) return Status::Corruption(where + ": csum '" + csum + "' is not 64 hex digits");
  f.csum = *d;
  return f;
}

boost::json::object FileValue(const FileInfo& f) {
  boost::json::object o;  // serde's sorted key order
  o["crypt-mode"] = CryptModeName(f.crypt_mode);
  o["csum"] = ToHex(f.csum);
  o["filename"] = f.filename;
  o["size"] = f.size;
  return o;
}

std::string NormalizeFingerprint(std::string_view fp) {
  std::string out;
  for (char c : fp) {
    if (c == ':') continue;
    out.push_back(static_cast<char>(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c));
  }
  return out;
}

}  // namespace

Result<Manifest> Manifest::Parse(std::string_view json, const std::string& name) {
  boost::system::error_code ec;
  boost::json::value root =
      boost::json::parse(boost::json::string_view(json.data(), json.size()), ec);
  if (ec) return Status::Corruption(name + ": manifest is not valid JSON: " + ec.message());
  if (!root.is_object()) return Status::Corruption(name + ": manifest is not a JSON object");
  const auto& o = root.get_object();
  Manifest m;
  PBSKIT_ASSIGN_OR_RETURN(m.backup_type, GetString(o, "backup-type", name));
  if (m.backup_type != "vm" && m.backup_type != "ct" && m.backup_type != "host") {
    return Status::Corruption(name + ": unknown backup-type '" + m.backup_type + "'");
  }
  PBSKIT_ASSIGN_OR_RETURN(m.backup_id, GetString(o, "backup-id", name));
  PBSKIT_ASSIGN_OR_RETURN(m.backup_time, GetI64(o, "backup-time", name));
  auto files = o.find("files");
  if (files == o.end()) return Status::Corruption(name + ": missing \"files\"");
  if (!files->value().is_array()) return Status::Corruption(name + ": \"files\" is not an array");
  size_t i = 0;
  for (const auto& fv : files->value().get_array()) {
    PBSKIT_ASSIGN_OR_RETURN(FileInfo f,
                            ParseFileInfo(fv, name + ": files[" + std::to_string(i++) + "]"));
    m.files.push_back(std::move(f));
  }
  auto unprot = o.find("unprotected");
  if (unprot != o.end() && !unprot->value().is_null()) {
    if (!unprot->value().is_object()) {
      return Status::Corruption(name + ": \"unprotected\" is not an object");
    }
    m.unprotected = unprot->value().get_object();
  }
  auto sig = o.find("signature");
  if (sig != o.end() && !sig->value().is_null()) {
    if (!sig->value().is_string()) return Status::Corruption(name + ": signature is not a string");
    m.signature = std::string(View(sig->value().get_string()));
  }
  for (const auto& kv : o) {
    std::string_view k(kv.key().data(), kv.key().size());
    if (k != "backup-type" && k != "backup-id" && k != "backup-time" && k != "files" &&
        k != "unprotected" && k != "signature") {
      m.unknown.emplace(kv.key(), kv.value());
    }
  }
  return m;
}

Result<Manifest> Manifest::FromBlob(std::span<const uint8_t> raw, const std::string& name) {
  auto blob = DataBlob::FromRaw(std::vector<uint8_t>(raw.begin(), raw.end()));
  if (!blob.ok()) return blob.status().WithContext(name);
  if (blob->is_encrypted()) {
    return Status::Corruption(name + ": manifest blob is encrypted (PBS never encrypts it)");
  }
  std::vector<uint8_t> payload;
  Status st = blob->DecodeTo(nullptr, &payload);
  if (!st.ok()) return st.WithContext(name);
  return Parse(std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()),
               name);
}

Result<std::vector<uint8_t>> Manifest::ToBlob() const {
  const std::string text = ToJson();
  PBSKIT_ASSIGN_OR_RETURN(
      DataBlob blob,
      DataBlob::Encode(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
          nullptr, true));
  return std::move(blob).TakeRaw();
}

boost::json::object Manifest::ToValue() const {
  boost::json::object all;
  all["backup-id"] = backup_id;
  all["backup-time"] = backup_time;
  all["backup-type"] = backup_type;
  boost::json::array fa;
  for (const FileInfo& f : files) fa.push_back(FileValue(f));
  all["files"] = std::move(fa);
  if (signature) {
    all["signature"] = *signature;
  } else {
    all["signature"] = nullptr;
  }
  all["unprotected"] = unprotected;
  for (const auto& kv : unknown) all[kv.key()] = kv.value();
  return SortedKeys(all).get_object();
}

std::string Manifest::ToJson() const { return ToSerdePretty(ToValue()); }

const FileInfo* Manifest::Lookup(std::string_view filename) const {
  for (const FileInfo& f : files) {
    if (f.filename == filename) return &f;
  }
  return nullptr;
}

std::string Manifest::SignedCanonicalJson() const {
  boost::json::object o;
  o["backup-id"] = backup_id;
  o["backup-time"] = backup_time;
  o["backup-type"] = backup_type;
  boost::json::array fa;
  for (const FileInfo& f : files) fa.push_back(FileValue(f));
  o["files"] = std::move(fa);
  // Nothing in the signed part can be null, so this cannot fail.
  return ToCanonicalJson(o).value();
}

Digest Manifest::ComputeSignature(std::span<const uint8_t, 32> id_key) const {
  std::string c = SignedCanonicalJson();
  return HmacSha256(id_key,
                    std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(c.data()), c.size()));
}

void Manifest::Sign(std::span<const uint8_t, 32> id_key, std::string_view fingerprint) {
  signature = ToHex(ComputeSignature(id_key));
  if (!fingerprint.empty()) {
    unprotected["key-fingerprint"] = boost::json::string(fingerprint.data(), fingerprint.size());
  }
}

std::optional<std::string> Manifest::KeyFingerprint() const {
  auto it = unprotected.find("key-fingerprint");
  if (it == unprotected.end() || !it->value().is_string()) return std::nullopt;
  return std::string(View(it->value().get_string()));
}

Status Manifest::VerifySignature(std::span<const uint8_t, 32> id_key,
                                 std::string_view fingerprint) const {
  const std::string snap = backup_type + "/" + backup_id;
  if (auto fp = KeyFingerprint()) {
    if (NormalizeFingerprint(*fp) != NormalizeFingerprint(fingerprint)) {
      return Status::InvalidArgument(
          "manifest of " + snap + ": wrong key - unable to verify signature since manifest's key " +
          *fp + " does not match provided key " + std::string(fingerprint));
    }
  }
  if (!signature) return Status::OK();
  const std::string expected = ToHex(ComputeSignature(id_key));
  if (*signature != expected) {
    return Status::Corruption("manifest of " + snap + ": wrong signature in manifest (stored " +
                              *signature + ", computed " + expected + ")");
  }
  return Status::OK();
}

}  // namespace pbskit
