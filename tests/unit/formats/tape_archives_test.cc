// Chunk, snapshot and catalog archives over the in-memory tape device.
#include <gtest/gtest.h>

#include <cstring>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/tape/archives.h"

namespace pbskit::tape {
namespace {

std::vector<uint8_t> Blob(const std::string& text) {
  std::vector<uint8_t> data(text.begin(), text.end());
  auto b = DataBlob::Encode(data, nullptr, /*compress=*/false);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return b->raw();
}

Digest DigestOf(const std::string& text) {
  return Sha256(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

struct Opened {
  BufferTapeReader dev;
  BlockedReader reader;
  MediaContentHeader header;
  std::string json;
  explicit Opened(const std::vector<uint8_t>& tape) : dev(tape) {
    auto kind = BlockedReader::Open(&dev, &reader);
    EXPECT_TRUE(kind.ok() && *kind == BlockedReader::OpenKind::kStream);
    EXPECT_TRUE(ReadAnyContentHeader(&reader, &header, &json).ok());
  }
};

TEST(TapeChunkArchive, RoundTrip) {
  std::vector<uint8_t> tape;
  BufferTapeWriter dev(&tape);
  Uuid uuid = RandomUuid();
  auto w = ChunkArchiveWriter::Begin(&dev, "store1", true, 1700000000, uuid);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->uuid(), uuid);
  std::vector<std::string> texts = {"a", std::string(300000, 'b'), "c"};
  for (const auto& t : texts) {
    auto r = (*w)->TryWriteChunk(DigestOf(t), Blob(t));
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(*r);
  }
  ASSERT_TRUE((*w)->Finish().ok());
  EXPECT_EQ(dev.filemarks(), 1u);

  Opened o(tape);
  EXPECT_EQ(o.header.content_magic, kChunkArchiveMagic11);
  EXPECT_EQ(o.header.uuid, uuid);
  EXPECT_EQ(o.json, "{\n  \"store\": \"store1\"\n}");
  EXPECT_EQ(*ParseChunkArchiveHeader(o.json), "store1");
  ChunkArchiveDecoder dec(&o.reader);
  for (const auto& t : texts) {
    Digest d;
    std::vector<uint8_t> raw;
    auto r = dec.Next(&d, &raw);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(*r);
    EXPECT_EQ(d, DigestOf(t));
    EXPECT_EQ(raw, Blob(t));
  }
  Digest d;
  std::vector<uint8_t> raw;
  auto r = dec.Next(&d, &raw);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_FALSE(dec.truncated());
}

TEST(TapeChunkArchive, ClosedAtLeomDropsCutChunk) {
  std::vector<uint8_t> tape;
  BufferTapeWriter dev(&tape, /*max_blocks=*/3);
  auto w = ChunkArchiveWriter::Begin(&dev, "s", true, 0);
  ASSERT_TRUE(w.ok());
  int written = 0;
  for (int i = 0; i < 20; ++i) {
    std::string t(600000, static_cast<char>('a' + i));
    auto r = (*w)->TryWriteChunk(DigestOf(t), Blob(t));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    if (!*r) break;
    ++written;
  }
  EXPECT_TRUE((*w)->closed());
  EXPECT_EQ(written, 1);
  Opened o(tape);
  ChunkArchiveDecoder dec(&o.reader);
  int read = 0;
  Digest d;
  std::vector<uint8_t> raw;
  for (;;) {
    auto r = dec.Next(&d, &raw);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    if (!*r) break;
    ++read;
  }
  EXPECT_EQ(read, written);
  EXPECT_TRUE(dec.truncated());
  EXPECT_FALSE(*o.reader.IsIncomplete());
}

TEST(TapeChunkArchive, WrongEntryMagicAndBadCrc) {
  std::vector<uint8_t> tape;
  BufferTapeWriter dev(&tape);
  auto w = ChunkArchiveWriter::Begin(&dev, "s", true, 0);
  ASSERT_TRUE((*w)->TryWriteChunk(DigestOf("x"), Blob("x")).ok());
  ASSERT_TRUE((*w)->Finish().ok());
  size_t entry = kBlockHeaderSize + kMediaContentHeaderSize + ChunkArchiveHeaderJson("s").size();
  {
    auto bad = tape;
    bad[entry] ^= 0xff;
    Opened o(bad);
    ChunkArchiveDecoder dec(&o.reader);
    Digest d;
    std::vector<uint8_t> raw;
    auto r = dec.Next(&d, &raw);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kCorruption);
    EXPECT_NE(r.status().message().find("wrong magic number"), std::string::npos);
  }
  {
    auto bad = tape;
    bad[entry + kChunkArchiveEntryHeaderSize + 12] ^= 0xff;  // first payload byte of the blob
    Opened o(bad);
    ChunkArchiveDecoder dec(&o.reader);
    Digest d;
    std::vector<uint8_t> raw;
    auto r = dec.Next(&d, &raw);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kCorruption);
    EXPECT_NE(r.status().message().find(ToHex(DigestOf("x"))), std::string::npos);
  }
}

std::vector<SnapshotArchiveFile> Files(const std::vector<std::pair<std::string, std::string>>& in) {
  std::vector<SnapshotArchiveFile> out;
  for (const auto& [name, content] : in) {
    SnapshotArchiveFile f;
    f.name = name;
    f.stat.mode = pxar::kModeIfreg | 0644;
    f.stat.mtime_secs = 1700000000;
    f.size = content.size();
    std::string c = content;
    f.read = [c](uint64_t off, std::span<uint8_t> buf) -> Result<size_t> {
      size_t n = std::min<size_t>(buf.size(), c.size() - off);
      std::memcpy(buf.data(), c.data() + off, n);
      return n;
    };
    out.push_back(std::move(f));
  }
  return out;
}

TEST(TapeSnapshotArchive, RoundTripV11AndV12) {
  for (bool root : {true, false}) {
    std::vector<uint8_t> tape;
    BufferTapeWriter dev(&tape);
    SnapshotArchiveHeader h{
        root ? "vm/100/2024-01-01T00:00:00Z" : "ns/dev/vm/100/2024-01-01T00:00:00Z", "store1"};
    auto files = Files({{"index.json.blob", "manifest"},
                        {"drive-scsi0.img.fidx", std::string(700000, 'z')},
                        {"client.log.blob", ""}});
    auto r = WriteSnapshotArchive(&dev, h, root, files, 5);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(r->has_value());
    Opened o(tape);
    EXPECT_EQ(o.header.content_magic, root ? kSnapshotArchiveMagic11 : kSnapshotArchiveMagic12);
    EXPECT_EQ(o.header.uuid, **r);
    EXPECT_EQ(o.json, "{\n  \"snapshot\": \"" + h.snapshot + "\",\n  \"store\": \"store1\"\n}");
    auto parsed = SnapshotArchiveHeader::FromJson(o.json);
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(parsed->snapshot, h.snapshot);
    std::vector<std::pair<std::string, std::string>> got;
    Status st = ReadSnapshotArchive(
        &o.reader,
        [&](const std::string& name, const pxar::Stat& stat, uint64_t size,
            const std::function<Result<size_t>(std::span<uint8_t>)>& read) -> Status {
          EXPECT_TRUE(stat.is_regular_file());
          std::string content;
          std::vector<uint8_t> buf(4096);
          for (;;) {
            PBSKIT_ASSIGN_OR_RETURN(size_t n, read(buf));
            if (n == 0) break;
            content.append(reinterpret_cast<char*>(buf.data()), n);
          }
          EXPECT_EQ(content.size(), size);
          got.emplace_back(name, content);
          return Status::OK();
        });
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0].first, "index.json.blob");
    EXPECT_EQ(got[1].second, std::string(700000, 'z'));
    EXPECT_TRUE(*o.reader.HasEndMarker());
    EXPECT_FALSE(*o.reader.IsIncomplete());
  }
}

TEST(TapeSnapshotArchive, LeomMarksIncomplete) {
  std::vector<uint8_t> tape;
  BufferTapeWriter dev(&tape, /*max_blocks=*/2);
  auto files = Files({{"a.blob", std::string(2000000, 'a')}});
  auto r = WriteSnapshotArchive(&dev, {"ct/1/2024-01-01T00:00:00Z", "s"}, true, files, 0);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->has_value());
  BufferTapeReader rd(tape);
  BlockedReader reader;
  ASSERT_TRUE(BlockedReader::Open(&rd, &reader).ok());
  ASSERT_TRUE(reader.SkipData().ok());
  EXPECT_TRUE(*reader.IsIncomplete());
}

TEST(TapeCatalogArchive, RoundTripAndIncomplete) {
  CatalogArchiveHeader h;
  h.uuid = RandomUuid();
  h.media_set_uuid = RandomUuid();
  h.seq_nr = 2;
  std::vector<uint8_t> catalog(1000, 7);
  {
    std::vector<uint8_t> tape;
    BufferTapeWriter dev(&tape);
    auto r = WriteCatalogArchive(&dev, h, true, catalog, 0);
    ASSERT_TRUE(r.ok() && r->has_value());
    Opened o(tape);
    EXPECT_EQ(o.header.content_magic, kCatalogArchiveMagic11);
    EXPECT_EQ(o.json, "{\n  \"uuid\": \"" + UuidToString(h.uuid) + "\",\n  \"media_set_uuid\": \"" +
                          UuidToString(h.media_set_uuid) + "\",\n  \"seq_nr\": 2\n}");
    auto p = CatalogArchiveHeader::FromJson(o.json);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->uuid, h.uuid);
    EXPECT_EQ(p->seq_nr, 2u);
    auto rest = o.reader.ReadToEnd();
    ASSERT_TRUE(rest.ok());
    EXPECT_EQ(*rest, catalog);
  }
  {
    std::vector<uint8_t> tape;
    BufferTapeWriter dev(&tape, 2);
    std::vector<uint8_t> big(3 * kBlockSize, 1);
    auto r = WriteCatalogArchive(&dev, h, false, big, 0);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_FALSE(r->has_value());
    Opened o(tape);
    EXPECT_EQ(o.header.content_magic, kCatalogArchiveMagic10);
    ASSERT_TRUE(o.reader.SkipData().ok());
    EXPECT_TRUE(*o.reader.IsIncomplete());
  }
}

}  // namespace
}  // namespace pbskit::tape
