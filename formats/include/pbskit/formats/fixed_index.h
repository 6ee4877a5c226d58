// Fixed-size chunk index (`.fidx`): a 4096-byte header followed by one 32-byte chunk digest per
// `chunk_size` piece of an image (FORMATS.md §3). Pure codec: bytes in, values out.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "pbskit/formats/hex.h"
#include "pbskit/formats/status.h"

namespace pbskit {

// Size of the header of both index kinds (upstream PBS on every architecture).
inline constexpr size_t kIndexHeaderSize = 4096;
inline constexpr std::array<uint8_t, 8> kFixedIndexMagic = {0x2f, 0x7f, 0x41, 0xed,
                                                            0x91, 0xfd, 0x0f, 0xcd};
inline constexpr std::array<uint8_t, 8> kDynamicIndexMagic = {0x1c, 0x91, 0x4e, 0xa5,
                                                              0x19, 0xba, 0xb3, 0xcd};

// A parsed `.fidx`. Immutable after Parse; safe to share between threads.
class FixedIndex {
 public:
  // Parses a whole .fidx file (the object copies what it needs; `file` may die afterwards).
  // Corruption (message names `name`) for: file shorter than the header, wrong magic,
  // chunk_size 0 or not a power of two, size 0, or file length != 4096 + 32*ceil(size/chunk_size).
  static Result<FixedIndex> Parse(std::span<const uint8_t> file, const std::string& name);

  uint64_t size() const { return size_; }  // image size in bytes
  uint64_t chunk_size() const { return chunk_size_; }
  size_t chunk_count() const { return digests_.size(); }
  // Requires i < chunk_count().
  const Digest& digest(size_t i) const { return digests_[i]; }
  const std::vector<Digest>& digests() const { return digests_; }
  // Byte range [start, end) of chunk i in the image; the last one may be short. Requires
  // i < chunk_count().
  std::pair<uint64_t, uint64_t> chunk_range(size_t i) const;
  // Index of the chunk covering image byte `offset`; chunk_count() when offset >= size().
  size_t FindChunk(uint64_t offset) const;
  const std::array<uint8_t, 16>& uuid() const { return uuid_; }
  int64_t ctime() const { return ctime_; }
  // index_csum as stored in the header (not validated by Parse).
  const Digest& header_csum() const { return header_csum_; }
  // SHA-256 over the digest table, i.e. what the manifest `csum` must equal.
  Digest ComputeCsum() const;

 private:
  FixedIndex() = default;
  std::array<uint8_t, 16> uuid_{};
  int64_t ctime_ = 0;
  Digest header_csum_{};
  uint64_t size_ = 0;
  uint64_t chunk_size_ = 0;
  std::vector<Digest> digests_;
};

// Builds a complete .fidx file in memory. uuid is random and ctime the current time unless
// set. Not thread safe.
class FixedIndexWriter {
 public:
  // Requires size > 0 and chunk_size a power of two; violations make Finish fail with
  // InvalidArgument.
  FixedIndexWriter(uint64_t size, uint64_t chunk_size);
  // A writer for an image of unknown size (PBS 4.1.5+ backup sessions): AddChunk grows the
  // image; the size becomes fixed once a chunk shorter than chunk_size is added.
  static FixedIndexWriter Growable(uint64_t chunk_size);

  uint64_t size() const { return size_; }
  uint64_t chunk_size() const { return chunk_size_; }
  size_t chunk_count() const { return digests_.size(); }
  // InvalidArgument when i >= chunk_count().
  Status SetDigest(size_t i, const Digest& d);
  // PBS's add_chunk: records the chunk covering image bytes [start, start + len). Growable
  // writers first grow to start + len. InvalidArgument (PBS wording) when the size is fixed and
  // would have to grow, when start is not a multiple of chunk_size, when len is 0, above
  // chunk_size, or below it for a chunk that does not end the image.
  Status AddChunk(uint64_t start, uint64_t len, const Digest& d);
  void SetUuid(const std::array<uint8_t, 16>& uuid) { uuid_ = uuid; }
  void SetCtime(int64_t ctime) { ctime_ = ctime; }
  // Returns the complete file bytes and stores the index csum in *csum (may be null).
  // InvalidArgument if any entry is unset, the image is empty or the chunk size is invalid.
  Result<std::vector<uint8_t>> Finish(Digest* csum);

 private:
  uint64_t size_;
  uint64_t chunk_size_;
  bool growable_ = false;
  std::vector<Digest> digests_;
  std::vector<bool> set_;
  std::array<uint8_t, 16> uuid_{};
  int64_t ctime_;
};

// Little-endian helpers shared by the index and catalog codecs.
inline uint64_t LoadLe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
inline void StoreLe64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace pbskit
