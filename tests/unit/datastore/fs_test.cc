#include "pbskit/datastore/fs.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "pbskit/datastore/fault_fs.h"
#include "test_support.h"

namespace pbskit {
namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(FsTest, WriteFileAtomicWritesContentAndMode) {
  test::TempDir tmp;
  Filesystem* fs = PosixFilesystem();
  std::string path = tmp / "file";
  ASSERT_TRUE(WriteFileAtomic(fs, path, Bytes("hello"), SyncLevel::kFile, 0640).ok());
  EXPECT_EQ(test::ReadText(path), "hello");
  auto st = fs->Stat(path);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->st_mode & 0777, 0640u);
  ASSERT_TRUE(WriteFileAtomic(fs, path, std::string_view("replaced"), SyncLevel::kNone).ok());
  EXPECT_EQ(test::ReadText(path), "replaced");
  EXPECT_EQ(Names(tmp.path()), std::vector<std::string>{"file"});  // no temp file left
}

TEST(FsTest, ReadWholeFileAndErrors) {
  test::TempDir tmp;
  Filesystem* fs = PosixFilesystem();
  auto missing = ReadWholeFile(fs, tmp / "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().IsNotFound());
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
  std::vector<uint8_t> big(300000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7);
  test::WriteFile(tmp / "big", big);
  auto data = ReadWholeFile(fs, tmp / "big");
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(*data, big);
  // A directory cannot be read as a file: IoError, not Corruption.
  auto dir = ReadWholeFile(fs, tmp.path());
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), Code::kIoError);
}

TEST(FsTest, CreateFileExclusive) {
  test::TempDir tmp;
  Filesystem* fs = PosixFilesystem();
  ASSERT_TRUE(CreateFileExclusive(fs, tmp / "owner", Bytes("root@pam\n"), SyncLevel::kFile).ok());
  Status again = CreateFileExclusive(fs, tmp / "owner", Bytes("x\n"), SyncLevel::kNone);
  EXPECT_EQ(again.code(), Code::kAlreadyExists);
  EXPECT_EQ(test::ReadText(tmp / "owner"), "root@pam\n");
}

TEST(FsTest, MkdirAllRemoveTreeAndPaths) {
  test::TempDir tmp;
  Filesystem* fs = PosixFilesystem();
  ASSERT_TRUE(MkdirAll(fs, tmp / "a/b/c").ok());
  ASSERT_TRUE(MkdirAll(fs, tmp / "a/b/c").ok());
  test::WriteText(tmp / "a/b/c/f", "x");
  EXPECT_EQ(MkdirAll(fs, tmp / "a/b/c/f").code(), Code::kAlreadyExists);
  ASSERT_TRUE(RemoveTree(fs, tmp / "a").ok());
  EXPECT_FALSE(*PathExists(fs, tmp / "a"));
  EXPECT_TRUE(RemoveTree(fs, tmp / "a").IsNotFound());
  EXPECT_EQ(DirName("/x/y/z"), "/x/y");
  EXPECT_EQ(DirName("z"), ".");
  EXPECT_EQ(BaseName("/x/y/z"), "z");
  EXPECT_EQ(JoinPath("/x/", "y"), "/x/y");
  EXPECT_EQ(*ParseSyncLevel("file"), SyncLevel::kFile);
  EXPECT_FALSE(ParseSyncLevel("always").ok());
}

TEST(FsTest, TouchAtimeKeepsMtime) {
  test::TempDir tmp;
  Filesystem* fs = PosixFilesystem();
  test::WriteText(tmp / "f", "x");
  struct timespec old[2] = {{1000, 0}, {2000, 0}};
  ASSERT_TRUE(fs->Utimens(tmp / "f", old).ok());
  ASSERT_TRUE(TouchAtime(fs, tmp / "f").ok());
  auto st = fs->Stat(tmp / "f");
  ASSERT_TRUE(st.ok());
  EXPECT_GT(st->st_atim.tv_sec, 1000);
  EXPECT_EQ(st->st_mtim.tv_sec, 2000);
  EXPECT_TRUE(TouchAtime(fs, tmp / "missing").IsNotFound());
}

TEST(FaultFsTest, FailedRenameLeavesOldContentAndNoTempFile) {
  test::TempDir tmp;
  FaultFilesystem fs;
  std::string path = tmp / "file";
  ASSERT_TRUE(WriteFileAtomic(&fs, path, Bytes("old"), SyncLevel::kFile).ok());
  fs.FailNth(FsOp::kRename, 1, EIO);
  Status st = WriteFileAtomic(&fs, path, Bytes("new"), SyncLevel::kFile);
  EXPECT_EQ(st.code(), Code::kIoError);
  EXPECT_NE(st.message().find("injected"), std::string::npos);
  EXPECT_EQ(test::ReadText(path), "old");
  EXPECT_EQ(Names(tmp.path()), std::vector<std::string>{"file"});
  // The rule fired once: the next write works.
  ASSERT_TRUE(WriteFileAtomic(&fs, path, Bytes("new"), SyncLevel::kFile).ok());
  EXPECT_EQ(test::ReadText(path), "new");
}

TEST(FaultFsTest, CrashMidWriteNeverExposesPartialFile) {
  test::TempDir tmp;
  FaultFilesystem fs;
  std::string path = tmp / "file";
  std::string payload(1000, 'x');
  fs.CrashAtNth(FsOp::kWrite, 1, /*torn_write=*/true);
  Status st = WriteFileAtomic(&fs, path, Bytes(payload), SyncLevel::kFile);
  EXPECT_EQ(st.code(), Code::kAborted);
  EXPECT_TRUE(fs.crashed());
  EXPECT_FALSE(*PathExists(PosixFilesystem(), path));
  // After the crash every mutating call fails.
  EXPECT_EQ(fs.Mkdir(tmp / "d", 0755).code(), Code::kAborted);
  fs.Reset();
  EXPECT_FALSE(fs.crashed());
}

TEST(FaultFsTest, CrashPointsEnumerateEveryCall) {
  test::TempDir tmp;
  FaultFilesystem probe;
  ASSERT_TRUE(WriteFileAtomic(&probe, tmp / "f", Bytes("data"), SyncLevel::kFile).ok());
  uint64_t calls = probe.CallCount(FsOp::kAny);
  ASSERT_GE(calls, 4u);  // mkstemp, write, fsync, rename, dir fsync ...
  for (uint64_t n = 1; n <= calls; ++n) {
    test::TempDir t;
    test::WriteText(t / "f", "before");
    FaultFilesystem fs;
    fs.CrashAtNth(FsOp::kAny, n);
    Status st = WriteFileAtomic(&fs, t / "f", Bytes("data"), SyncLevel::kFile);
    std::string content = test::ReadText(t / "f");
    // Whatever the crash point: the file holds either the old or the complete new content.
    EXPECT_TRUE(content == "before" || content == "data") << "crash at " << n << ": " << content;
    if (!st.ok()) {
      EXPECT_EQ(st.code(), Code::kAborted);
    }
  }
}

TEST(FaultFsTest, PowerLossDropsUnsyncedWrites) {
  test::TempDir tmp;
  FaultFilesystem fs;
  // Not synced at all: after power loss the rename is undone and the temp file is empty.
  ASSERT_TRUE(WriteFileAtomic(&fs, tmp / "unsynced", Bytes("data"), SyncLevel::kNone).ok());
  ASSERT_TRUE(fs.DropUnsyncedData().ok());
  EXPECT_FALSE(*PathExists(PosixFilesystem(), tmp / "unsynced"));
  // Synced per file: survives.
  ASSERT_TRUE(WriteFileAtomic(&fs, tmp / "synced", Bytes("data"), SyncLevel::kFile).ok());
  ASSERT_TRUE(fs.DropUnsyncedData().ok());
  EXPECT_EQ(test::ReadText(tmp / "synced"), "data");
  // Written in place without fsync: truncated back to its durable size.
  auto fd = fs.Open(tmp / "inplace", O_WRONLY | O_CREAT, 0644);
  ASSERT_TRUE(fd.ok());
  ASSERT_TRUE(fs.PWriteAll(*fd, "abc", 3, 0).ok());
  ASSERT_TRUE(fs.Fsync(*fd).ok());
  ASSERT_TRUE(fs.PWriteAll(*fd, "def", 3, 3).ok());
  ASSERT_TRUE(fs.Close(*fd).ok());
  ASSERT_TRUE(fs.DropUnsyncedData().ok());
  EXPECT_EQ(test::ReadText(tmp / "inplace"), "abc");
}

TEST(FaultFsTest, FailNthCountsPerKind) {
  test::TempDir tmp;
  FaultFilesystem fs;
  fs.FailNth(FsOp::kMkdir, 2, ENOSPC);
  EXPECT_TRUE(fs.Mkdir(tmp / "a", 0755).ok());
  Status st = fs.Mkdir(tmp / "b", 0755);
  EXPECT_EQ(st.code(), Code::kIoError);
  EXPECT_NE(st.message().find("No space"), std::string::npos);
  EXPECT_TRUE(fs.Mkdir(tmp / "c", 0755).ok());
  EXPECT_EQ(fs.CallCount(FsOp::kMkdir), 3u);
}

}  // namespace
}  // namespace pbskit
