#include "pbskit/formats/fixed_index.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/manifest.h"
#include "test_support.h"

namespace pbskit {
namespace {

Digest D(const std::string& hex) { return DigestFromHex(hex).value(); }

std::vector<uint8_t> ReadDs(const std::string& rel) {
  return test::ReadFile(test::Fixture("pbs-3.2.4-datastore/" + rel));
}

TEST(FixedIndex, TenMiBZeroImageVector) {  // FORMATS.md §12.5
  const std::vector<uint8_t> four(4 << 20, 0), two(2 << 20, 0);
  const Digest d4 = Sha256(four), d2 = Sha256(two);
  EXPECT_EQ(ToHex(d4), "bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8");
  EXPECT_EQ(ToHex(d2), "5647f05ec18958947d32874eeb788fa396a05d0bab7c1b71f112ceb7e9b31eee");

  FixedIndexWriter w(10485760, 4194304);
  ASSERT_EQ(w.chunk_count(), 3u);
  ASSERT_TRUE(w.SetDigest(0, d4).ok());
  ASSERT_TRUE(w.SetDigest(1, d4).ok());
  ASSERT_TRUE(w.SetDigest(2, d2).ok());
  w.SetCtime(1700000000);
  Digest csum{};
  auto file = w.Finish(&csum);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->size(), 4192u);
  EXPECT_EQ(ToHex(csum), "cfbbdae2c77066b55ee0bca512cfca2299904017a44f1dc362f4cc4e3924925d");
  // Header layout: magic, ctime at 24, csum at 32, size at 64, chunk size at 72, zero padding.
  EXPECT_TRUE(std::equal(kFixedIndexMagic.begin(), kFixedIndexMagic.end(), file->begin()));
  EXPECT_EQ(LoadLe64(file->data() + 24), 1700000000u);
  EXPECT_EQ(LoadLe64(file->data() + 64), 10485760u);
  EXPECT_EQ(LoadLe64(file->data() + 72), 4194304u);
  for (size_t i = 80; i < kIndexHeaderSize; ++i) ASSERT_EQ((*file)[i], 0) << "offset " << i;

  auto idx = FixedIndex::Parse(*file, "zero.img.fidx");
  ASSERT_TRUE(idx.ok()) << idx.status().ToString();
  EXPECT_EQ(idx->size(), 10485760u);
  EXPECT_EQ(idx->chunk_size(), 4194304u);
  EXPECT_EQ(idx->chunk_count(), 3u);
  EXPECT_EQ(idx->ctime(), 1700000000);
  EXPECT_EQ(idx->header_csum(), csum);
  EXPECT_EQ(idx->ComputeCsum(), csum);
  EXPECT_EQ(idx->digest(2), d2);
  EXPECT_EQ(idx->chunk_range(2), std::make_pair(uint64_t{8388608}, uint64_t{10485760}));
  EXPECT_EQ(idx->FindChunk(0), 0u);
  EXPECT_EQ(idx->FindChunk(4194303), 0u);
  EXPECT_EQ(idx->FindChunk(4194304), 1u);
  EXPECT_EQ(idx->FindChunk(10485759), 2u);
  EXPECT_EQ(idx->FindChunk(10485760), 3u);
  // The uuid is a random version-4 uuid.
  EXPECT_EQ(idx->uuid()[6] >> 4, 4);
}

TEST(FixedIndex, WriterErrors) {
  FixedIndexWriter w(100, 64);
  EXPECT_EQ(w.chunk_count(), 2u);
  EXPECT_EQ(w.SetDigest(2, Digest{}).code(), Code::kInvalidArgument);
  ASSERT_TRUE(w.SetDigest(0, Digest{}).ok());
  auto unset = w.Finish(nullptr);
  ASSERT_FALSE(unset.ok());
  EXPECT_EQ(unset.status().code(), Code::kInvalidArgument);
  EXPECT_NE(unset.status().message().find("chunk 1"), std::string::npos);

  FixedIndexWriter bad_chunk(100, 48);
  EXPECT_EQ(bad_chunk.Finish(nullptr).status().code(), Code::kInvalidArgument);
  FixedIndexWriter empty(0, 4096);
  EXPECT_EQ(empty.Finish(nullptr).status().code(), Code::kInvalidArgument);
}

TEST(FixedIndex, AddChunkChecksAlignment) {  // PBS FixedIndexWriter::add_chunk rules
  const Digest a = Sha256(std::string_view("a")), b = Sha256(std::string_view("b"));
  FixedIndexWriter w(10000, 4096);
  EXPECT_EQ(w.AddChunk(0, 4095, a).code(), Code::kInvalidArgument);     // short, not last
  EXPECT_EQ(w.AddChunk(1, 4096, a).code(), Code::kInvalidArgument);     // unaligned
  EXPECT_EQ(w.AddChunk(0, 0, a).code(), Code::kInvalidArgument);        // empty
  EXPECT_EQ(w.AddChunk(8192, 4096, a).code(), Code::kInvalidArgument);  // past the end
  EXPECT_EQ(w.AddChunk(8192, 1808, a).ToString(), "OK");                // the short last chunk
  ASSERT_TRUE(w.AddChunk(4096, 4096, b).ok());
  ASSERT_TRUE(w.AddChunk(0, 4096, a).ok());
  auto fixed = w.Finish(nullptr);
  ASSERT_TRUE(fixed.ok());

  // Growable: same result as a writer that knew the size, in any order of the full chunks.
  FixedIndexWriter g = FixedIndexWriter::Growable(4096);
  EXPECT_EQ(g.size(), 0u);
  EXPECT_EQ(g.Finish(nullptr).status().code(), Code::kInvalidArgument);  // empty image
  ASSERT_TRUE(g.AddChunk(4096, 4096, b).ok());
  EXPECT_EQ(g.size(), 8192u);
  ASSERT_TRUE(g.AddChunk(0, 4096, a).ok());
  ASSERT_TRUE(g.AddChunk(8192, 1808, a).ok());
  EXPECT_EQ(g.size(), 10000u);
  // A short chunk fixed the size.
  Status grow = g.AddChunk(12288, 4096, a);
  EXPECT_EQ(grow.code(), Code::kInvalidArgument);
  EXPECT_NE(grow.message().find("refusing to resize"), std::string::npos);
  g.SetUuid(FixedIndex::Parse(*fixed, "w").value().uuid());
  g.SetCtime(FixedIndex::Parse(*fixed, "w").value().ctime());
  auto grown = g.Finish(nullptr);
  ASSERT_TRUE(grown.ok()) << grown.status().ToString();
  EXPECT_EQ(*grown, *fixed);
}

struct FixtureFidx {
  std::string snapshot;
  std::string csum;
  std::vector<std::string> digests;
};

const std::vector<FixtureFidx>& FixtureIndexes() {
  static const std::vector<FixtureFidx> v = {
      {"vm/100/2024-05-01T10:00:00Z",
       "b8c6d2eb6ef4e3cb3d16d836e14d97f2d277db7598c79d75c025f8165490c405",
       {"78b871dd519b61a2ce9ae8dc6c03800b5488317f01cc76dad41d7606a1f1ca7d",
        "78b871dd519b61a2ce9ae8dc6c03800b5488317f01cc76dad41d7606a1f1ca7d",
        "97406e26868608f7b1fec1a781fa8e2f691f0ff73679bb4fed923452e93388d9"}},
      {"vm/100/2024-05-02T10:00:00Z",
       "7cc4447abb9c62731f89684850e59d5448438b718b0b1acb6ed8911e42f5daa8",
       {"78b871dd519b61a2ce9ae8dc6c03800b5488317f01cc76dad41d7606a1f1ca7d",
        "eb65c497df3829f832a8eb7f9b4939dbcd8b9d0b4e04dd2c3a9f4b2f9f25609f",
        "97406e26868608f7b1fec1a781fa8e2f691f0ff73679bb4fed923452e93388d9"}},
      {"vm/200/2024-05-05T12:00:00Z",
       "707a14c7c3784892007ce97a007b37ccf75bb591b5c9f5511f62f13049e3620a",
       {"7d5c099ab5a1deacca1d17de068cde3d0878f2b8cd825127d79d1be881232e7d",
        "ab12683de74288f6d228454e818c2072af04dbd8fc2e5be79653d4d67b494676",
        "669a3f2dda0c6c44ec15610227b6a957027105aaa262786fc113ef8d705d70d1"}},
      {"vm/201/2024-05-05T13:00:00Z",
       "83ee2a72cff542fdc2529e1db4756172ee4c8f327e980ea6d50bc9390d15482c",
       {"bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8",
        "78b871dd519b61a2ce9ae8dc6c03800b5488317f01cc76dad41d7606a1f1ca7d",
        "97406e26868608f7b1fec1a781fa8e2f691f0ff73679bb4fed923452e93388d9"}},
  };
  return v;
}

TEST(FixedIndex, ParsesEveryFixtureIndex) {
  for (const FixtureFidx& f : FixtureIndexes()) {
    SCOPED_TRACE(f.snapshot);
    const std::string rel = f.snapshot + "/drive-scsi0.img.fidx";
    auto bytes = ReadDs(rel);
    ASSERT_EQ(bytes.size(), 4192u);
    auto idx = FixedIndex::Parse(bytes, rel);
    ASSERT_TRUE(idx.ok()) << idx.status().ToString();
    EXPECT_EQ(idx->size(), 9437184u);
    EXPECT_EQ(idx->chunk_size(), 4194304u);
    ASSERT_EQ(idx->chunk_count(), 3u);
    const uint64_t starts[] = {0, 4194304, 8388608}, ends[] = {4194304, 8388608, 9437184};
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(ToHex(idx->digest(i)), f.digests[i]) << "chunk " << i;
      EXPECT_EQ(idx->chunk_range(i), std::make_pair(starts[i], ends[i]));
    }
    EXPECT_EQ(ToHex(idx->header_csum()), f.csum);
    EXPECT_EQ(ToHex(idx->ComputeCsum()), f.csum);
    // uuid and ctime are what the header holds (random uuid, creation time in 2026).
    EXPECT_NE(idx->uuid(), (std::array<uint8_t, 16>{}));
    EXPECT_EQ(0, std::memcmp(idx->uuid().data(), bytes.data() + 8, 16));
    EXPECT_EQ(idx->ctime(), static_cast<int64_t>(LoadLe64(bytes.data() + 24)));
    EXPECT_GT(idx->ctime(), 1700000000);

    // The manifest entry carries the same csum and size.
    auto blob = DataBlob::FromRaw(ReadDs(f.snapshot + "/index.json.blob"));
    ASSERT_TRUE(blob.ok()) << blob.status().ToString();
    auto payload = blob->Decode(nullptr);
    ASSERT_TRUE(payload.ok()) << payload.status().ToString();
    auto m = Manifest::Parse(std::string(payload->begin(), payload->end()), rel);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    const FileInfo* fi = m->Lookup("drive-scsi0.img.fidx");
    ASSERT_NE(fi, nullptr);
    EXPECT_EQ(fi->csum, idx->ComputeCsum());
    EXPECT_EQ(fi->size, idx->size());

    // Rebuilding the file from the parsed values gives the same bytes.
    FixedIndexWriter w(idx->size(), idx->chunk_size());
    for (size_t i = 0; i < idx->chunk_count(); ++i)
      ASSERT_TRUE(w.SetDigest(i, idx->digest(i)).ok());
    w.SetUuid(idx->uuid());
    w.SetCtime(idx->ctime());
    auto rebuilt = w.Finish(nullptr);
    ASSERT_TRUE(rebuilt.ok());
    EXPECT_EQ(*rebuilt, bytes);
  }
}

std::vector<uint8_t> SmallIndex() {
  FixedIndexWriter w(100000, 65536);
  EXPECT_TRUE(w.SetDigest(0, D(std::string(64, 'a'))).ok());
  EXPECT_TRUE(w.SetDigest(1, D(std::string(64, 'b'))).ok());
  return w.Finish(nullptr).value();
}

void ExpectCorruption(const std::vector<uint8_t>& bytes, const std::string& needle) {
  auto r = FixedIndex::Parse(bytes, "broken.img.fidx");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
  EXPECT_NE(r.status().message().find("broken.img.fidx"), std::string::npos);
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().ToString();
}

TEST(FixedIndex, CorruptInputs) {
  const std::vector<uint8_t> good = SmallIndex();
  ASSERT_TRUE(FixedIndex::Parse(good, "ok").ok());

  ExpectCorruption({}, "too short");
  ExpectCorruption(std::vector<uint8_t>(good.begin(), good.begin() + 4095), "too short");

  auto magic = good;
  magic[0] ^= 1;
  ExpectCorruption(magic, "magic");
  // A dynamic index is not a fixed index.
  auto dyn = good;
  std::copy(kDynamicIndexMagic.begin(), kDynamicIndexMagic.end(), dyn.begin());
  ExpectCorruption(dyn, "magic");

  auto npot = good;
  StoreLe64(npot.data() + 72, 65535);
  ExpectCorruption(npot, "power of two");
  auto zero_chunk = good;
  StoreLe64(zero_chunk.data() + 72, 0);
  ExpectCorruption(zero_chunk, "power of two");

  auto zero_size = good;
  StoreLe64(zero_size.data() + 64, 0);
  ExpectCorruption(zero_size, "size is 0");

  auto too_big = good;  // 3 chunks claimed, 2 stored
  StoreLe64(too_big.data() + 64, 3 * 65536);
  ExpectCorruption(too_big, "size mismatch");
  auto extra = good;  // a stray trailing byte
  extra.push_back(0);
  ExpectCorruption(extra, "size mismatch");
  auto missing = good;
  missing.resize(missing.size() - 32);
  ExpectCorruption(missing, "size mismatch");
  auto huge = good;  // a count that overflows naive arithmetic
  StoreLe64(huge.data() + 64, ~uint64_t{0});
  StoreLe64(huge.data() + 72, 1);
  ExpectCorruption(huge, "size mismatch");
}

}  // namespace
}  // namespace pbskit
