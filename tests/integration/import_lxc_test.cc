// `pbskit import vzdump` with container archives made by GNU tar exactly as vzdump runs it
// (testdata/lxc/make-ct-tar.sh): the snapshot holds the config blobs, a root.pxar.didx whose
// bytes are what `pxar create` writes for the container tree, a catalog listing the same tree,
// the side files; bad input is refused with nothing left behind; --salvage imports a cut file.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "pbskit/datastore/archive_reader.h"
#include "pbskit/datastore/datastore.h"
#include "pbskit/formats/catalog.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/pxar/decoder.h"
#include "pbskit/importers/pxar_fs.h"
#include "test_support.h"

namespace pbskit {
namespace {

namespace fs = std::filesystem;

bool Contains(const std::string& s, const std::string& n) { return s.find(n) != std::string::npos; }

class ImportLxcTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new test::TempDir(test::Scratch::kDisk);
    auto r = Run({"datastore", "create", "store1", StorePath()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete tmp_;
    tmp_ = nullptr;
  }
  static std::string StorePath() { return *tmp_ / "store1"; }
  static test::CommandResult Run(std::vector<std::string> args) {
    return test::RunCli(args, {"PBSKIT_CONFIG_DIR=" + (*tmp_ / "etc"),
                               "PBSKIT_LOCK_ROOT=" + (*tmp_ / "run/locks")});
  }
  // Runs the generator; returns the archive path.
  static std::string Generate(const std::string& work, const std::string& vmid,
                              const std::string& stamp, const std::string& comp) {
    std::string cmd = "bash '" + test::TestData("lxc/make-ct-tar.sh") + "' '" + work + "' " +
                      vmid + " " + stamp + " " + comp + " > '" + work + ".out' 2> '" + work +
                      ".err'";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << test::ReadText(work + ".err");
    std::string p = test::ReadText(work + ".out");
    p.erase(p.find_last_not_of('\n') + 1);
    return p;
  }
  static std::shared_ptr<DataStore> Store() {
    auto s = DataStore::Open(StorePath(), "store1");
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return *s;
  }
  static std::vector<uint8_t> ReadArchive(const BackupDir& dir, const std::string& name) {
    auto reader = ArchiveReader::Open(Store(), {}, dir, name, nullptr);
    EXPECT_TRUE(reader.ok()) << reader.status().ToString();
    std::vector<uint8_t> out;
    if (!reader.ok()) return out;
    Status st = (*reader)->ReadAll([&out](std::span<const uint8_t> b) {
      out.insert(out.end(), b.begin(), b.end());
      return Status::OK();
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return out;
  }
  static bool GroupExists(const std::string& group) { return fs::exists(StorePath() + "/" + group); }

  static test::TempDir* tmp_;
};

test::TempDir* ImportLxcTest::tmp_ = nullptr;

std::vector<uint8_t> PxarOfTree(const std::string& tree) {
  // What GNU tar does not carry: the socket; what vzdump's excludes leave out: /tmp contents.
  unlink((tree + "/tmp/excluded-by-vzdump").c_str());
  unlink((tree + "/var/lib/socket").c_str());
  for (const char* d : {"/tmp", "/var/lib"}) {
    struct timespec t[2] = {{1706702400, 500000000}, {1706702400, 500000000}};
    utimensat(AT_FDCWD, (tree + d).c_str(), t, AT_SYMLINK_NOFOLLOW);
  }
  pxar::VectorSink sink;
  auto r = importers::CreatePxarArchive(tree, &sink, nullptr, {});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return sink.data();
}

TEST_F(ImportLxcTest, ContainerArchiveBecomesTheSnapshotPveWouldWrite) {
  const std::string work = *tmp_ / "ct101";
  const std::string file = Generate(work, "101", "2024_01_31-12_00_00", "zst");
  const std::string base = "vzdump-lxc-101-2024_01_31-12_00_00";
  test::WriteText(file + ".notes", "ct101 nightly\n");
  test::WriteText(*tmp_ / "ct101/" + base + ".log", "2024-01-31 12:00:00 INFO: Starting Backup of VM 101 (lxc)\n");
  test::WriteText(file + ".protected", "");

  auto r = Run({"import", "vzdump", file, "--store", "store1", "--time-zone", "UTC",
                "--no-stdexcludes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "as ct/101/2024-01-31T12:00:00Z")) << r.out;
  EXPECT_TRUE(Contains(r.out, "compression: zstd")) << r.out;
  EXPECT_TRUE(Contains(r.out, "archives: pct.conf.blob fw.conf.blob root.pxar.didx "
                              "catalog.pcat1.didx"))
      << r.out;
  EXPECT_TRUE(Contains(r.out, "chunks: ")) << r.out;

  auto dir = BackupDir::Parse("ct/101/2024-01-31T12:00:00Z");
  ASSERT_TRUE(dir.ok());
  auto store = Store();
  auto m = store->LoadManifest({}, *dir);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  std::vector<std::string> names;
  for (const auto& f : m->files) names.push_back(f.filename);
  EXPECT_EQ(names, (std::vector<std::string>{"pct.conf.blob", "fw.conf.blob", "root.pxar.didx",
                                             "catalog.pcat1.didx"}));
  auto conf = ReadArchive(*dir, "pct.conf.blob");
  EXPECT_EQ(std::string(conf.begin(), conf.end()), test::ReadText(work + "/conf/etc/vzdump/pct.conf"));
  auto fw = ReadArchive(*dir, "fw.conf.blob");
  EXPECT_EQ(std::string(fw.begin(), fw.end()), test::ReadText(work + "/conf/etc/vzdump/pct.fw"));

  // root.pxar: the very bytes `pxar create` gives for the container tree.
  auto pxar = ReadArchive(*dir, "root.pxar.didx");
  EXPECT_TRUE(pxar == PxarOfTree(work + "/tree")) << "root.pxar differs from pxar create";

  // The catalog lists the same entries in the same order.
  auto cat_bytes = ReadArchive(*dir, "catalog.pcat1.didx");
  auto cat = CatalogReader::Open(cat_bytes, "catalog.pcat1.didx");
  ASSERT_TRUE(cat.ok()) << cat.status().ToString();
  std::vector<std::string> cat_paths;
  ASSERT_TRUE(cat->Walk([&](const std::string& p, const CatalogEntry&) {
                   cat_paths.push_back(p);
                   return Status::OK();
                 }).ok());
  pxar::SpanSource src(pxar);
  pxar::Decoder dec(&src, nullptr);
  std::vector<std::string> pxar_paths = {"root.pxar.didx"};
  pxar::Entry e;
  bool root = true;
  for (;;) {
    auto n = dec.Next(&e);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    if (!*n) break;
    if (root) {
      root = false;
      continue;
    }
    pxar_paths.push_back("root.pxar.didx" + e.path);
  }
  EXPECT_EQ(cat_paths, pxar_paths);

  // `pbskit backup dir` of the tree itself (what the PBS client does for the container) gives
  // the same chunk list and the same catalog.
  auto b = Run({"backup", "dir", work + "/tree", "--store", "store1", "--type", "ct", "--id",
                "201", "--backup-time", "1706702400"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  auto bdir = BackupDir::Parse("ct/201/2024-01-31T12:00:00Z");
  ASSERT_TRUE(bdir.ok());
  auto bm = store->LoadManifest({}, *bdir);
  ASSERT_TRUE(bm.ok()) << bm.status().ToString();
  for (const char* archive : {"root.pxar.didx", "catalog.pcat1.didx"}) {
    const FileInfo* ours = m->Lookup(archive);
    const FileInfo* theirs = bm->Lookup(archive);
    ASSERT_NE(ours, nullptr);
    ASSERT_NE(theirs, nullptr);
    EXPECT_EQ(ours->size, theirs->size) << archive;
    EXPECT_EQ(ToHex(ours->csum), ToHex(theirs->csum)) << archive;  // same chunk digests
  }

  auto notes = store->GetSnapshotNotes({}, *dir);
  ASSERT_TRUE(notes.ok());
  EXPECT_EQ(*notes, "ct101 nightly\n");
  auto prot = store->IsProtected({}, *dir);
  ASSERT_TRUE(prot.ok());
  EXPECT_TRUE(*prot);
  auto log = DataBlob::FromRaw(test::ReadFile(store->SnapshotPath({}, *dir) + "/client.log.blob"));
  ASSERT_TRUE(log.ok());
  auto log_text = log->Decode(nullptr);
  ASSERT_TRUE(log_text.ok());
  EXPECT_TRUE(Contains(std::string(log_text->begin(), log_text->end()), "Starting Backup of VM 101"));

  auto v = Run({"verify", "--store", "store1"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;

  // Importing the same tree again (gzip this time) into another snapshot reuses every chunk.
  const std::string again = Generate(*tmp_ / "ct101b", "101", "2024_02_01-12_00_00", "gz");
  auto r2 = Run({"import", "vzdump", again, "--store", "store1", "--time-zone", "UTC",
                 "--no-stdexcludes", "--output-format", "json"});
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_TRUE(Contains(r2.out, "\"backup-type\":\"ct\"")) << r2.out;
  EXPECT_TRUE(Contains(r2.out, "\"compression\":\"gzip\"")) << r2.out;
  EXPECT_TRUE(Contains(r2.out, "\"chunks-new\":0")) << r2.out;
}

// Enough file data that the spool of a compressed archive takes many buffers (and the writer
// thread has to keep up), files in readdir order rather than name order, a run of zeros: the
// plain tar (contents read in place) and its .zst (contents spooled) give the same root.pxar,
// the one `pxar create` writes for the tree.
TEST_F(ImportLxcTest, LargeFilesGiveTheSameArchivePlainAndCompressed) {
  const std::string work = *tmp_ / "ct107";
  const std::string tree = work + "/tree";
  fs::create_directories(tree + "/srv/data");
  fs::create_directories(tree + "/usr/lib");
  std::mt19937_64 rng(7);
  auto fill = [&rng](const std::string& path, size_t size, bool zeros) {
    std::vector<uint8_t> b(size, 0);
    if (!zeros)
      for (auto& c : b) c = static_cast<uint8_t>('a' + (rng() & 15));
    test::WriteFile(path, b);
  };
  fill(tree + "/srv/data/big.img", 21 << 20, false);
  fill(tree + "/srv/data/zeros.img", 9 << 20, true);
  for (int i = 0; i < 40; ++i)
    fill(tree + "/usr/lib/f" + std::to_string((i * 37) % 101), 1000 + (rng() % 200000), false);
  const std::string plain = work + "/vzdump-lxc-107-2024_01_31-12_00_00.tar";
  const std::string zst = work + "/vzdump-lxc-108-2024_01_31-12_00_00.tar.zst";
  // vzdump's tar flags (pax headers with nanosecond times); times set children first.
  std::string cmd = "cd '" + tree + "' && find . -depth -exec touch -h -d @1706702400.5 {} + && " +
                    "tar cpf '" + plain + "' --sparse --numeric-owner --acls --xattrs ./ && " +
                    "zstd -q -c '" + plain + "' > '" + zst + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::vector<uint8_t> want = PxarOfTree(tree);

  for (const char* id : {"107", "108"}) {
    const std::string file = std::string(id) == "107" ? plain : zst;
    auto r = Run({"import", "vzdump", file, "--store", "store1", "--time-zone", "UTC",
                  "--no-stdexcludes", "--tmpdir", work});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto dir = BackupDir::Parse("ct/" + std::string(id) + "/2024-01-31T12:00:00Z");
    ASSERT_TRUE(dir.ok());
    auto pxar = ReadArchive(*dir, "root.pxar.didx");
    EXPECT_EQ(pxar.size(), want.size()) << id;
    EXPECT_TRUE(pxar == want) << "root.pxar of ct/" << id << " differs from pxar create";
  }
  // Nothing of the spool is left in the temp directory.
  size_t left = 0;
  for (const auto& e : fs::directory_iterator(work)) left += e.path().filename() != "tree";
  EXPECT_EQ(left, 2u);
}

TEST_F(ImportLxcTest, StandardExcludesAndUnprivilegedContainersGetPxarexcludeCli) {
  const std::string work = *tmp_ / "ct102";
  const std::string file = Generate(work, "102", "2024_01_31-12_00_00", "none");
  // Re-pack with `unprivileged: 1` in pct.conf.
  {
    std::string conf = test::ReadText(work + "/conf/etc/vzdump/pct.conf") + "unprivileged: 1\n";
    test::WriteText(work + "/conf/etc/vzdump/pct.conf", conf);
    std::string cmd = "cd '" + work + "' && tar cpf '" + file +
                      "' --numeric-owner --acls --xattrs --format=posix -C conf "
                      "./etc/vzdump/pct.conf -C ../tree '--exclude=./tmp/?*' --exclude=./var/lib/socket ./";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  auto r = Run({"import", "vzdump", file, "--store", "store1", "--time-zone", "UTC",
                "--exclude-path", "/srv/cache"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto dir = BackupDir::Parse("ct/102/2024-01-31T12:00:00Z");
  ASSERT_TRUE(dir.ok());
  auto pxar = ReadArchive(*dir, "root.pxar.didx");
  pxar::SpanSource src(pxar);
  pxar::Decoder dec(&src, nullptr);
  pxar::Entry e, last;
  std::string content;
  for (;;) {
    auto n = dec.Next(&e);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    if (!*n) break;
    if (e.path == "/.pxarexclude-cli") {
      uint8_t buf[256];
      auto got = dec.ReadContent(buf);
      ASSERT_TRUE(got.ok());
      content.assign(reinterpret_cast<char*>(buf), *got);
    }
    last = e;
  }
  EXPECT_EQ(last.path, "/.pxarexclude-cli");  // after the sorted children of the root
  EXPECT_EQ(content, "/srv/cache\n/tmp/?*\n/var/tmp/?*\n/var/run/?*.pid\nlost+found\n");
  // No fw.conf.blob: this tar has no pct.fw (the container has no firewall file).
  auto m = Store()->LoadManifest({}, *dir);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->Lookup("fw.conf.blob"), nullptr);
}

TEST_F(ImportLxcTest, BadArchivesAreRefusedWithNothingLeftBehind) {
  // A member with an absolute path, written with libarchive.
  const std::string bad = *tmp_ / "vzdump-lxc-103-2024_01_31-12_00_00.tar";
  {
    archive* a = archive_write_new();
    archive_write_set_format_pax(a);
    ASSERT_EQ(archive_write_open_filename(a, bad.c_str()), ARCHIVE_OK);
    for (const char* p : {"./", "/etc/shadow"}) {
      archive_entry* e = archive_entry_new();
      archive_entry_set_pathname(e, p);
      archive_entry_set_mode(e, p[0] == '.' ? (AE_IFDIR | 0755) : (AE_IFREG | 0600));
      archive_entry_set_size(e, 0);
      ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK);
      archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
  }
  auto r = Run({"import", "vzdump", bad, "--store", "store1", "--time-zone", "UTC"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "Error: ")) << r.err;
  EXPECT_TRUE(Contains(r.err, "'/etc/shadow' has an absolute path")) << r.err;
  EXPECT_FALSE(GroupExists("ct/103"));

  // Unknown compression.
  const std::string xz = *tmp_ / "vzdump-lxc-104-2024_01_31-12_00_00.tar.xz";
  std::string cmd = "xz -c '" + Generate(*tmp_ / "ct104", "104", "2024_01_31-12_00_00", "none") +
                    "' > '" + xz + "' 2>/dev/null";
  if (std::system(cmd.c_str()) == 0) {
    auto rx = Run({"import", "vzdump", xz, "--store", "store1", "--time-zone", "UTC"});
    EXPECT_EQ(rx.exit_code, 1);
    EXPECT_TRUE(Contains(rx.err, "unknown compression 'xz'")) << rx.err;
    EXPECT_FALSE(GroupExists("ct/104"));
  }

  // A truncated archive: refused, saying how far it is intact; imported with --salvage.
  const std::string full = Generate(*tmp_ / "ct105", "105", "2024_01_31-12_00_00", "none");
  auto bytes = test::ReadFile(full);
  bytes.resize(bytes.size() / 3);
  const std::string cut = *tmp_ / "vzdump-lxc-105-2024_01_31-12_00_00.tar";
  test::WriteFile(cut, bytes);
  auto rt = Run({"import", "vzdump", cut, "--store", "store1", "--time-zone", "UTC"});
  EXPECT_EQ(rt.exit_code, 1);
  EXPECT_TRUE(Contains(rt.err, "intact up to byte")) << rt.err;
  EXPECT_TRUE(Contains(rt.err, "--salvage")) << rt.err;
  EXPECT_FALSE(GroupExists("ct/105"));

  auto rs = Run({"import", "vzdump", cut, "--store", "store1", "--time-zone", "UTC", "--salvage"});
  ASSERT_EQ(rs.exit_code, 0) << rs.err;
  EXPECT_TRUE(Contains(rs.out, "salvaged damaged archive")) << rs.out;
  auto dir = BackupDir::Parse("ct/105/2024-01-31T12:00:00Z");
  ASSERT_TRUE(dir.ok());
  auto notes = Store()->GetSnapshotNotes({}, *dir);
  ASSERT_TRUE(notes.ok());
  EXPECT_TRUE(Contains(*notes, "Imported with --salvage from vzdump-lxc-105-2024_01_31-12_00_00.tar"))
      << *notes;
  auto v = Run({"verify", "--store", "store1"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;

  // An unreadable path and a VM archive name with tar content.
  auto missing = Run({"import", "vzdump", *tmp_ / "vzdump-lxc-106-2024_01_31-12_00_00.tar.zst",
                      "--store", "store1"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(Contains(missing.err, "No such file or directory")) << missing.err;
  EXPECT_FALSE(GroupExists("ct/106"));
}

}  // namespace
}  // namespace pbskit
