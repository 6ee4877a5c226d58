// PxarSnapshotSink driven by hand the way a non-directory pxar producer (container tar import)
// uses it: the split pair lands in the snapshot, and the payload index is cut exactly as PBS's
// client would cut it (BufWriter(256 KiB) pieces -> ChunkStream -> PayloadChunker with a
// suggested boundary at every PAYLOAD header), replayed here independently of the sink.
#include "pbskit/importers/pxar_backup.h"

#include <gtest/gtest.h>

#include <random>

#include "pbskit/datastore/archive_reader.h"
#include "pbskit/datastore/locks.h"
#include "pbskit/formats/chunker.h"
#include "pbskit/formats/pxar/decoder.h"
#include "test_support.h"

namespace pbskit::importers {
namespace {

constexpr size_t kKiB = 1024;

pxar::Metadata Meta(uint64_t type_and_mode) {
  pxar::Metadata m;
  m.stat.mode = type_and_mode;
  m.stat.mtime_secs = 1700000000;
  return m;
}

std::vector<uint8_t> Content(size_t size, uint32_t seed) {
  std::vector<uint8_t> v(size);
  std::mt19937 rng(seed);
  for (auto& b : v) b = static_cast<uint8_t>(rng() >> 7);
  return v;
}

// Rust std::io::BufWriter::write_all as the client's PxarBackupStream uses it (capacity 256 KiB):
// returns the pieces its inner writer receives.
class BufWriterModel {
 public:
  void WriteAll(std::span<const uint8_t> d) {
    const size_t cap = 256 * kKiB;
    if (d.size() < cap - buf_.size()) {
      buf_.insert(buf_.end(), d.begin(), d.end());
      return;
    }
    if (d.size() > cap - buf_.size()) Flush();
    if (d.size() >= cap)
      pieces_.emplace_back(d.begin(), d.end());
    else
      buf_.insert(buf_.end(), d.begin(), d.end());
  }
  void Flush() {
    if (!buf_.empty()) pieces_.push_back(std::move(buf_));
    buf_.clear();
  }
  std::vector<std::vector<uint8_t>> pieces_;

 private:
  std::vector<uint8_t> buf_;
};

TEST(PxarSnapshotSinkTest, HandDrivenSplitArchiveIsChunkedLikeTheClient) {
  test::TempDir tmp;
  SetLockRootForTesting(tmp / "locks");
  DataStoreOptions so;
  so.sync_level = SyncLevel::kNone;
  auto store = DataStore::Create(tmp / "store", "store1", PosixFilesystem(), so);
  ASSERT_TRUE(store.ok()) << store.status().ToString();

  SnapshotWriterOptions o;
  o.dir = BackupDir{BackupGroup{BackupType::kCt, "200"}, 1000};
  auto w = SnapshotWriter::Begin(*store, o);
  ASSERT_TRUE(w.ok());
  const size_t avg = 64 * kKiB;
  auto sink = PxarSnapshotSink::Open(w->get(), "root.pxar", /*split=*/true, nullptr, avg);
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  EXPECT_EQ((*sink)->archive_name(), "root.mpxar.didx");
  EXPECT_EQ((*sink)->payload_name(), "root.ppxar.didx");

  // Sizes around the chunker limits (min 16 KiB, max 256 KiB) and the 256 KiB buffer.
  std::vector<size_t> sizes = {0, 100, 20 * kKiB, 300 * kKiB, 5, 17 * kKiB, 70 * kKiB,
                               256 * kKiB, 1, 900 * kKiB, 3 * kKiB};
  for (int i = 0; i < 30; ++i) sizes.push_back(1000 + static_cast<size_t>(i) * 2500);
  BufWriterModel model;
  std::vector<uint64_t> suggestions;
  uint64_t pos = 0;
  auto model_write = [&](std::span<const uint8_t> d) {
    model.WriteAll(d);
    pos += d.size();
  };
  auto header = [&](uint64_t htype, uint64_t content) {
    std::vector<uint8_t> h(16);
    for (int i = 0; i < 8; ++i) {
      h[i] = static_cast<uint8_t>(htype >> (8 * i));
      h[8 + i] = static_cast<uint8_t>((content + 16) >> (8 * i));
    }
    model_write(h);
  };
  header(pxar::kPayloadStartMarker, 0);

  auto enc = pxar::Encoder::Create((*sink)->archive(), (*sink)->payload(), Meta(0040755));
  ASSERT_TRUE(enc.ok()) << enc.status().ToString();
  ASSERT_TRUE((*enc)->CreateDirectory("d", Meta(0040700)).ok());
  ASSERT_TRUE((*sink)->StartDirectory("d").ok());
  std::vector<std::vector<uint8_t>> contents;
  for (size_t i = 0; i < sizes.size(); ++i) {
    auto data = Content(sizes[i], static_cast<uint32_t>(i));
    std::string name = "f" + std::to_string(1000 + i);
    ASSERT_TRUE((*sink)->AddFile(name, data.size(), 1700000000).ok());
    (*sink)->SuggestPayloadBoundary((*enc)->payload_position());
    suggestions.push_back(pos);
    ASSERT_TRUE((*enc)->BeginFile(Meta(0100644), name, data.size()).ok());
    header(pxar::kPayload, data.size());
    // Content in the client's 4 MiB read pieces (all smaller here) and one odd split.
    size_t half = data.size() / 3;
    ASSERT_TRUE((*enc)->WriteFileData(std::span<const uint8_t>(data).first(half)).ok());
    ASSERT_TRUE((*enc)->WriteFileData(std::span<const uint8_t>(data).subspan(half)).ok());
    model_write(std::span<const uint8_t>(data).first(half));
    model_write(std::span<const uint8_t>(data).subspan(half));
    ASSERT_TRUE((*enc)->EndFile().ok());
    contents.push_back(std::move(data));
  }
  ASSERT_TRUE((*enc)->FinishDirectory().ok());
  ASSERT_TRUE((*sink)->EndDirectory().ok());
  ASSERT_TRUE((*enc)->Finish().ok());
  header(pxar::kPayloadTailMarker, 0);
  model.Flush();
  auto archives = (*sink)->Close();
  ASSERT_TRUE(archives.ok()) << archives.status().ToString();
  ASSERT_EQ(archives->archives.size(), 2u);
  EXPECT_EQ(archives->archives[0].info.filename, "root.ppxar.didx");  // manifest order as PBS
  EXPECT_EQ(archives->archives[1].info.filename, "root.mpxar.didx");
  ASSERT_TRUE((*w)->Finish().ok());

  // The client's cuts, replayed: ChunkStream appends each piece and scans the unscanned tail.
  std::vector<uint64_t> want;
  {
    PayloadChunker ch(avg);
    for (uint64_t s : suggestions) ch.SuggestBoundary(s);
    std::vector<uint8_t> buf;
    size_t scan = 0;
    uint64_t consumed = 0;
    for (const auto& piece : model.pieces_) {
      buf.insert(buf.end(), piece.begin(), piece.end());
      while (scan < buf.size()) {
        size_t p = ch.ScanWithContext(std::span<const uint8_t>(buf).subspan(scan), consumed,
                                      buf.size());
        if (!p) {
          scan = buf.size();
          break;
        }
        consumed += scan + p;
        want.push_back(consumed);
        buf.erase(buf.begin(), buf.begin() + static_cast<long>(scan + p));
        scan = 0;
      }
    }
    if (!buf.empty()) want.push_back(consumed + buf.size());
  }
  auto idx = (*store)->OpenDynamicIndex({}, o.dir, "root.ppxar.didx");
  ASSERT_TRUE(idx.ok());
  std::vector<uint64_t> got;
  for (const auto& e : idx->entries()) got.push_back(e.end);
  EXPECT_EQ(got, want);
  EXPECT_EQ(idx->size(), pos);
  // Several cuts fell on suggested boundaries (file payload starts).
  size_t on_boundary = 0;
  for (uint64_t end : got)
    if (std::find(suggestions.begin(), suggestions.end(), end) != suggestions.end()) ++on_boundary;
  EXPECT_GE(on_boundary, 3u);

  // The pair decodes back to the contents.
  auto read = [&](const std::string& name) {
    std::vector<uint8_t> out;
    auto r = ArchiveReader::Open(*store, {}, o.dir, name, nullptr);
    EXPECT_TRUE(r.ok());
    if (!r.ok()) return out;
    Status st = (*r)->ReadAll([&](std::span<const uint8_t> d) {
      out.insert(out.end(), d.begin(), d.end());
      return Status::OK();
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return out;
  };
  auto meta = read("root.mpxar.didx"), payload = read("root.ppxar.didx");
  pxar::SpanSource ms(meta), ps(payload);
  pxar::Decoder dec(&ms, &ps);
  pxar::Entry e;
  size_t file_index = 0;
  std::vector<uint8_t> buf(1 << 20);
  for (;;) {
    auto more = dec.Next(&e);
    ASSERT_TRUE(more.ok()) << more.status().ToString();
    if (!*more) break;
    if (e.kind != pxar::EntryKind::kFile) continue;
    std::vector<uint8_t> content;
    for (;;) {
      auto n = dec.ReadContent(buf);
      ASSERT_TRUE(n.ok());
      if (*n == 0) break;
      content.insert(content.end(), buf.begin(), buf.begin() + static_cast<long>(*n));
    }
    ASSERT_LT(file_index, contents.size());
    EXPECT_TRUE(content == contents[file_index]) << e.path;
    ++file_index;
  }
  EXPECT_EQ(file_index, contents.size());
  SetLockRootForTesting("");
}

}  // namespace
}  // namespace pbskit::importers
