// A fixed-size cache of chunk digests with least-recently-used replacement, the cache GC's mark
// phase keeps so that a chunk referenced by many indexes is touched (utimensat) only once (PBS's
// gc-cache-capacity: default 1048576 entries, max 8388608).
//
// Layout: set-associative. A digest hashes to one set of kWays (8) entries; within a set the
// least recently used entry is replaced. PBS keeps one global LRU list; a set-associative LRU
// gives GC the same behaviour where it matters (a chunk seen again soon after is a hit) while
// its memory is one array fixed by the capacity: 33 bytes per entry, 33 MiB for the default,
// reserved as zero pages and filled as digests arrive. So GC's memory does not grow with the
// datastore: from about 50k distinct chunks on, every page of the array is in use, and a store
// of 1M chunks costs what a store of 100k does.
//
// Full 32-byte digests are compared, so a hit is never a false positive (a false hit would skip
// a touch and let GC delete a live chunk). A miss only costs one extra touch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "pbskit/formats/hex.h"

namespace pbskit {

// Not thread safe: one owner (GC's mark phase runs single-threaded over the cache).
class DigestLruCache {
 public:
  static constexpr size_t kWays = 8;

  // Requires capacity >= 1 (a cache of capacity 0 is "off": do not create one). The capacity is
  // rounded up to a whole number of sets: ceil(capacity / ways) sets of min(capacity, 8) ways.
  // `seed` keys the set hash (random by default, so crafted digests cannot aim at one set).
  explicit DigestLruCache(size_t capacity, uint64_t seed = 0);

  // Returns true when `d` was cached (a hit; it becomes the most recently used entry of its
  // set). Otherwise inserts it as its set's most recently used entry, replacing the set's least
  // recently used one when the set is full, and returns false (a miss).
  bool Insert(const Digest& d);
  // True when `d` is cached; does not change the order.
  bool Contains(const Digest& d) const;

  // Entries cached now; at most set_count() * ways().
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  size_t ways() const { return ways_; }
  size_t set_count() const { return sets_; }
  // The set `d` maps to (for tests that model the replacement order).
  size_t SetIndex(const Digest& d) const;
  // Bytes reserved for the cache's array (for the benchmark's memory report).
  size_t memory_bytes() const;

 private:
  struct Set {
    Digest key[kWays];
    uint8_t order[kWays];  // way numbers, most recently used first; the first `used` are valid
    uint8_t used;
  };
  struct FreeDeleter {
    void operator()(Set* p) const { std::free(p); }
  };

  size_t capacity_;
  size_t ways_;
  size_t sets_;
  size_t size_ = 0;
  uint64_t seed_;
  std::unique_ptr<Set[], FreeDeleter> table_;  // calloc'd: untouched sets cost no memory
};

}  // namespace pbskit
