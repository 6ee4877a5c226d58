// DigestSet (verify.h): the job-wide verified / corrupt chunk sets of a verify task, sharded
// sorted arrays of digest tails.
#include <algorithm>
#include <cstring>

#include "pbskit/datastore/verify.h"

namespace pbskit {
namespace {

constexpr size_t kShardCount = 65536;

size_t ShardOf(const Digest& d) { return (static_cast<size_t>(d[0]) << 8) | d[1]; }

bool TailLess(const std::array<uint8_t, 30>& a, const std::array<uint8_t, 30>& b) {
  return std::memcmp(a.data(), b.data(), a.size()) < 0;
}

std::array<uint8_t, 30> TailOf(const Digest& d) {
  std::array<uint8_t, 30> t;
  std::memcpy(t.data(), d.data() + 2, t.size());
  return t;
}

}  // namespace

DigestSet::DigestSet() = default;
DigestSet::~DigestSet() = default;

bool DigestSet::Contains(const Digest& d) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (shards_.empty()) return false;
  const std::vector<Tail>& shard = shards_[ShardOf(d)];
  const Tail tail = TailOf(d);
  auto it = std::lower_bound(shard.begin(), shard.end(), tail, TailLess);
  return it != shard.end() && *it == tail;
}

bool DigestSet::Insert(const Digest& d) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shards_.empty()) shards_.resize(kShardCount);
  std::vector<Tail>& shard = shards_[ShardOf(d)];
  const Tail tail = TailOf(d);
  auto it = std::lower_bound(shard.begin(), shard.end(), tail, TailLess);
  if (it != shard.end() && *it == tail) return false;
  if (shard.size() == shard.capacity()) {
    // Grow by about 1/8 instead of doubling: the slack stays small however large the set gets.
    const size_t pos = static_cast<size_t>(it - shard.begin());
    shard.reserve(shard.size() + shard.size() / 8 + 2);
    it = shard.begin() + static_cast<std::ptrdiff_t>(pos);
  }
  shard.insert(it, tail);
  ++count_;
  return true;
}

size_t DigestSet::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return count_;
}

size_t DigestSet::memory_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t bytes = shards_.capacity() * sizeof(std::vector<Tail>);
  for (const auto& shard : shards_) bytes += shard.capacity() * sizeof(Tail);
  return bytes;
}

}  // namespace pbskit
