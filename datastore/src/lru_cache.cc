#include "pbskit/datastore/lru_cache.h"

#include <cstring>
#include <random>

namespace pbskit {

DigestLruCache::DigestLruCache(size_t capacity)
    : capacity_(capacity == 0 ? 1 : capacity), seed_(std::random_device{}() | 1ull) {
  slots_.assign(1024, kNil);
  mask_ = slots_.size() - 1;
}

uint64_t DigestLruCache::Hash(const Digest& d) const {
  // Digests are SHA-256 values, but every word is mixed in so that crafted or structured keys
  // (tests, digests sharing a prefix) still spread over the table.
  uint64_t w[4];
  std::memcpy(w, d.data(), 32);
  uint64_t h = seed_;
  for (uint64_t x : w) {
    h ^= x;
    h *= 0x9e3779b97f4a7c15ull;
    h ^= h >> 31;
  }
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 32);
}

size_t DigestLruCache::FindSlot(const Digest& d) const {
  size_t i = Hash(d) & mask_;
  while (slots_[i] != kNil && nodes_[slots_[i]].key != d) i = (i + 1) & mask_;
  return i;
}

void DigestLruCache::EraseSlot(size_t i) {
  // Backward-shift deletion keeps linear probing free of tombstones.
  size_t j = i;
  while (true) {
    j = (j + 1) & mask_;
    if (slots_[j] == kNil) break;
    size_t k = Hash(nodes_[slots_[j]].key) & mask_;
    bool stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
    if (!stays) {
      slots_[i] = slots_[j];
      i = j;
    }
  }
  slots_[i] = kNil;
}

void DigestLruCache::Grow() {
  std::vector<uint32_t> old;
  old.swap(slots_);
  slots_.assign(old.size() * 2, kNil);
  mask_ = slots_.size() - 1;
  for (uint32_t n : old) {
    if (n == kNil) continue;
    size_t i = Hash(nodes_[n].key) & mask_;
    while (slots_[i] != kNil) i = (i + 1) & mask_;
    slots_[i] = n;
  }
}

void DigestLruCache::Unlink(uint32_t n) {
  Node& node = nodes_[n];
  if (node.prev != kNil) nodes_[node.prev].next = node.next;
  else head_ = node.next;
  if (node.next != kNil) nodes_[node.next].prev = node.prev;
  else tail_ = node.prev;
  node.prev = node.next = kNil;
}

void DigestLruCache::PushFront(uint32_t n) {
  Node& node = nodes_[n];
  node.prev = kNil;
  node.next = head_;
  if (head_ != kNil) nodes_[head_].prev = n;
  head_ = n;
  if (tail_ == kNil) tail_ = n;
}

bool DigestLruCache::Contains(const Digest& d) const { return slots_[FindSlot(d)] != kNil; }

bool DigestLruCache::Insert(const Digest& d) {
  size_t slot = FindSlot(d);
  if (slots_[slot] != kNil) {
    uint32_t n = slots_[slot];
    if (head_ != n) {
      Unlink(n);
      PushFront(n);
    }
    return true;
  }
  uint32_t n;
  if (nodes_.size() < capacity_) {
    if ((nodes_.size() + 1) * 2 > slots_.size()) {
      Grow();
      slot = FindSlot(d);
    }
    n = static_cast<uint32_t>(nodes_.size());
    nodes_.push_back(Node{d, kNil, kNil});
  } else {
    n = tail_;
    EraseSlot(FindSlot(nodes_[n].key));
    Unlink(n);
    nodes_[n].key = d;
    slot = FindSlot(d);
  }
  slots_[slot] = n;
  PushFront(n);
  return false;
}

size_t DigestLruCache::memory_bytes() const {
  return nodes_.capacity() * sizeof(Node) + slots_.capacity() * sizeof(uint32_t);
}

}  // namespace pbskit
