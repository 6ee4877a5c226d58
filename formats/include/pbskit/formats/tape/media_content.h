// PBS tape content framing: UUIDs, the 48-byte MediaContentHeader that starts every tape file,
// the content-type magics, and the two label files (media label = file 0, media-set label =
// file 1) with their JSON bodies. Bytes in, values out; no drive access here.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/formats/status.h"
#include "pbskit/formats/tape/blocked_stream.h"

namespace pbskit::tape {

// 16 raw bytes in text order (libuuid uuid_t order).
using Uuid = std::array<uint8_t, 16>;

// Lower-case hyphenated 36-character form.
std::string UuidToString(const Uuid& uuid);
// Accepts 36-char hyphenated or 32-char plain hex, any case. InvalidArgument otherwise.
Result<Uuid> ParseUuid(std::string_view text);
// A random (version 4) UUID.
Uuid RandomUuid();

using Magic = std::array<uint8_t, 8>;

// SHA-256("Proxmox Backup Content Header v1.0")[0..8]
inline constexpr Magic kContentHeaderMagic = {0x63, 0xee, 0x14, 0x9f, 0xcd, 0xf2, 0x9b, 0x0c};
inline constexpr Magic kMediaLabelMagic = {0x2a, 0x05, 0xbf, 0x3c, 0xb0, 0x30, 0xaa, 0x39};
inline constexpr Magic kMediaSetLabelMagic = {0x08, 0x60, 0x63, 0xf9, 0x2f, 0x97, 0x53, 0xd8};
inline constexpr Magic kChunkArchiveMagic10 = {0x3e, 0xad, 0xa7, 0x5f, 0x31, 0x4c, 0x06, 0x6e};
inline constexpr Magic kChunkArchiveMagic11 = {0x6d, 0x31, 0x63, 0x6d, 0xd7, 0x02, 0x83, 0xbf};
inline constexpr Magic kChunkArchiveEntryMagic = {0x48, 0x57, 0x6d, 0xf2, 0xde, 0x42, 0x8f, 0xdc};
inline constexpr Magic kSnapshotArchiveMagic10 = {0x09, 0xb6, 0x02, 0x1f, 0x7d, 0xe8, 0x72, 0x85};
inline constexpr Magic kSnapshotArchiveMagic11 = {0xda, 0x16, 0x15, 0xd0, 0x11, 0xe2, 0x9a, 0x62};
inline constexpr Magic kSnapshotArchiveMagic12 = {0x62, 0x10, 0x36, 0x9b, 0xba, 0x10, 0x33, 0x1d};
inline constexpr Magic kCatalogArchiveMagic10 = {0xb7, 0xcf, 0xc7, 0x25, 0x9e, 0x99, 0x1e, 0x73};
inline constexpr Magic kCatalogArchiveMagic11 = {0xb3, 0xec, 0x71, 0xf0, 0xad, 0xec, 0x02, 0x60};

// Short PBS-style name of a content magic ("chunk archive v1.1", ...); "unknown" otherwise.
const char* ContentMagicName(const Magic& content_magic);

inline constexpr size_t kMediaContentHeaderSize = 48;
inline constexpr uint32_t kLabelMaxSize = 64 * 1024;

struct MediaContentHeader {
  Magic magic = kContentHeaderMagic;
  Magic content_magic{};
  Uuid uuid{};
  int64_t ctime = 0;
  uint32_t size = 0;  // length of the header data that follows
  uint8_t part_number = 0;

  // 48 bytes, little-endian, reserved bytes zero.
  std::array<uint8_t, kMediaContentHeaderSize> Encode() const;
  // Requires in.size() >= 48. Never fails; use Check for validation.
  static MediaContentHeader Decode(std::span<const uint8_t> in);
  // Corruption "MediaContentHeader: wrong magic" / "...: wrong content magic" /
  // "...: got unexpected size" (size outside [min_size, max_size]), as PBS words them.
  Status Check(const Magic& expected_content, uint32_t min_size, uint32_t max_size) const;
};

// File 0. `pool` is a legacy/optional pool reservation.
struct MediaLabel {
  Uuid uuid{};
  std::string label_text;
  int64_t ctime = 0;
  std::optional<std::string> pool;

  // serde_json pretty JSON with sorted keys (pool omitted when unset).
  std::string ToJson() const;
  // InvalidArgument "unable to parse drive label - ..." on bad JSON or missing/mistyped keys.
  static Result<MediaLabel> FromJson(std::string_view json);
};

// File 1. An all-zero uuid means "unassigned" (legacy pool reservation).
struct MediaSetLabel {
  std::string pool;
  Uuid uuid{};
  uint64_t seq_nr = 0;
  int64_t ctime = 0;
  std::optional<std::string> encryption_key_fingerprint;
  // The optional "key-config" object, kept verbatim as serde pretty JSON (empty if absent).
  std::string key_config_json;

  bool IsUnassigned() const;
  std::string ToJson() const;
  // InvalidArgument "unable to parse media set label - ..." on bad JSON.
  static Result<MediaSetLabel> FromJson(std::string_view json);
};

// Writes a complete label tape file (header + JSON, end block, filemark) with a fresh content
// uuid unless `content_uuid` is given. Returns the device's IoError on failure.
Status WriteMediaLabelFile(TapeBlockWriter* device, const MediaLabel& label, int64_t ctime,
                           const std::optional<Uuid>& content_uuid = std::nullopt);
Status WriteMediaSetLabelFile(TapeBlockWriter* device, const MediaSetLabel& label, int64_t ctime,
                              const std::optional<Uuid>& content_uuid = std::nullopt);

// Reads the header and header data of a tape file whose stream `reader` is positioned at its
// start, checking the content magic and size range. Corruption on a bad header or short data.
Status ReadContentHeader(BlockedReader* reader, const Magic& expected_content, uint32_t min_size,
                         uint32_t max_size, MediaContentHeader* header, std::string* data);

// Reads a whole label file from an opened stream and checks nothing follows the JSON
// (Corruption "got unexpected data after label" / "... after media set label").
Result<MediaLabel> ReadMediaLabelFile(BlockedReader* reader);
Result<MediaSetLabel> ReadMediaSetLabelFile(BlockedReader* reader);

}  // namespace pbskit::tape
