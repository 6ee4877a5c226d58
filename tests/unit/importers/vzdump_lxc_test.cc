// Container tar -> pxar conversion: a tree packed by GNU tar with vzdump's flags converts to the
// same bytes `pxar create` gives for the tree itself; member order, duplicates, hard link
// direction, config members, and every refusal (paths, compression, truncation, bad files).
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>

#include "pbskit/formats/pxar/decoder.h"
#include "pbskit/importers/pxar_fs.h"
#include "pbskit/importers/vzdump_lxc.h"
#include "test_support.h"

namespace pbskit {
namespace {

using test::TempDir;

bool Contains(const std::string& s, const std::string& n) { return s.find(n) != std::string::npos; }

struct Member {
  Member(std::string p, char t = 'f', std::string d = "", int pm = 0644, int64_t mt = 1700000000)
      : path(std::move(p)), type(t), data(std::move(d)), perm(pm), mtime(mt) {}
  std::string path;
  char type;         // f file, d dir, l symlink, h hard link
  std::string data;  // file content, symlink or hard link target
  int perm;
  int64_t mtime;
};

// Writes a pax tar with libarchive (exact member order) through `filter` (ARCHIVE_FILTER_*).
std::vector<uint8_t> MakeTar(const std::vector<Member>& members, int filter = ARCHIVE_FILTER_NONE) {
  archive* a = archive_write_new();
  archive_write_set_format_pax(a);
  if (filter != ARCHIVE_FILTER_NONE) {
    EXPECT_EQ(archive_write_add_filter(a, filter), ARCHIVE_OK);
  }
  archive_write_set_bytes_in_last_block(a, 1);
  std::vector<uint8_t> out(8 << 20);
  size_t used = 0;
  EXPECT_EQ(archive_write_open_memory(a, out.data(), out.size(), &used), ARCHIVE_OK);
  for (const auto& m : members) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, m.path.c_str());
    archive_entry_set_mtime(e, m.mtime, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    switch (m.type) {
      case 'd': archive_entry_set_mode(e, AE_IFDIR | m.perm); break;
      case 'l':
        archive_entry_set_mode(e, AE_IFLNK | 0777);
        archive_entry_set_symlink(e, m.data.c_str());
        break;
      case 'h':
        archive_entry_set_mode(e, AE_IFREG | m.perm);
        archive_entry_set_hardlink(e, m.data.c_str());
        archive_entry_set_size(e, 0);
        break;
      default:
        archive_entry_set_mode(e, AE_IFREG | m.perm);
        archive_entry_set_size(e, static_cast<la_int64_t>(m.data.size()));
    }
    EXPECT_EQ(archive_write_header(a, e), ARCHIVE_OK) << archive_error_string(a);
    if (m.type == 'f' && !m.data.empty()) {
      EXPECT_EQ(archive_write_data(a, m.data.data(), m.data.size()),
                static_cast<la_ssize_t>(m.data.size()));
    }
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  out.resize(used);
  return out;
}

Result<std::vector<uint8_t>> Convert(const std::string& path, LxcTarOptions o = {},
                                     std::unique_ptr<LxcTarArchive>* keep = nullptr) {
  PBSKIT_ASSIGN_OR_RETURN(auto tar, LxcTarArchive::Read(path, o));
  pxar::VectorSink sink;
  PBSKIT_RETURN_IF_ERROR(tar->Encode(&sink, nullptr));
  if (keep) *keep = std::move(tar);
  return std::move(sink.data());
}

std::vector<pxar::Entry> Decode(const std::vector<uint8_t>& bytes,
                                std::map<std::string, std::string>* contents = nullptr) {
  pxar::SpanSource src(bytes);
  pxar::Decoder dec(&src, nullptr);
  std::vector<pxar::Entry> out;
  pxar::Entry e;
  for (;;) {
    auto r = dec.Next(&e);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok() || !*r) break;
    if (e.kind == pxar::EntryKind::kFile && contents) {
      std::string data;
      uint8_t buf[4096];
      for (;;) {
        auto n = dec.ReadContent(buf);
        EXPECT_TRUE(n.ok());
        if (!n.ok() || *n == 0) break;
        data.append(reinterpret_cast<char*>(buf), *n);
      }
      (*contents)[e.path] = data;
    }
    out.push_back(e);
  }
  return out;
}

std::vector<std::string> Paths(const std::vector<pxar::Entry>& entries) {
  std::vector<std::string> p;
  for (const auto& e : entries) p.push_back(e.path);
  return p;
}

class LxcTarTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::vector<uint8_t>& bytes) {
    std::string p = tmp_ / name;
    test::WriteFile(p, bytes);
    return p;
  }
  TempDir tmp_{test::Scratch::kDisk};
};

void SetTimes(const std::string& p, int64_t sec, long nsec) {
  struct timespec t[2] = {{sec, nsec}, {sec, nsec}};
  ASSERT_EQ(utimensat(AT_FDCWD, p.c_str(), t, AT_SYMLINK_NOFOLLOW), 0) << p;
}

// The heart of it: GNU tar with vzdump's flags, converted, gives exactly what pxar create
// writes for the same tree (minus what tar does not carry: sockets, excluded files).
TEST_F(LxcTarTest, GnuTarArchiveConvertsToTheBytesPxarCreateWrites) {
  const std::string script = test::TestData("lxc/make-ct-tar.sh");
  for (const char* comp : {"none", "zst", "gz"}) {
    SCOPED_TRACE(comp);
    std::string work = tmp_ / (std::string("gen-") + comp);
    std::string cmd = "bash '" + script + "' '" + work + "' 100 2024_01_31-12_00_00 " + comp +
                      " > '" + work + ".out' 2> '" + work + ".err'";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << test::ReadText(work + ".err");
    std::string archive = test::ReadText(work + ".out");
    archive.erase(archive.find_last_not_of('\n') + 1);

    std::unique_ptr<LxcTarArchive> tar;
    auto converted = Convert(archive, {}, &tar);
    ASSERT_TRUE(converted.ok()) << converted.status().ToString();
    EXPECT_EQ(tar->pct_conf(), test::ReadText(work + "/conf/etc/vzdump/pct.conf"));
    ASSERT_TRUE(tar->pct_fw().has_value());
    EXPECT_EQ(*tar->pct_fw(), test::ReadText(work + "/conf/etc/vzdump/pct.fw"));
    EXPECT_EQ(tar->stats().compression,
              std::string(comp) == "zst"  ? VzdumpCompression::kZstd
              : std::string(comp) == "gz" ? VzdumpCompression::kGzip
                                          : VzdumpCompression::kNone);
    EXPECT_GE(tar->stats().hardlinks, 2u);

    // What tar leaves out: sockets, and the contents excluded by vzdump's patterns.
    const std::string tree = work + "/tree";
    unlink((tree + "/tmp/excluded-by-vzdump").c_str());
    unlink((tree + "/var/lib/socket").c_str());
    SetTimes(tree + "/tmp", 1706702400, 500000000);
    SetTimes(tree + "/var/lib", 1706702400, 500000000);
    pxar::VectorSink expected;
    auto st = importers::CreatePxarArchive(tree, &expected, nullptr, {});
    ASSERT_TRUE(st.ok()) << st.status().ToString();

    std::map<std::string, std::string> got_files, want_files;
    auto got = Decode(*converted, &got_files);
    auto want = Decode(expected.data(), &want_files);
    ASSERT_EQ(Paths(got), Paths(want));
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].metadata, want[i].metadata) << got[i].path;
      EXPECT_EQ(got[i].link_target, want[i].link_target) << got[i].path;
    }
    EXPECT_EQ(got_files, want_files);
    // The tree really has the metadata the comparison is about.
    std::map<std::string, pxar::Entry> by_path;
    for (const auto& e : got) by_path[e.path] = e;
    if (!Contains(test::ReadText(work + ".err"), "skipped")) {
      EXPECT_EQ(by_path["/etc/hosts"].metadata.xattrs.size(), 2u);
      EXPECT_TRUE(by_path["/usr/bin/gamma"].metadata.fcaps.has_value());
      EXPECT_TRUE(by_path["/etc/file1.conf"].metadata.acl.group_obj.has_value());
      EXPECT_EQ(by_path["/etc/file1.conf"].metadata.stat.mode & 0777, 0664u);
      EXPECT_TRUE(by_path["/srv/data"].metadata.acl.default_acl.has_value());
      EXPECT_EQ(by_path["/dev/null"].kind, pxar::EntryKind::kDevice);
    }
    EXPECT_EQ(by_path["/etc/hostname"].metadata.stat.mtime_secs, -305121600);
    EXPECT_EQ(by_path["/etc/hostname"].metadata.stat.mtime_nanos, 250000000u);
    EXPECT_EQ(by_path["/etc/hosts"].metadata.stat.mtime_nanos, 123456789u);
    EXPECT_EQ(by_path["/var/lib/fifo"].kind, pxar::EntryKind::kFifo);
    EXPECT_EQ(want_files["/srv/data/sparse.img"].size(), 8u << 20);
    EXPECT_TRUE(*converted == expected.data()) << "archives differ in bytes";
    // The config files are not part of the container tree.
    for (const auto& p : Paths(got)) EXPECT_FALSE(Contains(p, "vzdump")) << p;
  }
}

TEST_F(LxcTarTest, ReadsInTarOrderAndWritesInNameOrder) {
  auto bytes = MakeTar({{"./etc/vzdump/pct.conf", 'f', "arch: amd64\n"},
                        {"./etc/vzdump/pct.fw", 'f', ""},
                        {"./", 'd', "", 0755},
                        {"./z/", 'd', "", 0755},
                        {"./z/data", 'f', "hello"},
                        {"./b", 'f', "bee"},
                        {"./a/", 'd', "", 0700},
                        {"./a/link", 'h', "./z/data"},
                        {"./a/", 'd', "", 0750, 1700000100},  // listed again: later wins
                        {"./a/sym", 'l', "../b"},
                        {"./.pxarexclude-cli", 'f', "stale"}});
  std::unique_ptr<LxcTarArchive> tar;
  LxcTarOptions o;
  o.pxarexclude_cli = kVzdumpStdExcludes;
  auto pxar = Convert(Write("vzdump-lxc-100-2024_01_01-00_00_00.tar", bytes), o, &tar);
  ASSERT_TRUE(pxar.ok()) << pxar.status().ToString();
  EXPECT_EQ(tar->pct_conf(), "arch: amd64\n");
  ASSERT_TRUE(tar->pct_fw().has_value());  // an empty firewall file is still a firewall file
  EXPECT_EQ(*tar->pct_fw(), "");
  EXPECT_FALSE(tar->unprivileged());
  EXPECT_EQ(tar->stats().config_mtime, 1700000000);
  std::map<std::string, std::string> files;
  auto entries = Decode(*pxar, &files);
  EXPECT_EQ(Paths(entries),
            (std::vector<std::string>{"/", "/a", "/a/link", "/a/sym", "/b", "/z", "/z/data",
                                      "/.pxarexclude-cli"}));
  // The first name in pxar order holds the data, whatever tar's link direction was.
  EXPECT_EQ(entries[2].kind, pxar::EntryKind::kFile);
  EXPECT_EQ(files["/a/link"], "hello");
  EXPECT_EQ(entries[6].kind, pxar::EntryKind::kHardlink);
  EXPECT_EQ(entries[6].link_target, "a/link");
  EXPECT_EQ(entries[1].metadata.stat.mode, pxar::kModeIfdir | 0750);
  EXPECT_EQ(entries[1].metadata.stat.mtime_secs, 1700000100);
  EXPECT_EQ(files["/.pxarexclude-cli"], kVzdumpStdExcludes);
  EXPECT_EQ(entries[7].metadata.stat.mode, pxar::kModeIfreg | 0600);
  EXPECT_EQ(entries[7].metadata.stat.mtime_secs, 0);
}

TEST_F(LxcTarTest, CompressedArchivesGiveTheSameArchive) {
  std::vector<Member> m = {{"./", 'd'}, {"./f", 'f', std::string(100000, 'q')}, {"./d/", 'd'}};
  std::unique_ptr<LxcTarArchive> plain_tar;
  auto plain = Convert(Write("p.tar", MakeTar(m)), {}, &plain_tar);
  ASSERT_TRUE(plain.ok());
  // A plain tar file is read in place; compressed ones go through the spool.
  EXPECT_EQ(plain_tar->stats().spooled_bytes, 0u);
  for (int filter : {ARCHIVE_FILTER_GZIP, ARCHIVE_FILTER_ZSTD}) {
    std::unique_ptr<LxcTarArchive> tar;
    auto got = Convert(Write("c" + std::to_string(filter) + ".tar", MakeTar(m, filter)), {}, &tar);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, *plain);
    EXPECT_LT(tar->stats().file_bytes, tar->stats().tar_bytes);
    EXPECT_EQ(tar->stats().spooled_bytes, 100000u);
  }
}

TEST_F(LxcTarTest, RefusesHostilePaths) {
  auto abs = Convert(Write("abs.tar", MakeTar({{"./", 'd'}, {"/etc/passwd", 'f', "x"}})));
  ASSERT_FALSE(abs.ok());
  EXPECT_EQ(abs.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(abs.status().message(), "'/etc/passwd' has an absolute path"))
      << abs.status().ToString();
  auto dots = Convert(Write("dots.tar", MakeTar({{"./", 'd'}, {"./a/../../x", 'f', "x"}})));
  ASSERT_FALSE(dots.ok());
  EXPECT_TRUE(Contains(dots.status().message(), "'..'")) << dots.status().ToString();
  auto link = Convert(Write("link.tar", MakeTar({{"./", 'd'}, {"./l", 'h', "../outside"}})));
  ASSERT_FALSE(link.ok());
  EXPECT_TRUE(Contains(link.status().message(), "hard link target")) << link.status().ToString();
  auto missing = Convert(Write("miss.tar", MakeTar({{"./", 'd'}, {"./l", 'h', "./nothing"}})));
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(Contains(missing.status().message(), "not an earlier file"))
      << missing.status().ToString();
}

TEST_F(LxcTarTest, RefusesUnknownCompressionAndNonTarFiles) {
  archive* probe = archive_write_new();
  bool have_xz = archive_write_add_filter(probe, ARCHIVE_FILTER_XZ) == ARCHIVE_OK;
  archive_write_free(probe);
  if (have_xz) {
    auto xz = Convert(Write("x.tar.xz", MakeTar({{"./", 'd'}}, ARCHIVE_FILTER_XZ)));
    ASSERT_FALSE(xz.ok());
    EXPECT_EQ(xz.status().code(), Code::kUnsupported);
    EXPECT_TRUE(Contains(xz.status().message(), "unknown compression 'xz'"))
        << xz.status().ToString();
  }
  std::vector<uint8_t> junk(5000);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<uint8_t>(i * 7 + 3);
  auto bad = Convert(Write("junk.tar", junk));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(bad.status().message(), "is not a tar archive")) << bad.status().ToString();
  auto none = Convert(tmp_ / "does-not-exist.tar");
  EXPECT_EQ(none.status().code(), Code::kNotFound);
  auto dir = Convert(tmp_.path());
  EXPECT_EQ(dir.status().code(), Code::kInvalidArgument);
  if (geteuid() != 0) {
    std::string p = Write("unreadable.tar", MakeTar({{"./", 'd'}}));
    chmod(p.c_str(), 0);
    EXPECT_EQ(Convert(p).status().code(), Code::kPermissionDenied);
  }
}

TEST_F(LxcTarTest, TruncatedArchiveIsRefusedThenSalvaged) {
  std::string big(300000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  auto bytes = MakeTar({{"./", 'd'}, {"./a", 'f', "first"}, {"./big", 'f', big},
                        {"./c", 'f', "never seen"}});
  bytes.resize(150000);  // in the middle of ./big
  std::string path = Write("vzdump-lxc-100-2024_01_01-00_00_00.tar", bytes);
  auto refused = Convert(path);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kCorruption);
  EXPECT_TRUE(Contains(refused.status().message(), "in member './big'"));
  EXPECT_TRUE(Contains(refused.status().message(), "intact up to byte"));
  EXPECT_TRUE(Contains(refused.status().message(), "last complete member './a'"));
  EXPECT_TRUE(Contains(refused.status().message(), "--salvage")) << refused.status().ToString();

  LxcTarOptions o;
  o.salvage = true;
  std::unique_ptr<LxcTarArchive> tar;
  auto salvaged = Convert(path, o, &tar);
  ASSERT_TRUE(salvaged.ok()) << salvaged.status().ToString();
  EXPECT_FALSE(tar->stats().damage.empty());
  ASSERT_FALSE(tar->stats().gaps.empty());
  EXPECT_TRUE(Contains(tar->stats().gaps[0], "./big: bytes ")) << tar->stats().gaps[0];
  std::map<std::string, std::string> files;
  auto entries = Decode(*salvaged, &files);
  EXPECT_EQ(Paths(entries), (std::vector<std::string>{"/", "/a", "/big"}));
  EXPECT_EQ(files["/a"], "first");
  ASSERT_EQ(files["/big"].size(), big.size());
  size_t have = files["/big"].find_last_not_of('\0') + 1;
  EXPECT_GT(have, 100000u);
  EXPECT_EQ(files["/big"].substr(0, have), big.substr(0, have));
}

TEST_F(LxcTarTest, ArchiveCutAtAMemberBoundaryIsTruncated) {
  auto bytes = MakeTar({{"./", 'd'}, {"./a", 'f', "first"}, {"./b", 'f', "second"}});
  bytes.resize(512 * 3);  // headers of ./ and ./a and the data of ./a, nothing after
  auto r = Convert(Write("cut.tar", bytes));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_TRUE(Contains(r.status().message(), "end-of-archive marker is missing"))
      << r.status().ToString();
}

TEST(LxcAclQualifierTest, NamesOfADebianHostAndNumbers) {
  EXPECT_EQ(LxcAclQualifier("root", false), 0u);
  EXPECT_EQ(LxcAclQualifier("www-data", false), 33u);
  EXPECT_EQ(LxcAclQualifier("adm", true), 4u);
  EXPECT_EQ(LxcAclQualifier("adm", false), std::nullopt);
  EXPECT_EQ(LxcAclQualifier("nogroup", true), 65534u);
  EXPECT_EQ(LxcAclQualifier("1000", false), 1000u);
  EXPECT_EQ(LxcAclQualifier("bob", false), std::nullopt);
  EXPECT_EQ(LxcAclQualifier("99999999999", true), std::nullopt);
}

}  // namespace
}  // namespace pbskit
