// A compact least-recently-used set of chunk digests, the cache GC's mark phase keeps so that a
// chunk referenced by many indexes is touched (utimensat) only once (PBS's LruCache with
// gc-cache-capacity entries, default 1048576, max 8388608).
//
// Memory is ~48 bytes per cached digest (the digest, two 32-bit list links and a 32-bit
// open-addressing slot at load <= 1/2), allocated as entries arrive and never more than
// `capacity` entries: 1048576 digests take about 48 MiB. Full 32-byte digests are compared, so a
// hit is never a false positive (a false hit would skip a touch and let GC delete a live chunk).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "pbskit/formats/hex.h"

namespace pbskit {

// Not thread safe: one owner (GC's mark phase runs single-threaded over the cache).
class DigestLruCache {
 public:
  // Requires capacity >= 1 and <= 2^31 (a cache of capacity 0 is "off": do not create one).
  explicit DigestLruCache(size_t capacity);

  // Returns true when `d` was cached (a hit; it becomes the most recently used entry). Otherwise
  // inserts it as the most recently used entry, evicting the least recently used one when the
  // cache is full, and returns false (a miss).
  bool Insert(const Digest& d);
  // True when `d` is cached; does not change the order.
  bool Contains(const Digest& d) const;

  size_t size() const { return nodes_.size(); }
  size_t capacity() const { return capacity_; }
  // Bytes held by the cache's arrays (for the benchmark's memory report).
  size_t memory_bytes() const;

 private:
  static constexpr uint32_t kNil = 0xffffffffu;
  struct Node {
    Digest key;
    uint32_t prev;  // towards the most recently used end
    uint32_t next;  // towards the least recently used end
  };

  uint64_t Hash(const Digest& d) const;
  // Slot holding node index `want`'s key, or the empty slot where `d` would go.
  size_t FindSlot(const Digest& d) const;
  void EraseSlot(size_t slot);
  void Grow();
  void Unlink(uint32_t n);
  void PushFront(uint32_t n);

  size_t capacity_;
  std::vector<Node> nodes_;
  std::vector<uint32_t> slots_;  // node index or kNil
  size_t mask_ = 0;
  uint32_t head_ = kNil;  // most recently used
  uint32_t tail_ = kNil;  // least recently used
  uint64_t seed_;
};

}  // namespace pbskit
