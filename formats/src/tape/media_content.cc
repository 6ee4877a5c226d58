// MediaContentHeader, content magics and the label files (see docs/formats/tape.md).
#include "pbskit/formats/tape/media_content.h"

#include <boost/json.hpp>
#include <cstring>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/json.h"

namespace pbskit::tape {
namespace {

void PutLe(uint8_t* p, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t GetLe(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

Result<boost::json::object> ParseObject(std::string_view json, const char* what) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(json, ec);
  if (ec) return Status::InvalidArgument(std::string(what) + " - " + ec.message());
  if (!v.is_object()) return Status::InvalidArgument(std::string(what) + " - not a JSON object");
  return std::move(v.as_object());
}

Result<std::string> GetString(const boost::json::object& o, const char* key, const char* what) {
  auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) {
    return Status::InvalidArgument(std::string(what) + " - missing or invalid string field `" +
                                   key + "`");
  }
  return std::string(v->as_string());
}

Result<int64_t> GetInt(const boost::json::object& o, const char* key, const char* what) {
  auto* v = o.if_contains(key);
  if (v != nullptr && v->is_int64()) return v->as_int64();
  if (v != nullptr && v->is_uint64() && v->as_uint64() <= INT64_MAX) {
    return static_cast<int64_t>(v->as_uint64());
  }
  return Status::InvalidArgument(std::string(what) + " - missing or invalid integer field `" + key +
                                 "`");
}

Status WriteLabelFile(TapeBlockWriter* device, const Magic& magic, const std::string& json,
                      int64_t ctime, const std::optional<Uuid>& content_uuid) {
  MediaContentHeader h;
  h.content_magic = magic;
  h.uuid = content_uuid ? *content_uuid : RandomUuid();
  h.ctime = ctime;
  h.size = static_cast<uint32_t>(json.size());
  auto bytes = h.Encode();
  BlockedWriter w(device);
  PBSKIT_RETURN_IF_ERROR(w.Write(bytes).status());
  PBSKIT_RETURN_IF_ERROR(
      w.Write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(json.data()), json.size()))
          .status());
  return w.Finish(false).status();
}

}  // namespace

std::string UuidToString(const Uuid& uuid) {
  std::string hex = ToHex(std::span<const uint8_t>(uuid));
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

Result<Uuid> ParseUuid(std::string_view text) {
  std::string hex;
  if (text.size() == 36) {
    for (size_t i = 0; i < 36; ++i) {
      bool dash_pos = i == 8 || i == 13 || i == 18 || i == 23;
      if (dash_pos != (text[i] == '-')) {
        return Status::InvalidArgument("invalid uuid '" + std::string(text) + "'");
      }
      if (!dash_pos) hex.push_back(text[i]);
    }
  } else if (text.size() == 32) {
    hex = std::string(text);
  } else {
    return Status::InvalidArgument("invalid uuid '" + std::string(text) + "'");
  }
  auto bytes = FromHex(hex);
  if (!bytes.ok() || bytes->size() != 16) {
    return Status::InvalidArgument("invalid uuid '" + std::string(text) + "'");
  }
  Uuid u;
  std::memcpy(u.data(), bytes->data(), 16);
  return u;
}

Uuid RandomUuid() {
  Uuid u;
  RandomBytes(u);
  u[6] = static_cast<uint8_t>((u[6] & 0x0f) | 0x40);
  u[8] = static_cast<uint8_t>((u[8] & 0x3f) | 0x80);
  return u;
}

const char* ContentMagicName(const Magic& m) {
  if (m == kMediaLabelMagic) return "media label";
  if (m == kMediaSetLabelMagic) return "media set label";
  if (m == kChunkArchiveMagic10) return "chunk archive v1.0";
  if (m == kChunkArchiveMagic11) return "chunk archive v1.1";
  if (m == kSnapshotArchiveMagic10) return "snapshot archive v1.0";
  if (m == kSnapshotArchiveMagic11) return "snapshot archive v1.1";
  if (m == kSnapshotArchiveMagic12) return "snapshot archive v1.2";
  if (m == kCatalogArchiveMagic10) return "catalog archive v1.0";
  if (m == kCatalogArchiveMagic11) return "catalog archive v1.1";
  return "unknown";
}

std::array<uint8_t, kMediaContentHeaderSize> MediaContentHeader::Encode() const {
  std::array<uint8_t, kMediaContentHeaderSize> out{};
  std::memcpy(out.data(), magic.data(), 8);
  std::memcpy(out.data() + 8, content_magic.data(), 8);
  std::memcpy(out.data() + 16, uuid.data(), 16);
  PutLe(out.data() + 32, static_cast<uint64_t>(ctime), 8);
  PutLe(out.data() + 40, size, 4);
  out[44] = part_number;
  return out;
}

MediaContentHeader MediaContentHeader::Decode(std::span<const uint8_t> in) {
  MediaContentHeader h;
  std::memcpy(h.magic.data(), in.data(), 8);
  std::memcpy(h.content_magic.data(), in.data() + 8, 8);
  std::memcpy(h.uuid.data(), in.data() + 16, 16);
  h.ctime = static_cast<int64_t>(GetLe(in.data() + 32, 8));
  h.size = static_cast<uint32_t>(GetLe(in.data() + 40, 4));
  h.part_number = in[44];
  return h;
}

Status MediaContentHeader::Check(const Magic& expected_content, uint32_t min_size,
                                 uint32_t max_size) const {
  if (magic != kContentHeaderMagic) return Status::Corruption("MediaContentHeader: wrong magic");
  if (content_magic != expected_content) {
    return Status::Corruption("MediaContentHeader: wrong content magic");
  }
  if (size < min_size || size > max_size) {
    return Status::Corruption("MediaContentHeader: got unexpected size");
  }
  return Status::OK();
}

std::string MediaLabel::ToJson() const {
  boost::json::object o;
  o["uuid"] = UuidToString(uuid);
  o["label_text"] = label_text;
  o["ctime"] = ctime;
  if (pool) o["pool"] = *pool;
  return ToSerdePretty(SortedKeys(o));
}

Result<MediaLabel> MediaLabel::FromJson(std::string_view json) {
  const char* what = "unable to parse drive label";
  PBSKIT_ASSIGN_OR_RETURN(auto o, ParseObject(json, what));
  MediaLabel l;
  PBSKIT_ASSIGN_OR_RETURN(std::string uuid, GetString(o, "uuid", what));
  auto u = ParseUuid(uuid);
  if (!u.ok()) return Status::InvalidArgument(std::string(what) + " - " + u.status().message());
  l.uuid = *u;
  PBSKIT_ASSIGN_OR_RETURN(l.label_text, GetString(o, "label_text", what));
  PBSKIT_ASSIGN_OR_RETURN(l.ctime, GetInt(o, "ctime", what));
  if (auto* p = o.if_contains("pool"); p != nullptr && !p->is_null()) {
    PBSKIT_ASSIGN_OR_RETURN(auto pool, GetString(o, "pool", what));
    l.pool = pool;
  }
  return l;
}

bool MediaSetLabel::IsUnassigned() const { return uuid == Uuid{}; }

std::string MediaSetLabel::ToJson() const {
  boost::json::object o;
  o["pool"] = pool;
  o["uuid"] = UuidToString(uuid);
  o["seq_nr"] = seq_nr;
  o["ctime"] = ctime;
  if (encryption_key_fingerprint) o["encryption_key_fingerprint"] = *encryption_key_fingerprint;
  if (!key_config_json.empty()) {
    boost::system::error_code ec;
    auto kc = boost::json::parse(key_config_json, ec);
    if (!ec) o["key-config"] = kc;
  }
  return ToSerdePretty(SortedKeys(o));
}

Result<MediaSetLabel> MediaSetLabel::FromJson(std::string_view json) {
  const char* what = "unable to parse media set label";
  PBSKIT_ASSIGN_OR_RETURN(auto o, ParseObject(json, what));
  MediaSetLabel l;
  if (auto* kc = o.if_contains("key-config"); kc != nullptr && !kc->is_null()) {
    l.key_config_json = ToSerdePretty(*kc);
  }
  o.erase("key-config");
  PBSKIT_ASSIGN_OR_RETURN(l.pool, GetString(o, "pool", what));
  PBSKIT_ASSIGN_OR_RETURN(std::string uuid, GetString(o, "uuid", what));
  auto u = ParseUuid(uuid);
  if (!u.ok()) return Status::InvalidArgument(std::string(what) + " - " + u.status().message());
  l.uuid = *u;
  PBSKIT_ASSIGN_OR_RETURN(int64_t seq, GetInt(o, "seq_nr", what));
  if (seq < 0) return Status::InvalidArgument(std::string(what) + " - negative seq_nr");
  l.seq_nr = static_cast<uint64_t>(seq);
  PBSKIT_ASSIGN_OR_RETURN(l.ctime, GetInt(o, "ctime", what));
  if (auto* f = o.if_contains("encryption_key_fingerprint"); f != nullptr && !f->is_null()) {
    PBSKIT_ASSIGN_OR_RETURN(auto fp, GetString(o, "encryption_key_fingerprint", what));
    l.encryption_key_fingerprint = fp;
  }
  return l;
}

Status WriteMediaLabelFile(TapeBlockWriter* device, const MediaLabel& label, int64_t ctime,
                           const std::optional<Uuid>& content_uuid) {
  return WriteLabelFile(device, kMediaLabelMagic, label.ToJson(), ctime, content_uuid);
}

Status WriteMediaSetLabelFile(TapeBlockWriter* device, const MediaSetLabel& label, int64_t ctime,
                              const std::optional<Uuid>& content_uuid) {
  return WriteLabelFile(device, kMediaSetLabelMagic, label.ToJson(), ctime, content_uuid);
}

Status ReadContentHeader(BlockedReader* reader, const Magic& expected_content, uint32_t min_size,
                         uint32_t max_size, MediaContentHeader* header, std::string* data) {
  std::array<uint8_t, kMediaContentHeaderSize> raw{};
  PBSKIT_RETURN_IF_ERROR(reader->ReadExact(raw).WithContext("MediaContentHeader"));
  *header = MediaContentHeader::Decode(raw);
  PBSKIT_RETURN_IF_ERROR(header->Check(expected_content, min_size, max_size));
  data->assign(header->size, '\0');
  return reader->ReadExact(
      std::span<uint8_t>(reinterpret_cast<uint8_t*>(data->data()), data->size()));
}

Result<MediaLabel> ReadMediaLabelFile(BlockedReader* reader) {
  MediaContentHeader h;
  std::string json;
  PBSKIT_RETURN_IF_ERROR(ReadContentHeader(reader, kMediaLabelMagic, 1, kLabelMaxSize, &h, &json));
  PBSKIT_ASSIGN_OR_RETURN(auto label, MediaLabel::FromJson(json));
  PBSKIT_ASSIGN_OR_RETURN(uint64_t rest, reader->SkipData());
  if (rest != 0) return Status::Corruption("got unexpected data after label");
  return label;
}

Result<MediaSetLabel> ReadMediaSetLabelFile(BlockedReader* reader) {
  MediaContentHeader h;
  std::string json;
  PBSKIT_RETURN_IF_ERROR(
      ReadContentHeader(reader, kMediaSetLabelMagic, 1, kLabelMaxSize, &h, &json));
  PBSKIT_ASSIGN_OR_RETURN(auto label, MediaSetLabel::FromJson(json));
  PBSKIT_ASSIGN_OR_RETURN(uint64_t rest, reader->SkipData());
  if (rest != 0) return Status::Corruption("got unexpected data after media set label");
  return label;
}

}  // namespace pbskit::tape
