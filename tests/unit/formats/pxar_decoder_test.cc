// pxar decoder against the real PBS fixtures (v1 archives and the v2 split test archives).
#include <gtest/gtest.h>

#include <sstream>

#include "pbskit/formats/dynamic_index.h"
#include "pbskit/formats/pxar/decoder.h"
#include "pbskit/formats/pxar/listing.h"
#include "pxar_test_util.h"
#include "test_support.h"

namespace pbskit::pxar {
namespace {

using pbskit::test::Fixture;
using pbskit::test::ReadFile;
using pbskit::test::ReadText;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

class FixtureArchive : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureArchive, EntriesMatchFixtureListing) {
  std::string base = Fixture("pxar/" + GetParam());
  std::vector<uint8_t> bytes = ReadFile(base + ".pxar");
  SpanSource src(bytes);
  testing::Decoded d = testing::DecodeAll(&src, nullptr);
  ASSERT_TRUE(d.status.ok()) << d.status.ToString();
  std::vector<std::string> got;
  for (size_t i = 0; i < d.entries.size(); ++i)
    got.push_back(testing::EntriesLine(d.entries[i], d.sha256[i]));
  std::vector<std::string> want = Lines(ReadText(base + ".pxar.entries"));
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << "line " << i;
}

TEST_P(FixtureArchive, ListMatchesPxarList) {
  std::string base = Fixture("pxar/" + GetParam());
  std::vector<uint8_t> bytes = ReadFile(base + ".pxar");
  SpanSource src(bytes);
  Decoder dec(&src, nullptr);
  std::string out;
  Entry e;
  for (;;) {
    auto r = dec.Next(&e);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    if (!*r) break;
    std::string line = ListLine(e);
    if (!line.empty()) out += line + "\n";
  }
  EXPECT_EQ(out, ReadText(base + ".pxar.list"));
  EXPECT_EQ(dec.position(), bytes.size());
}

INSTANTIATE_TEST_SUITE_P(Pxar, FixtureArchive, ::testing::Values("tree1", "tree2", "empty"));

TEST(PxarDecoder, Tree1EntryDetails) {
  std::vector<uint8_t> bytes = ReadFile(Fixture("pxar/tree1.pxar"));
  SpanSource src(bytes);
  testing::Decoded d = testing::DecodeAll(&src, nullptr);
  ASSERT_TRUE(d.status.ok()) << d.status.ToString();
  ASSERT_EQ(d.entries.size(), 33u);
  const Entry* hl = nullptr;
  for (const Entry& e : d.entries)
    if (e.kind == EntryKind::kHardlink) hl = &e;
  ASSERT_NE(hl, nullptr);
  EXPECT_EQ(hl->path, "/hardlink-1");
  EXPECT_EQ(hl->link_target, "dir1/hardlink-2");
  // The offset leads back to the FILENAME of the first occurrence.
  const Entry* target = nullptr;
  for (const Entry& e : d.entries)
    if (e.path == "/dir1/hardlink-2") target = &e;
  ASSERT_NE(target, nullptr);
  EXPECT_EQ(hl->offset - hl->hardlink_offset, target->offset);
}

// The PBS 4.2.3 split-archive test data: metadata stream decodes fully without payload input.
TEST(PxarDecoder, SplitMetadataArchives) {
  for (const char* name : {"backup-client-pxar-data.mpxar", "backup-client-pxar-expected.mpxar"}) {
    std::vector<uint8_t> bytes = ReadFile(Fixture(std::string("pbs-tests/") + name));
    SpanSource src(bytes);
    testing::Decoded d = testing::DecodeAll(&src, nullptr, /*read_content=*/false);
    ASSERT_TRUE(d.status.ok()) << name << ": " << d.status.ToString();
    size_t files = 0, dirs = 0, versions = 0, preludes = 0;
    uint64_t last_end = 0;
    for (const Entry& e : d.entries) {
      switch (e.kind) {
        case EntryKind::kFile:
          ++files;
          ASSERT_TRUE(e.payload_offset.has_value());
          EXPECT_EQ(e.file_size, 1048576u);
          EXPECT_GE(*e.payload_offset, last_end);
          last_end = *e.payload_offset + 16 + e.file_size;
          EXPECT_EQ(e.metadata.stat.mode, 0100777u);
          EXPECT_EQ(e.metadata.stat.uid, 1000u);
          break;
        case EntryKind::kDirectory: ++dirs; break;
        case EntryKind::kVersion: ++versions; EXPECT_EQ(e.format_version, 2u); break;
        case EntryKind::kPrelude: ++preludes; EXPECT_TRUE(e.prelude.empty()); break;
        default: ADD_FAILURE() << "unexpected entry " << e.path;
      }
    }
    EXPECT_EQ(files, 100u);
    EXPECT_EQ(dirs, 11u);
    EXPECT_EQ(versions, 1u);
    EXPECT_EQ(preludes, std::string(name).find("expected") != std::string::npos ? 1u : 0u);
    EXPECT_EQ(d.entries[1 + preludes].path, "/");
    EXPECT_EQ(d.entries[3 + preludes].path, "/folder_0/file_0");
  }
}

// The payload index of the data archive agrees with the metadata stream's references: file i's
// PAYLOAD item (16-byte header + 1 MiB) ends where chunk i ends (start marker in chunk 0).
TEST(PxarDecoder, SplitPayloadReferencesMatchPayloadIndex) {
  std::vector<uint8_t> meta = ReadFile(Fixture("pbs-tests/backup-client-pxar-data.mpxar"));
  auto idx = DynamicIndex::Parse(ReadFile(Fixture("pbs-tests/backup-client-pxar-data.ppxar.didx")),
                                 "backup-client-pxar-data.ppxar.didx");
  ASSERT_TRUE(idx.ok()) << idx.status().ToString();
  SpanSource src(meta);
  testing::Decoded d = testing::DecodeAll(&src, nullptr, false);
  ASSERT_TRUE(d.status.ok());
  size_t i = 0;
  for (const Entry& e : d.entries) {
    if (e.kind != EntryKind::kFile) continue;
    ASSERT_LT(i, idx->chunk_count());
    // The last chunk also holds the 16-byte PAYLOAD_TAIL_MARKER.
    uint64_t tail = i + 1 == idx->chunk_count() ? 16 : 0;
    EXPECT_EQ(*e.payload_offset + 16 + e.file_size + tail, idx->entry(i).end) << e.path;
    ++i;
  }
  EXPECT_EQ(i, 100u);
  EXPECT_EQ(idx->size(), 104859232u);
}

TEST(PxarDecoder, SplitContentNeedsPayloadInput) {
  std::vector<uint8_t> bytes = ReadFile(Fixture("pbs-tests/backup-client-pxar-data.mpxar"));
  SpanSource src(bytes);
  Decoder dec(&src, nullptr);
  Entry e;
  while (true) {
    auto r = dec.Next(&e);
    ASSERT_TRUE(r.ok() && *r);
    if (e.kind == EntryKind::kFile) break;
  }
  uint8_t buf[16];
  auto n = dec.ReadContent(buf);
  EXPECT_EQ(n.status().code(), Code::kUnsupported);
}

TEST(PxarListing, RustDebugQuoting) {
  EXPECT_EQ(RustDebugQuote("/a b"), "\"/a b\"");
  EXPECT_EQ(RustDebugQuote("q\"b\\s'"), "\"q\\\"b\\\\s\\'\"");
  EXPECT_EQ(RustDebugQuote("q'", true), "\"q'\"");
  EXPECT_EQ(RustDebugQuote("t\tn\n"), "\"t\\tn\\n\"");
  EXPECT_EQ(RustDebugQuote(std::string("\x01\x7f", 2)), "\"\\u{1}\\u{7f}\"");
  EXPECT_EQ(RustDebugQuote("gr\xc3\xbc\xc3\x9f" "e"), "\"gr\xc3\xbc\xc3\x9f" "e\"");
  EXPECT_EQ(RustDebugQuote("bad\xff\xc3"), "\"bad\\xFF\\xC3\"");
  EXPECT_EQ(RustDebugQuote("e\xcc\x81"), "\"e\\u{301}\"");
}

TEST(PxarListing, EntryKindAsRustDebug) {
  Entry e;
  e.kind = EntryKind::kFifo;
  EXPECT_EQ(RustEntryKindDebug(e, 0), "Fifo");
  e.kind = EntryKind::kSymlink;
  e.link_target = "ab";
  EXPECT_EQ(RustEntryKindDebug(e, 0), "Symlink(Symlink { data: [97, 98] })");
  e.kind = EntryKind::kDevice;
  e.device = Device{1, 3};
  EXPECT_EQ(RustEntryKindDebug(e, 0), "Device(Device { major: 1, minor: 3 })");
  e.kind = EntryKind::kHardlink;
  e.hardlink_offset = 96;
  e.link_target = "a";
  EXPECT_EQ(RustEntryKindDebug(e, 0), "Hardlink(Hardlink { offset: 96, data: [97] })");
  e.kind = EntryKind::kFile;
  e.file_size = 5;
  EXPECT_EQ(RustEntryKindDebug(e, 170),
            "File { size: 5, offset: Some(170), payload_offset: None }");
  e.payload_offset = 40;
  EXPECT_EQ(RustEntryKindDebug(e, 186),
            "File { size: 5, offset: Some(170), payload_offset: Some(40) }");
}

}  // namespace
}  // namespace pbskit::pxar
