// Rust-compatible debug quoting for `pxar list` output.
#include "pbskit/formats/pxar/listing.h"

#include <cstdio>

namespace pbskit::pxar {

namespace {

// Decodes one UTF-8 sequence at s[i]; returns its length (0 if invalid) and the code point.
size_t DecodeUtf8(std::string_view s, size_t i, uint32_t* cp) {
  auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  uint8_t c = b(i);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  uint32_t v = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) return 0;
    v = (v << 6) | (b(i + k) & 0x3f);
  }
  static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < kMin[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
  *cp = v;
  return len;
}

// Characters Rust's char::escape_debug escapes as \u{..}: control and format characters
// plus combining marks (Grapheme_Extend). Covers the ranges that occur in file names;
// unassigned code points are treated as printable.
bool NeedsUnicodeEscape(uint32_t c) {
  if (c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f) || c == 0xad) return true;
  if (c >= 0x300 && c <= 0x36f) return true;    // combining diacritical marks
  if (c >= 0x483 && c <= 0x489) return true;
  if (c >= 0x591 && c <= 0x5bd) return true;
  if (c == 0x61c || c == 0x6dd || c == 0x70f || c == 0x180e) return true;
  if (c >= 0x1ab0 && c <= 0x1aff) return true;
  if (c >= 0x1dc0 && c <= 0x1dff) return true;
  if (c >= 0x200b && c <= 0x200f) return true;  // zero width, direction marks
  if (c >= 0x2028 && c <= 0x202e) return true;
  if (c >= 0x2060 && c <= 0x206f) return true;
  if (c >= 0x20d0 && c <= 0x20ff) return true;  // combining marks for symbols
  if (c >= 0xd800 && c <= 0xf8ff) return true;  // surrogates, private use
  if (c >= 0xfe00 && c <= 0xfe0f) return true;  // variation selectors
  if (c >= 0xfe20 && c <= 0xfe2f) return true;
  if (c == 0xfeff || (c >= 0xfff9 && c <= 0xfffb)) return true;
  if (c >= 0xe0000 && c <= 0xe0fff) return true;  // tags, variation selectors supplement
  if (c >= 0xf0000) return true;                  // private use planes
  return false;
}

}  // namespace

std::string RustDebugQuote(std::string_view s, bool str_style) {
  std::string out = "\"";
  size_t i = 0;
  char buf[16];
  while (i < s.size()) {
    uint32_t cp = 0;
    size_t len = DecodeUtf8(s, i, &cp);
    if (len == 0) {
      std::snprintf(buf, sizeof(buf), "\\x%02X", static_cast<unsigned>(static_cast<uint8_t>(s[i])));
      out += buf;
      ++i;
      continue;
    }
    switch (cp) {
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\n': out += "\\n"; break;
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\0': out += "\\0"; break;
      case '\'':
        out += str_style ? "'" : "\\'";
        break;
      default:
        if (NeedsUnicodeEscape(cp)) {
          std::snprintf(buf, sizeof(buf), "\\u{%x}", cp);
          out += buf;
        } else {
          out.append(s.substr(i, len));
        }
    }
    i += len;
  }
  out += '"';
  return out;
}

std::string ListLine(const Entry& entry) {
  if (entry.kind == EntryKind::kVersion || entry.kind == EntryKind::kPrelude ||
      entry.kind == EntryKind::kDirectoryEnd)
    return "";
  return RustDebugQuote(entry.path);
}

namespace {

std::string BytesDebug(std::string_view data) {
  std::string out = "[";
  for (size_t i = 0; i < data.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(static_cast<unsigned>(static_cast<uint8_t>(data[i])));
  }
  return out + "]";
}

}  // namespace

std::string RustEntryKindDebug(const Entry& entry, uint64_t position) {
  switch (entry.kind) {
    case EntryKind::kVersion:
      return "Version(Version" + std::to_string(entry.format_version) + ")";
    case EntryKind::kPrelude:
      return "Prelude(Prelude { data: " + BytesDebug(entry.prelude) + " })";
    case EntryKind::kDirectory: return "Directory";
    case EntryKind::kDirectoryEnd: return "GoodbyeTable";
    case EntryKind::kFifo: return "Fifo";
    case EntryKind::kSocket: return "Socket";
    case EntryKind::kSymlink:
      return "Symlink(Symlink { data: " + BytesDebug(entry.link_target) + " })";
    case EntryKind::kHardlink:
      return "Hardlink(Hardlink { offset: " + std::to_string(entry.hardlink_offset) +
             ", data: " + BytesDebug(entry.link_target) + " })";
    case EntryKind::kDevice:
      return "Device(Device { major: " + std::to_string(entry.device.major) +
             ", minor: " + std::to_string(entry.device.minor) + " })";
    case EntryKind::kFile: {
      // pxar records the stream position after the PAYLOAD header (unified) or after the
      // PAYLOAD_REF header, before its 16 bytes of offset and size (split).
      const uint64_t offset = entry.payload_offset ? position - 16 : position;
      return "File { size: " + std::to_string(entry.file_size) + ", offset: Some(" +
             std::to_string(offset) + "), payload_offset: " +
             (entry.payload_offset ? "Some(" + std::to_string(*entry.payload_offset) + ")"
                                   : std::string("None")) +
             " }";
    }
  }
  return "";
}

}  // namespace pbskit::pxar
