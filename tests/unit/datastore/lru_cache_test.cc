#include "pbskit/datastore/lru_cache.h"

#include <gtest/gtest.h>

#include <list>
#include <map>
#include <random>

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

// Compares against a straightforward list+map model over many random operations, across table
// growth and heavy eviction.
TEST(DigestLruCacheTest, MatchesReferenceModel) {
  for (size_t cap : {5u, 100u, 3000u}) {
    DigestLruCache c(cap);
    std::list<uint32_t> order;  // front = most recent
    std::map<uint32_t, std::list<uint32_t>::iterator> where;
    std::mt19937 rng(static_cast<uint32_t>(cap));
    std::uniform_int_distribution<uint32_t> key(0, static_cast<uint32_t>(cap * 3));
    for (int i = 0; i < 60000; ++i) {
      uint32_t k = key(rng);
      bool expect_hit = where.count(k) > 0;
      if (expect_hit) {
        order.erase(where[k]);
      } else if (order.size() == cap) {
        where.erase(order.back());
        order.pop_back();
      }
      order.push_front(k);
      where[k] = order.begin();
      ASSERT_EQ(c.Insert(D(k)), expect_hit) << "cap " << cap << " op " << i;
      ASSERT_EQ(c.size(), order.size());
    }
    for (uint32_t k = 0; k <= cap * 3; ++k) {
      ASSERT_EQ(c.Contains(D(k)), where.count(k) > 0) << k;
    }
  }
}

TEST(DigestLruCacheTest, MemoryIsBoundedByCapacity) {
  DigestLruCache c(1000);
  for (uint32_t k = 0; k < 100000; ++k) c.Insert(D(k));
  EXPECT_EQ(c.size(), 1000u);
  EXPECT_LT(c.memory_bytes(), 1000u * 64 + 4096 * 4 + 64 * 1024);
}

}  // namespace
}  // namespace pbskit
