// Content-defined chunking with PBS's Buzhash (FORMATS.md §7.2) and the payload variant with
// suggested boundaries (§7.3). Streaming: cuts are identical however the input is split.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>

namespace pbskit {

// PBS's 256-entry buzhash table (identical in PBS 1.x..4.x).
std::span<const uint32_t, 256> BuzhashTable();

class Chunker {
 public:
  // avg_size: power of two 64 KiB..4 MiB for archives (512 KiB for the catalog). Other powers
  // of two >= 64 bytes work too (min = avg/4, max = avg*4); a value that is not a power of two
  // (which PBS refuses) is rounded up to the next one, values below 64 to 64. Callers that take
  // the size from users validate it first. Not thread safe; one instance per stream.
  explicit Chunker(size_t avg_size = 4 * 1024 * 1024);

  // Scans `data`, continuing the current chunk. Returns the position p (1..data.size()) after
  // which the current chunk ends, or 0 when no boundary lies in `data` (all bytes consumed).
  // After a cut, call again with data.subspan(p): the state restarts at the cut.
  size_t Scan(std::span<const uint8_t> data);
  // Forgets the current chunk (next byte starts a new one).
  void Reset();

  size_t avg_size() const { return avg_; }
  size_t min_size() const { return min_; }
  size_t max_size() const { return max_; }
  // Bytes of the current (unfinished) chunk consumed so far.
  size_t current_chunk_size() const { return chunk_size_; }

 private:
  size_t avg_, min_, max_, skip_;
  uint32_t mask_, threshold_;
  uint32_t h_ = 0;
  size_t window_fill_ = 0;
  size_t chunk_size_ = 0;
  uint8_t window_[64] = {};
};

// Payload chunker for split pxar archives (`.ppxar`, PBS 3.2.5+): Buzhash chunking, but the
// pxar encoder suggests boundaries at absolute stream offsets (file payload starts). PBS's
// rule, applied whenever Scan is called: take the oldest pending suggestion B; drop it when it
// lies before the scanned data; keep scanning normally while B lies beyond the data seen so far
// or B - chunk_start > max; drop it when B - chunk_start < min; otherwise cut exactly at B
// (buzhash state reset). Unlike Chunker, cuts therefore depend on how the stream is fed (as in
// PBS, whose client feeds whole read buffers). Not thread safe.
class PayloadChunker {
 public:
  explicit PayloadChunker(size_t avg_size = 4 * 1024 * 1024);
  // Queues a suggested boundary at absolute stream offset `abs_offset` (in stream order).
  void SuggestBoundary(uint64_t abs_offset) { suggestions_.push_back(abs_offset); }
  // Scans `data`, which starts at absolute offset position() and is the tail of what the
  // caller has buffered since the current chunk started. Returns the cut position p
  // (1..data.size()) or 0; after a cut call again with data.subspan(p).
  size_t Scan(std::span<const uint8_t> data);
  // PBS's low-level form: `base` = absolute offset of the current chunk start as the caller
  // counts it, `total` = bytes buffered since then (>= data.size()); `data` is the unscanned
  // tail of that buffer. Does not move position(). Used to replay PBS's own tests.
  size_t ScanWithContext(std::span<const uint8_t> data, uint64_t base, uint64_t total);
  void Reset();
  // Absolute stream offset of the next byte Scan expects.
  uint64_t position() const { return pos_; }

 private:
  Chunker inner_;
  std::deque<uint64_t> suggestions_;
  bool has_current_ = false;
  uint64_t current_ = 0;
  uint64_t pos_ = 0;          // absolute offset of the next unscanned byte
  uint64_t chunk_start_ = 0;  // absolute offset of the current chunk's start
};

}  // namespace pbskit
