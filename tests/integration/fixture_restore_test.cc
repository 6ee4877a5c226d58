// The real PBS 3.2.4 datastore in ../shared/fixtures lists and restores where it lies (read-only):
// every archive of every snapshot decodes to the bytes and SHA-256 its README gives, encrypted
// ones with the fixture key; signed manifests verify; missing / wrong keys are refused.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "pbskit/datastore/archive_reader.h"
#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/locks.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/key_config.h"
#include "test_support.h"

namespace pbskit {
namespace {

struct Expected {
  const char* ns;
  const char* snapshot;
  const char* archive;
  bool needs_key;
  uint64_t decoded_bytes;
  const char* sha256;
};

// From fixtures/README.md ("Archives" tables of every snapshot).
const Expected kArchives[] = {
    {"", "ct/101/2024-05-01T11:00:00Z", "pct.conf.blob", false, 104,
     "4587121623ed9a97847d6f34236983c3746287f42a2f5a6d82bbdf1eb40c177c"},
    {"", "ct/101/2024-05-01T11:00:00Z", "root.pxar.didx", false, 475044,
     "80bd34b06226ac8bd829616679cd7c444c8297f3a9a5b827e5c58bfa420d00b5"},
    {"", "ct/101/2024-05-01T11:00:00Z", "catalog.pcat1.didx", false, 381,
     "b7fe36d4035e816d544d8466944f2c233fe92070f3778027112f20d797df3036"},
    {"", "vm/100/2024-05-01T10:00:00Z", "qemu-server.conf.blob", false, 232,
     "918b67e3ab328d3a69ff53bf37acff70001a492ff7d3cce2324a3f509eee4454"},
    {"", "vm/100/2024-05-01T10:00:00Z", "drive-scsi0.img.fidx", false, 9437184,
     "70f35d7c3f63127d1cf474bf7ee9a4e0d126c1df9683dd935abea274f0cdd65d"},
    {"", "vm/100/2024-05-02T10:00:00Z", "qemu-server.conf.blob", false, 232,
     "918b67e3ab328d3a69ff53bf37acff70001a492ff7d3cce2324a3f509eee4454"},
    {"", "vm/100/2024-05-02T10:00:00Z", "drive-scsi0.img.fidx", false, 9437184,
     "ad2706f1c9f8a25dd28dc24ed2a8ed6c22b194e0e8df75b416793bde38b5ef1a"},
    {"", "vm/200/2024-05-05T12:00:00Z", "qemu-server.conf.blob", true, 154,
     "5c0e2e170b7968f30b404719c9f5ec1bb4cc704b352783a7f5bc39f3fc37f920"},
    {"", "vm/200/2024-05-05T12:00:00Z", "drive-scsi0.img.fidx", true, 9437184,
     "29b688bd544a9488d5dae8f008da8866aff06eb0b49949048633c4efe2f8da72"},
    {"", "vm/200/2024-05-05T12:00:00Z", "rsa-encrypted.key.blob", true, 512,
     "2bfcac4f88dbb05514be89e67d650390fce257114b207a000685e9831dc2ad30"},
    {"", "vm/201/2024-05-05T13:00:00Z", "qemu-server.conf.blob", true, 143,
     "211f5f4331bd508f2b2b59aba4cab43875ecdabb316d42b80f498d9e65540a0b"},
    {"", "vm/201/2024-05-05T13:00:00Z", "drive-scsi0.img.fidx", true, 9437184,
     "907ac6ce59f96cfbf32f265b4fe3ab92dcab8c33d5d75bb5bb0d77ab89981beb"},
    {"a", "host/web/2024-05-03T08:00:00Z", "root.pxar.didx", false, 19782,
     "7b7ae06d3d7ddcd2784e78a79c8943212a0ff525e9cd28ddde495064474149d6"},
    {"a", "host/web/2024-05-03T08:00:00Z", "catalog.pcat1.didx", false, 151,
     "63dcae198b2c9a00d5e13b6b2e368369536d3912b49f8e9904e6ba68c859ba8c"},
    {"a/b", "host/web/2024-05-04T08:00:00Z", "root.pxar.didx", false, 19948,
     "02d9703b22b31c741cd637739cdf58aca0373d33829462fe5488a232b687a03d"},
    {"a/b", "host/web/2024-05-04T08:00:00Z", "catalog.pcat1.didx", false, 172,
     "e54ee6d3abb928dd5cc89bd9102a9a252e62fd8888c62baaae2416d42fb7c27e"},
};

class FixtureRestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLockRootForTesting(locks_.path());
    auto store = DataStore::Open(test::Fixture("pbs-3.2.4-datastore"), "store1");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = *store;
    auto kc = KeyConfig::Parse(test::ReadText(test::Fixture("pbs-3.2.4-datastore.key.json")));
    ASSERT_TRUE(kc.ok()) << kc.status().ToString();
    auto key = kc->Decrypt("");
    ASSERT_TRUE(key.ok()) << key.status().ToString();
    crypt_.emplace(*key);
  }
  void TearDown() override { SetLockRootForTesting(""); }

  static std::pair<BackupNamespace, BackupDir> Ref(const char* ns, const char* snapshot) {
    auto n = BackupNamespace::Parse(ns);
    auto d = BackupDir::Parse(snapshot);
    EXPECT_TRUE(n.ok() && d.ok());
    return {*n, *d};
  }

  Result<std::vector<uint8_t>> Read(const char* ns, const char* snapshot,
                                    const std::string& archive, const CryptConfig* crypt) {
    auto [n, d] = Ref(ns, snapshot);
    PBSKIT_ASSIGN_OR_RETURN(auto reader, ArchiveReader::Open(store_, n, d, archive, crypt));
    std::vector<uint8_t> out;
    PBSKIT_RETURN_IF_ERROR(reader->ReadAll([&](std::span<const uint8_t> data) {
      out.insert(out.end(), data.begin(), data.end());
      return Status::OK();
    }));
    return out;
  }

  test::TempDir locks_;
  std::shared_ptr<DataStore> store_;
  std::optional<CryptConfig> crypt_;
};

TEST_F(FixtureRestoreTest, ListsEverySnapshotInEveryNamespace) {
  auto namespaces = store_->ListNamespaces(BackupNamespace(), /*recursive=*/true);
  ASSERT_TRUE(namespaces.ok()) << namespaces.status().ToString();
  std::vector<std::string> found;
  for (const auto& ns : *namespaces) {
    auto groups = store_->ListGroups(ns);
    ASSERT_TRUE(groups.ok()) << groups.status().ToString();
    for (const auto& g : *groups) {
      auto snaps = store_->ListSnapshots(ns, g);
      ASSERT_TRUE(snaps.ok()) << snaps.status().ToString();
      for (const auto& s : *snaps) {
        EXPECT_TRUE(s.finished) << s.dir.ToString();
        found.push_back((ns.IsRoot() ? "" : ns.ToString() + ":") + s.dir.ToString());
      }
    }
  }
  std::vector<std::string> want = {
      "ct/101/2024-05-01T11:00:00Z",   "vm/100/2024-05-01T10:00:00Z",
      "vm/100/2024-05-02T10:00:00Z",   "vm/200/2024-05-05T12:00:00Z",
      "vm/201/2024-05-05T13:00:00Z",   "a:host/web/2024-05-03T08:00:00Z",
      "a/b:host/web/2024-05-04T08:00:00Z"};
  std::sort(found.begin(), found.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(found, want);
}

TEST_F(FixtureRestoreTest, EveryArchiveRestoresToTheReadmeHash) {
  for (const Expected& e : kArchives) {
    SCOPED_TRACE(std::string(e.ns) + " " + e.snapshot + " " + e.archive);
    auto data = Read(e.ns, e.snapshot, e.archive, e.needs_key ? &*crypt_ : nullptr);
    ASSERT_TRUE(data.ok()) << data.status().ToString();
    EXPECT_EQ(data->size(), e.decoded_bytes);
    EXPECT_EQ(test::Sha256Hex(*data), e.sha256);
    // With the key, unencrypted archives read the same (the key is only used where needed).
    auto with_key = Read(e.ns, e.snapshot, e.archive, &*crypt_);
    ASSERT_TRUE(with_key.ok()) << with_key.status().ToString();
    EXPECT_EQ(test::Sha256Hex(*with_key), e.sha256);
  }
}

TEST_F(FixtureRestoreTest, UserArchiveNamesMapLikeTheClient) {
  EXPECT_EQ(ServerArchiveName("drive-scsi0.img"), "drive-scsi0.img.fidx");
  EXPECT_EQ(ServerArchiveName("root.pxar"), "root.pxar.didx");
  EXPECT_EQ(ServerArchiveName("catalog.pcat1"), "catalog.pcat1.didx");
  EXPECT_EQ(ServerArchiveName("x.mpxar"), "x.mpxar.didx");
  EXPECT_EQ(ServerArchiveName("qemu-server.conf"), "qemu-server.conf.blob");
  EXPECT_EQ(ServerArchiveName("root.pxar.didx"), "root.pxar.didx");
  EXPECT_EQ(ServerArchiveName("pct.conf.blob"), "pct.conf.blob");
  auto data = Read("", "vm/100/2024-05-01T10:00:00Z", ServerArchiveName("drive-scsi0.img"), nullptr);
  ASSERT_TRUE(data.ok()) << data.status().ToString();
  EXPECT_EQ(test::Sha256Hex(*data),
            "70f35d7c3f63127d1cf474bf7ee9a4e0d126c1df9683dd935abea274f0cdd65d");
}

TEST_F(FixtureRestoreTest, SignedManifestsVerifyWithTheFixtureKey) {
  for (const char* snap : {"vm/200/2024-05-05T12:00:00Z", "vm/201/2024-05-05T13:00:00Z"}) {
    auto [n, d] = Ref("", snap);
    auto m = store_->LoadManifest(n, d);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    ASSERT_TRUE(m->signature.has_value()) << snap;
    EXPECT_TRUE(CheckManifestKey(*m, &*crypt_).ok()) << snap;
    EXPECT_EQ(crypt_->FingerprintString(),
              "c1:5b:4a:95:d5:ba:ed:b6:4d:dd:e2:bc:f0:f5:d7:47:d4:b5:fa:a3:8b:88:9a:5e:ac:a2:ad:79:"
              "da:a2:3f:af");
    // A tampered signed part no longer verifies.
    Manifest tampered = *m;
    tampered.files[0].size += 1;
    Status st = CheckManifestKey(tampered, &*crypt_);
    EXPECT_EQ(st.code(), Code::kCorruption);
    EXPECT_EQ(st.message(), "wrong signature in manifest");
  }
  // Unsigned manifests are fine with and without a key.
  auto [n, d] = Ref("", "vm/100/2024-05-01T10:00:00Z");
  auto m = store_->LoadManifest(n, d);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(CheckManifestKey(*m, nullptr).ok());
  EXPECT_TRUE(CheckManifestKey(*m, &*crypt_).ok());
}

TEST_F(FixtureRestoreTest, MissingOrWrongKeyIsRefused) {
  auto missing = Read("", "vm/200/2024-05-05T12:00:00Z", "drive-scsi0.img.fidx", nullptr);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("missing key - manifest was created with key c1:5b"),
            std::string::npos)
      << missing.status().ToString();

  std::array<uint8_t, 32> other{};
  other.fill(9);
  CryptConfig wrong(other);
  auto bad = Read("", "vm/201/2024-05-05T13:00:00Z", "drive-scsi0.img.fidx", &wrong);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("wrong key"), std::string::npos)
      << bad.status().ToString();

  // The RSA-wrapped key blob is readable without the key (that is how a key is recovered).
  auto key_blob = Read("", "vm/200/2024-05-05T12:00:00Z", "rsa-encrypted.key.blob", nullptr);
  ASSERT_TRUE(key_blob.ok()) << key_blob.status().ToString();
  EXPECT_EQ(test::Sha256Hex(*key_blob),
            "2bfcac4f88dbb05514be89e67d650390fce257114b207a000685e9831dc2ad30");
}

TEST_F(FixtureRestoreTest, UnknownArchiveAndManifestAreRefused) {
  auto none = Read("", "vm/100/2024-05-01T10:00:00Z", "nope.img.fidx", nullptr);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Code::kNotFound);
  EXPECT_EQ(none.status().message(), "manifest does not contain file 'nope.img.fidx'");
  auto manifest = Read("", "vm/100/2024-05-01T10:00:00Z", "index.json.blob", nullptr);
  EXPECT_EQ(manifest.status().code(), Code::kInvalidArgument);
}

TEST_F(FixtureRestoreTest, RestoreArchiveWritesTargetAtomically) {
  test::TempDir out;
  auto [n, d] = Ref("", "ct/101/2024-05-01T11:00:00Z");
  auto reader = ArchiveReader::Open(store_, n, d, "root.pxar.didx", nullptr);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  ArchiveReadStats stats;
  ASSERT_TRUE(RestoreArchive(**reader, out / "root.pxar", &stats).ok());
  EXPECT_EQ(test::Sha256Hex(test::ReadFile(out / "root.pxar")),
            "80bd34b06226ac8bd829616679cd7c444c8297f3a9a5b827e5c58bfa420d00b5");
  EXPECT_EQ(stats.chunks, 7u);
  EXPECT_EQ(stats.decoded_bytes, 475044u);
  // An existing target is never overwritten.
  auto again = ArchiveReader::Open(store_, n, d, "root.pxar.didx", nullptr);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(RestoreArchive(**again, out / "root.pxar").code(), Code::kAlreadyExists);
}

}  // namespace
}  // namespace pbskit
