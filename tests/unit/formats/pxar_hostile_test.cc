// Hostile pxar input: every malformation is Corruption naming the offset; nothing crashes and
// nothing allocates according to a forged size.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "pbskit/formats/pxar/decoder.h"
#include "pbskit/formats/pxar/encoder.h"
#include "pxar_test_util.h"
#include "test_support.h"

namespace pbskit::pxar {
namespace {

Metadata Meta(uint64_t mode) {
  Metadata m;
  m.stat.mode = mode;
  m.stat.mtime_secs = 1700000000;
  return m;
}

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Root with: file "aa" ("hello"), dir "d" { symlink "l", fifo "p" }, hardlink "h" -> aa,
// device "z", socket "s" (with an xattr and ACLs on the file).
std::vector<uint8_t> SmallArchive() {
  VectorSink out;
  auto enc = std::move(Encoder::Create(&out, nullptr, Meta(040755)).value());
  Metadata fm = Meta(0100644);
  fm.xattrs.push_back({"user.x", std::string("v\0w", 3)});
  fm.acl.users.push_back({1000, 6});
  fm.acl.group_obj = 4;
  auto aa = enc->AddFile(fm, "aa", Bytes("hello"));
  EXPECT_TRUE(enc->CreateDirectory("d", Meta(040700)).ok());
  EXPECT_TRUE(enc->AddSymlink(Meta(0120777), "l", "../aa").ok());
  EXPECT_TRUE(enc->AddFifo(Meta(010644), "p").ok());
  EXPECT_TRUE(enc->FinishDirectory().ok());
  EXPECT_TRUE(enc->AddHardlink("h", "aa", *aa).ok());
  EXPECT_TRUE(enc->AddSocket(Meta(0140755), "s").ok());
  EXPECT_TRUE(enc->AddDevice(Meta(020644), "z", Device{1, 3}).ok());
  EXPECT_TRUE(enc->Finish().ok());
  return out.data();
}

Status DecodeStatus(const std::vector<uint8_t>& bytes) {
  SpanSource src(bytes);
  return testing::DecodeAll(&src, nullptr).status;
}

size_t Find(const std::vector<uint8_t>& b, const std::string& needle) {
  auto it = std::search(b.begin(), b.end(), needle.begin(), needle.end(),
                        [](uint8_t x, char y) { return x == static_cast<uint8_t>(y); });
  return it == b.end() ? std::string::npos : static_cast<size_t>(it - b.begin());
}

void PutLe64(std::vector<uint8_t>& b, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

TEST(PxarHostile, SmallArchiveIsValid) {
  std::vector<uint8_t> a = SmallArchive();
  SpanSource src(a);
  testing::Decoded d = testing::DecodeAll(&src, nullptr);
  ASSERT_TRUE(d.status.ok()) << d.status.ToString();
  ASSERT_EQ(d.entries.size(), 8u);
  EXPECT_EQ(d.entries[1].metadata.xattrs[0].value, std::string("v\0w", 3));
}

TEST(PxarHostile, DotDotSlashAndNulInNames) {
  std::vector<uint8_t> base = SmallArchive();
  size_t at = Find(base, std::string("aa\0", 3));
  ASSERT_NE(at, std::string::npos);
  for (std::string bad : {std::string(".."), std::string("a/"), std::string("a\0", 2),
                          std::string("/a")}) {
    std::vector<uint8_t> b = base;
    std::memcpy(&b[at], bad.data(), 2);
    Status st = DecodeStatus(b);
    EXPECT_TRUE(st.IsCorruption()) << st.ToString();
    EXPECT_NE(st.message().find("offset " + std::to_string(at - 16)), std::string::npos)
        << st.ToString();
  }
}

TEST(PxarHostile, EveryTruncationIsCorruption) {
  std::vector<uint8_t> a = SmallArchive();
  for (size_t len = 0; len < a.size(); ++len) {
    std::vector<uint8_t> t(a.begin(), a.begin() + static_cast<long>(len));
    Status st = DecodeStatus(t);
    EXPECT_TRUE(st.IsCorruption()) << len << ": " << st.ToString();
  }
}

TEST(PxarHostile, HugeSizesAreRejectedBeforeAllocation) {
  std::vector<uint8_t> base = SmallArchive();
  size_t name_hdr = Find(base, std::string("aa\0", 3)) - 16;
  for (uint64_t size : {uint64_t{0}, uint64_t{15}, uint64_t{1} << 40, ~uint64_t{0}}) {
    std::vector<uint8_t> b = base;
    PutLe64(b, name_hdr + 8, size);
    Status st = DecodeStatus(b);
    EXPECT_TRUE(st.IsCorruption()) << st.ToString();
    EXPECT_NE(st.message().find("offset " + std::to_string(name_hdr)), std::string::npos);
  }
  // A payload claiming 2^62 bytes: the stream ends first.
  std::vector<uint8_t> b = base;
  size_t payload = Find(b, "hello") - 16;
  PutLe64(b, payload + 8, uint64_t{1} << 62);
  EXPECT_TRUE(DecodeStatus(b).IsCorruption());
  // A prelude (v2) larger than the limit.
  VectorSink meta, pay;
  std::string prelude = "{}";
  auto enc = std::move(Encoder::Create(&meta, &pay, Meta(040755), &prelude).value());
  ASSERT_TRUE(enc->Finish().ok());
  std::vector<uint8_t> v2 = meta.data();
  PutLe64(v2, 24 + 8, uint64_t{1} << 50);
  Status st = DecodeStatus(v2);
  EXPECT_TRUE(st.IsCorruption()) << st.ToString();
}

TEST(PxarHostile, GoodbyeTableMismatch) {
  std::vector<uint8_t> base = SmallArchive();
  ASSERT_TRUE(DecodeStatus(base).ok());
  // The root goodbye table is the last item: 16 + 24 * (5 + 1) bytes.
  size_t g = base.size() - (16 + 24 * 6);
  uint64_t gtype = 0;
  for (int i = 7; i >= 0; --i) gtype = (gtype << 8) | base[g + i];
  ASSERT_EQ(gtype, kGoodbye);
  auto expect_bad = [&](std::vector<uint8_t> b, const char* what) {
    Status st = DecodeStatus(b);
    EXPECT_TRUE(st.IsCorruption()) << what << ": " << st.ToString();
    EXPECT_NE(st.message().find("offset " + std::to_string(g)), std::string::npos)
        << what << ": " << st.ToString();
  };
  std::vector<uint8_t> b = base;
  b[g + 16] ^= 1;  // first record's hash
  expect_bad(b, "hash");
  b = base;
  b[g + 16 + 16] ^= 1;  // first record's size
  expect_bad(b, "size");
  b = base;
  b[g + 16 + 8] ^= 4;  // first record's offset
  expect_bad(b, "offset");
  b = base;
  std::swap_ranges(b.begin() + static_cast<long>(g + 16), b.begin() + static_cast<long>(g + 40),
                   b.begin() + static_cast<long>(g + 40));  // breaks the BST order
  expect_bad(b, "order");
  b = base;
  b[g + 16 + 24 * 5] ^= 1;  // tail marker
  expect_bad(b, "tail");
  b = base;
  PutLe64(b, g + 8, 16 + 24 * 5);  // one record short
  ASSERT_GE(b.size(), 24u);
  b.erase(b.end() - 24, b.end());
  expect_bad(b, "count");
}

TEST(PxarHostile, StructuralErrors) {
  std::vector<uint8_t> base = SmallArchive();
  // Trailing data after the root goodbye table.
  std::vector<uint8_t> b = base;
  b.push_back(0);
  EXPECT_TRUE(DecodeStatus(b).IsCorruption());
  // Unknown item type in place of the first FILENAME.
  b = base;
  PutLe64(b, 56, 0x1234);
  Status st = DecodeStatus(b);
  EXPECT_TRUE(st.IsCorruption());
  EXPECT_NE(st.message().find("offset 56"), std::string::npos) << st.ToString();
  // Hardlink pointing forward.
  b = base;
  std::string hl_type(8, '\0');
  for (int i = 0; i < 8; ++i) hl_type[i] = static_cast<char>(kHardlink >> (8 * i));
  size_t hl = Find(b, hl_type);
  ASSERT_NE(hl, std::string::npos);
  size_t off_at = hl + 16;  // the u64 offset right after the HARDLINK header
  PutLe64(b, off_at, uint64_t{1} << 40);
  EXPECT_TRUE(DecodeStatus(b).IsCorruption());
  // A regular-file ENTRY followed by a symlink item.
  b = base;
  size_t pay = Find(b, "hello") - 16;
  PutLe64(b, pay, kSymlink);
  EXPECT_TRUE(DecodeStatus(b).IsCorruption());
  // Empty input.
  EXPECT_TRUE(DecodeStatus({}).IsCorruption());
}

TEST(PxarHostile, SplitPayloadMismatch) {
  VectorSink meta, pay;
  auto enc = std::move(Encoder::Create(&meta, &pay, Meta(040755)).value());
  ASSERT_TRUE(enc->AddFile(Meta(0100644), "a", Bytes("one")).ok());
  ASSERT_TRUE(enc->AddFile(Meta(0100644), "b", Bytes("two")).ok());
  ASSERT_TRUE(enc->Finish().ok());
  {
    std::vector<uint8_t> p = pay.data();
    PutLe64(p, 16 + 8, 16 + 4);  // first PAYLOAD header claims 4 bytes
    SpanSource ms(meta.data()), ps(p);
    Status st = testing::DecodeAll(&ms, &ps).status;
    EXPECT_TRUE(st.IsCorruption()) << st.ToString();
    EXPECT_NE(st.message().find("payload"), std::string::npos);
  }
  {
    // Second reference pointing back into the first payload.
    std::vector<uint8_t> m = meta.data();
    size_t second = Find(m, std::string("b\0", 2));
    size_t ref = second + 2 + 56 + 16;
    PutLe64(m, ref, 20);
    SpanSource ms(m);
    Status st = testing::DecodeAll(&ms, nullptr, false).status;
    EXPECT_TRUE(st.IsCorruption()) << st.ToString();
  }
  {
    // Payload stream without start marker.
    std::vector<uint8_t> p = pay.data();
    p[0] ^= 1;
    SpanSource ms(meta.data()), ps(p);
    EXPECT_TRUE(testing::DecodeAll(&ms, &ps).status.IsCorruption());
  }
}

// Random byte damage never crashes and yields OK or Corruption only.
TEST(PxarHostile, RandomDamage) {
  std::vector<uint8_t> base = SmallArchive();
  std::mt19937 rng(12345);
  for (int round = 0; round < 3000; ++round) {
    std::vector<uint8_t> b = base;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) b[rng() % b.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    Status st = DecodeStatus(b);
    EXPECT_TRUE(st.ok() || st.IsCorruption()) << st.ToString();
  }
}

}  // namespace
}  // namespace pbskit::pxar
