// Dynamic chunk index (`.didx`): a 4096-byte header followed by 40-byte entries
// (end offset u64 LE, digest) describing a chunked byte stream (FORMATS.md §3).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "pbskit/formats/fixed_index.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/status.h"

namespace pbskit {

inline constexpr size_t kDynamicEntrySize = 40;

struct DynamicEntry {
  uint64_t end;  // exclusive end offset of the chunk in the stream
  Digest digest;
};

// A parsed `.didx`. Immutable after Parse; safe to share between threads.
class DynamicIndex {
 public:
  // Parses a whole .didx file (copied). Corruption (message names `name`) for: file shorter
  // than the header, wrong magic, (length - 4096) not a multiple of 40, or ends not strictly
  // increasing (the first end must be > 0).
  static Result<DynamicIndex> Parse(std::span<const uint8_t> file, const std::string& name);

  size_t chunk_count() const { return entries_.size(); }
  // Stream size: end of the last entry, 0 without entries.
  uint64_t size() const { return entries_.empty() ? 0 : entries_.back().end; }
  // Requires i < chunk_count().
  const DynamicEntry& entry(size_t i) const { return entries_[i]; }
  const std::vector<DynamicEntry>& entries() const { return entries_; }
  // [start, end) of chunk i. Requires i < chunk_count().
  std::pair<uint64_t, uint64_t> chunk_range(size_t i) const;
  // Index of the chunk containing stream byte `offset` (binary search); chunk_count() when
  // offset >= size().
  size_t FindChunk(uint64_t offset) const;
  const std::array<uint8_t, 16>& uuid() const { return uuid_; }
  int64_t ctime() const { return ctime_; }
  const Digest& header_csum() const { return header_csum_; }
  // SHA-256 over the raw entry table (end LE || digest for each entry).
  Digest ComputeCsum() const;

 private:
  DynamicIndex() = default;
  std::array<uint8_t, 16> uuid_{};
  int64_t ctime_ = 0;
  Digest header_csum_{};
  std::vector<DynamicEntry> entries_;
};

// Builds a complete .didx file in memory; uuid random and ctime now unless set. Not thread safe.
class DynamicIndexWriter {
 public:
  DynamicIndexWriter();

  // Appends a chunk ending at stream offset `end`. InvalidArgument unless end > previous end
  // (and > 0 for the first entry).
  Status Add(uint64_t end, const Digest& d);
  uint64_t size() const { return entries_.empty() ? 0 : entries_.back().end; }
  size_t chunk_count() const { return entries_.size(); }
  void SetUuid(const std::array<uint8_t, 16>& uuid) { uuid_ = uuid; }
  void SetCtime(int64_t ctime) { ctime_ = ctime; }
  // Returns the complete file bytes; *csum (may be null) receives the index csum. Never fails
  // today; Result for symmetry with FixedIndexWriter.
  Result<std::vector<uint8_t>> Finish(Digest* csum);

 private:
  std::vector<DynamicEntry> entries_;
  std::array<uint8_t, 16> uuid_{};
  int64_t ctime_;
};

}  // namespace pbskit
