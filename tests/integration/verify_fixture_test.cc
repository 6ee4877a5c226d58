// Verify on a copy of the real PBS 3.2.4 fixture datastore: 0 errors when intact; one damaged
// chunk fails exactly the snapshots that reference it (verify_state of each checked) and the
// chunk is renamed <digest>.0.bad. Task-log wording follows PBS.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/locks.h"
#include "pbskit/datastore/task_log.h"
#include "pbskit/datastore/verify.h"
#include "pbskit/formats/upid.h"
#include "fixture_copy.h"
#include "test_support.h"

namespace pbskit {
namespace {

constexpr char kSharedChunk[] = "78b871dd519b61a2ce9ae8dc6c03800b5488317f01cc76dad41d7606a1f1ca7d";
constexpr char kUpid[] =
    "UPID:pbs:00001234:00ABCDEF:00000000:66300000:verify:store1:root@pam:";

bool Contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

class VerifyFixtureTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { copy_ = new test::FixtureStoreCopy(); }
  static void TearDownTestSuite() {
    delete copy_;
    copy_ = nullptr;
  }
  void SetUp() override {
    copy_->Reset();
    SetLockRootForTesting(copy_->scratch("locks"));
    path_ = copy_->path();
    auto store = DataStore::Open(path_, "store1");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = *store;
  }
  void TearDown() override { SetLockRootForTesting(""); }

  Status Verify(const VerifyTarget& target, VerifyOptions options, MemoryTaskLogger* log,
                VerifyTaskResult* result = nullptr) {
    return RunVerifyTask(store_, target, options, kUpid, log, result);
  }

  // "ok", "failed" or "" (no verify_state) for a snapshot; `ours`: written by this test's task.
  std::string VerifyState(const char* ns, const char* snapshot, bool ours = true) {
    auto n = BackupNamespace::Parse(ns);
    auto d = BackupDir::Parse(snapshot);
    auto m = store_->LoadManifest(*n, *d);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    if (!m.ok()) return "?";
    const auto* vs = m->unprotected.if_contains("verify_state");
    if (!vs) return "";
    if (ours) {
      EXPECT_EQ(vs->as_object().at("upid").as_string(), kUpid) << snapshot;
    }
    return std::string(vs->as_object().at("state").as_string());
  }

  static test::FixtureStoreCopy* copy_;
  std::string path_;
  std::shared_ptr<DataStore> store_;
};
test::FixtureStoreCopy* VerifyFixtureTest::copy_ = nullptr;

const std::vector<std::pair<const char*, const char*>> kSnapshots = {
    {"", "ct/101/2024-05-01T11:00:00Z"},   {"", "vm/100/2024-05-01T10:00:00Z"},
    {"", "vm/100/2024-05-02T10:00:00Z"},   {"", "vm/200/2024-05-05T12:00:00Z"},
    {"", "vm/201/2024-05-05T13:00:00Z"},   {"a", "host/web/2024-05-03T08:00:00Z"},
    {"a/b", "host/web/2024-05-04T08:00:00Z"}};

TEST_F(VerifyFixtureTest, IntactCopyVerifiesWithZeroErrors) {
  MemoryTaskLogger log;
  VerifyTaskResult result;
  Status st = Verify(VerifyTarget{}, VerifyOptions{}, &log, &result);
  ASSERT_TRUE(st.ok()) << st.ToString() << "\n" << log.text();
  EXPECT_TRUE(result.failed.empty());
  EXPECT_EQ(result.stats.snapshots_verified, 7u);
  EXPECT_EQ(result.stats.chunks_verified, 19u);  // every chunk of the store, each once
  EXPECT_EQ(result.stats.chunks_corrupt, 0u);
  for (const auto& [ns, snap] : kSnapshots) EXPECT_EQ(VerifyState(ns, snap), "ok") << snap;

  const std::string text = log.text();
  EXPECT_TRUE(Contains(text, "verify datastore store1\n")) << text;
  EXPECT_TRUE(Contains(text, "found 6 groups\n")) << text;
  EXPECT_TRUE(Contains(text, "verify group store1:vm/100 (2 snapshots)\n")) << text;
  EXPECT_TRUE(Contains(text, "verify store1:vm/100/2024-05-02T10:00:00Z\n")) << text;
  EXPECT_TRUE(Contains(text, "  check drive-scsi0.img.fidx\n")) << text;
  EXPECT_TRUE(Contains(text, "  verified ")) << text;
  EXPECT_TRUE(Contains(text, "(0 errors)\n")) << text;
  EXPECT_FALSE(Contains(text, "failed")) << text;
  EXPECT_TRUE(Contains(text, "percentage done: 100.00% (6/6 groups)\n")) << text;
  // Groups are visited in PBS order: ct < host < vm; the newest snapshot of a group first.
  EXPECT_LT(text.find("verify group store1:ct/101"), text.find("verify group store1:host/web"));
  EXPECT_LT(text.find("verify group store1:host/web"), text.find("verify group store1:vm/100"));
  EXPECT_LT(text.find("store1:vm/100/2024-05-02"), text.find("store1:vm/100/2024-05-01"));

  // With --ignore-verified every snapshot is skipped now...
  MemoryTaskLogger again;
  VerifyOptions ignore;
  ignore.ignore_verified = true;
  ASSERT_TRUE(Verify(VerifyTarget{}, ignore, &again).ok());
  EXPECT_TRUE(Contains(again.text(), "SKIPPED: verify store1:vm/201/2024-05-05T13:00:00Z "
                                     "(recently verified)\n"))
      << again.text();
  EXPECT_FALSE(Contains(again.text(), "  check ")) << again.text();
  // ...unless the last verification is older than --outdated-after days.
  auto upid = Upid::Parse(kUpid);
  ASSERT_TRUE(upid.ok());
  ignore.outdated_after_days = 1;
  ignore.now = upid->starttime + 86400;  // one day later: not outdated yet
  MemoryTaskLogger fresh;
  ASSERT_TRUE(Verify(VerifyTarget{}, ignore, &fresh).ok());
  EXPECT_FALSE(Contains(fresh.text(), "  check ")) << fresh.text();
  ignore.now = upid->starttime + 2 * 86400;
  MemoryTaskLogger outdated;
  ASSERT_TRUE(Verify(VerifyTarget{}, ignore, &outdated).ok());
  EXPECT_TRUE(Contains(outdated.text(), "  check drive-scsi0.img.fidx\n")) << outdated.text();
}

TEST_F(VerifyFixtureTest, OneDamagedChunkFailsExactlyTheSnapshotsUsingIt) {
  const std::string chunk = path_ + "/.chunks/78b8/" + kSharedChunk;
  auto bytes = test::ReadFile(chunk);
  bytes[bytes.size() / 2] ^= 0x01;  // flip a payload bit: CRC mismatch
  test::WriteFile(chunk, bytes);

  MemoryTaskLogger log;
  VerifyTaskResult result;
  Status st = Verify(VerifyTarget{}, VerifyOptions{}, &log, &result);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "verification failed - please check the log for details");
  std::vector<std::string> failed = result.failed;
  std::sort(failed.begin(), failed.end());
  EXPECT_EQ(failed, (std::vector<std::string>{"vm/100/2024-05-01T10:00:00Z",
                                              "vm/100/2024-05-02T10:00:00Z",
                                              "vm/201/2024-05-05T13:00:00Z"}))
      << log.text();
  std::map<std::string, std::string> want = {
      {"ct/101/2024-05-01T11:00:00Z", "ok"},     {"vm/100/2024-05-01T10:00:00Z", "failed"},
      {"vm/100/2024-05-02T10:00:00Z", "failed"}, {"vm/200/2024-05-05T12:00:00Z", "ok"},
      {"vm/201/2024-05-05T13:00:00Z", "failed"}, {"host/web/2024-05-03T08:00:00Z", "ok"},
      {"host/web/2024-05-04T08:00:00Z", "ok"}};
  for (const auto& [ns, snap] : kSnapshots) EXPECT_EQ(VerifyState(ns, snap), want[snap]) << snap;

  // Renamed once (the first snapshot that met it); later snapshots see it as known corrupt.
  struct stat st_buf;
  EXPECT_NE(::stat(chunk.c_str(), &st_buf), 0);
  EXPECT_EQ(::stat((chunk + ".0.bad").c_str(), &st_buf), 0);
  EXPECT_NE(::stat((chunk + ".1.bad").c_str(), &st_buf), 0);
  EXPECT_EQ(result.stats.chunks_corrupt, 1u);

  const std::string text = log.text();
  EXPECT_TRUE(Contains(text, "can't verify chunk, load failed - store 'store1', unable to load "
                             "chunk '" + std::string(kSharedChunk) +
                             "' - Data blob has wrong CRC checksum"))
      << text;
  EXPECT_TRUE(Contains(text, "corrupted chunk renamed to \"" + chunk + ".0.bad\"\n")) << text;
  EXPECT_TRUE(Contains(text, "chunk " + std::string(kSharedChunk) + " was marked as corrupt\n"))
      << text;
  EXPECT_TRUE(Contains(text, "verify store1:vm/201/2024-05-05T13:00:00Z/drive-scsi0.img.fidx "
                             "failed: chunks could not be verified\n"))
      << text;
  EXPECT_TRUE(Contains(text, "Failed to verify the following snapshots/groups:\n\tvm/100/"))
      << text;
}

TEST_F(VerifyFixtureTest, GroupAndSnapshotTargetsAndNamespaces) {
  MemoryTaskLogger log;
  VerifyTarget group;
  group.group = BackupGroup{BackupType::kVm, "100"};
  ASSERT_TRUE(Verify(group, VerifyOptions{}, &log).ok()) << log.text();
  EXPECT_TRUE(Contains(log.text(), "verify group store1:vm/100 (2 snapshots)\n")) << log.text();
  EXPECT_TRUE(Contains(log.text(), "percentage done: 100.00% (2/2 snapshots)\n")) << log.text();
  EXPECT_EQ(VerifyState("", "vm/200/2024-05-05T12:00:00Z", /*ours=*/false), "ok");  // the fixture's

  VerifyTarget snap;
  snap.ns = *BackupNamespace::Parse("a/b");
  snap.group = BackupGroup{BackupType::kHost, "web"};
  snap.backup_time = 1714809600;  // 2024-05-04T08:00:00Z
  MemoryTaskLogger slog;
  ASSERT_TRUE(Verify(snap, VerifyOptions{}, &slog).ok()) << slog.text();
  EXPECT_EQ(VerifyState("a/b", "host/web/2024-05-04T08:00:00Z"), "ok");
  EXPECT_EQ(VerifyWorkerTypeAndId("store1", snap),
            (std::pair<std::string, std::string>{"verify_snapshot",
                                                 "store1:ns/a/ns/b/host/web/6635EB00"}));

  // Only namespace a (and a/b below it).
  VerifyTarget ns_a;
  ns_a.ns = *BackupNamespace::Parse("a");
  MemoryTaskLogger nlog;
  ASSERT_TRUE(Verify(ns_a, VerifyOptions{}, &nlog).ok()) << nlog.text();
  EXPECT_TRUE(Contains(nlog.text(), "found 2 groups\n")) << nlog.text();

  VerifyTarget missing;
  missing.group = BackupGroup{BackupType::kVm, "999"};
  MemoryTaskLogger mlog;
  EXPECT_EQ(Verify(missing, VerifyOptions{}, &mlog).code(), Code::kNotFound);
}

TEST_F(VerifyFixtureTest, WorkerIdsMatchPbs) {
  VerifyTarget snap;
  snap.group = BackupGroup{BackupType::kCt, "101"};
  snap.backup_time = 1714561200;
  // The fixture's own verify UPIDs carry "store1\x3a-ct-101-663220B0" (escaped).
  EXPECT_EQ(EscapeWorkerId(VerifyWorkerTypeAndId("store1", snap).second),
            "store1\\x3a-ct-101-663220B0");
  VerifyTarget all;
  EXPECT_EQ(VerifyWorkerTypeAndId("store1", all),
            (std::pair<std::string, std::string>{"verify", "store1"}));
}

}  // namespace
}  // namespace pbskit
