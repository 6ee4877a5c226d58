// Corruption matrix on a copy of the PBS fixture datastore: each kind of damage is detected with a
// precise error, nothing crashes, and verify fails exactly the snapshots that are affected.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "fixture_copy.h"
#include "pbskit/datastore/archive_reader.h"
#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/locks.h"
#include "pbskit/datastore/task_log.h"
#include "pbskit/datastore/verify.h"
#include "pbskit/formats/crypto.h"
#include "test_support.h"

namespace pbskit {
namespace {

constexpr char kUpid[] = "UPID:pbs:00001234:00ABCDEF:00000000:66300000:verify:store1:root@pam:";
// Referenced only by ct/101 root.pxar.didx.
constexpr char kCt101Chunk[] = "a153558903be2a7380770c02b9fbfff0d26d2f3956a3f7ff10a7ca1259adeff6";
// Referenced by vm/100 (both) and vm/201.
constexpr char kSharedChunk[] = "97406e26868608f7b1fec1a781fa8e2f691f0ff73679bb4fed923452e93388d9";
// Encrypted, referenced only by vm/200.
constexpr char kEncryptedChunk[] =
    "7d5c099ab5a1deacca1d17de068cde3d0878f2b8cd825127d79d1be881232e7d";

void FixCrc(std::vector<uint8_t>* blob, size_t header) {
  uint32_t crc = Crc32(std::span<const uint8_t>(blob->data() + header, blob->size() - header));
  for (int i = 0; i < 4; ++i) (*blob)[8 + i] = static_cast<uint8_t>(crc >> (8 * i));
}

class CorruptionMatrixTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { copy_ = new test::FixtureStoreCopy(); }
  static void TearDownTestSuite() {
    delete copy_;
    copy_ = nullptr;
  }
  void SetUp() override {
    copy_->Reset();
    SetLockRootForTesting(copy_->scratch("locks"));
    auto s = DataStore::Open(copy_->path(), "store1");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = *s;
  }
  void TearDown() override { SetLockRootForTesting(""); }

  std::string ChunkPath(const char* hex) {
    return copy_->path() + "/.chunks/" + std::string(hex, 4) + "/" + hex;
  }

  // Runs a whole-store verify; returns the sorted failed snapshots and the log.
  std::vector<std::string> VerifyFailed(std::string* text) {
    MemoryTaskLogger log;
    VerifyTaskResult result;
    (void)RunVerifyTask(store_, VerifyTarget{}, VerifyOptions{}, kUpid, &log, &result);
    *text = log.text();
    std::vector<std::string> f = result.failed;
    std::sort(f.begin(), f.end());
    return f;
  }

  static test::FixtureStoreCopy* copy_;
  std::shared_ptr<DataStore> store_;
};
test::FixtureStoreCopy* CorruptionMatrixTest::copy_ = nullptr;

const std::vector<std::string> kCt101 = {"ct/101/2024-05-01T11:00:00Z"};
const std::vector<std::string> kSharedUsers = {"vm/100/2024-05-01T10:00:00Z",
                                               "vm/100/2024-05-02T10:00:00Z",
                                               "vm/201/2024-05-05T13:00:00Z"};

TEST_F(CorruptionMatrixTest, ChunkDamage) {
  struct Case {
    const char* name;
    void (*damage)(std::vector<uint8_t>*);
    const char* expect;
  };
  const Case cases[] = {
      {"flipped payload bit", [](std::vector<uint8_t>* b) { (*b)[b->size() / 2] ^= 1; },
       "Data blob has wrong CRC checksum"},
      {"flipped bit, CRC fixed up",
       [](std::vector<uint8_t>* b) {
         (*b)[b->size() - 1] ^= 1;
         FixCrc(b, 12);
       },
       "can't verify chunk with digest"},
      {"wrong magic", [](std::vector<uint8_t>* b) { (*b)[0] ^= 0xff; }, "wrong magic"},
      {"truncated header", [](std::vector<uint8_t>* b) { b->resize(7); }, "blob too small (7 bytes)"},
      {"truncated body", [](std::vector<uint8_t>* b) { b->resize(b->size() / 2); },
       "Data blob has wrong CRC checksum"},
      {"zero-length chunk", [](std::vector<uint8_t>* b) { b->clear(); }, "blob too small (0 bytes)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    copy_->Reset();
    auto bytes = test::ReadFile(ChunkPath(kCt101Chunk));
    c.damage(&bytes);
    test::WriteFile(ChunkPath(kCt101Chunk), bytes);
    std::string text;
    EXPECT_EQ(VerifyFailed(&text), kCt101) << text;
    EXPECT_NE(text.find(c.expect), std::string::npos) << text;
    EXPECT_NE(text.find(std::string(kCt101Chunk)), std::string::npos) << text;
    EXPECT_TRUE(test::ReadFile(ChunkPath(kCt101Chunk) + ".0.bad").size() == bytes.size());
    // Restore reports the same chunk precisely (the file is gone now: missing).
    auto reader = ArchiveReader::Open(store_, {}, *BackupDir::Parse("ct/101/2024-05-01T11:00:00Z"),
                                      "root.pxar.didx", nullptr);
    ASSERT_TRUE(reader.ok());
    Status st = (*reader)->ReadAll([](std::span<const uint8_t>) { return Status::OK(); });
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find(kCt101Chunk), std::string::npos) << st.ToString();
  }
}

TEST_F(CorruptionMatrixTest, ChunkHoldingAnotherDigestsData) {
  test::WriteFile(ChunkPath(kSharedChunk), test::ReadFile(ChunkPath(kCt101Chunk)));
  std::string text;
  EXPECT_EQ(VerifyFailed(&text), kSharedUsers) << text;
  EXPECT_NE(text.find("detected chunk with wrong digest."), std::string::npos) << text;
}

TEST_F(CorruptionMatrixTest, EncryptedChunkIsCrcOnly) {
  // The server has no key: an encrypted chunk is checked by its CRC; a mismatch fails exactly
  // vm/200 and the chunk is renamed.
  // Damage inside the ciphertext with the CRC fixed up (it covers the bytes after the 44-byte
  // encrypted header) cannot be seen without the key: verify passes...
  auto bytes = test::ReadFile(ChunkPath(kEncryptedChunk));
  bytes[100] ^= 1;
  FixCrc(&bytes, 44);
  test::WriteFile(ChunkPath(kEncryptedChunk), bytes);
  std::string text;
  EXPECT_TRUE(VerifyFailed(&text).empty()) << text;
  // ...while a CRC mismatch fails exactly vm/200.
  bytes[200] ^= 1;
  test::WriteFile(ChunkPath(kEncryptedChunk), bytes);
  EXPECT_EQ(VerifyFailed(&text), std::vector<std::string>{"vm/200/2024-05-05T12:00:00Z"}) << text;
  EXPECT_NE(text.find("Data blob has wrong CRC checksum"), std::string::npos) << text;
}

TEST_F(CorruptionMatrixTest, IndexAndManifestDamage) {
  // Index csum different from the manifest: change one digest of vm/100 (first) fidx.
  const std::string fidx = copy_->path() + "/vm/100/2024-05-01T10:00:00Z/drive-scsi0.img.fidx";
  auto f = test::ReadFile(fidx);
  f[4096] ^= 1;
  test::WriteFile(fidx, f);
  // Non-monotonic didx offsets in ns a.
  const std::string didx = copy_->path() + "/ns/a/host/web/2024-05-03T08:00:00Z/root.pxar.didx";
  auto d = test::ReadFile(didx);
  std::memset(d.data() + 4096, 0, 8);  // first end offset 0
  test::WriteFile(didx, d);
  // fidx size not matching its chunk count (header size field) in vm/201.
  const std::string fidx2 = copy_->path() + "/vm/201/2024-05-05T13:00:00Z/drive-scsi0.img.fidx";
  auto g = test::ReadFile(fidx2);
  g[64 + 3] ^= 0x10;
  test::WriteFile(fidx2, g);
  std::string text;
  EXPECT_EQ(VerifyFailed(&text),
            (std::vector<std::string>{"ns/a/host/web/2024-05-03T08:00:00Z",
                                      "vm/100/2024-05-01T10:00:00Z",
                                      "vm/201/2024-05-05T13:00:00Z"}))
      << text;
  EXPECT_NE(text.find("drive-scsi0.img.fidx failed: wrong index checksum"), std::string::npos)
      << text;
}

TEST_F(CorruptionMatrixTest, BadManifestSignatureIsRefusedOnRestore) {
  auto dir = *BackupDir::Parse("vm/201/2024-05-05T13:00:00Z");
  auto m = store_->LoadManifest({}, dir);
  ASSERT_TRUE(m.ok());
  m->signature = std::string(64, '0');
  ASSERT_TRUE(store_->StoreManifest({}, dir, *m).ok());
  std::array<uint8_t, 32> key;
  auto raw = FromHex("e113c9cd55f4e85a04b7ebecd54081cf610273d0ac9b7b9f7680c0107078642b");
  ASSERT_TRUE(raw.ok());
  std::copy(raw->begin(), raw->end(), key.begin());
  CryptConfig crypt(key);
  auto reader = ArchiveReader::Open(store_, {}, dir, "drive-scsi0.img.fidx", &crypt);
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().message(), "wrong signature in manifest");
}

}  // namespace
}  // namespace pbskit
