// Media catalog v1.1: the TAPE.md §7.5 vector, round trips and the §7.3 validation errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/tape/media_catalog.h"

namespace pbskit::tape {
namespace {

Uuid U(const char* s) { return *ParseUuid(s); }
const Uuid kMedia = U("11111111-2222-3333-4444-555555555555");
const Uuid kSet = U("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
const Uuid kArchive = U("01020304-0506-0708-090a-0b0c0d0e0f10");
const Uuid kSnap = U("f0f1f2f3-f4f5-f6f7-f8f9-fafbfcfdfeff");

Digest ChunkDigest() {
  std::string s = "chunk1";
  return Sha256(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

std::vector<uint8_t> VectorBytes() {
  MediaCatalogBuilder b(kMedia);
  EXPECT_TRUE(b.RegisterLabel(kMedia, 0, 0).ok());
  EXPECT_TRUE(b.RegisterLabel(kSet, 0, 1).ok());
  EXPECT_TRUE(b.StartChunkArchive(kArchive, 2, "store1").ok());
  EXPECT_TRUE(b.RegisterChunk(ChunkDigest()).ok());
  EXPECT_TRUE(b.EndChunkArchive(kArchive, 2).ok());
  EXPECT_TRUE(b.RegisterSnapshot(kSnap, 3, "store1", "vm/100/2024-01-01T00:00:00Z").ok());
  return b.pending();
}

TEST(TapeMediaCatalog, SpecVector) {
  const char* hex =  // the dump of TAPE.md §7.5, 16 bytes a line
      "4c8ee8c120a889714c00000000000000"
      "00111111112222333344445555555555"
      "5500000000000000004c010000000000"
      "0000aaaaaaaabbbbccccddddeeeeeeee"
      "eeee0000000000000000410200000000"
      "0000000102030405060708090a0b0c0d"
      "0e0f10060000000000000073746f7265"
      "3143412cb322137d81a561102174568c"
      "4f9c84e5db95f51dcc3e298078e0ece8"
      "c7744502000000000000000102030405"
      "060708090a0b0c0d0e0f105303000000"
      "00000000f0f1f2f3f4f5f6f7f8f9fafb"
      "fcfdfeff06001b000000000073746f72"
      "65313a766d2f3130302f323032342d30"
      "312d30315430303a30303a30305a";
  std::string clean;
  for (const char* p = hex; *p; ++p) {
    if (*p != ' ') clean.push_back(*p);
  }
  auto want = FromHex(clean);
  ASSERT_TRUE(want.ok());
  ASSERT_EQ(want->size(), 238u);
  auto got = VectorBytes();
  EXPECT_EQ(got.size(), 238u);
  EXPECT_EQ(ToHex(got), clean);

  MediaSetLabel set;
  set.uuid = kSet;
  set.seq_nr = 0;
  auto c = ParseMediaCatalog(*want, kMedia, set);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->found_magic);
  EXPECT_FALSE(c->archive_open);
  EXPECT_EQ(c->media_set_uuid, kSet);
  ASSERT_EQ(c->entries.size(), 6u);
  ASSERT_EQ(c->content.size(), 1u);
  const auto& s1 = c->content.at("store1");
  EXPECT_EQ(s1.chunk_index.at(ChunkDigest()), 2u);
  EXPECT_EQ(s1.snapshot_index.at("vm/100/2024-01-01T00:00:00Z"), 3u);

  auto h = ParseMediaCatalogHeader(*want);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->media_uuid, kMedia);
  EXPECT_EQ(h->media_set_uuid, kSet);
}

TEST(TapeMediaCatalog, PaddingIgnoredOnRead) {
  auto bytes = VectorBytes();
  bytes[0x6a] = 0xee;  // a padding byte of the 'A' entry
  bytes[0xc5] = 0x77;  // the pad byte of the 'S' entry
  EXPECT_TRUE(ParseMediaCatalog(bytes, kMedia, std::nullopt).ok());
}

TEST(TapeMediaCatalog, EmptyAndAppend) {
  auto empty = ParseMediaCatalog({}, kMedia, std::nullopt);
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->found_magic);

  auto bytes = VectorBytes();
  auto b = MediaCatalogBuilder::Open(kMedia, bytes);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_TRUE(b->pending().empty());
  // file 3 is taken; 4 may be a catalog archive, the next snapshot at 5 (gap allowed)
  EXPECT_EQ(b->RegisterSnapshot(kSnap, 3, "s2", "ct/200/2024-05-06T07:08:09Z").message(),
            "register_snapshot failed: got unexpected file number (3 < 4)");
  ASSERT_TRUE(
      b->RegisterSnapshot(kSnap, 5, "s2", "ns/dev/ns/team1/ct/200/2024-05-06T07:08:09Z").ok());
  bytes.insert(bytes.end(), b->pending().begin(), b->pending().end());
  auto c = ParseMediaCatalog(bytes, kMedia, std::nullopt);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->content.at("s2").snapshot_index.at("ns/dev/ns/team1/ct/200/2024-05-06T07:08:09Z"),
            5u);
}

TEST(TapeMediaCatalog, BuilderRules) {
  MediaCatalogBuilder b(kMedia);
  EXPECT_EQ(b.RegisterLabel(kSet, 0, 0).message(), "register label failed: uuid does not match");
  EXPECT_EQ(b.RegisterLabel(kMedia, 0, 1).message(),
            "register label failed: got unexpected file number (1 < 0)");
  EXPECT_EQ(b.RegisterLabel(kMedia, 0, 2).message(),
            "register label failed: got wrong file number (2 >= 2)");
  ASSERT_TRUE(b.RegisterLabel(kMedia, 0, 0).ok());
  EXPECT_EQ(b.RegisterChunk(ChunkDigest()).message(), "register_chunk failed: no archive started");
  EXPECT_EQ(b.StartChunkArchive(kArchive, 1, "s").message(),
            "start_chunk_archive failed: got wrong file number (1 < 2)");
  ASSERT_TRUE(b.StartChunkArchive(kArchive, 2, "s").ok());
  EXPECT_EQ(b.StartChunkArchive(kArchive, 3, "s").message(),
            "start_chunk_archive failed: already started");
  EXPECT_EQ(b.RegisterSnapshot(kSnap, 3, "s", "vm/1/2024-01-01T00:00:00Z").message(),
            "register_snapshot failed: inside chunk_archive");
  EXPECT_EQ(b.EndChunkArchive(kSnap, 2).message(), "end_chunk_archive failed: got unexpected uuid");
  EXPECT_EQ(b.EndChunkArchive(kArchive, 3).message(),
            "end_chunk_archive failed: got unexpected file number (3 != 2)");
  ASSERT_TRUE(b.EndChunkArchive(kArchive, 2).ok());
  EXPECT_FALSE(b.RegisterSnapshot(kSnap, 3, "s", "vm/1/not-a-time").ok());
  EXPECT_FALSE(b.RegisterSnapshot(kSnap, 3, "s", "xx/dev/vm/1/2024-01-01T00:00:00Z").ok());
}

TEST(TapeMediaCatalog, LoadErrors) {
  auto good = VectorBytes();
  auto expect = [](const std::vector<uint8_t>& bytes, const std::string& msg,
                   const std::optional<MediaSetLabel>& set = std::nullopt) {
    auto c = ParseMediaCatalog(bytes, kMedia, set);
    ASSERT_FALSE(c.ok()) << msg;
    EXPECT_EQ(c.status().code(), Code::kCorruption);
    EXPECT_EQ(c.status().message().substr(0, msg.size()), msg);
  };
  auto bad = good;
  bad[0] ^= 1;
  expect(bad, "wrong magic number");
  bad = good;
  std::copy(kMediaCatalogMagic10.begin(), kMediaCatalogMagic10.end(), bad.begin());
  expect(bad, "old catalog format (v1.0) is no longer supported");
  bad = good;
  bad[8] = 'X';
  expect(bad, "unknown entry type '88'");
  bad = good;
  bad.resize(good.size() - 3);
  expect(bad, "truncated media catalog: snapshot name");
  bad = good;
  bad[0xd2] = ';';  // separator after "store1"
  expect(bad, "parse-error: missing separator in SnapshotEntry");
  bad = good;
  bad[0x11] = 0x99;  // file-0 label uuid differs from the media uuid
  expect(bad, "register label failed: uuid does not match");
  MediaSetLabel other;
  other.uuid = kMedia;
  expect(good, "got unexpected media set uuid", other);
  other.uuid = kSet;
  other.seq_nr = 4;
  expect(good, "got unexpected media set sequence number", other);
  // a chunk entry outside of an archive: drop the 'A' entry (bytes 0x4a..0x70)
  bad = good;
  bad.erase(bad.begin() + 0x4a, bad.begin() + 0x71);
  expect(bad, "register_chunk failed: no archive started");
  // an A without E at the end still loads, but cannot be appended to
  auto open = std::vector<uint8_t>(good.begin(), good.begin() + 0x92);
  auto c = ParseMediaCatalog(open, kMedia, std::nullopt);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->archive_open);
  EXPECT_EQ(c->content.at("store1").chunk_index.size(), 1u);
  EXPECT_FALSE(MediaCatalogBuilder::Open(kMedia, open).ok());
}

TEST(TapeMediaCatalog, HeaderNeedsLabelsFirst) {
  auto good = VectorBytes();
  auto bad = good;
  bad[8] = 'S';
  auto h = ParseMediaCatalogHeader(bad);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().message(), "got unexpected entry type");
}

}  // namespace
}  // namespace pbskit::tape

namespace pbskit::tape {
namespace {

TEST(TapeMediaCatalog, SnapshotNames) {
  EXPECT_TRUE(CheckTapeSnapshotName("vm/100/2024-01-01T00:00:00Z").ok());
  EXPECT_TRUE(CheckTapeSnapshotName("ns/dev/ct/200/2024-05-06T07:08:09Z").ok());
  EXPECT_TRUE(CheckTapeSnapshotName("ns/dev/ns/team1/host/h1/2024-05-06T07:08:09Z").ok());
  EXPECT_TRUE(CheckTapeSnapshotName("/vm/100/2024-01-01T00:00:00Z").ok());  // empty ns path
  EXPECT_FALSE(CheckTapeSnapshotName("dev/ct/200/2024-05-06T07:08:09Z").ok());
  EXPECT_FALSE(CheckTapeSnapshotName("ns/dev/ns/ct/200/2024-05-06T07:08:09Z").ok());
  EXPECT_FALSE(CheckTapeSnapshotName("vm/100").ok());
  EXPECT_FALSE(CheckTapeSnapshotName("qemu/100/2024-01-01T00:00:00Z").ok());
}

}  // namespace
}  // namespace pbskit::tape
