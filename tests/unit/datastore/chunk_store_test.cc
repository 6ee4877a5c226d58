#include "pbskit/datastore/chunk_store.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "pbskit/datastore/fault_fs.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "test_support.h"

namespace pbskit {
namespace {

// Raw blob bytes with the given magic and `payload` bytes after the 12-byte header (the chunk
// store does not decode blobs, it only looks at magic and size).
std::vector<uint8_t> FakeBlob(const std::array<uint8_t, 8>& magic, size_t payload, uint8_t fill) {
  std::vector<uint8_t> b(magic.begin(), magic.end());
  b.resize(kBlobHeaderSize + payload, fill);
  return b;
}

Digest D(uint8_t a, uint8_t b, uint8_t c = 0) {
  Digest d{};
  d[0] = a;
  d[1] = b;
  d[2] = c;
  return d;
}

// A chunk store with only the prefix directories the tests use (creating all 65536 is slow on
// busy disks; one test checks the full layout).
std::unique_ptr<ChunkStore> SmallStore(const std::string& base) {
  std::filesystem::create_directories(base + "/.chunks");
  test::WriteText(base + "/.lock", "");
  for (const char* p : {"0000", "0001", "0101", "1234", "abcd", "abce", "dead", "ffff"}) {
    std::filesystem::create_directory(base + "/.chunks/" + p);
  }
  auto cs = ChunkStore::Open(base, PosixFilesystem(), SyncLevel::kFile);
  return cs.ok() ? std::move(cs).value() : nullptr;
}

class ChunkStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = SmallStore(tmp_ / "store");
    ASSERT_TRUE(store_ != nullptr);
  }
  std::vector<uint8_t> Read(const Digest& d) { return test::ReadFile(store_->ChunkPath(d)); }

  test::TempDir tmp_;
  std::unique_ptr<ChunkStore> store_;
};

TEST(ChunkStoreCreateTest, CreateLayout) {
  test::TempDir tmp_;
  std::string base = tmp_ / "store";
  ASSERT_TRUE(ChunkStore::Create(base, PosixFilesystem(), SyncLevel::kFile).ok());
  auto mode = [](const std::string& p) {
    return std::filesystem::status(p).permissions() & std::filesystem::perms::all;
  };
  using P = std::filesystem::perms;
  EXPECT_EQ(mode(base + "/.chunks"), P::owner_all | P::group_read | P::group_exec);
  EXPECT_TRUE(std::filesystem::is_regular_file(base + "/.lock"));
  EXPECT_EQ(std::filesystem::file_size(base + "/.lock"), 0u);
  size_t dirs = 0;
  for (const auto& e : std::filesystem::directory_iterator(base + "/.chunks")) {
    ASSERT_TRUE(e.is_directory());
    ASSERT_EQ(e.path().filename().string().size(), 4u);
    ++dirs;
  }
  EXPECT_EQ(dirs, 65536u);
  EXPECT_TRUE(std::filesystem::is_directory(base + "/.chunks/0000"));
  EXPECT_TRUE(std::filesystem::is_directory(base + "/.chunks/ffff"));
  EXPECT_EQ(mode(base + "/.chunks/abcd"), P::owner_all | P::group_read | P::group_exec);

  auto again = ChunkStore::Create(base, PosixFilesystem(), SyncLevel::kNone);
  EXPECT_EQ(again.status().code(), Code::kAlreadyExists);
  EXPECT_EQ(ChunkStore::Create("relative/x", PosixFilesystem(), SyncLevel::kNone).status().code(),
            Code::kInvalidArgument);
  EXPECT_TRUE(ChunkStore::Open(tmp_ / "nothing", PosixFilesystem(), SyncLevel::kNone)
                  .status()
                  .IsNotFound());
}

TEST_F(ChunkStoreTest, ChunkPathMatchesSpecVector) {
  auto d = DigestFromHex(kZeroChunkDigestHex);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(store_->ChunkPath(*d),
            tmp_ / "store/.chunks/bb9f/"
                   "bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8");
}

TEST_F(ChunkStoreTest, InsertNewAndExistingSameSize) {
  std::string payload(5000, 'a');
  auto blob = DataBlob::Encode(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size()),
      nullptr, true);
  ASSERT_TRUE(blob.ok());
  Digest d = Sha256(payload);
  std::filesystem::create_directory(store_->PrefixDir(d));
  auto r = store_->InsertChunk(d, blob->raw());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->existed);
  EXPECT_EQ(r->encoded_size, blob->size());
  EXPECT_EQ(Read(d), blob->raw());
  EXPECT_EQ(*store_->LoadChunk(d), blob->raw());

  // Same size again: kept and touched (atime moves, mtime stays).
  struct timespec old[2] = {{1000, 0}, {2000, 0}};
  ASSERT_TRUE(PosixFilesystem()->Utimens(store_->ChunkPath(d), old).ok());
  r = store_->InsertChunk(d, blob->raw());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->existed);
  auto st = store_->StatChunk(d);
  ASSERT_TRUE(st.ok());
  EXPECT_GT(st->st_atim.tv_sec, 1000);
  EXPECT_EQ(st->st_mtim.tv_sec, 2000);
  // No temp files left behind in the prefix dir.
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(store_->PrefixDir(d))) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1u);
}

TEST_F(ChunkStoreTest, InsertReplaceRules) {
  Digest d = D(0x12, 0x34);
  auto plain_small = FakeBlob(kCompressedBlobMagic, 100, 1);
  auto plain_big = FakeBlob(kCompressedBlobMagic, 200, 2);
  auto enc_small = FakeBlob(kEncrCompressedBlobMagic, 100, 3);
  auto enc_unc = FakeBlob(kEncryptedBlobMagic, 150, 4);
  auto enc_unc2 = FakeBlob(kEncryptedBlobMagic, 160, 5);

  // Existing zero-length file is overwritten.
  test::WriteFile(store_->ChunkPath(d), {});
  auto r = store_->InsertChunk(d, plain_small);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->existed);
  EXPECT_EQ(Read(d), plain_small);

  // Unencrypted, existing smaller: keep existing.
  r = store_->InsertChunk(d, plain_big);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->existed);
  EXPECT_EQ(Read(d), plain_small);

  // Encrypted over unencrypted (different size): refused, file unchanged.
  r = store_->InsertChunk(d, enc_small = FakeBlob(kEncrCompressedBlobMagic, 90, 3));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("Overwriting unencrypted chunk"), std::string::npos);
  EXPECT_EQ(Read(d), plain_small);

  // Unencrypted, existing bigger: replaced.
  Digest d2 = D(0x12, 0x34, 1);
  test::WriteFile(store_->ChunkPath(d2), plain_big);
  r = store_->InsertChunk(d2, plain_small);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->existed);
  EXPECT_EQ(Read(d2), plain_small);

  // Existing encrypted+uncompressed, new encrypted uncompressed of another size: refused.
  Digest d3 = D(0xab, 0xcd);
  test::WriteFile(store_->ChunkPath(d3), enc_unc);
  r = store_->InsertChunk(d3, enc_unc2);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("Overwriting existing (encrypted) chunk"),
            std::string::npos);
  EXPECT_EQ(Read(d3), enc_unc);

  // Existing encrypted, new encrypted compressed of another size: keep the first one.
  r = store_->InsertChunk(d3, enc_small);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->existed);
  EXPECT_EQ(Read(d3), enc_unc);

  // Not a regular file: error.
  Digest d4 = D(0xab, 0xce);
  std::filesystem::create_directory(store_->ChunkPath(d4));
  EXPECT_FALSE(store_->InsertChunk(d4, plain_small).ok());

  // Too short to be a blob.
  EXPECT_EQ(store_->InsertChunk(D(1, 1), std::vector<uint8_t>(5)).status().code(),
            Code::kInvalidArgument);
}

// Only chunk files (no temp files) in a prefix directory.
std::vector<std::string> DirNames(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST_F(ChunkStoreTest, LargeAndOddSizedChunksAreWrittenByteExact) {
  // Below the O_DIRECT threshold, a whole number of blocks, and an unaligned tail.
  const size_t sizes[] = {100, 64 * 1024 - 12, 64 * 1024 - 11, 1024 * 1024 - 12, 4194304 + 333};
  uint8_t n = 0;
  for (size_t payload : sizes) {
    std::vector<uint8_t> blob = FakeBlob(kCompressedBlobMagic, payload, 0);
    for (size_t i = kBlobHeaderSize; i < blob.size(); ++i) blob[i] = static_cast<uint8_t>(i * 7);
    Digest d = D(0xab, 0xcd, n++);
    auto r = store_->InsertChunk(d, blob);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_FALSE(r->existed);
    EXPECT_EQ(Read(d), blob) << payload;
  }
  EXPECT_EQ(DirNames(tmp_ / "store/.chunks/abcd").size(), std::size(sizes));  // no temp files
}

TEST(ChunkStoreFaultTest, DirectWriteFailuresFallBackAndRealErrorsLeaveNothing) {
  test::TempDir tmp;
  std::string base = tmp / "store";
  ASSERT_TRUE(SmallStore(base) != nullptr);
  FaultFilesystem ffs;
  auto cs = ChunkStore::Open(base, &ffs, SyncLevel::kFile);
  ASSERT_TRUE(cs.ok());
  std::vector<uint8_t> blob = FakeBlob(kUncompressedBlobMagic, 300000, 0x5a);
  // 1: the O_DIRECT open is refused (a file system without O_DIRECT).
  ffs.Reset();
  ffs.FailNth(FsOp::kOpen, 2, EINVAL);
  auto a = (*cs)->InsertChunk(D(0x12, 0x34, 1), blob);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(test::ReadFile((*cs)->ChunkPath(D(0x12, 0x34, 1))), blob);
  // 2: the direct write itself fails; the buffered write starts again at offset 0.
  ffs.Reset();
  ffs.FailNth(FsOp::kWrite, 1, EINVAL);
  auto b = (*cs)->InsertChunk(D(0x12, 0x34, 2), blob);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(test::ReadFile((*cs)->ChunkPath(D(0x12, 0x34, 2))), blob);
  // 3: the buffered write fails too (a full disk): an error naming the chunk, no file left.
  ffs.Reset();
  ffs.FailNth(FsOp::kWrite, 1, ENOSPC);
  ffs.FailNth(FsOp::kWrite, 2, ENOSPC);
  auto c = (*cs)->InsertChunk(D(0x12, 0x34, 3), blob);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("inserting chunk on store"), std::string::npos)
      << c.status().ToString();
  EXPECT_EQ(DirNames(base + "/.chunks/1234").size(), 2u);
}

TEST_F(ChunkStoreTest, ConcurrentInsertsOfOneDigestWriteItOnce) {
  std::vector<uint8_t> blob = FakeBlob(kCompressedBlobMagic, 200000, 0x33);
  const Digest d = D(0xde, 0xad);
  std::atomic<int> written{0}, kept{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      auto r = store_->InsertChunk(d, blob);
      if (!r.ok()) {
        failed++;
      } else if (r->existed) {
        kept++;
      } else {
        written++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(written.load() + kept.load(), 6);
  EXPECT_GE(written.load(), 1);
  EXPECT_EQ(Read(d), blob);
  EXPECT_EQ(DirNames(tmp_ / "store/.chunks/dead"), std::vector<std::string>{ToHex(d)});
}

TEST_F(ChunkStoreTest, TouchAndMissingChunks) {
  Digest d = D(0x00, 0x01);
  EXPECT_TRUE(store_->TouchChunk(d).IsNotFound());
  auto cond = store_->CondTouchChunk(d);
  ASSERT_TRUE(cond.ok());
  EXPECT_FALSE(*cond);
  EXPECT_TRUE(store_->LoadChunk(d).status().IsNotFound());
  EXPECT_TRUE(store_->ChunkInode(d).status().IsNotFound());
  ASSERT_TRUE(store_->InsertChunk(d, FakeBlob(kUncompressedBlobMagic, 10, 0)).ok());
  EXPECT_TRUE(*store_->CondTouchChunk(d));
  auto ino = store_->ChunkInode(d);
  ASSERT_TRUE(ino.ok());
  EXPECT_GT(*ino, 0u);
}

TEST_F(ChunkStoreTest, RenameCorruptChunkUsesFirstFreeIndexThenNine) {
  Digest d = D(0xde, 0xad);
  std::string hex = ToHex(d);
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(store_->InsertChunk(d, FakeBlob(kUncompressedBlobMagic, 10 + i, 0)).ok());
    auto p = store_->RenameCorruptChunk(d);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    int expect = i < 10 ? i : 9;
    EXPECT_EQ(*p, store_->PrefixDir(d) + "/" + hex + "." + std::to_string(expect) + ".bad");
  }
  // The last rename overwrote .9.bad with the newest corrupt file.
  EXPECT_EQ(test::ReadFile(store_->PrefixDir(d) + "/" + hex + ".9.bad").size(),
            kBlobHeaderSize + 21);
  EXPECT_TRUE(store_->RenameCorruptChunk(d).status().IsNotFound());
}

TEST(ChunkFileNameTest, Parse) {
  std::string hex(64, 'a');
  auto c = ParseChunkFileName(hex);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->kind, ChunkFileInfo::Kind::kChunk);
  auto b = ParseChunkFileName(hex + ".7.bad");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->kind, ChunkFileInfo::Kind::kBad);
  EXPECT_EQ(b->bad_index, 7);
  auto u = ParseChunkFileName(hex + ".using");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->kind, ChunkFileInfo::Kind::kUsing);
  for (std::string bad : {hex + ".tmp_abcdef", hex.substr(1), std::string(64, 'A'),
                          hex + ".x.bad", hex + ".0.baa", std::string("lost+found")}) {
    EXPECT_FALSE(ParseChunkFileName(bad).has_value()) << bad;
  }
}

TEST_F(ChunkStoreTest, ForEachChunkFileSeesChunksBadAndUsingOnly) {
  Digest a = D(0x00, 0x00, 1), b = D(0xff, 0xff, 2);
  ASSERT_TRUE(store_->InsertChunk(a, FakeBlob(kUncompressedBlobMagic, 1, 0)).ok());
  ASSERT_TRUE(store_->InsertChunk(b, FakeBlob(kUncompressedBlobMagic, 2, 0)).ok());
  test::WriteText(store_->ChunkPath(b) + ".3.bad", "x");
  test::WriteText(store_->ChunkPath(b) + ".using", "");
  test::WriteText(store_->ChunkPath(a) + ".tmp_Xy12ab", "partial");
  test::WriteText(store_->PrefixDir(a) + "/README", "foreign");
  std::filesystem::create_symlink(store_->ChunkPath(a), store_->PrefixDir(b) + "/" + ToHex(D(0xff, 0xff, 9)));
  std::vector<std::string> seen;
  Status st = store_->ForEachChunkFile([&](const ChunkFileInfo& info) {
    seen.push_back(info.name);
    EXPECT_TRUE(S_ISREG(info.st.st_mode));
    EXPECT_EQ(info.path, store_->PrefixDir(info.digest) + "/" + info.name);
    return Status::OK();
  });
  ASSERT_TRUE(st.ok());
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{ToHex(a), ToHex(b), ToHex(b) + ".3.bad",
                                            ToHex(b) + ".using"}));
  // The callback's error stops the walk.
  int calls = 0;
  st = store_->ForEachChunkFile([&](const ChunkFileInfo&) {
    ++calls;
    return Status::Aborted("stop");
  });
  EXPECT_EQ(st.code(), Code::kAborted);
  EXPECT_EQ(calls, 1);
}

// Runs `fn` in a child process and returns its exit code.
int InChild(const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

TEST(ChunkStoreLockTest, SharedAndExclusiveAcrossProcesses) {
  test::TempDir tmp;
  std::string base = tmp / "store";
  ASSERT_TRUE(SmallStore(base) != nullptr);
  // A child holding a shared lock blocks our exclusive lock; the pipe keeps it alive.
  int to_child[2], from_child[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(from_child), 0);
  pid_t pid = fork();
  if (pid == 0) {
    auto cs = ChunkStore::Open(base, PosixFilesystem(), SyncLevel::kNone);
    auto lock = cs.ok() ? (*cs)->LockShared() : Result<std::unique_ptr<ProcessLockGuard>>(cs.status());
    char c = lock.ok() ? 'S' : 'F';
    if (write(from_child[1], &c, 1) != 1) _exit(3);
    if (read(to_child[0], &c, 1) != 1) _exit(4);
    _exit(0);  // releases the lock
  }
  char c = 0;
  ASSERT_EQ(read(from_child[0], &c, 1), 1);
  ASSERT_EQ(c, 'S');
  auto cs = ChunkStore::Open(base, PosixFilesystem(), SyncLevel::kNone);
  ASSERT_TRUE(cs.ok());
  auto ex = (*cs)->TryLockExclusive();
  ASSERT_FALSE(ex.ok());
  EXPECT_TRUE(ex.status().IsBusy()) << ex.status().ToString();
  EXPECT_NE(ex.status().message().find("unable to get exclusive lock"), std::string::npos);
  // Shared locks coexist.
  auto sh = (*cs)->LockShared();
  ASSERT_TRUE(sh.ok()) << sh.status().ToString();
  sh->reset();
  ASSERT_EQ(write(to_child[1], "x", 1), 1);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  // Now we get the exclusive lock; another process can neither share nor own it.
  ex = (*cs)->TryLockExclusive();
  ASSERT_TRUE(ex.ok()) << ex.status().ToString();
  EXPECT_TRUE((*ex)->exclusive());
  EXPECT_TRUE((*cs)->TryLockExclusive().status().IsBusy());  // already ours
  int rc = InChild([&] {
    auto other = ChunkStore::Open(base + "/", PosixFilesystem(), SyncLevel::kNone);
    if (!other.ok()) return 10;
    auto s = (*other)->LockShared();
    auto e = (*other)->TryLockExclusive();
    return (!s.ok() && s.status().IsBusy() && !e.ok() && e.status().IsBusy()) ? 0 : 11;
  });
  EXPECT_EQ(rc, 0);
  ex->reset();
  rc = InChild([&] {
    auto other = ChunkStore::Open(base + "/", PosixFilesystem(), SyncLevel::kNone);
    return other.ok() && (*other)->TryLockExclusive().ok() ? 0 : 12;
  });
  EXPECT_EQ(rc, 0);
}

TEST(ChunkStoreLockTest, OwnSharedLocksAndOldestWriter) {
  test::TempDir tmp;
  auto cs = SmallStore(tmp / "s");
  ASSERT_TRUE(cs != nullptr);
  EXPECT_FALSE(cs->OldestSharedLockTime().has_value());
  auto s1 = cs->LockShared();
  ASSERT_TRUE(s1.ok());
  auto oldest = cs->OldestSharedLockTime();
  ASSERT_TRUE(oldest.has_value());
  EXPECT_GT(*oldest, 1700000000);
  // Like PBS's ProcessLocker, this process's own writers do not block its GC.
  auto ex = cs->TryLockExclusive();
  ASSERT_TRUE(ex.ok()) << ex.status().ToString();
  ex->reset();  // downgrades to shared: another process still cannot take it exclusively
  int pid = fork();
  if (pid == 0) {
    auto other = ChunkStore::Open(tmp / "s", PosixFilesystem(), SyncLevel::kNone);
    _exit(other.ok() && (*other)->TryLockExclusive().status().IsBusy() ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  s1->reset();
  EXPECT_FALSE(cs->OldestSharedLockTime().has_value());
}

}  // namespace
}  // namespace pbskit
