// Push-style dynamic indexes of SnapshotWriter (BeginDynamicIndex / DynamicIndexStream).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <optional>
#include <random>

#include "pbskit/datastore/archive_reader.h"
#include "pbskit/datastore/locks.h"
#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/formats/chunker.h"
#include "pbskit/formats/crypto.h"
#include "test_support.h"

namespace pbskit {
namespace {

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * 1024;

std::vector<uint8_t> RandomData(size_t size, uint32_t seed) {
  std::vector<uint8_t> v(size);
  std::mt19937 rng(seed);
  for (auto& b : v) b = static_cast<uint8_t>(rng() >> 13);
  return v;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Splits `data` into pieces of pseudo-random sizes 1..max_piece.
std::vector<std::span<const uint8_t>> Pieces(const std::vector<uint8_t>& data, size_t max_piece,
                                             uint32_t seed) {
  std::vector<std::span<const uint8_t>> out;
  std::mt19937 rng(seed);
  size_t pos = 0;
  while (pos < data.size()) {
    size_t n = std::min<size_t>(data.size() - pos, 1 + rng() % max_piece);
    out.emplace_back(data.data() + pos, n);
    pos += n;
  }
  return out;
}

class SnapshotWriterStreamTest : public ::testing::Test {
 protected:
  // One datastore for the whole suite: creating one costs seconds on slow disks.
  static void SetUpTestSuite() {
    tmp_ = new test::TempDir();
    SetLockRootForTesting(*tmp_ / "locks");
    DataStoreOptions o;
    o.sync_level = SyncLevel::kNone;
    auto s = DataStore::Create(*tmp_ / "store", "store1", PosixFilesystem(), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = new std::shared_ptr<DataStore>(*s);
    std::array<uint8_t, 32> key;
    for (int i = 0; i < 32; ++i) key[i] = static_cast<uint8_t>(i * 5 + 2);
    crypt_ = new CryptConfig(key);
  }
  static void TearDownTestSuite() {
    delete crypt_;
    delete store_;
    SetLockRootForTesting("");
    delete tmp_;
  }

  SnapshotWriterOptions Options(const std::string& id, int64_t time,
                                CryptMode mode = CryptMode::kNone) {
    SnapshotWriterOptions o;
    o.dir = BackupDir{BackupGroup{BackupType::kHost, id}, time};
    o.crypt_mode = mode;
    o.crypt = mode == CryptMode::kNone ? nullptr : crypt_;
    return o;
  }
  std::shared_ptr<DataStore> store() { return *store_; }

  std::vector<uint8_t> Restore(const BackupDir& dir, const std::string& archive,
                               const CryptConfig* crypt = nullptr) {
    auto reader = ArchiveReader::Open(store(), {}, dir, archive, crypt);
    EXPECT_TRUE(reader.ok()) << reader.status().ToString();
    std::vector<uint8_t> out;
    if (!reader.ok()) return out;
    Status st = (*reader)->ReadAll([&](std::span<const uint8_t> d) {
      out.insert(out.end(), d.begin(), d.end());
      return Status::OK();
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return out;
  }
  std::vector<DynamicEntry> Entries(const BackupDir& dir, const std::string& archive) {
    auto idx = store()->OpenDynamicIndex({}, dir, archive);
    EXPECT_TRUE(idx.ok()) << idx.status().ToString();
    return idx.ok() ? idx->entries() : std::vector<DynamicEntry>{};
  }

  static test::TempDir* tmp_;
  static std::shared_ptr<DataStore>* store_;
  static CryptConfig* crypt_;
};
test::TempDir* SnapshotWriterStreamTest::tmp_ = nullptr;
std::shared_ptr<DataStore>* SnapshotWriterStreamTest::store_ = nullptr;
CryptConfig* SnapshotWriterStreamTest::crypt_ = nullptr;

bool SameEntries(const std::vector<DynamicEntry>& a, const std::vector<DynamicEntry>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].end != b[i].end || a[i].digest != b[i].digest) return false;
  return true;
}

TEST_F(SnapshotWriterStreamTest, RegularStreamMatchesPullIndexWhateverTheSplit) {
  auto data = RandomData(3 * kMiB + 777, 1);
  auto o1 = Options("pull", 100);
  {
    auto w = SnapshotWriter::Begin(store(), o1);
    ASSERT_TRUE(w.ok());
    MemoryByteSource src(data);
    ASSERT_TRUE((*w)->AddDynamicIndex("a.didx", src, 64 * kKiB).ok());
    ASSERT_TRUE((*w)->Finish().ok());
  }
  auto o2 = Options("push", 100);
  auto w = SnapshotWriter::Begin(store(), o2);
  ASSERT_TRUE(w.ok());
  auto s = (*w)->BeginDynamicIndex("a.didx", 64 * kKiB);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  for (auto piece : Pieces(data, 100000, 7)) ASSERT_TRUE((*s)->Write(piece).ok());
  EXPECT_EQ((*s)->position(), data.size());
  auto r = (*s)->Close();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stats.size, data.size());
  EXPECT_EQ(r->info.size, data.size());
  EXPECT_GT(r->stats.chunk_count, 10u);
  EXPECT_EQ(r->stats.new_chunks, 0u);  // all chunks came from the pull backup
  EXPECT_EQ(r->stats.reused_chunks, r->stats.unique_chunks);
  ASSERT_TRUE((*w)->Finish().ok());
  EXPECT_TRUE(SameEntries(Entries(o1.dir, "a.didx"), Entries(o2.dir, "a.didx")));
  EXPECT_TRUE(Restore(o2.dir, "a.didx") == data);
  EXPECT_FALSE(Exists(store()->SnapshotPath({}, o2.dir) + "/a.tmp_didx"));
}

// The PBS 3.2.4 fixture's root.pxar.didx (64 KiB chunks, made by PBS's own chunker) is cut into
// exactly the same chunks when its stream is pushed in odd pieces.
TEST_F(SnapshotWriterStreamTest, RegularStreamReproducesPbsChunks) {
  auto fixture = DataStore::Open(test::Fixture("pbs-3.2.4-datastore"), "store1");
  ASSERT_TRUE(fixture.ok()) << fixture.status().ToString();
  const BackupDir src{BackupGroup{BackupType::kCt, "101"}, 1714561200};  // 2024-05-01T11:00:00Z
  auto want = (*fixture)->OpenDynamicIndex({}, src, "root.pxar.didx");
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  auto reader = ArchiveReader::Open(*fixture, {}, src, "root.pxar.didx", nullptr);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  std::vector<uint8_t> pxar;
  ASSERT_TRUE((*reader)->ReadAll([&](std::span<const uint8_t> d) {
    pxar.insert(pxar.end(), d.begin(), d.end());
    return Status::OK();
  }).ok());
  ASSERT_EQ(pxar.size(), 475044u);

  auto o = Options("pbs-chunks", 100);
  auto w = SnapshotWriter::Begin(store(), o);
  ASSERT_TRUE(w.ok());
  auto s = (*w)->BeginDynamicIndex("root.pxar.didx", 64 * kKiB);
  ASSERT_TRUE(s.ok());
  for (auto piece : Pieces(pxar, 9000, 3)) ASSERT_TRUE((*s)->Write(piece).ok());
  auto r = (*s)->Close();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE((*w)->Finish().ok());
  EXPECT_EQ(r->stats.chunk_count, 7u);
  EXPECT_TRUE(SameEntries(Entries(o.dir, "root.pxar.didx"), want->entries()));
}

TEST_F(SnapshotWriterStreamTest, SeveralStreamsOpenAtOnce) {
  auto a = RandomData(2 * kMiB + 5, 2), b = RandomData(700 * kKiB, 3), c = RandomData(1, 4);
  auto o = Options("multi", 100, CryptMode::kEncrypt);
  auto w = SnapshotWriter::Begin(store(), o);
  ASSERT_TRUE(w.ok());
  auto sa = (*w)->BeginDynamicIndex("root.mpxar.didx", 64 * kKiB);
  auto sb = (*w)->BeginDynamicIndex("root.ppxar.didx", 64 * kKiB, DynamicChunkerKind::kPayload);
  auto sc = (*w)->BeginDynamicIndex("catalog.pcat1.didx", 512 * kKiB);
  ASSERT_TRUE(sa.ok() && sb.ok() && sc.ok());
  // Names of open streams are reserved.
  EXPECT_EQ((*w)->BeginDynamicIndex("root.mpxar.didx").status().code(), Code::kInvalidArgument);
  auto pa = Pieces(a, 50000, 1), pb = Pieces(b, 30000, 2);
  for (size_t i = 0; i < std::max(pa.size(), pb.size()); ++i) {
    if (i < pa.size()) {
      ASSERT_TRUE((*sa)->Write(pa[i]).ok());
    }
    if (i < pb.size()) {
      ASSERT_TRUE((*sb)->Write(pb[i]).ok());
    }
  }
  ASSERT_TRUE((*sc)->Write(c).ok());
  // Finishing with open streams is refused (and the writer stays usable).
  EXPECT_EQ((*w)->Finish().status().code(), Code::kInvalidArgument);
  ASSERT_TRUE((*sb)->Close().ok());
  ASSERT_TRUE((*sa)->Close().ok());
  ASSERT_TRUE((*sc)->Close().ok());
  EXPECT_EQ((*sc)->Close().status().code(), Code::kInvalidArgument);
  auto m = (*w)->Finish();
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->files.size(), 3u);
  for (const auto& f : m->files) EXPECT_EQ(f.crypt_mode, CryptMode::kEncrypt);
  EXPECT_TRUE(Restore(o.dir, "root.mpxar.didx", crypt_) == a);
  EXPECT_TRUE(Restore(o.dir, "root.ppxar.didx", crypt_) == b);
  EXPECT_TRUE(Restore(o.dir, "catalog.pcat1.didx", crypt_) == c);
}

// The payload stream cuts exactly like PBS's ChunkStream + PayloadChunker fed the same pieces.
TEST_F(SnapshotWriterStreamTest, PayloadStreamTakesSuggestedBoundaries) {
  auto data = RandomData(4 * kMiB, 5);
  std::vector<uint64_t> suggestions = {16, 40000, 100000, 170000, 900000, 1000000, 2500000};
  auto pieces = Pieces(data, 256 * kKiB, 9);

  // Reference cut list from the formats chunker, driven the way PBS's ChunkStream does.
  std::vector<uint64_t> want;
  {
    PayloadChunker ch(64 * kKiB);
    for (uint64_t b : suggestions) ch.SuggestBoundary(b);
    std::vector<uint8_t> buf;
    size_t scan = 0;
    uint64_t base = 0;
    for (auto piece : pieces) {
      buf.insert(buf.end(), piece.begin(), piece.end());
      while (scan < buf.size()) {
        size_t p = ch.ScanWithContext(std::span<const uint8_t>(buf).subspan(scan), base,
                                      buf.size());
        if (!p) {
          scan = buf.size();
          break;
        }
        base += scan + p;
        want.push_back(base);
        buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(scan + p));
        scan = 0;
      }
    }
    if (!buf.empty()) want.push_back(base + buf.size());
  }
  auto o = Options("payload", 100);
  auto w = SnapshotWriter::Begin(store(), o);
  ASSERT_TRUE(w.ok());
  auto s = (*w)->BeginDynamicIndex("root.ppxar.didx", 64 * kKiB, DynamicChunkerKind::kPayload);
  ASSERT_TRUE(s.ok());
  for (uint64_t b : suggestions) (*s)->SuggestBoundary(b);
  for (auto piece : pieces) ASSERT_TRUE((*s)->Write(piece).ok());
  ASSERT_TRUE((*s)->Close().ok());
  ASSERT_TRUE((*w)->Finish().ok());
  auto entries = Entries(o.dir, "root.ppxar.didx");
  std::vector<uint64_t> got;
  for (const auto& e : entries) got.push_back(e.end);
  EXPECT_EQ(got, want);
  // Suggestions within [min, max] of the chunk start became cuts.
  EXPECT_NE(std::find(got.begin(), got.end(), 100000u), got.end());
  EXPECT_NE(std::find(got.begin(), got.end(), 1000000u), got.end());
  EXPECT_TRUE(Restore(o.dir, "root.ppxar.didx") == data);
}

TEST_F(SnapshotWriterStreamTest, KnownChunksAreAppendedVerbatim) {
  auto first = RandomData(600 * kKiB, 6);
  auto o1 = Options("known", 100);
  {
    auto w = SnapshotWriter::Begin(store(), o1);
    ASSERT_TRUE(w.ok());
    auto s = (*w)->BeginDynamicIndex("root.ppxar.didx", 64 * kKiB, DynamicChunkerKind::kPayload);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->Write(first).ok());
    ASSERT_TRUE((*s)->Close().ok());
    ASSERT_TRUE((*w)->Finish().ok());
  }
  auto prev = Entries(o1.dir, "root.ppxar.didx");
  ASSERT_GE(prev.size(), 3u);
  uint64_t c1_start = prev[0].end, c1_end = prev[1].end, c2_end = prev[2].end;

  auto head = RandomData(1000, 7), tail = RandomData(10 * kKiB, 8);
  auto o2 = Options("known", 200);
  auto w = SnapshotWriter::Begin(store(), o2);
  ASSERT_TRUE(w.ok());
  auto s = (*w)->BeginDynamicIndex("root.ppxar.didx", 64 * kKiB, DynamicChunkerKind::kPayload);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->Write(head).ok());
  ASSERT_TRUE((*s)->AppendKnownChunk(prev[1].digest, c1_end - c1_start).ok());
  ASSERT_TRUE((*s)->AppendKnownChunk(prev[2].digest, c2_end - c1_end).ok());
  EXPECT_EQ((*s)->position(), head.size() + (c2_end - c1_start));
  ASSERT_TRUE((*s)->Write(tail).ok());
  auto r = (*s)->Close();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stats.reused_chunks, 2u);
  EXPECT_EQ(r->stats.new_chunks, 2u);  // head and tail
  ASSERT_TRUE((*w)->Finish().ok());

  auto entries = Entries(o2.dir, "root.ppxar.didx");
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0].end, head.size());  // the pending bytes were cut before the injection
  EXPECT_EQ(entries[1].digest, prev[1].digest);
  EXPECT_EQ(entries[2].digest, prev[2].digest);
  std::vector<uint8_t> want = head;
  want.insert(want.end(), first.begin() + static_cast<std::ptrdiff_t>(c1_start),
              first.begin() + static_cast<std::ptrdiff_t>(c2_end));
  want.insert(want.end(), tail.begin(), tail.end());
  EXPECT_TRUE(Restore(o2.dir, "root.ppxar.didx") == want);
}

TEST_F(SnapshotWriterStreamTest, UnknownChunkFailsTheWriter) {
  auto o = Options("unknown", 100);
  auto w = SnapshotWriter::Begin(store(), o);
  ASSERT_TRUE(w.ok());
  auto s = (*w)->BeginDynamicIndex("root.ppxar.didx", 64 * kKiB, DynamicChunkerKind::kPayload);
  auto other = (*w)->BeginDynamicIndex("root.mpxar.didx", 64 * kKiB);
  ASSERT_TRUE(s.ok() && other.ok());
  ASSERT_TRUE((*other)->Write(RandomData(300 * kKiB, 11)).ok());
  Digest missing{};
  missing[0] = 0xab;
  Status st = (*s)->AppendKnownChunk(missing, 1000);
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_NE(st.message().find("is not in the datastore"), std::string::npos);
  EXPECT_FALSE(Exists(store()->SnapshotPath({}, o.dir)));
  EXPECT_EQ((*other)->Write(RandomData(10, 1)).code(), Code::kAborted);
  EXPECT_EQ((*other)->Close().status().code(), Code::kAborted);
  EXPECT_FALSE((*w)->Finish().ok());
}

TEST_F(SnapshotWriterStreamTest, EmptyAndDiscardedStreams) {
  auto o = Options("empty", 100);
  auto w = SnapshotWriter::Begin(store(), o);
  ASSERT_TRUE(w.ok());
  {
    auto s = (*w)->BeginDynamicIndex("x.didx");
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->Write(RandomData(1000, 1)).ok());
  }  // destroyed unclosed: discarded, the name is free again
  EXPECT_EQ((*w)->BeginDynamicIndex("x.fidx").status().code(), Code::kInvalidArgument);
  EXPECT_EQ((*w)->BeginDynamicIndex("y.didx", 1000).status().code(), Code::kInvalidArgument);
  auto s = (*w)->BeginDynamicIndex("x.didx");
  ASSERT_TRUE(s.ok());
  auto r = (*s)->Close();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->info.size, 0u);
  EXPECT_EQ(r->stats.chunk_count, 0u);
  auto m = (*w)->Finish();
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m->files.size(), 1u);
  EXPECT_TRUE(Restore(o.dir, "x.didx").empty());
}

// A writer destroyed while a stream still exists aborts and leaves the stream inert.
TEST_F(SnapshotWriterStreamTest, WriterDestroyedBeforeStream) {
  auto o = Options("orphan", 100);
  std::unique_ptr<DynamicIndexStream> s;
  {
    auto w = SnapshotWriter::Begin(store(), o);
    ASSERT_TRUE(w.ok());
    auto b = (*w)->BeginDynamicIndex("x.didx", 64 * kKiB);
    ASSERT_TRUE(b.ok());
    s = std::move(*b);
    ASSERT_TRUE(s->Write(RandomData(500 * kKiB, 3)).ok());
  }
  EXPECT_FALSE(Exists(store()->SnapshotPath({}, o.dir)));
  EXPECT_EQ(s->Write(RandomData(10, 3)).code(), Code::kAborted);
}

}  // namespace
}  // namespace pbskit
