#include "pbskit/formats/chunker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/dynamic_index.h"

namespace pbskit {
namespace {

// chunker.rs test buffer: i = 0..262143 as u32 LE (1 MiB).
std::vector<uint8_t> CounterBuffer() {
  std::vector<uint8_t> buf;
  buf.reserve(1 << 20);
  for (uint32_t i = 0; i < 262144; ++i) {
    for (int j = 0; j < 4; ++j) buf.push_back(static_cast<uint8_t>(i >> (8 * j)));
  }
  return buf;
}

// FORMATS.md §12.6 (c): xorshift32 byte stream.
std::vector<uint8_t> XorshiftStream(size_t n) {
  std::vector<uint8_t> out(n);
  uint32_t x = 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    out[i] = static_cast<uint8_t>(x & 0xff);
  }
  return out;
}

// Chunk lengths when the whole remaining buffer is handed to Scan each time.
std::vector<size_t> ChunkWhole(Chunker& c, std::span<const uint8_t> data) {
  std::vector<size_t> lens;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t k = c.Scan(data.subspan(pos));
    if (k == 0) break;
    EXPECT_LE(k, data.size() - pos);
    lens.push_back(k);
    pos += k;
  }
  if (pos < data.size()) lens.push_back(data.size() - pos);
  return lens;
}

// Chunk lengths when the data arrives in pieces of the given sizes (cycled).
std::vector<size_t> ChunkPieces(Chunker& c, std::span<const uint8_t> data,
                                const std::vector<size_t>& pieces) {
  std::vector<size_t> lens;
  size_t pos = 0, last = 0, p = 0;
  while (pos < data.size()) {
    const size_t n = std::min(pieces[p++ % pieces.size()], data.size() - pos);
    auto piece = data.subspan(pos, n);
    size_t off = 0;
    while (off < piece.size()) {
      size_t k = c.Scan(piece.subspan(off));
      if (k == 0) break;
      off += k;
      lens.push_back(pos + off - last);
      last = pos + off;
    }
    pos += n;
  }
  if (last < data.size()) lens.push_back(data.size() - last);
  return lens;
}

// PBS's per-byte algorithm written out literally (FORMATS.md §7.2): the reference the
// optimised Chunker (which skips the bytes before min) must agree with.
std::vector<size_t> ReferenceChunks(std::span<const uint8_t> data, size_t avg) {
  const auto table = BuzhashTable();
  const size_t min = avg / 4, max = avg * 4;
  const uint32_t mask = static_cast<uint32_t>(2 * avg - 1), threshold = mask - 2;
  std::vector<size_t> lens;
  uint32_t h = 0;
  uint8_t win[64] = {};
  size_t fill = 0, cs = 0, last = 0;
  for (size_t i = 0; i < data.size(); ++i) {
    const uint8_t b = data[i];
    if (fill < 64) {
      win[fill++] = b;
      h = ((h << 1) | (h >> 31)) ^ table[b];
      ++cs;
      continue;
    }
    const size_t idx = cs & 63;
    h = ((h << 1) | (h >> 31)) ^ table[win[idx]] ^ table[b];
    ++cs;
    win[idx] = b;
    if (cs >= max || (cs >= min && (h & mask) >= threshold)) {
      lens.push_back(i + 1 - last);
      last = i + 1;
      h = 0;
      cs = 0;
      fill = 0;
    }
  }
  if (last < data.size()) lens.push_back(data.size() - last);
  return lens;
}

std::vector<uint64_t> Ends(const std::vector<size_t>& lens) {
  std::vector<uint64_t> ends;
  uint64_t e = 0;
  for (size_t l : lens) ends.push_back(e += l);
  return ends;
}

TEST(Chunker, Table) {
  const auto t = BuzhashTable();
  EXPECT_EQ(t[0], 0x458be752u);
  EXPECT_EQ(t[1], 0xc10748ccu);
  EXPECT_EQ(t[2], 0xfbbcdbb8u);
  EXPECT_EQ(t[3], 0x6ded5b68u);
  EXPECT_EQ(t[255], 0xd95ddf11u);
}

TEST(Chunker, Parameters) {
  Chunker c;
  EXPECT_EQ(c.avg_size(), 4u << 20);
  EXPECT_EQ(c.min_size(), 1u << 20);
  EXPECT_EQ(c.max_size(), 16u << 20);
  Chunker catalog(512 * 1024);
  EXPECT_EQ(catalog.min_size(), 128u * 1024);
  EXPECT_EQ(catalog.max_size(), 2048u * 1024);
}

TEST(Chunker, PbsTestBufferAvg64K) {  // FORMATS.md §12.6 (a), chunker.rs test_chunker1
  const auto buf = CounterBuffer();
  EXPECT_EQ(ToHex(Sha256(buf)).substr(0, 8), "21b9bf48");
  EXPECT_EQ(ToHex(Sha256(buf)).substr(60), "8282");
  const std::vector<size_t> expected = {143377, 262144, 262144, 262144, 118767};

  Chunker whole(64 * 1024);
  EXPECT_EQ(ChunkWhole(whole, buf), expected);
  Chunker bytes(64 * 1024);
  EXPECT_EQ(ChunkPieces(bytes, buf, {1}), expected);
  EXPECT_EQ(ReferenceChunks(buf, 64 * 1024), expected);

  const char* digests[] = {"891dda90913ff7628129fca42890e95bc5f83139c2ac53e5efdb7548b8985169",
                           "dd6840938b244a8d859db2c01009963226c19ac054d427958908857f07b7e072",
                           "4cb96dd2dca66dbce1f49383ca1d2c276b6d0dc1aa9c541828f354694c4d4f3c",
                           "7b85905339559e704376a0dcbfd4405c0e48060496b1f5dea8a8544aef1f5217",
                           "d704ea8aeaa787ff83a2712716e33a0517f499cb66ba575201810dd13f8464b9"};
  DynamicIndexWriter w;
  size_t start = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    Digest d = Sha256(std::span<const uint8_t>(buf).subspan(start, expected[i]));
    EXPECT_EQ(ToHex(d), digests[i]);
    start += expected[i];
    ASSERT_TRUE(w.Add(start, d).ok());
  }
  EXPECT_EQ(Ends(expected), (std::vector<uint64_t>{143377, 405521, 667665, 929809, 1048576}));
  Digest csum{};
  ASSERT_TRUE(w.Finish(&csum).ok());
  EXPECT_EQ(ToHex(csum), "36c80f3493139f29c19f20073e97620d09501ee42fa4e0111368dba3c1002d8a");
}

TEST(Chunker, Default4MiBXorshiftStream) {  // FORMATS.md §12.6 (c)
  const auto data = XorshiftStream(64u << 20);
  EXPECT_EQ(ToHex(Sha256(data)),
            "3c4f2e64f7163fe8e7d223c89eac9046ee3f7cd7350f638518b01a1a970eeb81");
  const std::vector<size_t> expected = {1162671, 4850156, 2836501, 8775245, 9503514,
                                        1221476, 6804738, 4307997, 5796479, 1138062,
                                        8171996, 1375249, 2123054, 3336746, 5704980};
  Chunker c;
  const auto lens = ChunkWhole(c, data);
  ASSERT_EQ(lens, expected);
  // Irregular read sizes (as a file reader delivers them) give the same cuts.
  Chunker pieces;
  EXPECT_EQ(ChunkPieces(pieces, data, {1 << 20, 65536, 1, 63, 64, 65, 3 << 20, 777777}), expected);

  DynamicIndexWriter w;
  std::vector<Digest> digests;
  size_t start = 0;
  for (size_t len : lens) {
    digests.push_back(Sha256(std::span<const uint8_t>(data).subspan(start, len)));
    start += len;
    ASSERT_TRUE(w.Add(start, digests.back()).ok());
  }
  EXPECT_EQ(ToHex(digests[0]), "967d3c7c9a38fb52371549196dbff9aaa5e38e351e0755671bf0ad95e7041efb");
  EXPECT_EQ(ToHex(digests[1]), "c660a48fbce98b19ba556910ebf76731293553187f595a985f1651876c8b5daf");
  EXPECT_EQ(ToHex(digests.back()),
            "df62fe8d72b509fc66e9e6e7c804febd120f45d94dded51ff2f784189c478b5d");
  Digest csum{};
  ASSERT_TRUE(w.Finish(&csum).ok());
  EXPECT_EQ(ToHex(csum), "852f21e31ce12d167af6aac2d84d1174f9afe651c54ad805abd7c2a8d369e7c1");

  // Catalog setting (512 KiB) over the first 8 MiB.
  Chunker cat(512 * 1024);
  const auto cat_lens = ChunkWhole(cat, std::span<const uint8_t>(data).subspan(0, 8u << 20));
  ASSERT_GE(cat_lens.size(), 5u);
  EXPECT_EQ(std::vector<size_t>(cat_lens.begin(), cat_lens.begin() + 5),
            (std::vector<size_t>{184394, 302561, 422390, 253326, 465715}));
  const auto cat_ends = Ends(cat_lens);
  EXPECT_NE(std::find(cat_ends.begin(), cat_ends.end(), 1162671u), cat_ends.end());
}

TEST(Chunker, AgreesWithReferenceForEveryAverageAndSplit) {
  std::mt19937 rng(42);
  // Random data plus long constant runs (hash 0 regions, max-size cuts).
  std::vector<uint8_t> data(3u << 20);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  std::fill(data.begin() + 500000, data.begin() + 1500000, 0);
  std::fill(data.begin() + 2000000, data.begin() + 2100000, 0xab);
  for (size_t avg : {64u, 128u, 256u, 512u, 4096u, 65536u, 262144u}) {
    SCOPED_TRACE("avg " + std::to_string(avg));
    const auto ref = ReferenceChunks(data, avg);
    Chunker whole(avg);
    EXPECT_EQ(ChunkWhole(whole, data), ref);
    Chunker small(avg);
    EXPECT_EQ(ChunkPieces(small, data, {1, 2, 3, 61, 64, 65, 127, 4095}), ref);
    std::vector<size_t> random_pieces;
    for (int i = 0; i < 64; ++i) random_pieces.push_back(1 + rng() % (3 * avg));
    Chunker random(avg);
    EXPECT_EQ(ChunkPieces(random, data, random_pieces), ref);
  }
}

TEST(Chunker, ResetStartsANewChunk) {
  const auto data = XorshiftStream(1 << 20);
  Chunker a(65536), b(65536);
  EXPECT_EQ(a.Scan(std::span<const uint8_t>(data).subspan(0, 1000)), 0u);
  EXPECT_EQ(a.current_chunk_size(), 1000u);
  a.Reset();
  EXPECT_EQ(a.current_chunk_size(), 0u);
  EXPECT_EQ(ChunkWhole(a, data), ChunkWhole(b, data));
  EXPECT_EQ(a.Scan({}), 0u);
}

// FORMATS.md §12.6 (b): chunker.rs test_suggested_boundary, replayed with the test's own
// context arithmetic (it adds the absolute position to `base` after every cut).
TEST(PayloadChunker, PbsSuggestedBoundaryTest) {
  const auto buf = CounterBuffer();
  const std::vector<size_t> expected = {32768, 110609, 229376, 32768, 262144, 262144, 118767};
  auto suggest = [](PayloadChunker& c) {
    c.SuggestBoundary(32 * 1024);
    c.SuggestBoundary(32 * 1024);
    c.SuggestBoundary(0);
    c.SuggestBoundary(405521);
  };

  // Single bytes.
  PayloadChunker c1(64 * 1024);
  suggest(c1);
  std::vector<size_t> chunks1;
  uint64_t base = 0, total = 0;
  size_t last = 0;
  for (size_t pos = 0; pos < buf.size();) {
    ++total;
    size_t k = c1.ScanWithContext(std::span<const uint8_t>(buf).subspan(pos, 1), base, total);
    ++pos;
    if (k != 0) {
      chunks1.push_back(pos - last);
      last = pos;
      base += pos;
      total = 0;
    }
  }
  chunks1.push_back(buf.size() - last);
  EXPECT_EQ(chunks1, expected);

  // Whole buffer.
  PayloadChunker c2(64 * 1024);
  c2.Reset();
  suggest(c2);
  std::vector<size_t> chunks2;
  base = 0;
  total = buf.size();
  size_t pos = 0;
  while (pos < buf.size()) {
    size_t k = c2.ScanWithContext(std::span<const uint8_t>(buf).subspan(pos), base, total);
    if (k == 0) break;
    chunks2.push_back(k);
    pos += k;
    base += pos;
    total = buf.size() - pos;
  }
  chunks2.push_back(buf.size() - pos);
  EXPECT_EQ(chunks2, expected);
}

TEST(PayloadChunker, SuggestionsWithAbsoluteOffsets) {
  const auto buf = CounterBuffer();
  // Without suggestions it cuts like the plain chunker.
  PayloadChunker plain(64 * 1024);
  std::vector<size_t> lens;
  size_t pos = 0;
  while (pos < buf.size()) {
    size_t k = plain.Scan(std::span<const uint8_t>(buf).subspan(pos));
    if (k == 0) break;
    lens.push_back(k);
    pos += k;
  }
  EXPECT_EQ(lens, (std::vector<size_t>{143377, 262144, 262144, 262144}));
  EXPECT_EQ(plain.position(), 929809u + (buf.size() - 929809));

  // 40000 is taken (within min..max of the chunk start 0); 41000 would give a chunk below min
  // and is dropped; 300000 is taken relative to 40000; 10 is in the past.
  PayloadChunker c(64 * 1024);
  c.SuggestBoundary(40000);
  c.SuggestBoundary(41000);
  c.SuggestBoundary(300000);
  c.SuggestBoundary(10);
  std::vector<uint64_t> ends;
  pos = 0;
  while (pos < buf.size()) {
    size_t k = c.Scan(std::span<const uint8_t>(buf).subspan(pos));
    if (k == 0) break;
    pos += k;
    ends.push_back(pos);
  }
  ASSERT_GE(ends.size(), 2u);
  EXPECT_EQ(ends[0], 40000u);
  EXPECT_EQ(ends[1], 300000u);
  EXPECT_EQ(c.position(), buf.size());
}

}  // namespace
}  // namespace pbskit
