// `pbskit backup dir`: a generated tree backed up in legacy, data and encrypted mode; the
// indexes must reassemble to exactly the bytes `pbskit pxar create` makes for the tree, the
// catalog must list the tree, unchanged data must write no new chunks, a one-byte change only
// a few, and `pbskit verify` must pass.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <regex>
#include <set>

#include "pbskit/datastore/archive_reader.h"
#include "pbskit/datastore/datastore.h"
#include "pbskit/formats/catalog.h"
#include "pbskit/formats/crypt_config.h"
#include "pbskit/formats/key_config.h"
#include "pbskit/formats/pxar/decoder.h"
#include "test_support.h"

namespace pbskit {
namespace {

constexpr size_t kMiB = 1024 * 1024;

std::vector<uint8_t> Pseudo(size_t size, uint32_t seed) {
  std::vector<uint8_t> v(size);
  std::mt19937 rng(seed);
  for (size_t i = 0; i < size; ++i)  // compressible and not: text runs and random bytes
    v[i] = (i / 65536) % 3 == 0 ? static_cast<uint8_t>("backup dir "[i % 11])
                                : static_cast<uint8_t>(rng() >> 11);
  return v;
}

class BackupDirCliTest : public ::testing::Test {
 protected:
  // One datastore and one tree for the suite (creating a datastore is slow on some disks).
  static void SetUpTestSuite() {
    tmp_ = new test::TempDir(test::Scratch::kDisk);
    env_ = new std::vector<std::string>{"PBSKIT_LOCK_ROOT=" + *tmp_ / "locks", "TZ=UTC",
                                        "PBS_ENCRYPTION_PASSWORD="};
    auto r = Run({"datastore", "create", "store1", *tmp_ / "store"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    MakeTree(*tmp_ / "tree");
  }
  static void TearDownTestSuite() {
    delete env_;
    delete tmp_;
  }

  static void MakeTree(const std::string& root) {
    ASSERT_EQ(mkdir(root.c_str(), 0755), 0);
    for (const char* d : {"sub", "sub/nested", "sub/empty-dir", "zeta"})
      ASSERT_EQ(mkdir((root + "/" + d).c_str(), 0750), 0);
    test::WriteFile(root + "/big.bin", Pseudo(9 * kMiB + 4321, 1));
    test::WriteFile(root + "/medium.bin", Pseudo(300 * 1024, 2));
    test::WriteFile(root + "/sub/nested/five-mib.bin", Pseudo(5 * kMiB, 3));
    test::WriteText(root + "/small.txt", "hello pxar\n");
    test::WriteText(root + "/empty", "");
    test::WriteText(root + "/sub/nested/deep.txt", "deep\n");
    for (int i = 0; i < 40; ++i)
      test::WriteText(root + "/zeta/f" + std::to_string(i), std::string(i * 97, 'a' + i % 26));
    ASSERT_EQ(symlink("small.txt", (root + "/link").c_str()), 0);
    ASSERT_EQ(symlink("../nowhere", (root + "/sub/dangling").c_str()), 0);
    ASSERT_EQ(link((root + "/medium.bin").c_str(), (root + "/sub/hard").c_str()), 0);
    ASSERT_EQ(mkfifo((root + "/sub/fifo").c_str(), 0640), 0);
    // xattrs where the scratch file system keeps them (pxar records them on ext4/xfs/...).
    xattrs_ = setxattr((root + "/small.txt").c_str(), "user.pbskit", "v1", 2, 0) == 0;
  }

  static test::CommandResult Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--config-dir", *tmp_ / "etc", "--state-dir", *tmp_ / "state"});
    return test::RunCli(args, *env_, 600);
  }
  static std::string Snap(const std::string& id, int64_t t) {
    return BackupDir{BackupGroup{BackupType::kHost, id}, t}.ToString();
  }
  test::CommandResult Backup(const std::string& id, int64_t t,
                             std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"backup", "dir", *tmp_ / "tree", "--store", "store1",
                                     "--type", "host", "--id", id, "--backup-time",
                                     std::to_string(t)};
    args.insert(args.end(), extra.begin(), extra.end());
    return Run(args);
  }
  std::vector<uint8_t> Archive(const std::string& id, int64_t t, const std::string& name,
                               const CryptConfig* crypt = nullptr) {
    auto store = DataStore::Open(*tmp_ / "store", "store1");
    EXPECT_TRUE(store.ok());
    std::vector<uint8_t> out;
    if (!store.ok()) return out;
    auto reader = ArchiveReader::Open(*store, {}, BackupDir{BackupGroup{BackupType::kHost, id}, t},
                                      name, crypt);
    EXPECT_TRUE(reader.ok()) << name << ": " << reader.status().ToString();
    if (!reader.ok()) return out;
    Status st = (*reader)->ReadAll([&](std::span<const uint8_t> d) {
      out.insert(out.end(), d.begin(), d.end());
      return Status::OK();
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return out;
  }
  std::set<std::string> SnapshotFiles(const std::string& id, int64_t t) {
    std::set<std::string> names;
    std::string dir = *tmp_ / "store/host/" + id + "/" + Snap(id, t).substr(6 + id.size());
    for (const auto& e : std::filesystem::directory_iterator(dir))
      names.insert(e.path().filename().string());
    return names;
  }
  // Sum of "<archive>: N new chunks written" over the output's lines.
  static uint64_t NewChunks(const std::string& out, const std::string& archive = "") {
    std::regex re("(\\S+): (\\d+) new chunks? written");
    uint64_t n = 0;
    for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator();
         ++it)
      if (archive.empty() || (*it)[1] == archive) n += std::stoull((*it)[2]);
    return n;
  }
  static std::vector<uint8_t> PxarCreate(bool split, std::vector<uint8_t>* payload = nullptr) {
    std::string out = *tmp_ / (split ? "ref.mpxar" : "ref.pxar");
    unlink(out.c_str());
    std::vector<std::string> args = {"pxar", "create", out, *tmp_ / "tree"};
    if (split) {
      unlink((*tmp_ / "ref.ppxar").c_str());
      args.insert(args.end(), {"--payload-output", *tmp_ / "ref.ppxar"});
    }
    auto r = Run(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (split) *payload = test::ReadFile(*tmp_ / "ref.ppxar");
    return test::ReadFile(out);
  }

  static test::TempDir* tmp_;
  static std::vector<std::string>* env_;
  static bool xattrs_;
};
test::TempDir* BackupDirCliTest::tmp_ = nullptr;
std::vector<std::string>* BackupDirCliTest::env_ = nullptr;
bool BackupDirCliTest::xattrs_ = false;

TEST_F(BackupDirCliTest, LegacyModeIncrementalAndVerify) {
  auto r = Backup("legacy", 1000);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Upload directory '" + *tmp_ / "tree" + "' to 'store1' as root.pxar.didx"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("root.pxar: had to backup"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Uploaded backup catalog ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("No previous manifest available."), std::string::npos);
  EXPECT_GT(NewChunks(r.out, "root.pxar"), 3u);
  EXPECT_EQ(SnapshotFiles("legacy", 1000),
            (std::set<std::string>{"root.pxar.didx", "catalog.pcat1.didx", "index.json.blob"}));

  // The index holds exactly what `pxar create` makes for the tree.
  auto pxar = Archive("legacy", 1000, "root.pxar.didx");
  auto ref = PxarCreate(false);
  EXPECT_EQ(pxar.size(), ref.size());
  EXPECT_TRUE(pxar == ref);

  // The catalog lists the tree in archive order with sizes.
  auto cat_bytes = Archive("legacy", 1000, "catalog.pcat1.didx");
  auto cat = CatalogReader::Open(cat_bytes, "catalog.pcat1.didx");
  ASSERT_TRUE(cat.ok()) << cat.status().ToString();
  auto listing = cat->List();
  ASSERT_TRUE(listing.ok());
  for (const char* want :
       {"d \"root.pxar.didx\"", "f \"root.pxar.didx/big.bin\" 9441505 ", "f \"root.pxar.didx/empty\" 0 ",
        "l \"root.pxar.didx/link\"", "h \"root.pxar.didx/sub/hard\"",
        "p \"root.pxar.didx/sub/fifo\"", "d \"root.pxar.didx/sub/empty-dir\"",
        "f \"root.pxar.didx/sub/nested/deep.txt\" 5 ", "f \"root.pxar.didx/zeta/f39\" 3783 "})
    EXPECT_NE(listing->find(want), std::string::npos) << want << "\n" << *listing;
  size_t entries = 0;
  ASSERT_TRUE(cat->Walk([&](const std::string&, const CatalogEntry&) {
                   ++entries;
                   return Status::OK();
                 }).ok());
  EXPECT_EQ(entries, 1u + 7 + 40 + 7);  // archive dir, root children, zeta/*, sub/**

  // Unchanged data: nothing new at all (the catalog is identical too).
  r = Backup("legacy", 2000);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Downloading previous manifest"), std::string::npos) << r.out;
  EXPECT_EQ(NewChunks(r.out), 0u) << r.out;
  EXPECT_NE(r.out.find("root.pxar: backup was done incrementally, reused"), std::string::npos);

  // One byte changed in the middle of the big file: only the chunk(s) around it are new.
  {
    std::string path = *tmp_ / "tree/big.bin";
    int fd = open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "X", 1, 5 * kMiB), 1);
    struct timespec ts[2] = {{0, UTIME_OMIT}, {1700000000, 0}};
    ASSERT_EQ(futimens(fd, ts), 0);  // keeps the catalog entry's mtime stable across runs
    close(fd);
  }
  r = Backup("legacy", 3000);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  uint64_t changed = NewChunks(r.out, "root.pxar");
  EXPECT_GE(changed, 1u) << r.out;
  EXPECT_LE(changed, 2u) << r.out;
  EXPECT_TRUE(Archive("legacy", 3000, "root.pxar.didx") == PxarCreate(false));

  auto v = Run({"verify", "--store", "store1", "host/legacy"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

TEST_F(BackupDirCliTest, DataModeWritesTheSplitPair) {
  auto r = Backup("split", 1000, {"--change-detection-mode", "data"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("as root.mpxar.didx"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("root.ppxar: had to backup"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("root.mpxar: had to backup"), std::string::npos) << r.out;
  // PBS writes no catalog for split archives.
  EXPECT_EQ(SnapshotFiles("split", 1000),
            (std::set<std::string>{"root.mpxar.didx", "root.ppxar.didx", "index.json.blob"}));
  std::vector<uint8_t> ref_payload;
  auto ref_meta = PxarCreate(true, &ref_payload);
  auto meta = Archive("split", 1000, "root.mpxar.didx");
  auto payload = Archive("split", 1000, "root.ppxar.didx");
  EXPECT_TRUE(meta == ref_meta);
  EXPECT_TRUE(payload == ref_payload);

  // The pair decodes, every file's content read through the payload stream.
  pxar::SpanSource ms(meta), ps(payload);
  pxar::Decoder dec(&ms, &ps);
  pxar::Entry e;
  uint64_t files = 0, bytes = 0;
  std::vector<uint8_t> buf(1 << 20);
  for (;;) {
    auto more = dec.Next(&e);
    ASSERT_TRUE(more.ok()) << more.status().ToString();
    if (!*more) break;
    if (e.kind != pxar::EntryKind::kFile) continue;
    ++files;
    for (;;) {
      auto n = dec.ReadContent(buf);
      ASSERT_TRUE(n.ok()) << n.status().ToString();
      if (*n == 0) break;
      bytes += *n;
    }
  }
  EXPECT_EQ(files, 6u + 40);
  EXPECT_GT(bytes, 14 * kMiB);

  // The payload chunker cut at file payload starts: every chunk end except the last lies
  // on a PAYLOAD header or was a hash/max cut; at least the big files start new chunks.
  auto store = DataStore::Open(*tmp_ / "store", "store1");
  ASSERT_TRUE(store.ok());
  auto idx = (*store)->OpenDynamicIndex({}, BackupDir{BackupGroup{BackupType::kHost, "split"}, 1000},
                                        "root.ppxar.didx");
  ASSERT_TRUE(idx.ok());
  EXPECT_GE(idx->chunk_count(), 4u);

  // Unchanged: no new chunks in either stream.
  r = Backup("split", 2000, {"--change-detection-mode", "data"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(NewChunks(r.out), 0u) << r.out;
  auto v = Run({"verify", "--store", "store1", "host/split"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

TEST_F(BackupDirCliTest, EncryptedBackupVerifiesAndDecrypts) {
  std::string key = *tmp_ / "key.json";
  auto k = Run({"key", "create", key, "--kdf", "none"});
  ASSERT_EQ(k.exit_code, 0) << k.err;
  auto r = Backup("enc", 1000, {"--keyfile", key});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Encryption key fingerprint:"), std::string::npos);
  auto kc = KeyConfig::Parse(test::ReadText(key));
  ASSERT_TRUE(kc.ok());
  auto raw = kc->Decrypt("");
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  CryptConfig crypt(*raw);
  EXPECT_TRUE(Archive("enc", 1000, "root.pxar.didx", &crypt) == PxarCreate(false));
  auto cat = Archive("enc", 1000, "catalog.pcat1.didx", &crypt);
  EXPECT_TRUE(CatalogReader::Open(cat, "catalog").ok());
  auto v = Run({"verify", "--store", "store1", "host/enc"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  // Same data, new snapshot: reused (keyed digests match).
  r = Backup("enc", 2000, {"--keyfile", key});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(NewChunks(r.out), 0u) << r.out;
}

// Decodes a split pair into one line per entry: path, kind, mode, size, mtime and content hash.
std::vector<std::string> DecodeListing(const std::vector<uint8_t>& meta,
                                       const std::vector<uint8_t>& payload) {
  std::vector<std::string> out;
  pxar::SpanSource ms(meta), ps(payload);
  pxar::Decoder dec(&ms, &ps);
  pxar::Entry e;
  std::vector<uint8_t> buf(1 << 20);
  for (;;) {
    auto more = dec.Next(&e);
    EXPECT_TRUE(more.ok()) << more.status().ToString();
    if (!more.ok() || !*more) break;
    std::string line = e.path + " " + pxar::EntryKindLetter(e.kind, e.metadata) + " " +
                       std::to_string(e.metadata.stat.mode) + " " +
                       std::to_string(e.metadata.stat.mtime_secs) + "." + std::to_string(e.metadata.stat.mtime_nanos) + " " + e.link_target;
    if (e.kind == pxar::EntryKind::kFile) {
      std::vector<uint8_t> content;
      for (;;) {
        auto n = dec.ReadContent(buf);
        EXPECT_TRUE(n.ok()) << n.status().ToString();
        if (!n.ok() || *n == 0) break;
        content.insert(content.end(), buf.begin(), buf.begin() + static_cast<long>(*n));
      }
      line += " " + std::to_string(e.file_size) + " " + test::Sha256Hex(content);
    }
    out.push_back(line);
  }
  return out;
}

TEST_F(BackupDirCliTest, UsageErrors) {
  auto r = Backup("bad", 1000, {"--change-detection-mode", "fast"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  r = Run({"backup", "dir", *tmp_ / "missing", "--store", "store1", "--type", "host", "--id",
           "bad"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("Error: "), std::string::npos);
  r = Backup("bad", 1000, {"--chunk-size", "100"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  r = Backup("bad", 1000, {"--crypt-mode", "encrypt"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
}

// Runs last: it changes a file of the shared tree.
TEST_F(BackupDirCliTest, MetadataModeReusesUnchangedPayload) {
  const std::vector<std::string> meta_mode = {"--change-detection-mode", "metadata",
                                              "--chunk-size", "64"};
  auto r = Backup("meta", 1000, meta_mode);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("No previous manifest available."), std::string::npos) << r.out;
  EXPECT_EQ(SnapshotFiles("meta", 1000),
            (std::set<std::string>{"root.mpxar.didx", "root.ppxar.didx", "index.json.blob"}));

  // Unchanged tree: every file keeps its payload, only the stream markers are new bytes.
  r = Backup("meta", 2000, meta_mode);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Using previous index as metadata reference for 'root.mpxar.didx'"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(" - 0 changed or non-reusable files"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("root.ppxar: reused "), std::string::npos) << r.out;
  EXPECT_LE(NewChunks(r.out, "root.ppxar"), 2u) << r.out;
  std::vector<uint8_t> ref_payload;
  auto ref_meta = PxarCreate(true, &ref_payload);
  auto want = DecodeListing(ref_meta, ref_payload);
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(DecodeListing(Archive("meta", 2000, "root.mpxar.didx"),
                          Archive("meta", 2000, "root.ppxar.didx")),
            want);

  // One file changed: it is re-encoded, the rest still reuses; the archive decodes to the tree.
  test::WriteText(*tmp_ / "tree/zeta/f20", "changed content\n");
  r = Backup("meta", 3000, meta_mode);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find(" - 0 changed or non-reusable files"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("root.ppxar: reused "), std::string::npos) << r.out;
  EXPECT_LE(NewChunks(r.out, "root.ppxar"), 8u) << r.out;
  ref_meta = PxarCreate(true, &ref_payload);
  EXPECT_EQ(DecodeListing(Archive("meta", 3000, "root.mpxar.didx"),
                          Archive("meta", 3000, "root.ppxar.didx")),
            DecodeListing(ref_meta, ref_payload));

  auto v = Run({"verify", "--store", "store1", "host/meta"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

}  // namespace
}  // namespace pbskit
