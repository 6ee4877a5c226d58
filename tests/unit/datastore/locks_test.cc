#include "pbskit/datastore/locks.h"

#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/hex.h"
#include "test_support.h"

namespace pbskit {
namespace {

BackupNamespace Ns(const std::string& s) { return *BackupNamespace::Parse(s); }
BackupGroup Group(const std::string& s) { return *BackupGroup::Parse(s); }
BackupDir Snap(const std::string& s) { return *BackupDir::Parse(s); }

TEST(LockNameTest, SpecExamples) {
  // FORMATS.md §8.7 and lock_file_path_helper's documentation.
  EXPECT_EQ(LockFileRelativePath(Ns(""), "vm/100"), "vm-100");
  EXPECT_EQ(LockFileRelativePath(Ns(""), "vm/100/2022-05-02T08:11:33Z"),
            "vm-100-2022\\x2d05\\x2d02T08\\x3a11\\x3a33Z");
  EXPECT_EQ(LockFileRelativePath(Ns("ns1/ns2/ns3/ns4/ns5/ns6/ns7"), "vm/100/2022-05-02T08:11:33Z"),
            "ns1:ns2:ns3:ns4:ns5:ns6:ns7/vm-100-2022\\x2d05\\x2d02T08\\x3a11\\x3a33Z");
  EXPECT_EQ(LockFileRelativePath(Ns(""), "vm/100/2022-05-02T08:11:33Z/.index.json.lck"),
            "vm-100-2022\\x2d05\\x2d02T08\\x3a11\\x3a33Z-.index.json.lck");
  EXPECT_EQ(LockFileRelativePath(Ns(""), "host/my-host"), "host-my\\x2dhost");
}

TEST(LockNameTest, LongNamesAreHashed) {
  std::string id(120, 'x');
  id += "-" + std::string(120, 'y');  // escaped: 120 + 4 + 120 > 255
  std::string rpath = "host/" + id + "/2022-05-02T08:11:33Z";
  std::string enc = SystemdEscapePath(rpath);
  ASSERT_GE(enc.size(), 255u);
  std::string got = LockFileRelativePath(Ns("a/b"), rpath);
  std::string expect = "a:b/hashed/" + enc.substr(0, 80) + "..." + enc.substr(enc.size() - 80) +
                       "-" + ToHex(Sha256(rpath));
  EXPECT_EQ(got, expect);
  // Just below the limit stays unhashed.
  std::string id2(254 - 5, 'z');  // "host-" + id2 = 254 bytes
  EXPECT_EQ(LockFileRelativePath(Ns(""), "host/" + id2), "host-" + id2);
  EXPECT_EQ(LockFileRelativePath(Ns(""), "host/" + id2 + "z").rfind("hashed/", 0), 0u);
}

class LocksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLockRootForTesting(tmp_ / "run/locks");
    std::filesystem::create_directories(tmp_ / "store/vm/100/2024-05-01T10:00:00Z");
  }
  void TearDown() override { SetLockRootForTesting(""); }

  test::TempDir tmp_;
  DatastoreLocks locks_{"store1", tmp_ / "store", PosixFilesystem()};
};

TEST_F(LocksTest, LockRootAndPaths) {
  EXPECT_EQ(LockRoot(), tmp_ / "run/locks");
  EXPECT_FALSE(OldLockingActive());
  EXPECT_EQ(locks_.GroupLockPath(Ns(""), Group("vm/100")), tmp_ / "run/locks/store1/vm-100");
  EXPECT_EQ(locks_.ManifestLockPath(Ns("a"), Snap("vm/100/2024-05-01T10:00:00Z")),
            tmp_ / "run/locks/store1/a/vm-100-2024\\x2d05\\x2d01T10\\x3a00\\x3a00Z-.index.json.lck");
  EXPECT_EQ(locks_.OldManifestLockPath(Ns("a/b"), Snap("vm/100/2024-05-01T10:00:00Z")),
            tmp_ / "run/locks/store1/ns/a/ns/b/vm/100/2024-05-01T10:00:00Z/"
                   "2024-05-01T10:00:00Z.index.json.lck");
}

TEST_F(LocksTest, GroupLockIsExclusiveAndCreatesLockFile) {
  auto g1 = locks_.LockGroup(Ns(""), Group("vm/100"));
  ASSERT_TRUE(g1.ok()) << g1.status().ToString();
  std::string path = tmp_ / "run/locks/store1/vm-100";
  EXPECT_EQ((*g1)->path(), path);
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                std::filesystem::perms::group_read | std::filesystem::perms::group_write);
  // flock conflicts between open file descriptions, so a second attempt in-process fails too.
  auto g2 = locks_.LockGroup(Ns(""), Group("vm/100"));
  ASSERT_FALSE(g2.ok());
  EXPECT_TRUE(g2.status().IsBusy());
  EXPECT_NE(g2.status().message().find("unable to acquire backup group lock"), std::string::npos);
  // Other groups and namespaces are independent.
  EXPECT_TRUE(locks_.LockGroup(Ns(""), Group("vm/101")).ok());
  EXPECT_TRUE(locks_.LockGroup(Ns("a"), Group("vm/100")).ok());
  g1->reset();
  EXPECT_TRUE(locks_.LockGroup(Ns(""), Group("vm/100")).ok());
}

TEST_F(LocksTest, ExclusiveLockAcrossProcesses) {
  auto held = locks_.LockSnapshot(Ns(""), Snap("vm/100/2024-05-01T10:00:00Z"));
  ASSERT_TRUE(held.ok());
  pid_t pid = fork();
  if (pid == 0) {
    DatastoreLocks other("store1", tmp_ / "store", PosixFilesystem());
    auto ex = other.LockSnapshot(Ns(""), Snap("vm/100/2024-05-01T10:00:00Z"));
    auto sh = other.LockSnapshotShared(Ns(""), Snap("vm/100/2024-05-01T10:00:00Z"));
    _exit(!ex.ok() && ex.status().IsBusy() && !sh.ok() && sh.status().IsBusy() ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  held->reset();
  pid = fork();
  if (pid == 0) {
    DatastoreLocks other("store1", tmp_ / "store", PosixFilesystem());
    _exit(other.LockSnapshot(Ns(""), Snap("vm/100/2024-05-01T10:00:00Z")).ok() ? 0 : 1);
  }
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST_F(LocksTest, SharedSnapshotLocks) {
  BackupDir d = Snap("vm/100/2024-05-01T10:00:00Z");
  auto s1 = locks_.LockSnapshotShared(Ns(""), d);
  auto s2 = locks_.LockSnapshotShared(Ns(""), d);
  ASSERT_TRUE(s1.ok() && s2.ok());
  auto ex = locks_.LockSnapshot(Ns(""), d);
  ASSERT_FALSE(ex.ok());
  EXPECT_TRUE(ex.status().IsBusy());
  EXPECT_NE(ex.status().message().find("unable to acquire snapshot lock"), std::string::npos);
  s1->reset();
  s2->reset();
  EXPECT_TRUE(locks_.LockSnapshot(Ns(""), d).ok());
}

TEST_F(LocksTest, RemovedLockFileIsRecreated) {
  BackupDir d = Snap("vm/100/2024-05-01T10:00:00Z");
  auto m = locks_.LockManifest(Ns(""), d);
  ASSERT_TRUE(m.ok());
  m->reset();
  auto s = locks_.LockSnapshot(Ns(""), d);
  ASSERT_TRUE(s.ok());
  s->reset();
  locks_.RemoveSnapshotLockFiles(Ns(""), d);
  EXPECT_FALSE(std::filesystem::exists(locks_.SnapshotLockPath(Ns(""), d)));
  EXPECT_FALSE(std::filesystem::exists(locks_.ManifestLockPath(Ns(""), d)));
  EXPECT_TRUE(locks_.LockSnapshot(Ns(""), d).ok());
}

TEST_F(LocksTest, OldLockingFlocksDirectories) {
  std::filesystem::create_directories(tmp_ / "run");
  test::WriteText(tmp_ / "run/old-locking", "");
  ASSERT_TRUE(OldLockingActive());
  auto g = locks_.LockGroup(Ns(""), Group("vm/100"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ((*g)->path(), tmp_ / "store/vm/100");
  // The directory itself is flocked: a separate open + flock sees it busy.
  int fd = open((tmp_ / "store/vm/100").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  EXPECT_NE(flock(fd, LOCK_EX | LOCK_NB), 0);
  close(fd);
  EXPECT_FALSE(std::filesystem::exists(tmp_ / "run/locks/store1/vm-100"));
  // Missing directory: NotFound with the old wording.
  auto missing = locks_.LockGroup(Ns(""), Group("vm/999"));
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().IsNotFound());
  EXPECT_NE(missing.status().message().find("for locking"), std::string::npos);
  // Manifest lock uses the pre-3.3.5 path.
  BackupDir d = Snap("vm/100/2024-05-01T10:00:00Z");
  auto m = locks_.LockManifest(Ns(""), d);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)->path(), locks_.OldManifestLockPath(Ns(""), d));
  std::filesystem::remove(tmp_ / "run/old-locking");
}

}  // namespace
}  // namespace pbskit
