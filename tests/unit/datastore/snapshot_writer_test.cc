#include "pbskit/datastore/snapshot_writer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <random>

#include "pbskit/datastore/archive_reader.h"
#include "pbskit/datastore/locks.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "test_support.h"

namespace pbskit {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;

// Mixed content: zero runs, text, a repeated pattern and random bytes.
std::vector<uint8_t> MakeData(size_t size, uint32_t seed) {
  std::vector<uint8_t> v(size);
  std::mt19937 rng(seed);
  for (size_t i = 0; i < size; ++i) {
    size_t region = (i / (256 * 1024)) % 4;
    if (region == 0) v[i] = 0;
    else if (region == 1) v[i] = static_cast<uint8_t>("pbskit test data "[i % 17]);
    else if (region == 2) v[i] = static_cast<uint8_t>(i * 7);
    else v[i] = static_cast<uint8_t>(rng());
  }
  return v;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

class SnapshotWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLockRootForTesting(tmp_ / "locks");
    DataStoreOptions o;
    o.sync_level = SyncLevel::kNone;
    auto s = DataStore::Create(tmp_ / "store", "store1", PosixFilesystem(), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = *s;
    std::array<uint8_t, 32> key;
    for (int i = 0; i < 32; ++i) key[i] = static_cast<uint8_t>(i * 3 + 1);
    crypt_.emplace(key);
  }
  void TearDown() override { SetLockRootForTesting(""); }

  SnapshotWriterOptions Options(const char* id, int64_t time, CryptMode mode = CryptMode::kNone) {
    SnapshotWriterOptions o;
    o.dir = BackupDir{BackupGroup{BackupType::kVm, id}, time};
    o.crypt_mode = mode;
    o.crypt = mode == CryptMode::kNone ? nullptr : &*crypt_;
    return o;
  }

  Result<std::vector<uint8_t>> Restore(const BackupDir& dir, const std::string& archive,
                                       const CryptConfig* crypt) {
    PBSKIT_ASSIGN_OR_RETURN(auto reader, ArchiveReader::Open(store_, {}, dir, archive, crypt));
    std::vector<uint8_t> out;
    PBSKIT_RETURN_IF_ERROR(reader->ReadAll([&](std::span<const uint8_t> d) {
      out.insert(out.end(), d.begin(), d.end());
      return Status::OK();
    }));
    return out;
  }

  // Backs up `data` as one image snapshot; returns the archive stats.
  ArchiveUploadStats BackupImage(const SnapshotWriterOptions& o, const std::vector<uint8_t>& data) {
    auto w = SnapshotWriter::Begin(store_, o);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    if (!w.ok()) return {};
    MemoryByteSource src(data);
    auto r = (*w)->AddFixedIndex("drive-scsi0.img.fidx", src);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    auto m = (*w)->Finish();
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return r.ok() ? r->stats : ArchiveUploadStats{};
  }

  test::TempDir tmp_;
  std::shared_ptr<DataStore> store_;
  std::optional<CryptConfig> crypt_;
};

TEST_F(SnapshotWriterTest, ImageRoundTripsAtAwkwardSizes) {
  int64_t t = 1000;
  for (size_t size : {size_t{1}, size_t{4 * kMiB}, size_t{8 * kMiB}, size_t{4 * kMiB + 1},
                      size_t{9 * kMiB + 12345}}) {
    SCOPED_TRACE(size);
    auto data = MakeData(size, static_cast<uint32_t>(size));
    auto o = Options("100", ++t);
    auto stats = BackupImage(o, data);
    EXPECT_EQ(stats.size, size);
    EXPECT_EQ(stats.chunk_count, (size + 4 * kMiB - 1) / (4 * kMiB));
    auto back = Restore(o.dir, "drive-scsi0.img.fidx", nullptr);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(*back == data);
    auto idx = store_->OpenFixedIndex({}, o.dir, "drive-scsi0.img.fidx");
    ASSERT_TRUE(idx.ok());
    EXPECT_EQ(idx->size(), size);
    EXPECT_EQ(idx->chunk_size(), 4 * kMiB);
    EXPECT_EQ(idx->header_csum(), idx->ComputeCsum());
    // No temp file is left behind.
    EXPECT_FALSE(Exists(store_->SnapshotPath({}, o.dir) + "/drive-scsi0.img.tmp_fidx"));
  }
}

TEST_F(SnapshotWriterTest, EmptyImageIsRefusedAndLeavesNothing) {
  auto o = Options("300", 10);
  auto w = SnapshotWriter::Begin(store_, o);
  ASSERT_TRUE(w.ok());
  std::vector<uint8_t> empty;
  MemoryByteSource src(empty);
  auto r = (*w)->AddFixedIndex("drive-scsi0.img.fidx", src);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("cannot describe 0 bytes"), std::string::npos);
  EXPECT_FALSE(Exists(store_->SnapshotPath({}, o.dir)));
  EXPECT_FALSE((*w)->Finish().ok());
  w->reset();
  EXPECT_FALSE(Exists(store_->GroupPath({}, o.dir.group)));  // the new group went too
}

TEST_F(SnapshotWriterTest, AbortRemovesTheUnfinishedSnapshot) {
  // An existing group keeps its owner and older snapshots.
  BackupImage(Options("400", 10), MakeData(100000, 1));
  auto o = Options("400", 20);
  {
    auto w = SnapshotWriter::Begin(store_, o);
    ASSERT_TRUE(w.ok());
    auto data = MakeData(5 * kMiB, 2);
    MemoryByteSource src(data);
    ASSERT_TRUE((*w)->AddFixedIndex("a.img.fidx", src).ok());
    EXPECT_TRUE(Exists(store_->SnapshotPath({}, o.dir) + "/a.img.fidx"));
  }  // destroyed without Finish
  EXPECT_FALSE(Exists(store_->SnapshotPath({}, o.dir)));
  EXPECT_TRUE(Exists(store_->GroupPath({}, o.dir.group) + "/owner"));
  auto snaps = store_->ListSnapshots({}, o.dir.group);
  ASSERT_TRUE(snaps.ok());
  EXPECT_EQ(snaps->size(), 1u);
  // The group is usable again at once (locks released).
  BackupImage(Options("400", 30), MakeData(1000, 3));
}

TEST_F(SnapshotWriterTest, SecondBackupReusesChunks) {
  auto data = MakeData(17 * kMiB, 42);  // 5 chunks; the zero regions dedupe within the image
  auto first = BackupImage(Options("100", 100), data);
  EXPECT_EQ(first.chunk_count, 5u);
  EXPECT_EQ(first.new_chunks, first.unique_chunks);
  EXPECT_EQ(first.reused_chunks, 0u);

  data[5 * kMiB] ^= 0xff;  // change one chunk
  auto o2 = Options("100", 200);
  auto w = SnapshotWriter::Begin(store_, o2);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->previous().has_value());
  EXPECT_EQ((*w)->previous()->time, 100);
  MemoryByteSource src(data);
  auto r = (*w)->AddFixedIndex("drive-scsi0.img.fidx", src);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stats.new_chunks, 1u);
  EXPECT_EQ(r->stats.new_size, 4 * kMiB);
  EXPECT_EQ(r->stats.reused_size, 13 * kMiB);
  auto m = (*w)->Finish();
  ASSERT_TRUE(m.ok());
  const auto& stats = m->unprotected.at("chunk_upload_stats").as_object();
  EXPECT_EQ(stats.at("count").as_uint64(), r->stats.unique_chunks);
  EXPECT_EQ(stats.at("duplicates").as_uint64(), r->stats.unique_chunks - 1);
  auto back = Restore(o2.dir, "drive-scsi0.img.fidx", nullptr);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(*back == data);
}

TEST_F(SnapshotWriterTest, EncryptAndSignOnly) {
  auto data = MakeData(6 * kMiB + 7, 5);
  std::vector<uint8_t> conf = {'c', 'o', 'r', 'e', 's', ':', ' ', '1', '\n'};
  for (CryptMode mode : {CryptMode::kEncrypt, CryptMode::kSignOnly}) {
    SCOPED_TRACE(CryptModeName(mode));
    auto o = Options(mode == CryptMode::kEncrypt ? "200" : "201", 50, mode);
    auto w = SnapshotWriter::Begin(store_, o);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    MemoryByteSource src(data);
    auto img = (*w)->AddFixedIndex("drive-scsi0.img.fidx", src);
    ASSERT_TRUE(img.ok()) << img.status().ToString();
    auto blob = (*w)->AddBlob("qemu-server.conf.blob", conf);
    ASSERT_TRUE(blob.ok()) << blob.status().ToString();
    auto m = (*w)->Finish();
    ASSERT_TRUE(m.ok()) << m.status().ToString();

    ASSERT_TRUE(m->signature.has_value());
    EXPECT_EQ(*m->KeyFingerprint(), crypt_->FingerprintString());
    EXPECT_TRUE(CheckManifestKey(*m, &*crypt_).ok());
    for (const auto& f : m->files) EXPECT_EQ(f.crypt_mode, mode);

    // Chunks: encrypted magic and keyed digests only in encrypt mode.
    auto idx = store_->OpenFixedIndex({}, o.dir, "drive-scsi0.img.fidx");
    ASSERT_TRUE(idx.ok());
    auto raw = store_->chunk_store().LoadChunk(idx->digest(0));
    ASSERT_TRUE(raw.ok());
    auto chunk = DataBlob::FromRaw(*raw);
    ASSERT_TRUE(chunk.ok());
    EXPECT_EQ(chunk->is_encrypted(), mode == CryptMode::kEncrypt);
    auto blob_raw = store_->ReadSnapshotFile({}, o.dir, "qemu-server.conf.blob");
    ASSERT_TRUE(blob_raw.ok());
    EXPECT_EQ(DataBlob::FromRaw(*blob_raw)->is_encrypted(), mode == CryptMode::kEncrypt);

    auto back = Restore(o.dir, "drive-scsi0.img.fidx", &*crypt_);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(*back == data);
    auto back_conf = Restore(o.dir, "qemu-server.conf.blob", &*crypt_);
    ASSERT_TRUE(back_conf.ok()) << back_conf.status().ToString();
    EXPECT_TRUE(*back_conf == conf);
    // Without the key the client rules refuse (the manifest names its key).
    EXPECT_EQ(Restore(o.dir, "drive-scsi0.img.fidx", nullptr).status().code(),
              Code::kInvalidArgument);
  }
  // A mode that needs a key without one is refused up front.
  auto o = Options("202", 1, CryptMode::kEncrypt);
  o.crypt = nullptr;
  EXPECT_EQ(SnapshotWriter::Begin(store_, o).status().code(), Code::kInvalidArgument);
}

TEST_F(SnapshotWriterTest, DynamicIndexRoundTrip) {
  auto data = MakeData(3 * kMiB + 999, 9);
  auto o = Options("500", 10);
  o.dir.group.type = BackupType::kCt;
  auto w = SnapshotWriter::Begin(store_, o);
  ASSERT_TRUE(w.ok());
  MemoryByteSource src(data);
  auto r = (*w)->AddDynamicIndex("root.pxar.didx", src, 64 * 1024);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(r->stats.chunk_count, 10u);
  std::vector<uint8_t> none;
  MemoryByteSource empty(none);
  auto e = (*w)->AddDynamicIndex("catalog.pcat1.didx", empty, 512 * 1024);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->info.size, 0u);
  ASSERT_TRUE((*w)->Finish().ok());
  auto back = Restore(o.dir, "root.pxar.didx", nullptr);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == data);
  auto idx = store_->OpenDynamicIndex({}, o.dir, "root.pxar.didx");
  ASSERT_TRUE(idx.ok());
  for (size_t i = 0; i + 1 < idx->chunk_count(); ++i) {
    auto [s, end] = idx->chunk_range(i);
    EXPECT_GE(end - s, 16u * 1024) << i;  // min = avg / 4
    EXPECT_LE(end - s, 256u * 1024) << i;
  }
}

TEST_F(SnapshotWriterTest, SessionRules) {
  BackupImage(Options("600", 100), MakeData(1000, 1));
  // Not newer than the last backup.
  auto older = SnapshotWriter::Begin(store_, Options("600", 100));
  ASSERT_FALSE(older.ok());
  EXPECT_EQ(older.status().message(), "backup timestamp is older than last backup.");
  // Another owner.
  auto o = Options("600", 200);
  o.auth_id = "someone@pbs";
  auto other = SnapshotWriter::Begin(store_, o);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), Code::kPermissionDenied);
  EXPECT_EQ(other.status().message(), "backup owner check failed (someone@pbs != root@pam)");
  // One writer per group at a time.
  auto w = SnapshotWriter::Begin(store_, Options("600", 300));
  ASSERT_TRUE(w.ok());
  auto second = SnapshotWriter::Begin(store_, Options("600", 400));
  EXPECT_EQ(second.status().code(), Code::kBusy) << second.status().ToString();
  // Bad archive names and a manifest without files.
  std::vector<uint8_t> d = {1, 2, 3};
  MemoryByteSource src(d);
  EXPECT_EQ((*w)->AddFixedIndex("x.blob", src).status().code(), Code::kInvalidArgument);
  EXPECT_EQ((*w)->AddBlob("index.json.blob", d).status().code(), Code::kInvalidArgument);
  auto f = (*w)->Finish();
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().message(), "backup does not contain valid files (file count == 0)");
  EXPECT_FALSE(Exists(store_->SnapshotPath({}, BackupDir{BackupGroup{BackupType::kVm, "600"}, 300})));
}

}  // namespace
}  // namespace pbskit
