// pxar create/extract over real directories: every entry type round-trips with its metadata,
// split archives, extraction patterns, and extraction never escapes the target directory.
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "pbskit/formats/pxar/decoder.h"
#include "pbskit/formats/pxar/encoder.h"
#include "pbskit/importers/pxar_fs.h"
#include "test_support.h"

namespace pbskit::importers {
namespace {

using pbskit::test::TempDir;

bool IsRoot() { return geteuid() == 0; }

// xattrs, ACLs and capabilities are only recorded on file systems PBS enables them for.
bool FullFeatureFs(const std::string& path) {
  struct statfs s;
  if (statfs(path.c_str(), &s) != 0) return false;
  int64_t m = static_cast<int64_t>(s.f_type);
  return m == 0xEF53 || m == 0x58465342 || m == 0x2FC12FC1 || m == 0x9123683E;
}

void SetTimes(const std::string& p, int64_t sec, long nsec) {
  struct timespec t[2] = {{sec, nsec}, {sec, nsec}};
  ASSERT_EQ(utimensat(AT_FDCWD, p.c_str(), t, AT_SYMLINK_NOFOLLOW), 0) << p;
}

std::string AclValue(std::vector<std::tuple<uint16_t, uint16_t, uint32_t>> e) {
  std::string v;
  auto put = [&v](uint64_t x, int n) {
    for (int i = 0; i < n; ++i) v.push_back(static_cast<char>(x >> (8 * i)));
  };
  put(2, 4);
  for (auto [t, p, id] : e) {
    put(t, 2);
    put(p, 2);
    put(id, 4);
  }
  return v;
}

void WriteText(const std::string& p, const std::string& s) { pbskit::test::WriteText(p, s); }

// A tree with every entry type and the interesting metadata.
void BuildTree(const std::string& root, bool full_fs) {
  ASSERT_EQ(mkdir((root + "/dir").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((root + "/dir/sub").c_str(), 0700), 0);
  ASSERT_EQ(mkdir((root + "/sticky").c_str(), 0755), 0);
  ASSERT_EQ(chmod((root + "/sticky").c_str(), 01777), 0);
  WriteText(root + "/a.txt", "hello pxar\n");
  WriteText(root + "/dir/sub/deep", std::string(200000, 'x'));
  WriteText(root + "/empty", "");
  WriteText(root + "/suid", "#!/bin/sh\n");
  ASSERT_EQ(chmod((root + "/suid").c_str(), 04755), 0);
  ASSERT_EQ(link((root + "/a.txt").c_str(), (root + "/dir/link-to-a").c_str()), 0);
  ASSERT_EQ(symlink("../a.txt", (root + "/dir/sym").c_str()), 0);
  ASSERT_EQ(symlink("/nonexistent/target", (root + "/dangling").c_str()), 0);
  ASSERT_EQ(mkfifo((root + "/fifo").c_str(), 0640), 0);
  {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string p = root + "/sock";
    ASSERT_LT(p.size(), sizeof(addr.sun_path));
    std::strcpy(addr.sun_path, p.c_str());
    ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    close(s);
  }
  std::string weird = root + "/we\"ird\\ n\xc3\xa4me\xff";
  WriteText(weird, "odd");
  if (IsRoot()) {
    ASSERT_EQ(mknod((root + "/null").c_str(), S_IFCHR | 0644, makedev(1, 3)), 0);
    ASSERT_EQ(mknod((root + "/loop").c_str(), S_IFBLK | 0600, makedev(7, 0)), 0);
    ASSERT_EQ(chown((root + "/a.txt").c_str(), 1000, 1001), 0);
    ASSERT_EQ(lchown((root + "/dir/sym").c_str(), 65534, 65534), 0);
  }
  if (full_fs) {
    std::string a = root + "/a.txt";
    ASSERT_EQ(setxattr(a.c_str(), "user.one", "1", 1, 0), 0);
    ASSERT_EQ(setxattr(a.c_str(), "user.bin", "\0\xff", 2, 0), 0);
    // access ACL with a named user and group (mask rw-), default ACL on dir.
    std::string acl = AclValue({{1, 6, 0xffffffff}, {2, 6, 1234}, {4, 4, 0xffffffff},
                                {8, 5, 4321}, {0x10, 6, 0xffffffff}, {0x20, 4, 0xffffffff}});
    ASSERT_EQ(setxattr(a.c_str(), "system.posix_acl_access", acl.data(), acl.size(), 0), 0);
    std::string dacl = AclValue({{1, 7, 0xffffffff}, {2, 7, 1000}, {4, 5, 0xffffffff},
                                 {0x10, 7, 0xffffffff}, {0x20, 5, 0xffffffff}});
    std::string d = root + "/dir";
    ASSERT_EQ(setxattr(d.c_str(), "system.posix_acl_default", dacl.data(), dacl.size(), 0), 0);
    ASSERT_EQ(setxattr(d.c_str(), "user.dir", "on dir", 6, 0), 0);
    if (IsRoot()) {
      // cap_net_raw+ep (vfs_cap_data revision 2)
      const uint8_t cap[20] = {0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
      std::string s = root + "/suid";
      ASSERT_EQ(setxattr(s.c_str(), "security.capability", cap, sizeof(cap), 0), 0);
      ASSERT_EQ(chmod(s.c_str(), 04755), 0);
    }
  }
  SetTimes(root + "/a.txt", 1704164645, 123456789);
  SetTimes(root + "/dir/sym", 1600000000, 5);
  SetTimes(root + "/empty", -100000, 250000000);  // before 1970
  SetTimes(root + "/dir/sub", 946684799, 0);
  SetTimes(root + "/dir", 1500000000, 1);
  SetTimes(root, 1400000000, 0);
}

struct Node {
  struct stat st;
  std::string content, link;
  std::map<std::string, std::string> xattrs;
};

std::map<std::string, std::string> Xattrs(const std::string& p) {
  std::map<std::string, std::string> out;
  char names[4096];
  ssize_t n = llistxattr(p.c_str(), names, sizeof(names));
  for (ssize_t i = 0; i < n;) {
    std::string name(names + i);
    i += static_cast<ssize_t>(name.size()) + 1;
    char v[4096];
    ssize_t len = lgetxattr(p.c_str(), name.c_str(), v, sizeof(v));
    if (len >= 0) out[name] = std::string(v, static_cast<size_t>(len));
  }
  return out;
}

void Scan(const std::string& root, const std::string& rel, std::map<std::string, Node>* out) {
  std::string p = rel.empty() ? root : root + "/" + rel;
  Node n;
  ASSERT_EQ(lstat(p.c_str(), &n.st), 0) << p;
  n.xattrs = Xattrs(p);
  if (S_ISREG(n.st.st_mode)) n.content = pbskit::test::ReadText(p);
  if (S_ISLNK(n.st.st_mode)) {
    char b[4096];
    ssize_t l = readlink(p.c_str(), b, sizeof(b));
    n.link.assign(b, static_cast<size_t>(l));
  }
  (*out)[rel] = n;
  if (S_ISDIR(n.st.st_mode)) {
    DIR* d = opendir(p.c_str());
    while (dirent* de = readdir(d)) {
      std::string name = de->d_name;
      if (name == "." || name == "..") continue;
      Scan(root, rel.empty() ? name : rel + "/" + name, out);
    }
    closedir(d);
  }
}

void ExpectSameTree(const std::string& a, const std::string& b) {
  std::map<std::string, Node> ta, tb;
  Scan(a, "", &ta);
  Scan(b, "", &tb);
  ASSERT_EQ(ta.size(), tb.size());
  std::map<ino_t, ino_t> inode_map;
  for (const auto& [rel, x] : ta) {
    ASSERT_TRUE(tb.count(rel)) << rel;
    const Node& y = tb.at(rel);
    EXPECT_EQ(x.st.st_mode, y.st.st_mode) << rel;
    if (IsRoot()) {
      EXPECT_EQ(x.st.st_uid, y.st.st_uid) << rel;
      EXPECT_EQ(x.st.st_gid, y.st.st_gid) << rel;
    }
    EXPECT_EQ(x.st.st_mtim.tv_sec, y.st.st_mtim.tv_sec) << rel;
    EXPECT_EQ(x.st.st_mtim.tv_nsec, y.st.st_mtim.tv_nsec) << rel;
    EXPECT_EQ(x.content, y.content) << rel;
    EXPECT_EQ(x.link, y.link) << rel;
    EXPECT_EQ(x.st.st_rdev, y.st.st_rdev) << rel;
    EXPECT_EQ(x.xattrs, y.xattrs) << rel;
    EXPECT_EQ(x.st.st_nlink, y.st.st_nlink) << rel;
    if (S_ISREG(x.st.st_mode) && x.st.st_nlink > 1) {
      auto it = inode_map.find(x.st.st_ino);
      if (it == inode_map.end()) inode_map[x.st.st_ino] = y.st.st_ino;
      else EXPECT_EQ(it->second, y.st.st_ino) << rel << " hardlink pairing";
    }
  }
}

std::vector<uint8_t> Create(const std::string& dir, PxarCreateStats* stats = nullptr) {
  pxar::VectorSink out;
  auto r = CreatePxarArchive(dir, &out, nullptr, {});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (stats && r.ok()) *stats = *r;
  return out.data();
}

Status Extract(const std::vector<uint8_t>& archive, const std::string& target,
               PxarExtractOptions opts = {}, const std::vector<uint8_t>* payload = nullptr) {
  pxar::SpanSource src(archive);
  std::unique_ptr<pxar::SpanSource> psrc;
  if (payload) psrc = std::make_unique<pxar::SpanSource>(*payload);
  pxar::DecoderOptions o;
  o.report_directory_end = true;
  pxar::Decoder dec(&src, psrc.get(), o);
  return ExtractPxarArchive(&dec, target, opts).status();
}

TEST(PxarFs, RoundTripEveryEntryType) {
  TempDir tmp(pbskit::test::Scratch::kDisk);
  std::string src = tmp / "src", dst = tmp / "dst";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  bool full = FullFeatureFs(tmp.path());
  BuildTree(src, full);
  PxarCreateStats stats;
  std::vector<uint8_t> archive = Create(src, &stats);
  EXPECT_EQ(stats.hardlinks, 1u);
  EXPECT_TRUE(stats.warnings.empty());

  // What the archive says.
  pxar::SpanSource s(archive);
  pxar::Decoder dec(&s, nullptr);
  std::map<std::string, pxar::Entry> entries;
  std::vector<std::string> order;
  pxar::Entry e;
  while (true) {
    auto r = dec.Next(&e);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    if (!*r) break;
    order.push_back(e.path);
    entries[e.path] = e;
  }
  EXPECT_TRUE(std::is_sorted(order.begin() + 1, order.begin() + 4));
  EXPECT_EQ(entries.at("/dir/link-to-a").kind, pxar::EntryKind::kHardlink);
  EXPECT_EQ(entries.at("/dir/link-to-a").link_target, "a.txt");
  EXPECT_EQ(entries.at("/dir/sym").link_target, "../a.txt");
  EXPECT_EQ(entries.at("/fifo").kind, pxar::EntryKind::kFifo);
  EXPECT_EQ(entries.at("/sock").kind, pxar::EntryKind::kSocket);
  EXPECT_EQ(entries.at("/a.txt").metadata.stat.mtime_nanos, 123456789u);
  EXPECT_EQ(entries.at("/empty").metadata.stat.mtime_secs, -100000);
  EXPECT_EQ(entries.at("/empty").metadata.stat.mtime_nanos, 250000000u);
  EXPECT_EQ(entries.at("/suid").metadata.stat.mode, 0104755u);
  EXPECT_EQ(entries.at("/sticky").metadata.stat.mode, 041777u);
  if (IsRoot()) {
    EXPECT_EQ(entries.at("/null").device, (pxar::Device{1, 3}));
    EXPECT_EQ(entries.at("/loop").device, (pxar::Device{7, 0}));
    EXPECT_EQ(entries.at("/a.txt").metadata.stat.uid, 1000u);
  }
  if (full) {
    const pxar::Metadata& m = entries.at("/a.txt").metadata;
    ASSERT_EQ(m.xattrs.size(), 2u);
    EXPECT_EQ(m.acl.users, (std::vector<pxar::AclEntry>{{1234, 6}}));
    EXPECT_EQ(m.acl.groups, (std::vector<pxar::AclEntry>{{4321, 5}}));
    EXPECT_EQ(m.acl.group_obj, std::optional<uint64_t>(4));
    const pxar::Metadata& d = entries.at("/dir").metadata;
    ASSERT_TRUE(d.acl.default_acl.has_value());
    EXPECT_EQ(d.acl.default_acl->mask_permissions, 7u);
    EXPECT_EQ(d.acl.default_users, (std::vector<pxar::AclEntry>{{1000, 7}}));
    if (IsRoot()) {
      EXPECT_TRUE(entries.at("/suid").metadata.fcaps.has_value());
    }
  }

  ASSERT_TRUE(Extract(archive, dst).ok());
  ExpectSameTree(src, dst);
  // Encoding the extracted tree gives the same archive again.
  EXPECT_TRUE(Create(dst) == archive);
}

TEST(PxarFs, SplitArchiveRoundTrip) {
  TempDir tmp(pbskit::test::Scratch::kDisk);
  std::string src = tmp / "src", dst = tmp / "dst";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  BuildTree(src, FullFeatureFs(tmp.path()));
  pxar::VectorSink meta, payload;
  struct Boundaries : PxarCreateObserver {
    std::vector<uint64_t> offsets;
    int dirs = 0, files = 0;
    Status StartDirectory(std::string_view) override { ++dirs; return Status::OK(); }
    Status AddFile(std::string_view, uint64_t, int64_t) override { ++files; return Status::OK(); }
    void SuggestPayloadBoundary(uint64_t off) override { offsets.push_back(off); }
  } obs;
  PxarCreateOptions opts;
  opts.observer = &obs;
  std::string prelude = "{\"exclude-patterns\":\"\"}";
  auto r = CreatePxarArchive(src, &meta, &payload, opts, &prelude);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(obs.dirs, 3);  // dir, dir/sub, sticky (the root is not reported)
  EXPECT_EQ(obs.files, 5);  // the hardlink is not a file
  ASSERT_EQ(obs.offsets.size(), 5u);
  EXPECT_EQ(obs.offsets[0], 16u);
  ASSERT_TRUE(Extract(meta.data(), dst, {}, &payload.data()).ok());
  ExpectSameTree(src, dst);
}

TEST(PxarFs, ExtractWithPattern) {
  TempDir tmp(pbskit::test::Scratch::kDisk);
  std::string src = tmp / "src", dst = tmp / "dst";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  BuildTree(src, false);
  std::vector<uint8_t> archive = Create(src);
  PxarExtractOptions opts;
  opts.patterns = {"dir/sub"};
  ASSERT_TRUE(Extract(archive, dst, opts).ok());
  struct stat st;
  EXPECT_EQ(lstat((dst + "/dir/sub/deep").c_str(), &st), 0);
  EXPECT_NE(lstat((dst + "/a.txt").c_str(), &st), 0);
  EXPECT_NE(lstat((dst + "/dir/sym").c_str(), &st), 0);
  // Directories created on the way keep their archived metadata.
  ASSERT_EQ(lstat((dst + "/dir").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1500000000);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
}

TEST(PxarFs, ExistingFileIsNotOverwritten) {
  TempDir tmp(pbskit::test::Scratch::kDisk);
  std::string src = tmp / "src", dst = tmp / "dst";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  WriteText(src + "/f", "new");
  std::vector<uint8_t> archive = Create(src);
  ASSERT_EQ(mkdir(dst.c_str(), 0755), 0);
  WriteText(dst + "/f", "old");
  Status st = Extract(archive, dst);
  EXPECT_EQ(st.code(), Code::kAlreadyExists) << st.ToString();
  EXPECT_EQ(pbskit::test::ReadText(dst + "/f"), "old");
  PxarExtractOptions opts;
  opts.overwrite = true;
  ASSERT_TRUE(Extract(archive, dst, opts).ok());
  EXPECT_EQ(pbskit::test::ReadText(dst + "/f"), "new");
}

pxar::Metadata Meta(uint64_t mode) {
  pxar::Metadata m;
  m.stat.mode = mode;
  return m;
}

// A hostile archive with a symlink and then a directory of the same name, and a hardlink
// whose target path runs through that symlink: nothing may be written outside the target.
TEST(PxarFs, ExtractionStaysInsideTarget) {
  TempDir tmp(pbskit::test::Scratch::kDisk);
  std::string outside = tmp / "outside", dst = tmp / "dst";
  ASSERT_EQ(mkdir(outside.c_str(), 0755), 0);
  WriteText(outside + "/secret", "s");
  {
    pxar::VectorSink out;
    auto enc = std::move(pxar::Encoder::Create(&out, nullptr, Meta(040755)).value());
    ASSERT_TRUE(enc->AddSymlink(Meta(0120777), "esc", outside).ok());
    ASSERT_TRUE(enc->CreateDirectory("esc", Meta(040755)).ok());
    ASSERT_TRUE(enc->AddFile(Meta(0100644), "planted", {}).ok());
    ASSERT_TRUE(enc->FinishDirectory().ok());
    ASSERT_TRUE(enc->Finish().ok());
    Status st = Extract(out.data(), dst);
    EXPECT_FALSE(st.ok());
    struct stat sb;
    EXPECT_NE(lstat((outside + "/planted").c_str(), &sb), 0);
  }
  {
    std::string dst2 = tmp / "dst2";
    pxar::VectorSink out;
    auto enc = std::move(pxar::Encoder::Create(&out, nullptr, Meta(040755)).value());
    auto f = enc->AddFile(Meta(0100644), "a", {});
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(enc->AddSymlink(Meta(0120777), "esc", outside).ok());
    ASSERT_TRUE(enc->AddHardlink("z", "esc/secret", *f).ok());
    ASSERT_TRUE(enc->Finish().ok());
    Status st = Extract(out.data(), dst2);
    EXPECT_FALSE(st.ok());
    struct stat sb;
    EXPECT_NE(lstat((dst2 + "/z").c_str(), &sb), 0);
  }
}

TEST(PxarFs, MissingSourceIsNotFound) {
  pxar::VectorSink out;
  auto r = CreatePxarArchive("/nonexistent/pbskit-source", &out, nullptr, {});
  EXPECT_EQ(r.status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace pbskit::importers
