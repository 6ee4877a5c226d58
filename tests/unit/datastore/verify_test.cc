// Verify (datastore/verify.h) on a store written by SnapshotWriter: verify_state in the
// manifest's unprotected part, bad chunks renamed <digest>.<N>.bad with exactly the snapshots
// using them failed, each chunk read once per job, --ignore-verified / outdated-after, encrypted
// chunks (CRC only), index checksum and size against the manifest, chunks repeated within an
// index (fixed and dynamic, both chunk orders), the compact DigestSet. One store for the suite;
// tests that damage chunks work in a namespace of their own with data of their own.
#include "pbskit/datastore/verify.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <thread>

#include "pbskit/datastore/locks.h"
#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/upid.h"
#include "abort_on_line.h"
#include "test_support.h"

namespace pbskit {
namespace {

constexpr uint64_t kChunk = 64 * 1024;

std::vector<uint8_t> MakeData(size_t size, uint32_t seed) {
  std::vector<uint8_t> v(size);
  std::mt19937 rng(seed);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

BackupDir Dir(const char* id, int64_t t) { return BackupDir{BackupGroup{BackupType::kVm, id}, t}; }

std::string UpidAt(int64_t starttime) {
  Upid u;
  u.node = "testnode";
  u.pid = 1234;
  u.pstart = 5678;
  u.task_id = 1;
  u.starttime = starttime;
  u.worker_type = "verify";
  u.worker_id = "store1";
  u.auth_id = "root@pam";
  return u.ToString();
}

bool HasLine(const MemoryTaskLogger& log, const std::string& line) {
  auto lines = log.lines();
  return std::find(lines.begin(), lines.end(), line) != lines.end();
}

size_t CountPrefix(const MemoryTaskLogger& log, const std::string& prefix) {
  size_t n = 0;
  for (const auto& l : log.lines()) n += l.rfind(prefix, 0) == 0;
  return n;
}

class VerifyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new test::TempDir();
    SetLockRootForTesting(*tmp_ / "locks");
    DataStoreOptions o;
    o.sync_level = SyncLevel::kNone;
    auto s = DataStore::Create(*tmp_ / "store", "store1", PosixFilesystem(), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = new std::shared_ptr<DataStore>(*s);
    std::array<uint8_t, 32> key;
    for (int i = 0; i < 32; ++i) key[i] = static_cast<uint8_t>(i + 40);
    crypt_ = new CryptConfig(key);
  }
  static void TearDownTestSuite() {
    delete crypt_;
    delete store_;
    SetLockRootForTesting("");
    delete tmp_;
  }

  static DataStore& store() { return **store_; }

  // Writes snapshot vm/<id>/<time> in `ns` holding an image `image` (64 KiB chunks) and a blob.
  static Manifest Backup(const BackupNamespace& ns, const char* id, int64_t time,
                         const std::vector<uint8_t>& image, CryptMode mode = CryptMode::kNone) {
    SnapshotWriterOptions o;
    o.ns = ns;
    o.dir = Dir(id, time);
    o.crypt_mode = mode;
    o.crypt = mode == CryptMode::kNone ? nullptr : crypt_;
    auto w = SnapshotWriter::Begin(*store_, o);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    if (!w.ok()) return {};
    MemoryByteSource src(image);
    EXPECT_TRUE((*w)->AddFixedIndex("drive-scsi0.img.fidx", src, kChunk).ok());
    std::string conf = "name: vm" + std::string(id) + "\n";
    EXPECT_TRUE((*w)->AddBlob("qemu-server.conf.blob",
                              std::vector<uint8_t>(conf.begin(), conf.end()))
                    .ok());
    auto m = (*w)->Finish();
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? *m : Manifest();
  }

  static BackupNamespace Ns(const std::string& name) {
    auto ns = BackupNamespace::Parse(name);
    EXPECT_TRUE(ns.ok());
    auto exists = store().NamespaceExists(*ns);
    if (exists.ok() && !*exists) {
      EXPECT_TRUE(store().CreateNamespace(*ns).ok());
    }
    return *ns;
  }

  static std::vector<Digest> Digests(const BackupNamespace& ns, const BackupDir& dir) {
    auto idx = store().OpenFixedIndex(ns, dir, "drive-scsi0.img.fidx");
    EXPECT_TRUE(idx.ok());
    return idx.ok() ? idx->digests() : std::vector<Digest>{};
  }

  // verify_state.state of a snapshot ("" when none).
  static std::string VerifyState(const BackupNamespace& ns, const BackupDir& dir,
                                 std::string* upid = nullptr) {
    auto m = store().LoadManifest(ns, dir);
    EXPECT_TRUE(m.ok());
    if (!m.ok()) return "";
    const auto* vs = m->unprotected.if_contains("verify_state");
    if (!vs) return "";
    if (upid) *upid = std::string(vs->as_object().at("upid").as_string());
    return std::string(vs->as_object().at("state").as_string());
  }

  static Status Run(const VerifyTarget& target, MemoryTaskLogger* log, VerifyTaskResult* result,
                    VerifyOptions options = {}, const std::string& upid = UpidAt(1700000000)) {
    return RunVerifyTask(*store_, target, options, upid, log, result);
  }

  static test::TempDir* tmp_;
  static std::shared_ptr<DataStore>* store_;
  static CryptConfig* crypt_;
};

test::TempDir* VerifyTest::tmp_ = nullptr;
std::shared_ptr<DataStore>* VerifyTest::store_ = nullptr;
CryptConfig* VerifyTest::crypt_ = nullptr;

TEST_F(VerifyTest, GoodSnapshotVerifiesOkAndRecordsTheState) {
  BackupNamespace ns = Ns("good");
  Manifest before = Backup(ns, "100", 1000, MakeData(5 * kChunk + 99, 1));
  MemoryTaskLogger log;
  VerifyTaskResult result;
  VerifyTarget target{ns, BackupGroup{BackupType::kVm, "100"}, 1000};
  const std::string upid = UpidAt(1700000123);
  Status st = Run(target, &log, &result, {}, upid);
  ASSERT_TRUE(st.ok()) << st.ToString() << "\n" << log.text();
  EXPECT_TRUE(result.failed.empty());
  EXPECT_EQ(result.stats.snapshots_verified, 1u);
  EXPECT_EQ(result.stats.snapshots_failed, 0u);
  EXPECT_EQ(result.stats.chunks_verified, 6u);
  EXPECT_TRUE(HasLine(log, "verify store1:vm/100/1970-01-01T00:16:40Z")) << log.text();
  EXPECT_TRUE(HasLine(log, "  check drive-scsi0.img.fidx"));
  EXPECT_TRUE(HasLine(log, "  check qemu-server.conf.blob"));
  EXPECT_EQ(CountPrefix(log, "  verified "), 1u);
  std::string recorded;
  EXPECT_EQ(VerifyState(ns, Dir("100", 1000), &recorded), "ok");
  EXPECT_EQ(recorded, upid);
  // Only the unprotected part changed.
  auto after = store().LoadManifest(ns, Dir("100", 1000));
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->SignedCanonicalJson(), before.SignedCanonicalJson());
  EXPECT_EQ(after->files.size(), before.files.size());
}

TEST_F(VerifyTest, WorkerTypeAndIdAndMissingTargets) {
  VerifyTarget snap{{}, BackupGroup{BackupType::kVm, "100"}, 0x663220B0};
  EXPECT_EQ(VerifyWorkerTypeAndId("store1", snap),
            (std::pair<std::string, std::string>{"verify_snapshot", "store1:/vm/100/663220B0"}));
  auto ns = BackupNamespace::Parse("a");
  ASSERT_TRUE(ns.ok());
  VerifyTarget group{*ns, BackupGroup{BackupType::kVm, "100"}, std::nullopt};
  EXPECT_EQ(VerifyWorkerTypeAndId("store1", group),
            (std::pair<std::string, std::string>{"verify_group", "store1:ns/a/vm/100"}));
  EXPECT_EQ(VerifyWorkerTypeAndId("store1", VerifyTarget{}),
            (std::pair<std::string, std::string>{"verify", "store1"}));

  MemoryTaskLogger log;
  VerifyTarget missing_ns{*BackupNamespace::Parse("nope"), std::nullopt, std::nullopt};
  EXPECT_EQ(Run(missing_ns, &log, nullptr).code(), Code::kNotFound);
  VerifyTarget missing_group{{}, BackupGroup{BackupType::kCt, "999"}, std::nullopt};
  EXPECT_EQ(Run(missing_group, &log, nullptr).code(), Code::kNotFound);
  BackupNamespace g = Ns("good2");
  Backup(g, "100", 1000, MakeData(kChunk, 2));
  VerifyTarget missing_snap{g, BackupGroup{BackupType::kVm, "100"}, 999};
  EXPECT_EQ(Run(missing_snap, &log, nullptr).code(), Code::kNotFound);
}

TEST_F(VerifyTest, EachChunkIsReadOncePerJob) {
  BackupNamespace ns = Ns("shared");
  auto base = MakeData(8 * kChunk, 3);
  auto changed = base;
  changed[3 * kChunk + 5] ^= 1;  // one chunk differs
  Backup(ns, "100", 1000, base);
  Backup(ns, "100", 2000, base);     // every chunk shared with the first
  Backup(ns, "101", 1000, changed);  // 7 of 8 shared
  std::set<Digest> distinct;
  uint64_t distinct_bytes = 0;
  for (auto [id, t] : {std::pair{"100", 1000}, {"100", 2000}, {"101", 1000}}) {
    for (const Digest& d : Digests(ns, Dir(id, t))) {
      if (!distinct.insert(d).second) continue;
      auto st = store().chunk_store().StatChunk(d);
      ASSERT_TRUE(st.ok());
      distinct_bytes += static_cast<uint64_t>(st->st_size);
    }
  }
  ASSERT_EQ(distinct.size(), 9u);

  for (size_t read_threads : {size_t{1}, size_t{3}}) {
    SCOPED_TRACE(read_threads);
    MemoryTaskLogger log;
    VerifyTaskResult result;
    VerifyOptions o;
    o.read_threads = read_threads;
    o.verify_threads = 2;
    Status st = Run(VerifyTarget{ns, std::nullopt, std::nullopt}, &log, &result, o);
    ASSERT_TRUE(st.ok()) << log.text();
    EXPECT_EQ(result.stats.snapshots_verified, 3u);
    // Every distinct chunk file was read exactly once by this job...
    EXPECT_EQ(result.stats.read_bytes, distinct_bytes);
    EXPECT_EQ(result.stats.chunks_verified, 9u);
    EXPECT_EQ(result.stats.decoded_bytes, 9 * kChunk);
    // ... so the newest snapshot of vm/100 (verified first) read all 8, the older one none.
    EXPECT_TRUE(HasLine(log, "found 2 groups")) << log.text();
    EXPECT_EQ(CountPrefix(log, "  verified 0.00/0.00 MiB in "), 1u) << log.text();
  }
}

TEST_F(VerifyTest, DamagedChunkFailsExactlyTheSnapshotsUsingIt) {
  BackupNamespace ns = Ns("damage");
  auto a = MakeData(6 * kChunk, 10);
  auto c = MakeData(6 * kChunk, 11);
  Backup(ns, "100", 1000, a);
  Backup(ns, "101", 1000, a);  // same chunks as vm/100
  Backup(ns, "102", 1000, c);  // none of them
  const Digest bad = Digests(ns, Dir("100", 1000))[2];
  const std::string path = store().chunk_store().ChunkPath(bad);
  const auto good_bytes = test::ReadFile(path);
  auto damaged = good_bytes;
  damaged[damaged.size() - 3] ^= 0x04;
  test::WriteFile(path, damaged);

  MemoryTaskLogger log;
  VerifyTaskResult result;
  Status st = Run(VerifyTarget{ns, std::nullopt, std::nullopt}, &log, &result);
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_EQ(st.message(), "verification failed - please check the log for details");
  std::sort(result.failed.begin(), result.failed.end());
  EXPECT_EQ(result.failed, (std::vector<std::string>{"ns/damage/vm/100/1970-01-01T00:16:40Z",
                                                      "ns/damage/vm/101/1970-01-01T00:16:40Z"}));
  EXPECT_EQ(result.stats.snapshots_failed, 2u);
  EXPECT_EQ(result.stats.chunks_corrupt, 1u);
  EXPECT_EQ(VerifyState(ns, Dir("100", 1000)), "failed");
  EXPECT_EQ(VerifyState(ns, Dir("101", 1000)), "failed");
  EXPECT_EQ(VerifyState(ns, Dir("102", 1000)), "ok");
  // Renamed once, read once: the second snapshot only meets it in the corrupt set.
  EXPECT_FALSE(Exists(path));
  EXPECT_TRUE(test::ReadFile(path + ".0.bad") == damaged);
  EXPECT_TRUE(HasLine(log, "corrupted chunk renamed to \"" + path + ".0.bad\"")) << log.text();
  EXPECT_EQ(CountPrefix(log, "corrupted chunk renamed to "), 1u);
  EXPECT_TRUE(HasLine(log, "chunk " + ToHex(bad) + " was marked as corrupt")) << log.text();
  EXPECT_TRUE(HasLine(log, "Failed to verify the following snapshots/groups:"));
  EXPECT_TRUE(HasLine(log, "\tns/damage/vm/100/1970-01-01T00:16:40Z"));

  // The chunk is damaged again (e.g. re-uploaded to a failing disk): the next job renames it to
  // the next free name and keeps the first.
  test::WriteFile(path, damaged);
  MemoryTaskLogger log2;
  VerifyTaskResult result2;
  EXPECT_FALSE(Run(VerifyTarget{ns, BackupGroup{BackupType::kVm, "101"}, std::nullopt}, &log2,
                   &result2)
                   .ok());
  EXPECT_EQ(result2.failed, std::vector<std::string>{"ns/damage/vm/101/1970-01-01T00:16:40Z"});
  EXPECT_TRUE(Exists(path + ".0.bad"));
  EXPECT_TRUE(Exists(path + ".1.bad"));
  EXPECT_FALSE(Exists(path));

  // With the chunk gone, verify reports it as missing (and there is nothing to rename).
  MemoryTaskLogger log3;
  VerifyTaskResult result3;
  EXPECT_FALSE(Run(VerifyTarget{ns, BackupGroup{BackupType::kVm, "100"}, std::nullopt}, &log3,
                   &result3)
                   .ok());
  EXPECT_EQ(CountPrefix(log3, "can't verify chunk, load failed - store 'store1', unable to load "
                              "chunk '" + ToHex(bad) + "'"),
            1u)
      << log3.text();
  EXPECT_FALSE(Exists(path + ".2.bad"));

  // Good data back in place: everything verifies again and the states turn ok.
  test::WriteFile(path, good_bytes);
  MemoryTaskLogger log4;
  EXPECT_TRUE(Run(VerifyTarget{ns, std::nullopt, std::nullopt}, &log4, nullptr).ok()) << log4.text();
  EXPECT_EQ(VerifyState(ns, Dir("100", 1000)), "ok");
  EXPECT_EQ(VerifyState(ns, Dir("101", 1000)), "ok");
}

TEST_F(VerifyTest, IgnoreVerifiedAndOutdatedAfter) {
  BackupNamespace ns = Ns("recent");
  Backup(ns, "100", 1000, MakeData(2 * kChunk, 20));
  Backup(ns, "100", 2000, MakeData(2 * kChunk, 21));
  VerifyTarget group{ns, BackupGroup{BackupType::kVm, "100"}, std::nullopt};
  const int64_t t0 = 1700000000;
  // Only the newer snapshot gets a verify state at t0.
  MemoryTaskLogger first;
  ASSERT_TRUE(Run(VerifyTarget{ns, BackupGroup{BackupType::kVm, "100"}, 2000}, &first, nullptr, {},
                  UpidAt(t0))
                  .ok());

  auto run = [&](VerifyOptions o, VerifyTaskResult* r, MemoryTaskLogger* log) {
    Status st = Run(group, log, r, o, UpidAt(t0 + 10));
    EXPECT_TRUE(st.ok()) << log->text();
  };
  {  // Without --ignore-verified every snapshot is verified.
    MemoryTaskLogger log;
    VerifyTaskResult r;
    run({}, &r, &log);
    EXPECT_EQ(r.stats.snapshots_verified, 2u);
    EXPECT_EQ(r.stats.snapshots_skipped, 0u);
  }
  // Both now carry a state from t0 + 10. Make the newer one "failed" (a verify state of any
  // kind counts as verified, as in PBS's verify_filter) and the older one from t0.
  ASSERT_TRUE(store()
                  .UpdateManifestUnprotected(ns, Dir("100", 2000),
                                             [&](boost::json::object& u) {
                                               u["verify_state"] = boost::json::object{
                                                   {"state", "failed"}, {"upid", UpidAt(t0)}};
                                               return Status::OK();
                                             })
                  .ok());
  ASSERT_TRUE(store()
                  .UpdateManifestUnprotected(ns, Dir("100", 1000),
                                             [&](boost::json::object& u) {
                                               u["verify_state"] = boost::json::object{
                                                   {"state", "ok"}, {"upid", UpidAt(t0 - 5 * 86400)}};
                                               return Status::OK();
                                             })
                  .ok());
  {  // --ignore-verified without a maximum age skips both.
    VerifyOptions o;
    o.ignore_verified = true;
    MemoryTaskLogger log;
    VerifyTaskResult r;
    run(o, &r, &log);
    EXPECT_EQ(r.stats.snapshots_verified, 0u);
    EXPECT_EQ(r.stats.snapshots_skipped, 2u);
    EXPECT_TRUE(HasLine(log, "SKIPPED: verify store1:vm/100/1970-01-01T00:33:20Z (recently "
                             "verified)"))
        << log.text();
    EXPECT_EQ(VerifyState(ns, Dir("100", 2000)), "failed");  // untouched
  }
  {  // --outdated-after 3 at t0 + 1 day: the 6-day-old state is outdated, the 1-day-old is not.
    VerifyOptions o;
    o.ignore_verified = true;
    o.outdated_after_days = 3;
    o.now = t0 + 86400;
    MemoryTaskLogger log;
    VerifyTaskResult r;
    run(o, &r, &log);
    EXPECT_EQ(r.stats.snapshots_verified, 1u);
    EXPECT_EQ(r.stats.snapshots_skipped, 1u);
    EXPECT_TRUE(HasLine(log, "verify store1:vm/100/1970-01-01T00:16:40Z")) << log.text();
  }
  {  // Whole days count, and only more than DAYS is outdated: 1 day 23:59:59 with
     // --outdated-after 1 is not, 2 days is.
    VerifyOptions o;
    o.ignore_verified = true;
    o.outdated_after_days = 1;
    o.now = t0 + 2 * 86400 - 1;
    MemoryTaskLogger log;
    VerifyTaskResult r;
    run(o, &r, &log);
    EXPECT_EQ(r.stats.snapshots_skipped, 2u);  // the older one was just verified at t0 + 10
    o.now = t0 + 10 + 2 * 86400;
    MemoryTaskLogger log2;
    VerifyTaskResult r2;
    run(o, &r2, &log2);
    EXPECT_EQ(r2.stats.snapshots_verified, 2u);
    EXPECT_EQ(VerifyState(ns, Dir("100", 2000)), "ok");
  }
  {  // A verify_state that cannot be understood does not count as verified.
    ASSERT_TRUE(store()
                    .UpdateManifestUnprotected(ns, Dir("100", 2000),
                                               [&](boost::json::object& u) {
                                                 u["verify_state"] = boost::json::object{
                                                     {"state", "ok"}, {"upid", "garbage"}};
                                                 return Status::OK();
                                               })
                    .ok());
    VerifyOptions o;
    o.ignore_verified = true;
    MemoryTaskLogger log;
    VerifyTaskResult r;
    run(o, &r, &log);
    EXPECT_EQ(r.stats.snapshots_verified, 1u);
    EXPECT_EQ(r.stats.snapshots_skipped, 1u);
  }
}

TEST_F(VerifyTest, EncryptedChunksAreCheckedByCrcOnly) {
  BackupNamespace ns = Ns("encrypted");
  Backup(ns, "100", 1000, MakeData(4 * kChunk, 30), CryptMode::kEncrypt);
  Backup(ns, "101", 1000, MakeData(4 * kChunk, 31), CryptMode::kEncrypt);
  MemoryTaskLogger log;
  VerifyTaskResult result;
  ASSERT_TRUE(Run(VerifyTarget{ns, std::nullopt, std::nullopt}, &log, &result).ok())
      << log.text();
  EXPECT_EQ(result.stats.chunks_verified, 8u);
  EXPECT_EQ(VerifyState(ns, Dir("100", 1000)), "ok");
  // The signed manifest still verifies with the key after verify_state was added.
  auto m = store().LoadManifest(ns, Dir("100", 1000));
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->VerifySignature(crypt_->id_key(), crypt_->FingerprintString()).ok());

  // Ciphertext damage with the CRC fixed up cannot be seen without the key: still ok.
  const Digest d100 = Digests(ns, Dir("100", 1000))[1];
  const std::string p100 = store().chunk_store().ChunkPath(d100);
  auto raw = test::ReadFile(p100);
  raw[kEncryptedBlobHeaderSize + 10] ^= 0x01;
  ASSERT_TRUE(RewriteBlobCrc(raw).ok());
  test::WriteFile(p100, raw);
  // Damage without fixing the CRC is seen and renamed.
  const Digest d101 = Digests(ns, Dir("101", 1000))[2];
  const std::string p101 = store().chunk_store().ChunkPath(d101);
  raw = test::ReadFile(p101);
  raw[kEncryptedBlobHeaderSize + 10] ^= 0x01;
  test::WriteFile(p101, raw);

  MemoryTaskLogger log2;
  VerifyTaskResult result2;
  EXPECT_FALSE(Run(VerifyTarget{ns, std::nullopt, std::nullopt}, &log2, &result2).ok());
  EXPECT_EQ(result2.failed, std::vector<std::string>{"ns/encrypted/vm/101/1970-01-01T00:16:40Z"})
      << log2.text();
  EXPECT_EQ(VerifyState(ns, Dir("100", 1000)), "ok");
  EXPECT_TRUE(Exists(p100));
  EXPECT_FALSE(Exists(p101));
  EXPECT_TRUE(Exists(p101 + ".0.bad"));
}

TEST_F(VerifyTest, IndexChecksumAndSizeAgainstTheManifest) {
  BackupNamespace ns = Ns("csum");
  Manifest good = Backup(ns, "100", 1000, MakeData(3 * kChunk, 40));
  const BackupDir dir = Dir("100", 1000);
  auto store_manifest = [&](const Manifest& m) {
    auto lock = store().LockSnapshot(ns, dir);
    ASSERT_TRUE(lock.ok());
    ASSERT_TRUE(store().StoreManifest(ns, dir, m).ok());
  };
  VerifyTarget target{ns, BackupGroup{BackupType::kVm, "100"}, 1000};
  const std::vector<Digest> digests = Digests(ns, dir);

  Manifest bad = good;
  for (auto& f : bad.files) {
    if (f.filename == "drive-scsi0.img.fidx") f.csum[5] ^= 0x80;
  }
  store_manifest(bad);
  MemoryTaskLogger log;
  VerifyTaskResult result;
  EXPECT_EQ(Run(target, &log, &result).code(), Code::kCorruption);
  EXPECT_TRUE(HasLine(log, "verify store1:vm/100/1970-01-01T00:16:40Z/drive-scsi0.img.fidx "
                           "failed: wrong index checksum"))
      << log.text();
  EXPECT_EQ(VerifyState(ns, dir), "failed");
  // The chunks are not blamed for a manifest mismatch.
  for (const Digest& d : digests) EXPECT_TRUE(Exists(store().chunk_store().ChunkPath(d)));
  EXPECT_EQ(result.stats.chunks_corrupt, 0u);

  bad = good;
  for (auto& f : bad.files) {
    if (f.filename == "drive-scsi0.img.fidx") f.size = 12345;
  }
  store_manifest(bad);
  MemoryTaskLogger log2;
  EXPECT_FALSE(Run(target, &log2, nullptr).ok());
  EXPECT_TRUE(HasLine(log2, "verify store1:vm/100/1970-01-01T00:16:40Z/drive-scsi0.img.fidx "
                            "failed: wrong size (12345 != " +
                                std::to_string(3 * kChunk) + ")"))
      << log2.text();

  // A blob whose checksum no longer matches the manifest.
  bad = good;
  for (auto& f : bad.files) {
    if (f.filename == "qemu-server.conf.blob") f.csum[0] ^= 1;
  }
  store_manifest(bad);
  MemoryTaskLogger log3;
  EXPECT_FALSE(Run(target, &log3, nullptr).ok());
  EXPECT_TRUE(HasLine(log3, "verify store1:vm/100/1970-01-01T00:16:40Z/qemu-server.conf.blob "
                            "failed: wrong index checksum"))
      << log3.text();

  store_manifest(good);
  MemoryTaskLogger log4;
  EXPECT_TRUE(Run(target, &log4, nullptr).ok()) << log4.text();
  EXPECT_EQ(VerifyState(ns, dir), "ok");
}

TEST_F(VerifyTest, UnreadableManifestFailsTheSnapshot) {
  BackupNamespace ns = Ns("manifest");
  Backup(ns, "100", 1000, MakeData(kChunk, 50));
  const std::string path = store().SnapshotPath(ns, Dir("100", 1000)) + "/index.json.blob";
  auto raw = test::ReadFile(path);
  raw[raw.size() - 2] ^= 1;
  test::WriteFile(path, raw);
  MemoryTaskLogger log;
  VerifyTaskResult result;
  EXPECT_FALSE(Run(VerifyTarget{ns, std::nullopt, std::nullopt}, &log, &result).ok());
  EXPECT_EQ(result.failed, std::vector<std::string>{"ns/manifest/vm/100/1970-01-01T00:16:40Z"});
  EXPECT_EQ(CountPrefix(log, "verify store1:vm/100/1970-01-01T00:16:40Z - manifest load error: "),
            1u)
      << log.text();
}

// Writes ct/<id>/<time> in `ns` with a fixed index of `image` and a dynamic index of `stream`
// (PBS's buzhash at 64 KiB average).
void BackupFixedAndDynamic(const std::shared_ptr<DataStore>& store, const BackupNamespace& ns,
                           const char* id, int64_t time, const std::vector<uint8_t>& image,
                           const std::vector<uint8_t>& stream) {
  SnapshotWriterOptions o;
  o.ns = ns;
  o.dir = BackupDir{BackupGroup{BackupType::kCt, id}, time};
  auto w = SnapshotWriter::Begin(store, o);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  MemoryByteSource image_src(image);
  ASSERT_TRUE((*w)->AddFixedIndex("disk.img.fidx", image_src, kChunk).ok());
  MemoryByteSource stream_src(stream);
  ASSERT_TRUE((*w)->AddDynamicIndex("root.pxar.didx", stream_src, 64 * 1024).ok());
  ASSERT_TRUE((*w)->Finish().ok());
}

// Indexes that name the same chunk several times (a zero-filled disk, a repeated file) check it
// once, in both chunk orders and with one or several reader threads, for fixed and dynamic
// indexes alike; a missing chunk listed many times is reported and counted once.
TEST_F(VerifyTest, ChunksRepeatedWithinAnIndexAreCheckedOnce) {
  BackupNamespace ns = Ns("repeat");
  auto a = MakeData(kChunk, 20), b = MakeData(kChunk, 21), c = MakeData(kChunk, 22);
  std::vector<uint8_t> image;
  for (const auto* part : {&a, &a, &b, &a, &c, &a, &b})
    image.insert(image.end(), part->begin(), part->end());
  const auto block = MakeData(6 * kChunk, 23);
  std::vector<uint8_t> stream;
  for (int i = 0; i < 4; ++i) stream.insert(stream.end(), block.begin(), block.end());
  BackupFixedAndDynamic(*store_, ns, "300", 1000, image, stream);
  const BackupDir dir{BackupGroup{BackupType::kCt, "300"}, 1000};

  auto fidx = store().OpenFixedIndex(ns, dir, "disk.img.fidx");
  auto didx = store().OpenDynamicIndex(ns, dir, "root.pxar.didx");
  ASSERT_TRUE(fidx.ok() && didx.ok());
  std::map<Digest, uint64_t> distinct;  // digest -> decoded length
  for (size_t i = 0; i < fidx->chunk_count(); ++i) distinct[fidx->digest(i)] = kChunk;
  size_t dynamic_entries = didx->chunk_count();
  for (size_t i = 0; i < didx->chunk_count(); ++i) {
    auto [start, end] = didx->chunk_range(i);
    distinct[didx->entry(i).digest] = end - start;
  }
  ASSERT_EQ(fidx->chunk_count(), 7u);
  ASSERT_LT(distinct.size(), 7 + dynamic_entries);  // the stream repeats itself too
  uint64_t distinct_read = 0, distinct_decoded = 0;
  for (const auto& [d, len] : distinct) {
    auto st = store().chunk_store().StatChunk(d);
    ASSERT_TRUE(st.ok());
    distinct_read += static_cast<uint64_t>(st->st_size);
    distinct_decoded += len;
  }

  for (bool inode_order : {true, false}) {
    for (size_t read_threads : {size_t{1}, size_t{3}}) {
      SCOPED_TRACE(std::to_string(inode_order) + "/" + std::to_string(read_threads));
      MemoryTaskLogger log;
      VerifyTaskResult result;
      VerifyOptions o;
      o.inode_order = inode_order;
      o.read_threads = read_threads;
      o.verify_threads = 2;
      ASSERT_TRUE(Run(VerifyTarget{ns, std::nullopt, std::nullopt}, &log, &result, o).ok())
          << log.text();
      EXPECT_EQ(result.stats.chunks_verified, distinct.size());
      EXPECT_EQ(result.stats.read_bytes, distinct_read);
      EXPECT_EQ(result.stats.decoded_bytes, distinct_decoded);
      EXPECT_EQ(VerifyState(ns, dir), "ok");
    }
  }

  // Chunk `a` (4 of the 7 fixed entries) goes missing: one load failure, one corrupt chunk.
  const Digest missing = fidx->digest(0);
  const std::string path = store().chunk_store().ChunkPath(missing);
  const auto saved = test::ReadFile(path);
  ASSERT_EQ(::unlink(path.c_str()), 0);
  for (bool inode_order : {true, false}) {
    SCOPED_TRACE(inode_order);
    MemoryTaskLogger log;
    VerifyTaskResult result;
    VerifyOptions o;
    o.inode_order = inode_order;
    EXPECT_FALSE(Run(VerifyTarget{ns, std::nullopt, std::nullopt}, &log, &result, o).ok());
    EXPECT_EQ(result.stats.chunks_corrupt, 1u);
    EXPECT_EQ(result.stats.chunks_verified, distinct.size() - 1);
    EXPECT_EQ(CountPrefix(log, "can't verify chunk, load failed - store 'store1', unable to load "
                               "chunk '" + ToHex(missing) + "'"),
              1u)
        << log.text();
    EXPECT_EQ(result.failed, std::vector<std::string>{"ns/repeat/ct/300/1970-01-01T00:16:40Z"});
    EXPECT_TRUE(HasLine(log, "verify store1:ct/300/1970-01-01T00:16:40Z/disk.img.fidx failed: "
                             "chunks could not be verified"))
        << log.text();
  }
  test::WriteFile(path, saved);
  MemoryTaskLogger log;
  EXPECT_TRUE(Run(VerifyTarget{ns, std::nullopt, std::nullopt}, &log, nullptr).ok()) << log.text();
}

// A dynamic index whose table breaks the format is reported with the index parser's wording
// before any chunk is read.
TEST_F(VerifyTest, DamagedDynamicIndexFailsBeforeItsChunks) {
  BackupNamespace ns = Ns("didx");
  BackupFixedAndDynamic(*store_, ns, "301", 1000, MakeData(2 * kChunk, 30),
                        MakeData(4 * kChunk, 31));
  const BackupDir dir{BackupGroup{BackupType::kCt, "301"}, 1000};
  const std::string path = store().SnapshotPath(ns, dir) + "/root.pxar.didx";
  auto raw = test::ReadFile(path);
  ASSERT_GE(raw.size(), 4096u + 2 * 40);
  std::fill(raw.begin() + 4096 + 40, raw.begin() + 4096 + 48, 0);  // entry 1 ends at 0
  test::WriteFile(path, raw);
  MemoryTaskLogger log;
  VerifyTaskResult result;
  EXPECT_FALSE(Run(VerifyTarget{ns, std::nullopt, std::nullopt}, &log, &result).ok());
  EXPECT_EQ(CountPrefix(log, "verify store1:ct/301/1970-01-01T00:16:40Z/root.pxar.didx failed: " +
                                 path + ": dynamic index entry 1 ends at 0, not after the "
                                        "previous end "),
            1u)
      << log.text();
  EXPECT_EQ(result.stats.snapshots_failed, 1u);
  // The fixed index of the same snapshot was still checked (2 chunks) and the dynamic one not.
  EXPECT_EQ(result.stats.chunks_verified, 2u);
}

TEST(DigestSetTest, InsertContainsAndGrowth) {
  DigestSet set;
  std::vector<Digest> all;
  for (int i = 0; i < 5000; ++i) {
    Digest d{};
    d[0] = static_cast<uint8_t>(i);
    d[1] = static_cast<uint8_t>(i >> 8);
    d[31] = 7;
    all.push_back(d);
    EXPECT_TRUE(set.Insert(d));
    EXPECT_FALSE(set.Insert(d));
  }
  EXPECT_EQ(set.size(), 5000u);
  for (const Digest& d : all) EXPECT_TRUE(set.Contains(d));
  Digest other{};
  other[31] = 8;
  EXPECT_FALSE(set.Contains(other));
}

TEST(DigestSetTest, EmptySetHoldsNothing) {
  DigestSet set;
  EXPECT_EQ(set.size(), 0u);
  EXPECT_EQ(set.memory_bytes(), 0u);
  EXPECT_FALSE(set.Contains(Digest{}));
  EXPECT_TRUE(set.Insert(Digest{}));
  EXPECT_TRUE(set.Contains(Digest{}));
}

// Digests that share a shard (first two bytes) and differ anywhere in the tail, down to the
// last byte, stay distinct and ordered; neighbours never inserted are not found.
TEST(DigestSetTest, DigestsSharingAShardDifferInTheTail) {
  DigestSet set;
  std::vector<Digest> in, out;
  for (int i = 0; i < 300; ++i) {
    Digest d{};
    d[0] = 0xab;
    d[1] = 0xcd;
    d[2 + (i % 30)] = static_cast<uint8_t>(1 + i / 30);
    (i % 2 ? out : in).push_back(d);
  }
  for (auto it = in.rbegin(); it != in.rend(); ++it) EXPECT_TRUE(set.Insert(*it));
  for (const Digest& d : in) EXPECT_FALSE(set.Insert(d));
  EXPECT_EQ(set.size(), in.size());
  for (const Digest& d : in) EXPECT_TRUE(set.Contains(d));
  for (const Digest& d : out) EXPECT_FALSE(set.Contains(d));
  Digest other_shard = in[0];
  other_shard[1] = 0xce;
  EXPECT_FALSE(set.Contains(other_shard));
}

// Random digests (as SHA-256 gives them): everything inserted is found, nothing else is, and
// the set holds about 30 bytes per digest plus the fixed shard table, not a hash table's
// doubling slack.
TEST(DigestSetTest, RandomDigestsStayCompact) {
  DigestSet set;
  std::mt19937_64 rng(99);
  auto random_digest = [&] {
    Digest d;
    for (size_t i = 0; i < d.size(); i += 8) {
      uint64_t v = rng();
      std::memcpy(d.data() + i, &v, 8);
    }
    return d;
  };
  constexpr size_t kCount = 200000;
  std::vector<Digest> all;
  for (size_t i = 0; i < kCount; ++i) all.push_back(random_digest());
  for (const Digest& d : all) EXPECT_TRUE(set.Insert(d));
  EXPECT_EQ(set.size(), kCount);
  for (const Digest& d : all) ASSERT_TRUE(set.Contains(d));
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(set.Contains(random_digest()));
  // Per shard at most size + size/8 + 2 entries of 30 bytes, plus the table of 65536 vectors.
  const size_t bound = kCount * 30 * 9 / 8 + 65536 * (2 * 30 + sizeof(std::vector<int>));
  EXPECT_LE(set.memory_bytes(), bound);
  EXPECT_GE(set.memory_bytes(), kCount * 30);
}

// Verify threads insert concurrently; every digest ends up once.
TEST(DigestSetTest, ConcurrentInsertsCountEachDigestOnce) {
  DigestSet set;
  std::atomic<size_t> fresh{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (uint32_t i = 0; i < 20000; ++i) {
        Digest d{};
        const uint32_t v = i + static_cast<uint32_t>(t) * 5000;  // overlapping ranges
        d[0] = static_cast<uint8_t>(v);
        d[1] = static_cast<uint8_t>(v >> 8);
        d[20] = static_cast<uint8_t>(v >> 16);
        if (set.Insert(d)) fresh.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(set.size(), 35000u);
  EXPECT_EQ(fresh.load(), 35000u);
}

}  // namespace
}  // namespace pbskit

namespace pbskit {
namespace {

TEST_F(VerifyTest, AbortStopsAtTheNextChunkAndLeavesTheStateUnwritten) {
  BackupNamespace ns = Ns("abort");
  for (int64_t t : {1000, 2000, 3000}) Backup(ns, "300", t, MakeData(4 * kChunk, 30 + t));
  // Newest first: 3000 verifies; the abort comes as 2000's image check starts.
  test::AbortOnLine log("  check drive-scsi0.img.fidx", 2);
  VerifyOptions options;
  options.abort = log.flag();
  VerifyTaskResult result;
  Status st = Run(VerifyTarget{ns, BackupGroup{BackupType::kVm, "300"}, std::nullopt}, &log,
                  &result, options);
  ASSERT_TRUE(log.raised());
  EXPECT_TRUE(st.IsAborted()) << st.ToString() << "\n" << log.text();
  EXPECT_EQ(st.message(), kTaskAbortMessage);
  EXPECT_EQ(VerifyState(ns, Dir("300", 3000)), "ok");
  EXPECT_EQ(VerifyState(ns, Dir("300", 2000)), "");
  EXPECT_EQ(VerifyState(ns, Dir("300", 1000)), "");
  EXPECT_TRUE(result.failed.empty());
  // "verify <store>:<snapshot>" for 3000 and 2000 only; 1000 is never started.
  size_t started = 0;
  for (const std::string& line : log.lines()) {
    if (line.rfind("verify ", 0) == 0 && line.find("vm/300/1970") != std::string::npos) {
      ++started;
      EXPECT_EQ(line.find("00:16:40Z"), std::string::npos) << line;
    }
  }
  EXPECT_EQ(started, 2u) << log.text();
  EXPECT_EQ(log.text().find("failed"), std::string::npos) << log.text();
  // Only 3000's chunks were verified: the check of 2000 stopped before its first chunk.
  EXPECT_EQ(result.stats.chunks_verified, Digests(ns, Dir("300", 3000)).size());
}

}  // namespace
}  // namespace pbskit
