// Garbage collection: what survives, what goes, what stays pending, .bad handling, .gc-status
// bytes, the exclusive lock against another process and the atime safety check.
#include "pbskit/datastore/gc.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <map>

#include "pbskit/datastore/fault_fs.h"
#include "pbskit/datastore/locks.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/fixed_index.h"
#include "pbskit/formats/dynamic_index.h"
#include "abort_on_line.h"
#include "test_support.h"

namespace pbskit {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kDay = 86400;

class GcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLockRootForTesting(tmp_ / "locks");
    auto ds = DataStore::Create(tmp_ / "store", "store1");
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    store_ = *ds;
  }
  void TearDown() override { SetLockRootForTesting(""); }

  // Inserts a chunk with `fill` bytes and returns its digest; atime set `age` seconds back.
  Digest Chunk(uint8_t fill, int64_t age, size_t len = 4096) {
    std::vector<uint8_t> data(len, fill);
    Digest d = Sha256(data);
    auto blob = DataBlob::Encode(data, nullptr, false);
    EXPECT_TRUE(blob.ok());
    auto r = store_->chunk_store().InsertChunk(d, blob->raw());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    SetAge(store_->chunk_store().ChunkPath(d), age);
    return d;
  }
  void SetAge(const std::string& path, int64_t age) {
    struct timespec t[2];
    t[0].tv_sec = std::time(nullptr) - age;
    t[0].tv_nsec = 0;
    t[1] = t[0];
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), t, AT_SYMLINK_NOFOLLOW), 0) << path;
  }
  bool Exists(const std::string& p) { return fs::exists(fs::symlink_status(p)); }
  bool Has(const Digest& d) { return Exists(store_->chunk_store().ChunkPath(d)); }
  uint64_t SizeOf(const Digest& d) { return fs::file_size(store_->chunk_store().ChunkPath(d)); }

  // Writes a .fidx referencing `digests` (4096-byte chunks) into dir/name.
  void WriteFidx(const std::string& dir, const std::string& name, const std::vector<Digest>& digests) {
    fs::create_directories(dir);
    FixedIndexWriter w(digests.size() * 4096, 4096);
    for (size_t i = 0; i < digests.size(); ++i) ASSERT_TRUE(w.SetDigest(i, digests[i]).ok());
    auto bytes = w.Finish(nullptr);
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    test::WriteFile(dir + "/" + name, *bytes);
  }
  void WriteDidx(const std::string& dir, const std::string& name, const std::vector<Digest>& digests) {
    fs::create_directories(dir);
    DynamicIndexWriter w;
    uint64_t end = 0;
    for (const auto& d : digests) ASSERT_TRUE(w.Add(end += 1000, d).ok());
    auto bytes = w.Finish(nullptr);
    ASSERT_TRUE(bytes.ok());
    test::WriteFile(dir + "/" + name, *bytes);
  }
  // A snapshot directory; finished ones get an index.json.blob (contents irrelevant to GC).
  std::string Snapshot(const std::string& rel, bool finished) {
    std::string dir = store_->base() + "/" + rel;
    fs::create_directories(dir);
    if (finished) test::WriteText(dir + "/index.json.blob", "manifest placeholder");
    return dir;
  }

  GcOptions NoAtimeCheck() {
    GcOptions o;
    o.atime_safety_check = false;
    o.upid = "UPID:pbs:00000001:00000002:00000000:65000000:garbage_collection:store1:root@pam:";
    return o;
  }

  test::TempDir tmp_;
  std::shared_ptr<DataStore> store_;
};

TEST_F(GcTest, KeepsReferencedRemovesOldPendsRecent) {
  Digest finished_ref = Chunk(1, 3 * kDay);
  Digest running_ref = Chunk(2, 3 * kDay);   // referenced only by an unfinished backup
  Digest didx_ref = Chunk(3, 3 * kDay);
  Digest old_garbage = Chunk(4, 3 * kDay);
  Digest recent_garbage = Chunk(5, 3600);   // within the 24 h 5 min cutoff
  Digest both = Chunk(6, 3 * kDay);

  std::string done = Snapshot("vm/100/2024-01-01T00:00:00Z", true);
  WriteFidx(done, "drive-scsi0.img.fidx", {finished_ref, both});
  WriteDidx(done, "root.pxar.didx", {didx_ref, both});
  std::string running = Snapshot("vm/100/2024-01-02T00:00:00Z", false);
  WriteFidx(running, "drive-scsi0.img.fidx", {running_ref});

  MemoryTaskLogger log;
  auto st = GarbageCollection(*store_, NoAtimeCheck(), &log);
  ASSERT_TRUE(st.ok()) << st.status().ToString() << "\n" << log.text();

  EXPECT_TRUE(Has(finished_ref));
  EXPECT_TRUE(Has(running_ref));
  EXPECT_TRUE(Has(didx_ref));
  EXPECT_TRUE(Has(both));
  EXPECT_FALSE(Has(old_garbage));
  EXPECT_TRUE(Has(recent_garbage));

  EXPECT_EQ(st->index_file_count, 3u);
  EXPECT_EQ(st->index_data_bytes, 2u * 4096 + 2000 + 4096);
  EXPECT_EQ(st->removed_chunks, 1u);
  EXPECT_EQ(st->pending_chunks, 1u);
  EXPECT_EQ(st->pending_bytes, SizeOf(recent_garbage));
  EXPECT_EQ(st->disk_chunks, 4u);
  EXPECT_EQ(st->disk_bytes,
            SizeOf(finished_ref) + SizeOf(running_ref) + SizeOf(didx_ref) + SizeOf(both));
  ASSERT_TRUE(st->cache_stats.has_value());
  EXPECT_EQ(st->cache_stats->misses, 4u);
  EXPECT_EQ(st->cache_stats->hits, 1u);  // `both` the second time
  EXPECT_EQ(log.warnings(), 0u);

  std::string text = log.text();
  EXPECT_NE(text.find("starting garbage collection on store store1\n"), std::string::npos);
  EXPECT_NE(text.find("Access time update check disabled by datastore tuning options.\n"),
            std::string::npos);
  EXPECT_NE(text.find("Using access time cutoff 1d 5m, minimum access time is "), std::string::npos);
  EXPECT_NE(text.find("Start GC phase1 (mark used chunks)\n"), std::string::npos);
  EXPECT_NE(text.find("marked 100% (3 of 3 index files)\n"), std::string::npos);
  EXPECT_NE(text.find("Start GC phase2 (sweep unused chunks)\n"), std::string::npos);
  EXPECT_NE(text.find("Chunk cache: hits 1, misses 4 (hit ratio 20.00%)\n"), std::string::npos);
  EXPECT_NE(text.find("Removed chunks: 1\n"), std::string::npos);
  EXPECT_NE(text.find("Pending removals: "), std::string::npos);
  EXPECT_NE(text.find("On-Disk chunks: 4\n"), std::string::npos);
  EXPECT_NE(text.find("Deduplication factor: "), std::string::npos);
  EXPECT_NE(text.find("Average chunk size: "), std::string::npos);

  // .gc-status: exactly the compact JSON of the returned status, in PBS's field order.
  std::string status_text = test::ReadText(store_->base() + "/.gc-status");
  EXPECT_EQ(status_text, st->ToJson());
  EXPECT_EQ(status_text.rfind("{\"upid\":\"UPID:pbs:", 0), 0u);
  auto loaded = LoadGcStatus(PosixFilesystem(), store_->base());
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(*loaded, *st);
  EXPECT_EQ(fs::status(store_->base() + "/.gc-status").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::others_read);

  // A second run: everything referenced was touched, nothing else is old.
  MemoryTaskLogger log2;
  auto again = GarbageCollection(*store_, NoAtimeCheck(), &log2);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->removed_chunks, 0u);
  EXPECT_EQ(again->pending_chunks, 1u);
}

TEST(GcStatusTest, Bytes) {
  GarbageCollectionStatus s;
  s.upid = "UPID:elsa:00004F37:0039E469:00000000:5CA78B83:garbage_collection:store1:root@pam:";
  s.index_file_count = 2;
  s.index_data_bytes = 1073741824;
  s.disk_bytes = 4194304;
  s.disk_chunks = 3;
  s.removed_bytes = 10;
  s.removed_chunks = 1;
  s.pending_bytes = 20;
  s.pending_chunks = 2;
  s.removed_bad = 4;
  s.still_bad = 5;
  s.cache_stats = GcCacheStats{7, 8};
  EXPECT_EQ(s.ToJson(),
            "{\"upid\":\"UPID:elsa:00004F37:0039E469:00000000:5CA78B83:garbage_collection:store1:"
            "root@pam:\",\"index-file-count\":2,\"index-data-bytes\":1073741824,\"disk-bytes\":"
            "4194304,\"disk-chunks\":3,\"removed-bytes\":10,\"removed-chunks\":1,\"pending-bytes\":"
            "20,\"pending-chunks\":2,\"removed-bad\":4,\"still-bad\":5,\"cache-stats\":{\"hits\":7,"
            "\"misses\":8}}");
  GarbageCollectionStatus empty;
  EXPECT_EQ(empty.ToJson(),
            "{\"upid\":null,\"index-file-count\":0,\"index-data-bytes\":0,\"disk-bytes\":0,"
            "\"disk-chunks\":0,\"removed-bytes\":0,\"removed-chunks\":0,\"pending-bytes\":0,"
            "\"pending-chunks\":0,\"removed-bad\":0,\"still-bad\":0}");
  auto back = GarbageCollectionStatus::FromJson(s.ToJson());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, s);
  // Older PBS (no cache-stats) and unknown future keys are accepted.
  auto old = GarbageCollectionStatus::FromJson("{\"upid\":null,\"disk-chunks\":9,\"future\":[1]}");
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->disk_chunks, 9u);
  EXPECT_FALSE(old->cache_stats.has_value());
  EXPECT_FALSE(GarbageCollectionStatus::FromJson("[1]").ok());
  EXPECT_FALSE(GarbageCollectionStatus::FromJson("{\"disk-chunks\":\"x\"}").ok());
}

TEST_F(GcTest, BadChunks) {
  // Referenced chunk is missing but has a .bad copy: the copy is touched and kept, with a warning.
  Digest missing = Chunk(10, 3 * kDay);
  std::string mpath = store_->chunk_store().ChunkPath(missing);
  fs::rename(mpath, mpath + ".0.bad");
  SetAge(mpath + ".0.bad", 3 * kDay);
  // Unreferenced old .bad file: removed and counted as removed-bad.
  Digest dropped = Chunk(11, 3 * kDay);
  std::string dpath = store_->chunk_store().ChunkPath(dropped);
  fs::rename(dpath, dpath + ".3.bad");
  SetAge(dpath + ".3.bad", 3 * kDay);
  // Unreferenced recent .bad file: still bad.
  Digest recent = Chunk(12, 3 * kDay);
  std::string rpath = store_->chunk_store().ChunkPath(recent);
  fs::rename(rpath, rpath + ".1.bad");
  SetAge(rpath + ".1.bad", 600);
  // A referenced chunk with no file and no .bad copy: warning only.
  std::vector<uint8_t> nothing(100, 13);
  Digest absent = Sha256(nothing);

  std::string snap = Snapshot("ct/200/2024-02-01T00:00:00Z", true);
  WriteFidx(snap, "disk.img.fidx", {missing, absent});

  MemoryTaskLogger log;
  auto st = GarbageCollection(*store_, NoAtimeCheck(), &log);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_TRUE(Exists(mpath + ".0.bad"));
  EXPECT_FALSE(Exists(dpath + ".3.bad"));
  EXPECT_TRUE(Exists(rpath + ".1.bad"));
  EXPECT_EQ(st->removed_bad, 1u);
  EXPECT_EQ(st->still_bad, 1u);
  EXPECT_EQ(st->disk_chunks, 0u);  // bad files never count as chunks
  EXPECT_EQ(log.warnings(), 2u);
  std::string text = log.text();
  EXPECT_NE(text.find("warning: unable to access non-existent chunk " + ToHex(missing) +
                      ", required by \"" + snap + "/disk.img.fidx\"\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("warning: unable to access non-existent chunk " + ToHex(absent)),
            std::string::npos);
  EXPECT_NE(text.find("Removed bad chunks: 1\n"), std::string::npos);
  EXPECT_NE(text.find("Leftover bad chunks: 1\n"), std::string::npos);
}

TEST_F(GcTest, NamespacesUnexpectedAndHiddenIndexFiles) {
  Digest in_ns = Chunk(20, 3 * kDay);
  Digest strange = Chunk(21, 3 * kDay);
  Digest hidden = Chunk(22, 3 * kDay);
  ASSERT_TRUE(store_->CreateNamespace(*BackupNamespace::Parse("a")).ok());
  ASSERT_TRUE(store_->CreateNamespace(*BackupNamespace::Parse("a/b")).ok());
  WriteFidx(Snapshot("ns/a/ns/b/host/web/2024-03-01T10:00:00Z", true), "x.img.fidx", {in_ns});
  // Not a snapshot directory name: only the file-system walk finds it.
  WriteFidx(store_->base() + "/vm/300/not-a-snapshot", "lost.img.fidx", {strange});
  // Hidden directories are skipped entirely, as PBS does.
  WriteFidx(store_->base() + "/.hidden", "h.img.fidx", {hidden});

  MemoryTaskLogger log;
  auto st = GarbageCollection(*store_, NoAtimeCheck(), &log);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_TRUE(Has(in_ns));
  EXPECT_TRUE(Has(strange));
  EXPECT_FALSE(Has(hidden));
  EXPECT_EQ(st->index_file_count, 2u);
  std::string text = log.text();
  EXPECT_NE(text.find("Marked chunks for unexpected index file at '\"" + store_->base() +
                      "/vm/300/not-a-snapshot/lost.img.fidx\"'\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("Found 1 index files outside of expected directory scheme\n"),
            std::string::npos);
  EXPECT_EQ(log.warnings(), 2u);
}

TEST_F(GcTest, CorruptIndexStopsGcBeforeAnythingIsRemoved) {
  Digest old_garbage = Chunk(30, 3 * kDay);
  std::string snap = Snapshot("vm/101/2024-01-01T00:00:00Z", true);
  test::WriteText(snap + "/broken.img.fidx", std::string(5000, 'x'));
  MemoryTaskLogger log;
  auto st = GarbageCollection(*store_, NoAtimeCheck(), &log);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().message().rfind("marking used chunks failed: can't open fixed index '\"" +
                                            snap + "/broken.img.fidx\"'",
                                        0),
            0u)
      << st.status().message();
  EXPECT_TRUE(Has(old_garbage));
  EXPECT_FALSE(Exists(store_->base() + "/.gc-status"));
}

TEST_F(GcTest, AbortStopsMarkAndSweepAndWritesNoStatus) {
  Digest kept = Chunk(1, 3 * kDay);
  Digest garbage = Chunk(2, 3 * kDay);
  std::string done = Snapshot("vm/100/2024-01-01T00:00:00Z", true);
  WriteFidx(done, "drive-scsi0.img.fidx", {kept});

  // Abort as phase 1 starts: the first index file is not marked, nothing is swept.
  {
    test::AbortOnLine log("Start GC phase1", 1);
    GcOptions o = NoAtimeCheck();
    o.abort = log.flag();
    auto st = GarbageCollection(*store_, o, &log);
    ASSERT_FALSE(st.ok());
    EXPECT_TRUE(st.status().IsAborted());
    EXPECT_EQ(st.status().message(), kTaskAbortMessage);  // not wrapped: PBS's exact text
    EXPECT_EQ(log.text().find("marked 100%"), std::string::npos) << log.text();
    EXPECT_EQ(log.text().find("Start GC phase2"), std::string::npos) << log.text();
  }
  // Abort as phase 2 starts: marking finished, the old garbage chunk is not removed.
  {
    test::AbortOnLine log("Start GC phase2", 1);
    GcOptions o = NoAtimeCheck();
    o.abort = log.flag();
    auto st = GarbageCollection(*store_, o, &log);
    ASSERT_FALSE(st.ok());
    EXPECT_TRUE(st.status().IsAborted()) << st.status().ToString();
    EXPECT_NE(log.text().find("marked 100% (1 of 1 index files)"), std::string::npos)
        << log.text();
    EXPECT_EQ(log.text().find("Removed garbage"), std::string::npos) << log.text();
  }
  EXPECT_TRUE(Has(kept));
  EXPECT_TRUE(Has(garbage));
  EXPECT_FALSE(Exists(store_->base() + "/.gc-status"));

  // A run without abort afterwards does the job.
  MemoryTaskLogger log;
  auto st = GarbageCollection(*store_, NoAtimeCheck(), &log);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_TRUE(Has(kept));
  EXPECT_FALSE(Has(garbage));
  EXPECT_TRUE(Exists(store_->base() + "/.gc-status"));
}

TEST_F(GcTest, CacheOffAndCutoffOption) {
  Digest a = Chunk(40, 3 * kDay);
  Digest hour_old = Chunk(41, 2 * 3600);
  WriteFidx(Snapshot("vm/1/2024-01-01T00:00:00Z", true), "a.img.fidx", {a, a, a});
  GcOptions o = NoAtimeCheck();
  o.cache_capacity = 0;
  o.atime_cutoff_minutes = 60;  // one hour: the two-hour-old chunk is garbage now
  MemoryTaskLogger log;
  auto st = GarbageCollection(*store_, o, &log);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_TRUE(Has(a));
  EXPECT_FALSE(Has(hour_old));
  EXPECT_EQ(st->cache_stats->hits, 0u);
  EXPECT_EQ(st->cache_stats->misses, 0u);
  EXPECT_NE(log.text().find("Using access time cutoff 1h, minimum access time is "),
            std::string::npos);
  EXPECT_NE(log.text().find("Using chunk digest cache capacity of 0.\n"), std::string::npos);

  GcOptions bad = NoAtimeCheck();
  bad.atime_cutoff_minutes = 0;
  EXPECT_EQ(GarbageCollection(*store_, bad, nullptr).status().code(), Code::kInvalidArgument);
}

TEST_F(GcTest, RunsBesideWritersOfThisProcess) {
  // A writer of this process holds the shared lock: GC still runs (PBS's oldest-writer rule);
  // a recent unreferenced chunk written before the writer started stays pending.
  Digest recent = Chunk(50, 120);
  auto shared = store_->chunk_store().LockShared();
  ASSERT_TRUE(shared.ok()) << shared.status().ToString();
  auto st = GarbageCollection(*store_, NoAtimeCheck(), nullptr);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_TRUE(Has(recent));
  EXPECT_EQ(st->pending_chunks, 1u);
  // The shared lock is still usable afterwards and another writer can join.
  auto second = store_->chunk_store().LockShared();
  EXPECT_TRUE(second.ok()) << second.status().ToString();
}

TEST_F(GcTest, RefusesWhileAnotherProcessHoldsTheSharedLock) {
  Digest old_garbage = Chunk(60, 3 * kDay);
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int fd = open((store_->base() + "/.lock").c_str(), O_RDWR);
    struct flock fl {};
    fl.l_type = F_RDLCK;
    fl.l_whence = SEEK_SET;
    int rc = fd >= 0 ? fcntl(fd, F_SETLK, &fl) : -1;
    char c = rc == 0 ? 'y' : 'n';
    (void)!write(ready[1], &c, 1);
    pause();
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  MemoryTaskLogger log;
  auto st = GarbageCollection(*store_, NoAtimeCheck(), &log);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  close(ready[0]);
  close(ready[1]);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().message().rfind("unable to get exclusive lock - ", 0), 0u)
      << st.status().message();
  EXPECT_TRUE(Has(old_garbage));
  EXPECT_FALSE(Exists(store_->base() + "/.gc-status"));

  // Once the writer is gone GC runs.
  auto later = GarbageCollection(*store_, NoAtimeCheck(), nullptr);
  ASSERT_TRUE(later.ok()) << later.status().ToString();
  EXPECT_FALSE(Has(old_garbage));
}

// A filesystem that accepts utimensat but never changes a timestamp (like an atime-ignoring
// mount or a broken FUSE/NFS setup).
class NoAtimeFilesystem : public FaultFilesystem {
 public:
  Status Utimens(const std::string&, const struct timespec[2]) override { return Status::OK(); }
};

TEST_F(GcTest, AtimeSafetyCheck) {
  // Works on the real filesystem and leaves the zero chunk behind.
  MemoryTaskLogger ok_log;
  ASSERT_TRUE(RunAtimeSafetyCheck(store_->chunk_store(), &ok_log).ok());
  EXPECT_TRUE(Exists(store_->base() + "/.chunks/bb9f/" + kZeroChunkDigestHex));

  // Fails through GC when atime updates are ignored, and nothing is swept.
  Digest old_garbage = Chunk(70, 3 * kDay);
  fs::remove(store_->base() + "/.chunks/bb9f/" + std::string(kZeroChunkDigestHex));
  NoAtimeFilesystem noatime;
  auto ds = DataStore::Open(store_->base(), "store1", &noatime);
  ASSERT_TRUE(ds.ok());
  GcOptions o = NoAtimeCheck();
  o.atime_safety_check = true;
  MemoryTaskLogger log;
  auto st = GarbageCollection(**ds, o, &log);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().message(),
            "atime safety check failed: access time safety check using newly inserted chunk "
            "failed, aborting GC!");
  EXPECT_NE(log.text().find("Chunk metadata was not correctly updated during access time safety "
                            "check:\nTimestamps before update: accessed Some(SystemTime { tv_sec: "),
            std::string::npos)
      << log.text();
  EXPECT_TRUE(Has(old_garbage));

  // Second attempt: the zero chunk now pre-exists.
  auto again = GarbageCollection(**ds, o, nullptr);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("using pre-existing chunk failed"), std::string::npos);

  // With the check on the real filesystem, GC runs and says so.
  MemoryTaskLogger log2;
  auto fine = GarbageCollection(*store_, o, &log2);
  ASSERT_TRUE(fine.ok()) << fine.status().ToString();
  EXPECT_NE(log2.text().find("Access time update check successful, proceeding with GC.\n"),
            std::string::npos);
  EXPECT_FALSE(Has(old_garbage));
}

}  // namespace
}  // namespace pbskit
