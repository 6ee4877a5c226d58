// `pbskit restore` / `snapshot ls` / `export` of pxar archives in a datastore: the real PBS 3.2.4
// fixture store (read where it lies) and small stores holding `pbskit pxar create` output
// (unified and split). A restored tree is compared entry by entry (type, mode, owner, mtime,
// size, content hash, symlink target, device, xattrs, ACLs, fcaps, hardlinks) with the archive
// by encoding it again; the README's facts are checked on top.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>

#include "../unit/formats/pxar_test_util.h"
#include "../unit/importers/pxar_store_util.h"
#include "pbskit/datastore/archive_reader.h"
#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/importers/pxar_fs.h"
#include "test_support.h"

namespace pbskit {
namespace {

using test::CommandResult;
using test::RunCli;
using test::TempDir;

const std::string kCt = "ct/101/2024-05-01T11:00:00Z";
const std::string kWebA = "host/web/2024-05-03T08:00:00Z";
const std::string kWebB = "host/web/2024-05-04T08:00:00Z";

std::string FixtureStore() { return test::Fixture("pbs-3.2.4-datastore"); }

// Entry lines (fixture `.entries` format) of a pxar byte stream (+ payload for v2).
std::vector<std::string> Lines(const std::vector<uint8_t>& archive,
                               const std::vector<uint8_t>* payload = nullptr) {
  pxar::SpanSource a(archive);
  std::optional<pxar::SpanSource> p;
  if (payload) p.emplace(*payload);
  auto d = pxar::testing::DecodeAll(&a, p ? &*p : nullptr);
  EXPECT_TRUE(d.status.ok()) << d.status.ToString();
  std::vector<std::string> out;
  for (size_t i = 0; i < d.entries.size(); ++i) {
    if (d.entries[i].kind == pxar::EntryKind::kVersion ||
        d.entries[i].kind == pxar::EntryKind::kPrelude)
      continue;
    out.push_back(pxar::testing::EntriesLine(d.entries[i], d.sha256[i]));
  }
  return out;
}

// What a directory on disk encodes to, as entry lines.
std::vector<std::string> TreeLines(const std::string& dir) {
  pxar::VectorSink sink;
  importers::PxarCreateOptions o;
  auto r = importers::CreatePxarArchive(dir, &sink, nullptr, o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return Lines(sink.data());
}

// The decoded pxar stream of an archive of a fixture snapshot.
std::vector<uint8_t> StoreStream(const std::string& store, const std::string& ns,
                                 const std::string& snap, const std::string& archive) {
  auto s = DataStore::Open(store, "store1");
  EXPECT_TRUE(s.ok());
  BackupNamespace n;
  if (!ns.empty()) n = *BackupNamespace::Parse(ns);
  auto r = ArchiveReader::Open(*s, n, *BackupDir::Parse(snap), archive, nullptr);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  std::vector<uint8_t> out;
  EXPECT_TRUE((*r)->ReadAll([&](std::span<const uint8_t> d) {
                    out.insert(out.end(), d.begin(), d.end());
                    return Status::OK();
                  })
                  .ok());
  return out;
}

std::string FileSha(const std::string& p) { return test::Sha256Hex(test::ReadFile(p)); }

bool Exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

CommandResult Restore(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"restore"};
  args.insert(args.end(), extra.begin(), extra.end());
  return RunCli(args);
}

TEST(PxarRestoreCli, FixtureArchivesRestoreExactly) {
  TempDir tmp(test::Scratch::kDisk);
  struct Case {
    std::string ns, snap;
  };
  for (const Case& c : {Case{"", kCt}, Case{"a", kWebA}, Case{"a/b", kWebB}}) {
    SCOPED_TRACE(c.ns + ":" + c.snap);
    std::string target = tmp / ("r-" + std::to_string(c.snap.size()) + c.ns.substr(0, 1) +
                                std::to_string(c.ns.size()));
    std::vector<std::string> args = {"--store", FixtureStore(), c.snap, "root.pxar", target};
    if (!c.ns.empty()) args.insert(args.begin(), {"--ns", c.ns});
    CommandResult r = Restore(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("restore archive complete"), std::string::npos) << r.err;
    EXPECT_EQ(TreeLines(target),
              Lines(StoreStream(FixtureStore(), c.ns, c.snap, "root.pxar.didx")));
  }
}

TEST(PxarRestoreCli, FixtureCt101MatchesTheReadme) {
  TempDir tmp(test::Scratch::kDisk);
  const std::string t = tmp / "ct101";
  CommandResult r = Restore({"--store", FixtureStore(), kCt, "root.pxar", t});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(FileSha(t + "/etc/hostname"),
            "962851bf6ea472c7f97292d91b5c55c6572a31e5b577743f18c92293e367fa3a");
  EXPECT_EQ(FileSha(t + "/usr/bin/tool"),
            "48f141a203e458c61112a98afab91662d4f591fe7863b1909a0152029bf127c1");
  EXPECT_EQ(FileSha(t + "/var/log/messages"),
            "c875b4492d42bb5941d7fea65d91e3ba3a85c17d44e5e9aebfdd1307f51705fd");
  EXPECT_EQ(FileSha(t + "/home/user/grüße-日本.txt"),
            "c72048548a494a815f7cc6e12372d17edde774326f047e4013f2854da9c33490");
  struct stat st, st2;
  ASSERT_EQ(::lstat((t + "/usr/lib/libfoo.so.1").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(std::filesystem::read_symlink(t + "/usr/lib/libfoo.so.1").string(), "libfoo.so.1.2.3");
  ASSERT_EQ(::stat((t + "/root/hardlink-a").c_str(), &st), 0);
  ASSERT_EQ(::stat((t + "/root/hardlink-b").c_str(), &st2), 0);
  EXPECT_EQ(st.st_ino, st2.st_ino);
  ASSERT_EQ(::stat((t + "/root").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1714478400);
  ASSERT_EQ(::stat((t + "/tmp").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  ASSERT_EQ(::stat((t + "/run/initctl").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  ASSERT_EQ(::stat(t.c_str(), &st), 0);  // the archive root's metadata lands on the target
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1714478400);
  char buf[64] = {};
  ASSERT_EQ(::getxattr((t + "/etc/hostname").c_str(), "user.comment", buf, sizeof buf), 13);
  EXPECT_STREQ(buf, "fixture xattr");
  if (geteuid() == 0) {
    ASSERT_EQ(::stat((t + "/dev/null").c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    EXPECT_EQ(major(st.st_rdev), 1u);
    EXPECT_EQ(minor(st.st_rdev), 3u);
    ASSERT_EQ(::stat((t + "/home/user").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 1000u);
    EXPECT_EQ(st.st_gid, 1000u);
    EXPECT_GT(::getxattr((t + "/home/user").c_str(), "system.posix_acl_default", nullptr, 0), 0);
  }
  // A target directory that exists already needs --allow-existing-dirs.
  r = Restore({"--store", FixtureStore(), kCt, "root.pxar", t});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("error extracting archive"), std::string::npos) << r.err;
  // Overwriting covers files, symlinks and hardlinks (as in PBS), not device nodes or FIFOs.
  test::WriteText(t + "/etc/hosts", "changed");
  r = Restore({"--store", FixtureStore(), kCt, "root.pxar", t, "--allow-existing-dirs",
               "--overwrite", "--pattern", "etc/**", "--pattern", "root/**"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(FileSha(t + "/etc/hosts"),
            "f0f70da09bf656230f263ce09dc6366e514084208ad6af643eb04969fd2d4c70");
}

TEST(PxarRestoreCli, PatternsAndStdout) {
  TempDir tmp(test::Scratch::kDisk);
  std::string t = tmp / "p1";
  CommandResult r = Restore({"--store", FixtureStore(), kCt, "root.pxar", t, "--pattern", "usr/**",
                             "--pattern", "!libfoo*"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Exists(t + "/usr/bin/tool"));
  EXPECT_FALSE(Exists(t + "/usr/lib"));
  EXPECT_FALSE(Exists(t + "/etc"));

  t = tmp / "p2";
  r = Restore({"--store", FixtureStore(), kCt, "root.pxar", t, "--pattern", "/etc"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Exists(t + "/etc/hosts"));
  EXPECT_FALSE(Exists(t + "/home"));

  r = Restore({"--store", FixtureStore(), kCt, "root.pxar", "-", "--pattern", "etc/**"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("patterns not allowed when restoring to stdout"), std::string::npos);
  r = Restore({"--store", FixtureStore(), kCt, "root.pxar", t, "--pattern", "a[b"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unclosed character class"), std::string::npos) << r.err;

  // '-' pipes the raw pxar stream of a unified archive.
  r = Restore({"--store", FixtureStore(), kCt, "root.pxar", "-"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::Sha256Hex(r.out),
            "80bd34b06226ac8bd829616679cd7c444c8297f3a9a5b827e5c58bfa420d00b5");
}

TEST(PxarRestoreCli, DamagedChunkFailsNamingIt) {
  TempDir tmp(test::Scratch::kDisk);
  test::CopyTree(FixtureStore(), tmp / "store");
  const std::string digest = "53c2ce48849a6ec51daed2c04a2857e6d0af920f49f37159b43b62cf86743dbd";
  const std::string chunk = tmp / ("store/.chunks/53c2/" + digest);
  std::vector<uint8_t> bytes = test::ReadFile(chunk);
  bytes[40] ^= 0x01;
  test::WriteFile(chunk, bytes);
  CommandResult r = Restore({"--store", tmp / "store", kCt, "root.pxar", tmp / "out"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("chunk " + digest), std::string::npos) << r.err;
  r = RunCli({"export", "--store", tmp / "store", kCt, "root.pxar", tmp / "out.tar"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("chunk " + digest), std::string::npos) << r.err;
  EXPECT_FALSE(Exists(tmp / "out.tar"));
}

TEST(PxarRestoreCli, SnapshotLsThroughTheCatalog) {
  CommandResult r = RunCli({"snapshot", "ls", "--store", FixtureStore(), kCt, "root.pxar", "/etc"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "f \"/etc/hostname\" 6 2024-04-30T12:00:00Z\n"
            "f \"/etc/hosts\" 55 2024-04-30T12:00:00Z\n"
            "f \"/etc/passwd\" 78 2024-04-30T12:00:00Z\n");
  r = RunCli(
      {"snapshot", "ls", "--store", FixtureStore(), "--ns", "a/b", kWebB, "root.pxar", "srv/www"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "d \"/srv/www/img\"\n"
            "f \"/srv/www/index.html\" 40 2024-05-04T06:00:00Z\n"
            "f \"/srv/www/new-page.html\" 40 2024-05-04T06:00:00Z\n"
            "f \"/srv/www/style.css\" 23 2024-05-04T06:00:00Z\n");
  r = RunCli({"--output-format", "json", "snapshot", "ls", "--store", FixtureStore(), kCt,
              "root.pxar", "/root"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"text\":\"hardlink-b\",\"type\":\"h\",\"leaf\":true"), std::string::npos)
      << r.out;
  EXPECT_NE(
      r.out.find("\"text\":\"empty\",\"type\":\"f\",\"leaf\":true,\"size\":0,\"mtime\":1714478400"),
      std::string::npos)
      << r.out;
  r = RunCli(
      {"snapshot", "ls", "--store", FixtureStore(), kCt, "root.pxar", "usr/lib/libfoo.so.1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "l \"/usr/lib/libfoo.so.1\"\n");
  r = RunCli({"snapshot", "ls", "--store", FixtureStore(), kCt, "root.pxar", "/nope"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no such file or directory '/nope'"), std::string::npos) << r.err;
}

struct TarMember {
  char type = '?';  // f d l h c b p
  unsigned perm = 0;
  int64_t uid = -1, gid = -1, mtime = 0;
  long mtime_ns = 0;
  std::string sha256, link, hardlink;
  unsigned dev_major = 0, dev_minor = 0;
  std::map<std::string, std::string> xattrs;
  std::string acl;
};

std::map<std::string, TarMember> ReadTar(const std::string& path, std::string* filter) {
  std::map<std::string, TarMember> out;
  struct archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_all(a);
  EXPECT_EQ(archive_read_open_filename(a, path.c_str(), 65536), ARCHIVE_OK);
  struct archive_entry* e;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    TarMember m;
    mode_t t = archive_entry_filetype(e);
    m.type = t == AE_IFDIR   ? 'd'
             : t == AE_IFLNK ? 'l'
             : t == AE_IFCHR ? 'c'
             : t == AE_IFBLK ? 'b'
             : t == AE_IFIFO ? 'p'
                             : 'f';
    if (const char* h = archive_entry_hardlink(e)) {
      m.type = 'h';
      m.hardlink = h;
    }
    if (const char* l = archive_entry_symlink(e)) m.link = l;
    m.perm = archive_entry_perm(e);
    m.uid = archive_entry_uid(e);
    m.gid = archive_entry_gid(e);
    m.mtime = archive_entry_mtime(e);
    m.mtime_ns = archive_entry_mtime_nsec(e);
    m.dev_major = archive_entry_rdevmajor(e);
    m.dev_minor = archive_entry_rdevminor(e);
    archive_entry_xattr_reset(e);
    const char* name;
    const void* value;
    size_t size;
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK)
      m.xattrs[name] = std::string(static_cast<const char*>(value), size);
    if (char* acl = archive_entry_acl_to_text(
            e, nullptr, ARCHIVE_ENTRY_ACL_TYPE_ACCESS | ARCHIVE_ENTRY_ACL_TYPE_DEFAULT)) {
      m.acl = acl;
      std::free(acl);  // the caller owns libarchive's text
    }
    if (m.type == 'f') {
      std::string data;
      char buf[65536];
      la_ssize_t n;
      while ((n = archive_read_data(a, buf, sizeof buf)) > 0)
        data.append(buf, static_cast<size_t>(n));
      m.sha256 = test::Sha256Hex(data);
    }
    std::string path = archive_entry_pathname(e);
    if (path.size() > 1 && path.back() == '/') path.pop_back();  // directories end in '/'
    out[path] = m;
  }
  if (filter) *filter = archive_filter_count(a) > 1 ? archive_filter_name(a, 0) : "none";
  archive_read_free(a);
  return out;
}

TEST(PxarRestoreCli, ExportWritesAPaxTarThatReadsBack) {
  TempDir tmp(test::Scratch::kDisk);
  for (const std::string file : {"ct.tar", "ct.tar.zst"}) {
    SCOPED_TRACE(file);
    CommandResult r = RunCli({"export", "--store", FixtureStore(), kCt, "root.pxar", tmp / file});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::string filter;
    auto m = ReadTar(tmp / file, &filter);
    EXPECT_EQ(filter, file == "ct.tar" ? "none" : "zstd");
    // Every archive entry except the root is a member, with its metadata.
    std::vector<uint8_t> stream = StoreStream(FixtureStore(), "", kCt, "root.pxar.didx");
    pxar::SpanSource src(stream);
    auto d = pxar::testing::DecodeAll(&src, nullptr);
    ASSERT_TRUE(d.status.ok());
    ASSERT_EQ(m.size(), d.entries.size() - 1);
    for (size_t i = 1; i < d.entries.size(); ++i) {
      const pxar::Entry& e = d.entries[i];
      std::string name = e.path.substr(1);
      SCOPED_TRACE(name);
      ASSERT_TRUE(m.count(name));
      const TarMember& t = m[name];
      EXPECT_EQ(t.type, pxar::EntryKindLetter(e.kind, e.metadata));
      if (e.kind == pxar::EntryKind::kHardlink) {
        EXPECT_EQ(t.hardlink, e.link_target);
        continue;
      }
      // libarchive keeps the owning group's ACL permissions in the mode's group bits (the mask
      // travels in the ACL), as it does when it archives such a file from disk.
      uint64_t perm = e.metadata.stat.mode & 07777;
      if (e.metadata.acl.group_obj) perm = (perm & ~070u) | ((*e.metadata.acl.group_obj & 7) << 3);
      EXPECT_EQ(t.perm, perm);
      EXPECT_EQ(t.uid, e.metadata.stat.uid);
      EXPECT_EQ(t.gid, e.metadata.stat.gid);
      EXPECT_EQ(t.mtime, e.metadata.stat.mtime_secs);
      if (e.kind == pxar::EntryKind::kFile) {
        EXPECT_EQ(t.sha256, d.sha256[i]);
      }
      if (e.kind == pxar::EntryKind::kSymlink) {
        EXPECT_EQ(t.link, e.link_target);
      }
      if (e.kind == pxar::EntryKind::kDevice) {
        EXPECT_EQ(t.dev_major, e.device.major);
        EXPECT_EQ(t.dev_minor, e.device.minor);
      }
      for (const pxar::XAttr& x : e.metadata.xattrs) EXPECT_EQ(t.xattrs.at(x.name), x.value);
    }
    EXPECT_EQ(m["root/hardlink-b"].hardlink, "root/hardlink-a");
    EXPECT_EQ(m["etc/hostname"].xattrs["user.comment"], "fixture xattr");
    EXPECT_NE(m["home/user"].acl.find("user:1000:rwx"), std::string::npos) << m["home/user"].acl;
    EXPECT_NE(m["home/user"].acl.find("default:user:1000:rwx"), std::string::npos);
  }
  CommandResult r = RunCli({"export", "--store", FixtureStore(), kCt, "root.pxar", tmp / "ct.tar"});
  EXPECT_EQ(r.exit_code, 2);  // exists
  r = RunCli({"export", "--store", FixtureStore(), "vm/100/2024-05-01T10:00:00Z", "drive-scsi0.img",
              tmp / "img.tar"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("only pxar archives"), std::string::npos) << r.err;
  r = RunCli({"export", "--store", FixtureStore(), "--ns", "a", kWebA, "root.pxar", "-"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("srv/www/index.html"), std::string::npos);
}

// Stores holding `pbskit pxar create` output (unified and split), imported with the snapshot
// writer; restore re-encodes to the same archive bytes.
class CreatedArchiveStore : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir(test::Scratch::kDisk);
    const std::string src = *tmp_ / "src";
    std::filesystem::create_directories(src + "/a/b");
    std::filesystem::create_directories(src + "/empty");
    test::WriteText(src + "/a/b/text.txt", "some text\n");
    std::vector<uint8_t> big(700000);
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
    test::WriteFile(src + "/a/big.bin", big);
    test::WriteText(src + "/x.log", "log\n");
    ::symlink("a/b/text.txt", (src + "/link").c_str());
    ::link((src + "/x.log").c_str(), (src + "/a/x.hard").c_str());
    ::mkfifo((src + "/fifo").c_str(), 0640);
    ::setxattr((src + "/a/b/text.txt").c_str(), "user.k", "v1", 2, 0);
    struct timespec ts[2] = {{1600000000, 123456789}, {1600000000, 123456789}};
    for (const char* p : {"/a/b/text.txt", "/a/b", "/a", "/empty", "/"})
      ::utimensat(AT_FDCWD, (src + p).c_str(), ts, AT_SYMLINK_NOFOLLOW);

    CommandResult r = RunCli({"pxar", "create", *tmp_ / "v1.pxar", src});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = RunCli({"pxar", "create", *tmp_ / "v2.mpxar", src, "--payload-output", *tmp_ / "v2.ppxar"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    v1_ = test::ReadFile(*tmp_ / "v1.pxar");
    std::vector<uint8_t> m = test::ReadFile(*tmp_ / "v2.mpxar"),
                         p = test::ReadFile(*tmp_ / "v2.ppxar");
    auto store = test::OpenSmallStore(*tmp_ / "store", {v1_, m, p}, 64 * 1024);
    ASSERT_TRUE(store);
    auto add = [&](const std::string& snap,
                   std::vector<std::pair<std::string, std::vector<uint8_t>*>> files) {
      SnapshotWriterOptions o;
      o.dir = *BackupDir::Parse(snap);
      auto w = SnapshotWriter::Begin(store, o);
      ASSERT_TRUE(w.ok()) << w.status().ToString();
      for (auto& [name, data] : files) {
        MemoryByteSource s(*data);
        auto a = (*w)->AddDynamicIndex(name, s, 64 * 1024);
        ASSERT_TRUE(a.ok()) << a.status().ToString();
      }
      ASSERT_TRUE((*w)->Finish().ok());
    };
    add("host/v1/2024-06-01T00:00:00Z", {{"root.pxar.didx", &v1_}});
    add("host/v2/2024-06-01T00:00:00Z", {{"root.mpxar.didx", &m}, {"root.ppxar.didx", &p}});
  }
  static void TearDownTestSuite() { delete tmp_; }
  static std::string Store() { return *tmp_ / "store"; }
  static TempDir* tmp_;
  static std::vector<uint8_t> v1_;
};
TempDir* CreatedArchiveStore::tmp_ = nullptr;
std::vector<uint8_t> CreatedArchiveStore::v1_;

TEST_F(CreatedArchiveStore, UnifiedAndSplitRestoreToTheSameTree) {
  for (const std::string snap : {"host/v1/2024-06-01T00:00:00Z", "host/v2/2024-06-01T00:00:00Z"}) {
    SCOPED_TRACE(snap);
    std::string t = *tmp_ / ("restore-" + snap.substr(5, 2));
    CommandResult r = Restore({"--store", Store(), snap, "root.pxar", t});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // Encoding the restored tree gives the very bytes `pxar create` wrote for the source.
    pxar::VectorSink sink;
    importers::PxarCreateOptions o;
    ASSERT_TRUE(importers::CreatePxarArchive(t, &sink, nullptr, o).ok());
    EXPECT_EQ(Lines(sink.data()), Lines(v1_));
    EXPECT_TRUE(sink.data() == v1_);
  }
  CommandResult r = Restore({"--store", Store(), "host/v2/2024-06-01T00:00:00Z", "root.pxar", "-"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unable to pipe split archive"), std::string::npos) << r.err;
}

TEST_F(CreatedArchiveStore, LsWithoutCatalogAndExportOfASplitArchive) {
  CommandResult r = RunCli(
      {"snapshot", "ls", "--store", Store(), "host/v2/2024-06-01T00:00:00Z", "root.pxar", "/a"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto utc = [](const std::string& path) {
    struct stat st;
    EXPECT_EQ(::lstat(path.c_str(), &st), 0);
    char b[32];
    struct tm tm;
    std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&st.st_mtim.tv_sec, &tm));
    return std::string(b);
  };
  // a/x.hard comes first in archive order, so it holds the data and /x.log links to it.
  EXPECT_EQ(r.out, "d \"/a/b\"\nf \"/a/big.bin\" 700000 " + utc(*tmp_ / "src/a/big.bin") +
                       "\nf \"/a/x.hard\" 4 " + utc(*tmp_ / "src/x.log") + "\n");
  std::string out = *tmp_ / "v2.tar.zst";
  r = RunCli({"export", "--store", Store(), "host/v2/2024-06-01T00:00:00Z", "root.mpxar", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string filter;
  auto m = ReadTar(out, &filter);
  EXPECT_EQ(filter, "zstd");
  EXPECT_EQ(m["a/big.bin"].sha256, FileSha(*tmp_ / "src/a/big.bin"));
  EXPECT_EQ(m["a/b/text.txt"].xattrs["user.k"], "v1");
  EXPECT_EQ(m["a/b/text.txt"].mtime_ns, 123456789);
  EXPECT_EQ(m["x.log"].hardlink, "a/x.hard");
  EXPECT_EQ(m["link"].link, "a/b/text.txt");
  EXPECT_EQ(m["fifo"].type, 'p');
  EXPECT_EQ(m["fifo"].perm, 0640u);
}

// backup dir -> restore round trips in every change-detection mode, on one real datastore.
class BackupDirRoundTrip : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir(test::Scratch::kDisk);
    auto store = DataStore::Create(*tmp_ / "store", "store1");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    const std::string src = *tmp_ / "src";
    std::filesystem::create_directories(src + "/etc/conf.d");
    std::filesystem::create_directories(src + "/data");
    test::WriteText(src + "/etc/conf.d/app.conf", "key=value\n");
    ::setxattr((src + "/etc/conf.d/app.conf").c_str(), "user.origin", "round trip", 10, 0);
    std::vector<uint8_t> big(3 * 1024 * 1024);
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>((i * 40503u) >> 9);
    test::WriteFile(src + "/data/big.bin", big);
    test::WriteText(src + "/data/small.txt", "small\n");
    ::symlink("../etc/conf.d/app.conf", (src + "/data/conf-link").c_str());
    ::link((src + "/data/small.txt").c_str(), (src + "/etc/small.hard").c_str());
    ::chmod((src + "/data/small.txt").c_str(), 0640);
  }
  static void TearDownTestSuite() { delete tmp_; }

  static CommandResult Backup(const std::string& mode, int64_t time) {
    return RunCli({"backup", "dir", *tmp_ / "src", "--store", *tmp_ / "store", "--type", "host",
                   "--id", "rt", "--change-detection-mode", mode, "--chunk-size", "64",
                   "--backup-time", std::to_string(time)});
  }
  static std::string Snap(int64_t time) {
    char b[32];
    struct tm tm;
    time_t t = static_cast<time_t>(time);
    std::strftime(b, sizeof b, "host/rt/%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    return b;
  }
  static void ExpectRestoresToSource(int64_t time) {
    std::string t = *tmp_ / ("restore-" + std::to_string(time));
    CommandResult r = Restore({"--store", *tmp_ / "store", Snap(time), "root.pxar", t});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(TreeLines(t), TreeLines(*tmp_ / "src"));
  }
  static TempDir* tmp_;
};
TempDir* BackupDirRoundTrip::tmp_ = nullptr;

TEST_F(BackupDirRoundTrip, EveryChangeDetectionModeRestoresTheTree) {
  CommandResult r = Backup("legacy", 1717200000);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectRestoresToSource(1717200000);
  // The legacy snapshot has a catalog: ls reads it.
  r = RunCli({"snapshot", "ls", "--store", *tmp_ / "store", Snap(1717200000), "root.pxar", "/etc"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')), "d \"/etc/conf.d\"");

  r = Backup("data", 1717200100);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectRestoresToSource(1717200100);

  test::WriteText(*tmp_ / "src/data/new.txt", "added before the metadata-mode backup\n");
  r = Backup("metadata", 1717200200);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectRestoresToSource(1717200200);
  r = RunCli({"snapshot", "ls", "--store", *tmp_ / "store", Snap(1717200200), "root.pxar", "data"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("f \"/data/new.txt\" 38 "), std::string::npos) << r.out;

  std::string tar = *tmp_ / "rt.tar";
  r = RunCli({"export", "--store", *tmp_ / "store", Snap(1717200200), "root.pxar", tar});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto m = ReadTar(tar, nullptr);
  EXPECT_EQ(m["data/big.bin"].sha256, FileSha(*tmp_ / "src/data/big.bin"));
  EXPECT_EQ(m["etc/conf.d/app.conf"].xattrs["user.origin"], "round trip");
}

TEST_F(BackupDirRoundTrip, EncryptedArchiveNeedsItsKey) {
  const std::string key = test::Fixture("pbs-3.2.4-datastore.key.json");
  CommandResult r = RunCli({"backup", "dir", *tmp_ / "src", "--store", *tmp_ / "store", "--type",
                            "host", "--id", "enc", "--change-detection-mode", "data", "--keyfile",
                            key, "--backup-time", "1717300000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string snap = "host/enc/2024-06-02T03:46:40Z";
  std::string t = *tmp_ / "restore-enc";
  r = Restore({"--store", *tmp_ / "store", snap, "root.pxar", t});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("missing key"), std::string::npos) << r.err;
  r = Restore({"--store", *tmp_ / "store", snap, "root.pxar", t, "--keyfile", key});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(TreeLines(t), TreeLines(*tmp_ / "src"));
  r = RunCli(
      {"snapshot", "ls", "--store", *tmp_ / "store", snap, "root.pxar", "/", "--keyfile", key});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "d \"/data\"\nd \"/etc\"\n");
}

}  // namespace
}  // namespace pbskit
