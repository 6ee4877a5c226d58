// Crash safety of GC, prune and backup writes: a fault-injecting filesystem simulates a process
// crash at each mutating step; afterwards every finished snapshot still verifies, no partial
// file sits under a final name, and a clean rerun completes the work.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <ctime>
#include <filesystem>
#include <map>

#include "pbskit/datastore/fault_fs.h"
#include "pbskit/datastore/gc.h"
#include "pbskit/datastore/locks.h"
#include "pbskit/datastore/prune.h"
#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/datastore/verify.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/dynamic_index.h"
#include "pbskit/formats/fixed_index.h"
#include "pbskit/formats/manifest.h"
#include "test_support.h"

namespace pbskit {
namespace {

namespace fs = std::filesystem;

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLockRootForTesting(tmp_ / "locks");
    auto ds = DataStore::Create(tmp_ / "store", "store1");
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    store_ = *ds;
    // The per-process lock bookkeeping keeps the filesystem of the first opener: make that the
    // real one, not a short-lived fault-injecting wrapper.
    auto guard = store_->chunk_store().LockShared();
    ASSERT_TRUE(guard.ok()) << guard.status().ToString();
  }
  void TearDown() override { SetLockRootForTesting(""); }

  // A small backup (4 fixed chunks of 64 KiB) whose content depends on `seed`; chunk 0 is shared
  // by all backups.
  Status Backup(std::shared_ptr<DataStore> store, int64_t time, uint8_t seed) {
    std::vector<uint8_t> data(4 * 65536);
    for (size_t i = 0; i < data.size(); ++i) {
      data[i] = i < 65536 ? static_cast<uint8_t>(i * 7) : static_cast<uint8_t>(i * 13 + seed * 31);
    }
    SnapshotWriterOptions o;
    o.dir = BackupDir{*BackupGroup::Parse("vm/100"), time};
    o.work_threads = 1;
    PBSKIT_ASSIGN_OR_RETURN(auto w, SnapshotWriter::Begin(store, o));
    MemoryByteSource src(data);
    PBSKIT_ASSIGN_OR_RETURN(auto r, w->AddFixedIndex("drive-scsi0.img.fidx", src, 65536));
    (void)r;
    PBSKIT_ASSIGN_OR_RETURN(auto m, w->Finish());
    (void)m;
    return Status::OK();
  }

  void AgeAllChunks(int64_t age) {
    for (const auto& e : fs::recursive_directory_iterator(store_->base() + "/.chunks")) {
      if (!e.is_regular_file()) continue;
      struct timespec t[2];
      t[0].tv_sec = std::time(nullptr) - age;
      t[0].tv_nsec = 0;
      t[1] = t[0];
      utimensat(AT_FDCWD, e.path().c_str(), t, AT_SYMLINK_NOFOLLOW);
    }
  }

  // Every finished snapshot verifies (all its chunks present and intact). Unfinished ones
  // (a crash can leave one behind) are what prune and the next backup clean up.
  void ExpectStoreVerifies(const std::string& when) {
    auto groups = store_->ListGroups({});
    ASSERT_TRUE(groups.ok()) << when;
    for (const auto& g : *groups) {
      auto snaps = store_->ListSnapshots({}, g);
      ASSERT_TRUE(snaps.ok()) << when;
      for (const auto& s : *snaps) {
        if (!s.finished) continue;
        VerifyTarget target;
        target.group = g;
        target.backup_time = s.dir.time;
        MemoryTaskLogger log;
        Status st = RunVerifyTask(store_, target, VerifyOptions{}, "", &log);
        EXPECT_TRUE(st.ok()) << when << ": " << st.ToString() << "\n" << log.text();
      }
    }
  }

  // No partial file under a final name: every chunk file decodes to its digest, every index
  // parses, every manifest decodes, .gc-status parses. Temporary names are allowed.
  void ExpectNoPartialFiles(const std::string& when) {
    for (const auto& e : fs::recursive_directory_iterator(store_->base())) {
      if (!e.is_regular_file()) continue;
      const std::string name = e.path().filename().string();
      const std::string path = e.path().string();
      if (name.find(".tmp_") != std::string::npos || name == ".lock") continue;
      auto bytes = test::ReadFile(path);
      if (IsDigestHex(name)) {
        auto blob = DataBlob::FromRaw(bytes);
        ASSERT_TRUE(blob.ok()) << when << ": " << path << ": " << blob.status().ToString();
        auto plain = blob->Decode(nullptr);
        ASSERT_TRUE(plain.ok()) << when << ": " << path;
        EXPECT_EQ(ToHex(Sha256(*plain)), name) << when << ": " << path;
      } else if (name.size() > 5 && name.substr(name.size() - 5) == ".fidx") {
        EXPECT_TRUE(FixedIndex::Parse(bytes, path).ok()) << when << ": " << path;
      } else if (name.size() > 5 && name.substr(name.size() - 5) == ".didx") {
        EXPECT_TRUE(DynamicIndex::Parse(bytes, path).ok()) << when << ": " << path;
      } else if (name == "index.json.blob") {
        EXPECT_TRUE(Manifest::FromBlob(bytes, path).ok()) << when << ": " << path;
      } else if (name == ".gc-status") {
        EXPECT_TRUE(GarbageCollectionStatus::FromJson(test::ReadText(path)).ok()) << when;
      }
    }
  }

  test::TempDir tmp_;
  std::shared_ptr<DataStore> store_;
};

GcOptions FastGc() {
  GcOptions o;
  o.atime_safety_check = false;
  return o;
}

TEST_F(CrashTest, GcCrashAtEveryMutatingStep) {
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(Backup(store_, 1700000000 + i * 3600, i).ok());
  // Forget the first snapshot: its three unique chunks become garbage.
  ASSERT_TRUE(store_->RemoveSnapshot({}, BackupDir{*BackupGroup::Parse("vm/100"), 1700003600},
                                     false).ok());
  std::map<std::string, std::vector<uint8_t>> originals;
  for (const auto& e : fs::recursive_directory_iterator(store_->base() + "/.chunks")) {
    if (e.is_regular_file()) originals[e.path().string()] = test::ReadFile(e.path().string());
  }
  auto restore = [&] {
    for (const auto& [path, bytes] : originals) {
      if (!fs::exists(path)) test::WriteFile(path, bytes);
    }
    fs::remove(store_->base() + "/.gc-status");
    AgeAllChunks(3 * 86400);
  };

  // Learn how many calls of each mutating kind a clean run makes.
  restore();
  FaultFilesystem counter;
  auto counted = DataStore::Open(store_->base(), "store1", &counter);
  ASSERT_TRUE(counted.ok());
  counter.Reset();
  auto clean = GarbageCollection(**counted, FastGc(), nullptr);
  ASSERT_TRUE(clean.ok()) << clean.status().ToString();
  const uint64_t garbage = clean->removed_chunks;
  ASSERT_GE(garbage, 1u);
  const FsOp kinds[] = {FsOp::kUtimens, FsOp::kUnlink, FsOp::kOpen, FsOp::kWrite, FsOp::kFsync,
                        FsOp::kRename};
  std::map<FsOp, uint64_t> counts;
  for (FsOp k : kinds) counts[k] = counter.CallCount(k);
  ASSERT_GT(counts[FsOp::kUnlink], 0u);
  ASSERT_GT(counts[FsOp::kRename], 0u);

  int crashes = 0;
  for (FsOp k : kinds) {
    for (uint64_t n = 1; n <= counts[k]; ++n) {
      restore();
      FaultFilesystem faulty;
      auto ds = DataStore::Open(store_->base(), "store1", &faulty);
      ASSERT_TRUE(ds.ok());
      faulty.Reset();
      faulty.CrashAtNth(k, n, /*torn_write=*/true);
      auto r = GarbageCollection(**ds, FastGc(), nullptr);
      if (!r.ok()) ++crashes;
      const std::string when = std::string("GC crash at ") + FsOpName(k) + " #" + std::to_string(n);
      ExpectNoPartialFiles(when);
      ExpectStoreVerifies(when);
    }
  }
  EXPECT_GT(crashes, 0);

  // A clean run after the last crash finishes the job.
  auto final_run = GarbageCollection(*store_, FastGc(), nullptr);
  ASSERT_TRUE(final_run.ok()) << final_run.status().ToString();
  EXPECT_EQ(final_run->disk_chunks, originals.size() - garbage);
  ExpectStoreVerifies("after final GC");
  ExpectNoPartialFiles("after final GC");
}

TEST_F(CrashTest, PruneCrashAtEveryRemovalStep) {
  KeepOptions keep;
  keep.keep_last = 1;
  const BackupGroup g = *BackupGroup::Parse("vm/100");
  int64_t next_time = 1700000000;
  // For each kind of call, crash at its 1st, 2nd, ... occurrence until a run gets through; the
  // datastore must be consistent after every crash.
  for (FsOp k : {FsOp::kUnlink, FsOp::kRmdir, FsOp::kFsync}) {
    for (int i = 0; i < 3; ++i) {
      next_time += 86400;
      ASSERT_TRUE(Backup(store_, next_time, static_cast<uint8_t>(next_time / 86400)).ok());
    }
    for (uint64_t n = 1; n < 64; ++n) {
      auto list = store_->ListSnapshots({}, g);
      ASSERT_TRUE(list.ok());
      size_t finished = 0;
      for (const auto& s : *list) finished += s.finished ? 1 : 0;
      if (list->size() <= 1) break;
      FaultFilesystem faulty;
      auto ds = DataStore::Open(store_->base(), "store1", &faulty);
      ASSERT_TRUE(ds.ok());
      faulty.Reset();
      faulty.CrashAtNth(k, n);
      MemoryTaskLogger log;
      auto r = PruneGroup(**ds, {}, g, keep, false, &log);
      (void)r;
      const std::string when = std::string("prune crash at ") + FsOpName(k) + " #" + std::to_string(n);
      ExpectNoPartialFiles(when);
      ExpectStoreVerifies(when);
      auto after = store_->ListSnapshots({}, g);
      ASSERT_TRUE(after.ok());
      ASSERT_FALSE(after->empty()) << when << ": the kept snapshot vanished";
      EXPECT_TRUE(after->back().finished) << when << ": the newest snapshot lost its manifest";
      (void)finished;
    }
  }
  // A clean prune removes whatever is left over (unfinished remains included).
  MemoryTaskLogger log;
  auto r = PruneGroup(*store_, {}, g, keep, false, &log);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto left = store_->ListSnapshots({}, g);
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 1u);
  EXPECT_TRUE((*left)[0].finished);
  ExpectStoreVerifies("after clean prune");
}

TEST_F(CrashTest, BackupCrashAtEveryStepLeavesNoPartialFinalFiles) {
  ASSERT_TRUE(Backup(store_, 1700000000, 1).ok());
  // Count the calls of one backup, then crash at each of them (torn writes included).
  FaultFilesystem counter;
  auto counted = DataStore::Open(store_->base(), "store1", &counter);
  ASSERT_TRUE(counted.ok());
  counter.Reset();
  ASSERT_TRUE(Backup(*counted, 1700000100, 2).ok());
  const uint64_t total = counter.CallCount(FsOp::kAny);
  ASSERT_GT(total, 5u);
  int64_t t = 1700000200;
  for (uint64_t n = 1; n <= total; ++n, t += 100) {
    FaultFilesystem faulty;
    auto ds = DataStore::Open(store_->base(), "store1", &faulty);
    ASSERT_TRUE(ds.ok());
    faulty.Reset();
    faulty.CrashAtNth(FsOp::kAny, n, /*torn_write=*/true);
    (void)Backup(*ds, t, static_cast<uint8_t>(n));
    const std::string when = "backup crash at call #" + std::to_string(n);
    ExpectNoPartialFiles(when);
    ExpectStoreVerifies(when);
  }
  // GC and a new backup still work afterwards.
  ASSERT_TRUE(Backup(store_, t + 100, 99).ok());
  auto gc = GarbageCollection(*store_, FastGc(), nullptr);
  ASSERT_TRUE(gc.ok()) << gc.status().ToString();
  ExpectStoreVerifies("after GC");
}

}  // namespace
}  // namespace pbskit
