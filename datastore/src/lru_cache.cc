#include "pbskit/datastore/lru_cache.h"

#include <cstring>
#include <new>
#include <random>

namespace pbskit {

DigestLruCache::DigestLruCache(size_t capacity, uint64_t seed)
    : capacity_(capacity == 0 ? 1 : capacity),
      ways_(capacity_ < kWays ? capacity_ : kWays),
      sets_((capacity_ + ways_ - 1) / ways_),
      seed_(seed != 0 ? seed : ((static_cast<uint64_t>(std::random_device{}()) << 32) |
                                std::random_device{}() | 1ull)) {
  // calloc, not a value-initialised vector: large blocks come from mmap as zero pages, so only
  // the sets GC actually fills become resident.
  Set* p = static_cast<Set*>(std::calloc(sets_, sizeof(Set)));
  if (p == nullptr) throw std::bad_alloc();
  table_.reset(p);
}

size_t DigestLruCache::SetIndex(const Digest& d) const {
  // Digests are SHA-256 values, but every word is mixed in so that structured keys (tests,
  // digests sharing a prefix) still spread over the sets.
  uint64_t w[4];
  std::memcpy(w, d.data(), 32);
  uint64_t h = seed_;
  for (uint64_t x : w) {
    h ^= x;
    h *= 0x9e3779b97f4a7c15ull;
    h ^= h >> 31;
  }
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  // Multiply-shift maps the hash onto [0, sets_) without a power-of-two table.
  return static_cast<size_t>((static_cast<unsigned __int128>(h) * sets_) >> 64);
}

bool DigestLruCache::Contains(const Digest& d) const {
  const Set& s = table_[SetIndex(d)];
  for (size_t i = 0; i < s.used; ++i) {
    if (s.key[s.order[i]] == d) return true;
  }
  return false;
}

bool DigestLruCache::Insert(const Digest& d) {
  Set& s = table_[SetIndex(d)];
  size_t pos = 0;
  for (; pos < s.used; ++pos) {
    if (s.key[s.order[pos]] == d) break;
  }
  bool hit = pos < s.used;
  uint8_t way;
  if (hit) {
    way = s.order[pos];
  } else if (s.used < ways_) {
    way = s.used;
    pos = s.used;
    s.used += 1;
    size_ += 1;
  } else {
    pos = ways_ - 1;  // the least recently used entry gives way
    way = s.order[pos];
  }
  std::memmove(s.order + 1, s.order, pos);
  s.order[0] = way;
  if (!hit) s.key[way] = d;
  return hit;
}

size_t DigestLruCache::memory_bytes() const { return sets_ * sizeof(Set); }

}  // namespace pbskit
