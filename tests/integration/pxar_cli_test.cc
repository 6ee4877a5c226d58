// `pbskit pxar create|list|extract` against the real pxar fixtures: the source trees (restored
// from their .src.tar.gz with libarchive, keeping modes, owners, nanosecond mtimes, xattrs, ACLs
// and file capabilities) encode to the very bytes `pxar create` wrote.
#include <gtest/gtest.h>

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "../unit/formats/pxar_test_util.h"
#include "test_support.h"

namespace {

using pbskit::test::CommandResult;
using pbskit::test::Fixture;
using pbskit::test::ReadFile;
using pbskit::test::ReadText;
using pbskit::test::RunCli;
using pbskit::test::TempDir;

// Entry lines of an archive (metadata only) for a readable diff when bytes differ.
std::vector<std::string> Describe(const std::vector<uint8_t>& bytes) {
  pbskit::pxar::SpanSource src(bytes);
  auto d = pbskit::pxar::testing::DecodeAll(&src, nullptr);
  std::vector<std::string> out;
  for (size_t i = 0; i < d.entries.size(); ++i)
    out.push_back(pbskit::pxar::testing::EntriesLine(d.entries[i], d.sha256[i]));
  if (!d.status.ok()) out.push_back(d.status.ToString());
  return out;
}

// Restores a tar(.gz) below `dest` with everything the fixture README says it recorded.
std::string ExtractTar(const std::string& tar, const std::string& dest) {
  struct archive* in = archive_read_new();
  archive_read_support_filter_all(in);
  archive_read_support_format_all(in);
  struct archive* out = archive_write_disk_new();
  int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_XATTR |
              ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_SECURE_NODOTDOT;
  if (geteuid() == 0) flags |= ARCHIVE_EXTRACT_OWNER;
  archive_write_disk_set_options(out, flags);
  std::string err;
  struct Fixup {
    std::string path;
    mode_t mode;
    time_t sec;
    long nsec;
    bool symlink;
  };
  std::vector<Fixup> fixups;
  if (archive_read_open_filename(in, tar.c_str(), 65536) != ARCHIVE_OK) {
    err = archive_error_string(in);
  }
  struct archive_entry* e = nullptr;
  while (err.empty()) {
    int r = archive_read_next_header(in, &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      err = archive_error_string(in);
      break;
    }
    std::string path = dest + "/" + archive_entry_pathname(e);
    archive_entry_set_pathname(e, path.c_str());
    if (const char* hl = archive_entry_hardlink(e))
      archive_entry_set_hardlink(e, (dest + "/" + hl).c_str());
    if (archive_write_header(out, e) < ARCHIVE_WARN) {
      err = archive_error_string(out);
      break;
    }
    const void* buf;
    size_t size;
    la_int64_t off;
    while ((r = archive_read_data_block(in, &buf, &size, &off)) == ARCHIVE_OK)
      archive_write_data_block(out, buf, size, off);
    archive_write_finish_entry(out);
    // The tar also carries the ACLs as raw system.posix_acl_* xattrs (numeric ids); the
    // disk writer leaves system.* xattrs out, so set those directly (neither contents nor
    // mtime change).
    bool has_access = false, has_default = false;
    mode_t mode = archive_entry_mode(e);
    archive_entry_xattr_reset(e);
    const char* xname;
    const void* xvalue;
    size_t xsize;
    while (archive_entry_xattr_next(e, &xname, &xvalue, &xsize) == ARCHIVE_OK) {
      if (std::strncmp(xname, "system.posix_acl_", 17) != 0) continue;
      bool access = std::strcmp(xname, "system.posix_acl_access") == 0;
      (access ? has_access : has_default) = true;
      // libarchive maps "group::" of the ACL text onto the mode; with a mask the mode's group
      // bits are the mask.
      const auto* v = static_cast<const uint8_t*>(xvalue);
      for (size_t at = 4; access && at + 8 <= xsize; at += 8)
        if ((v[at] | v[at + 1] << 8) == 0x10) mode = (mode & ~070u) | ((v[at + 2] & 7u) << 3);
      if (lsetxattr(path.c_str(), xname, xvalue, xsize, 0) != 0)
        err = "setting " + std::string(xname) + " on " + path + ": " + std::strerror(errno);
    }
    // Entries created below a directory with a default ACL inherit it; the source had none.
    if (!archive_entry_symlink(e)) {
      if (!has_access) lremovexattr(path.c_str(), "system.posix_acl_access");
      if (!has_default) lremovexattr(path.c_str(), "system.posix_acl_default");
    }
    fixups.push_back(Fixup{path, mode, archive_entry_mtime(e),
                           archive_entry_mtime_nsec(e), archive_entry_symlink(e) != nullptr});
  }
  archive_read_free(in);
  if (archive_write_close(out) != ARCHIVE_OK && err.empty()) err = archive_error_string(out);
  archive_write_free(out);
  // Modes and times last, as the original tree had them.
  for (auto it = fixups.rbegin(); it != fixups.rend() && err.empty(); ++it) {
    if (!it->symlink && chmod(it->path.c_str(), it->mode & 07777) != 0)
      err = "chmod " + it->path + ": " + std::strerror(errno);
    struct timespec t[2] = {{it->sec, it->nsec}, {it->sec, it->nsec}};
    if (utimensat(AT_FDCWD, it->path.c_str(), t, AT_SYMLINK_NOFOLLOW) != 0)
      err = "utimensat " + it->path + ": " + std::strerror(errno);
  }
  return err;
}

bool FullFeatureFs(const std::string& path) {
  struct statfs s;
  if (statfs(path.c_str(), &s) != 0) return false;
  int64_t m = static_cast<int64_t>(s.f_type);
  return m == 0xEF53 || m == 0x58465342 || m == 0x2FC12FC1;
}

// tar cannot hold the socket `tree1/sock`: recreate it as it was (0755, the tree's mtime).
void AddTree1Socket(const std::string& tree) {
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string p = tree + "/sock";
  ASSERT_LT(p.size(), sizeof(addr.sun_path));
  std::strcpy(addr.sun_path, p.c_str());
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(s);
  ASSERT_EQ(chmod(p.c_str(), 0755), 0);
  struct timespec t[2] = {{1704164645, 0}, {1704164645, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, p.c_str(), t, AT_SYMLINK_NOFOLLOW), 0);
  ASSERT_EQ(utimensat(AT_FDCWD, tree.c_str(), t, 0), 0);
}

class PxarCli : public ::testing::TestWithParam<std::string> {};

TEST_P(PxarCli, CreateFromSourceTreeIsByteIdentical) {
  if (geteuid() != 0) GTEST_SKIP() << "owners, device nodes and capabilities need root";
  TempDir tmp(pbskit::test::Scratch::kDisk);
  if (!FullFeatureFs(tmp.path()))
    GTEST_SKIP() << "scratch file system does not keep xattrs/ACLs like ext4";
  const std::string name = GetParam();
  std::string err = ExtractTar(Fixture("pxar/" + name + ".src.tar.gz"), tmp.path());
  ASSERT_EQ(err, "");
  if (name == "tree1") AddTree1Socket(tmp / "tree1");
  std::string out = tmp / (name + ".pxar");
  CommandResult r = RunCli({"pxar", "create", out, tmp / name});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<uint8_t> want = ReadFile(Fixture("pxar/" + name + ".pxar"));
  std::vector<uint8_t> got = ReadFile(out);
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want) << "archive differs from the fixture";
  if (got != want) {
    std::vector<std::string> g = Describe(got), w = Describe(want);
    for (size_t i = 0; i < std::max(g.size(), w.size()); ++i) {
      std::string a = i < g.size() ? g[i] : "", b = i < w.size() ? w[i] : "";
      if (a != b) ADD_FAILURE() << "got:  " << a << "\nwant: " << b;
    }
  }
}

TEST_P(PxarCli, ListPrintsWhatPxarListPrints) {
  const std::string name = GetParam();
  CommandResult r = RunCli({"pxar", "list", Fixture("pxar/" + name + ".pxar")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, ReadText(Fixture("pxar/" + name + ".pxar.list")));
}

TEST_P(PxarCli, ExtractThenCreateReproducesTheArchive) {
  if (geteuid() != 0) GTEST_SKIP() << "owners and device nodes need root";
  TempDir tmp(pbskit::test::Scratch::kDisk);
  if (!FullFeatureFs(tmp.path())) GTEST_SKIP() << "scratch file system lacks xattrs";
  const std::string name = GetParam();
  CommandResult x = RunCli({"pxar", "extract", Fixture("pxar/" + name + ".pxar"), tmp / "x"});
  ASSERT_EQ(x.exit_code, 0) << x.err;
  CommandResult c = RunCli({"pxar", "create", tmp / "again.pxar", tmp / "x"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_TRUE(ReadFile(tmp / "again.pxar") == ReadFile(Fixture("pxar/" + name + ".pxar")));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PxarCli, ::testing::Values("tree1", "tree2", "empty"));

TEST(PxarCliMisc, SplitArchiveCreateListExtract) {
  if (geteuid() != 0) GTEST_SKIP() << "device nodes need root";
  TempDir tmp(pbskit::test::Scratch::kDisk);
  CommandResult x = RunCli({"pxar", "extract", Fixture("pxar/tree1.pxar"), tmp / "src"});
  ASSERT_EQ(x.exit_code, 0) << x.err;
  CommandResult c = RunCli({"pxar", "create", tmp / "t.mpxar", tmp / "src", "--payload-output",
                            tmp / "t.ppxar"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  CommandResult l = RunCli({"pxar", "list", tmp / "t.mpxar"});
  ASSERT_EQ(l.exit_code, 0) << l.err;
  EXPECT_EQ(l.out, ReadText(Fixture("pxar/tree1.pxar.list")));
  // Without the payload file extraction is refused like PBS does.
  CommandResult bad = RunCli({"pxar", "extract", tmp / "t.mpxar", tmp / "y"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("Payload input required"), std::string::npos) << bad.err;
  CommandResult y = RunCli({"pxar", "extract", tmp / "t.mpxar", tmp / "y", "--payload-input",
                            tmp / "t.ppxar"});
  ASSERT_EQ(y.exit_code, 0) << y.err;
  if (FullFeatureFs(tmp.path())) {
    CommandResult v1 = RunCli({"pxar", "create", tmp / "v1.pxar", tmp / "y"});
    ASSERT_EQ(v1.exit_code, 0) << v1.err;
    EXPECT_TRUE(ReadFile(tmp / "v1.pxar") == ReadFile(Fixture("pxar/tree1.pxar")));
  }
}

TEST(PxarCliMisc, ExtractPattern) {
  TempDir tmp(pbskit::test::Scratch::kDisk);
  CommandResult x = RunCli({"pxar", "extract", Fixture("pxar/tree2.pxar"), tmp / "x",
                            "--pattern", "d01", "--pattern", "d02/f03.txt"});
  ASSERT_EQ(x.exit_code, 0) << x.err;
  struct stat st;
  EXPECT_EQ(stat((tmp / "x/d01/f00.txt").c_str(), &st), 0);
  EXPECT_EQ(stat((tmp / "x/d02/f03.txt").c_str(), &st), 0);
  EXPECT_NE(stat((tmp / "x/d02/f04.txt").c_str(), &st), 0);
  EXPECT_NE(stat((tmp / "x/d00").c_str(), &st), 0);
}

TEST(PxarCliMisc, Errors) {
  TempDir tmp(pbskit::test::Scratch::kDisk);
  // The output archive must not exist (like pxar create).
  pbskit::test::WriteText(tmp / "exists.pxar", "x");
  CommandResult c = RunCli({"pxar", "create", tmp / "exists.pxar", tmp.path()});
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_NE(c.err.find("Error: "), std::string::npos) << c.err;
  // A truncated archive is reported with the offset where it breaks.
  std::vector<uint8_t> a = ReadFile(Fixture("pxar/tree2.pxar"));
  a.resize(a.size() / 2);
  pbskit::test::WriteFile(tmp / "cut.pxar", a);
  CommandResult l = RunCli({"pxar", "list", tmp / "cut.pxar"});
  EXPECT_EQ(l.exit_code, 1);
  EXPECT_NE(l.err.find("offset"), std::string::npos) << l.err;
  CommandResult m = RunCli({"pxar", "list", tmp / "missing.pxar"});
  EXPECT_EQ(m.exit_code, 1);
  EXPECT_NE(m.err.find("missing.pxar"), std::string::npos) << m.err;
}

}  // namespace
