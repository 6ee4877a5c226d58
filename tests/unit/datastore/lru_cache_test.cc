#include "pbskit/datastore/lru_cache.h"

#include <gtest/gtest.h>

#include <list>
#include <map>
#include <random>
#include <vector>

namespace pbskit {
namespace {

Digest D(uint32_t v) {
  Digest d{};
  // Keys sharing long prefixes stress the probing and the deletion.
  d[28] = static_cast<uint8_t>(v >> 24);
  d[29] = static_cast<uint8_t>(v >> 16);
  d[30] = static_cast<uint8_t>(v >> 8);
  d[31] = static_cast<uint8_t>(v);
  return d;
}

TEST(DigestLruCacheTest, HitsMissesAndEvictionOrder) {
  DigestLruCache c(3);
  EXPECT_FALSE(c.Insert(D(1)));
  EXPECT_FALSE(c.Insert(D(2)));
  EXPECT_FALSE(c.Insert(D(3)));
  EXPECT_TRUE(c.Insert(D(1)));   // 1 becomes most recent; 2 is now the oldest
  EXPECT_FALSE(c.Insert(D(4)));  // evicts 2
  EXPECT_FALSE(c.Contains(D(2)));
  EXPECT_TRUE(c.Contains(D(1)));
  EXPECT_TRUE(c.Contains(D(3)));
  EXPECT_TRUE(c.Contains(D(4)));
  EXPECT_EQ(c.size(), 3u);
  EXPECT_FALSE(c.Insert(D(2)));  // evicts 3
  EXPECT_FALSE(c.Contains(D(3)));
}

TEST(DigestLruCacheTest, CapacityOne) {
  DigestLruCache c(1);
  EXPECT_FALSE(c.Insert(D(7)));
  EXPECT_TRUE(c.Insert(D(7)));
  EXPECT_FALSE(c.Insert(D(8)));
  EXPECT_FALSE(c.Contains(D(7)));
  EXPECT_TRUE(c.Insert(D(8)));
}

// Compares against a straightforward model: one list+map LRU of `ways()` entries per set, the set
// chosen by SetIndex. With capacity <= 8 there is one set and the model is a plain global LRU.
TEST(DigestLruCacheTest, MatchesReferenceModel) {
  for (size_t cap : {5u, 100u, 3000u}) {
    DigestLruCache c(cap);
    struct ModelSet {
      std::list<uint32_t> order;  // front = most recent
      std::map<uint32_t, std::list<uint32_t>::iterator> where;
    };
    std::vector<ModelSet> model(c.set_count());
    size_t model_size = 0;
    std::mt19937 rng(static_cast<uint32_t>(cap));
    std::uniform_int_distribution<uint32_t> key(0, static_cast<uint32_t>(cap * 3));
    for (int i = 0; i < 60000; ++i) {
      uint32_t k = key(rng);
      ModelSet& m = model.at(c.SetIndex(D(k)));
      bool expect_hit = m.where.count(k) > 0;
      if (expect_hit) {
        m.order.erase(m.where[k]);
      } else if (m.order.size() == c.ways()) {
        m.where.erase(m.order.back());
        m.order.pop_back();
      } else {
        model_size += 1;
      }
      m.order.push_front(k);
      m.where[k] = m.order.begin();
      ASSERT_EQ(c.Insert(D(k)), expect_hit) << "cap " << cap << " op " << i;
      ASSERT_EQ(c.size(), model_size);
    }
    ASSERT_LE(c.size(), c.set_count() * c.ways());
    for (uint32_t k = 0; k <= cap * 3; ++k) {
      ASSERT_EQ(c.Contains(D(k)), model.at(c.SetIndex(D(k))).where.count(k) > 0) << k;
    }
  }
}

TEST(DigestLruCacheTest, SetsCoverTheCapacity) {
  DigestLruCache small(5);
  EXPECT_EQ(small.set_count(), 1u);
  EXPECT_EQ(small.ways(), 5u);
  DigestLruCache big(1048576);
  EXPECT_EQ(big.ways(), DigestLruCache::kWays);
  EXPECT_EQ(big.set_count(), 1048576u / DigestLruCache::kWays);
  DigestLruCache odd(1001);
  EXPECT_EQ(odd.set_count(), 126u);  // rounded up to whole sets
  // A recently inserted digest survives until its own set overflows: inserting a fresh digest
  // evicts nothing anywhere else.
  DigestLruCache c(64, 42);
  for (uint32_t k = 0; k < 64; ++k) c.Insert(D(k));
  size_t before = c.size();
  c.Insert(D(1000));
  EXPECT_LE(c.size(), before + 1);
  EXPECT_TRUE(c.Contains(D(1000)));
}

TEST(DigestLruCacheTest, MemoryIsBoundedByCapacity) {
  DigestLruCache c(1000);
  for (uint32_t k = 0; k < 100000; ++k) c.Insert(D(k));
  EXPECT_EQ(c.size(), 1000u);
  EXPECT_LT(c.memory_bytes(), 1000u * 64 + 4096 * 4 + 64 * 1024);
}

}  // namespace
}  // namespace pbskit
