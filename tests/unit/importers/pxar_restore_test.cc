// PBS's path patterns and restores driven through a store holding a split archive with PBS's
// match semantics (reading archives from a store is tested in unit/datastore/pxar_archive_test).
#include "pbskit/importers/pxar_restore.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/formats/pxar/encoder.h"
#include "pbskit/importers/pxar_fs.h"
#include "pxar_store_util.h"
#include "test_support.h"

namespace pbskit::importers {
namespace {

using pbskit::test::TempDir;

BackupDir Dir(const std::string& s) {
  auto d = BackupDir::Parse(s);
  EXPECT_TRUE(d.ok()) << s;
  return *d;
}

std::optional<bool> M(const std::vector<std::string>& patterns, const std::string& path,
                      uint64_t mode = pxar::kModeIfreg) {
  PxarMatchList l;
  for (const auto& p : patterns) EXPECT_TRUE(l.Add(p).ok()) << p;
  return l.Matches(path, mode);
}

TEST(PxarMatchList, GlobRulesOfPathPatterns) {
  const auto kIn = std::optional<bool>(true), kOut = std::optional<bool>(false);
  const auto kNone = std::optional<bool>();
  // `*` and `?` stop at '/', `**` does not.
  EXPECT_EQ(M({"/hey/*/you"}, "/hey/asdf/you"), kIn);
  EXPECT_EQ(M({"/hey/*/you"}, "/hey/asdf/more/you"), kNone);
  EXPECT_EQ(M({"/hey/**/you"}, "/hey/asdf/more/you"), kIn);
  EXPECT_EQ(M({"/hey/**/you"}, "/hey/you"), kIn);  // `**/` may match nothing
  EXPECT_EQ(M({"/tes[a-t]/a?a"}, "/test/aba"), kIn);
  EXPECT_EQ(M({"/tes[a-t]/a?a"}, "/test/a/a"), kNone);
  EXPECT_EQ(M({"/he[^yx]/x"}, "/hez/x"), kIn);
  EXPECT_EQ(M({"/he[^yx]/x"}, "/hey/x"), kNone);
  EXPECT_EQ(M({"f[[:digit:]]"}, "/a/f7"), kIn);
  EXPECT_EQ(M({"a/b**/c"}, "/a/bxx/yy/c"), kNone);  // `**` glued to text is a plain `*`
  EXPECT_EQ(M({"**/lost+found"}, "/foo/lost+found"), kIn);
  EXPECT_EQ(M({"\\*x"}, "/*x"), kIn);
  EXPECT_EQ(M({"\\*x"}, "/ax"), kNone);
  // Unanchored: any suffix starting after a '/' may match.
  EXPECT_EQ(M({"etc/**"}, "/etc/hostname"), kIn);
  EXPECT_EQ(M({"etc/**"}, "/x/etc/ssl/cert.pem"), kIn);
  EXPECT_EQ(M({"etc/**"}, "/etc", pxar::kModeIfdir), kNone);
  EXPECT_EQ(M({"hosts"}, "/etc/hosts"), kIn);
  EXPECT_EQ(M({"/hosts"}, "/etc/hosts"), kNone);
  // Last match wins; '!' excludes; trailing '/' = directories only.
  EXPECT_EQ(M({"**", "!*.log"}, "/var/log/messages.log"), kOut);
  EXPECT_EQ(M({"**", "!*.log"}, "/var/log/messages"), kIn);
  EXPECT_EQ(M({"!*.log", "**"}, "/var/log/messages.log"), kIn);
  EXPECT_EQ(M({"log/"}, "/var/log", pxar::kModeIfdir), kIn);
  EXPECT_EQ(M({"log/"}, "/var/log", pxar::kModeIfreg), kNone);
  EXPECT_EQ(M({"log"}, "/var/log", 0), kIn);  // hardlinks (no mode) match untyped patterns only
  EXPECT_EQ(M({"log/"}, "/var/log", 0), kNone);
}

TEST(PxarMatchList, MalformedPatternsAreRefused) {
  PxarMatchList l;
  EXPECT_EQ(l.Add("abc\\").code(), Code::kInvalidArgument);
  EXPECT_EQ(l.Add("a[bc").code(), Code::kInvalidArgument);
  EXPECT_EQ(l.Add("a[[:nope:]]").code(), Code::kInvalidArgument);
  EXPECT_TRUE(l.empty());
}

// A store with one split (v2) snapshot of a small tree, shared by the restore tests below.
class SplitStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir();
    const std::string src = *tmp_ / "src";
    std::filesystem::create_directories(src + "/etc/ssl");
    std::filesystem::create_directories(src + "/var/log");
    std::filesystem::create_directories(src + "/empty");
    test::WriteText(src + "/etc/hosts", "127.0.0.1 localhost\n");
    test::WriteText(src + "/etc/ssl/cert.pem", std::string(200000, 'c'));
    std::vector<uint8_t> big(300000);
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>((i * 7919) >> 3);
    test::WriteFile(src + "/var/log/messages", big);
    test::WriteText(src + "/var/log/boot.log", "boot\n");
    ::symlink("hosts", (src + "/etc/hosts.link").c_str());
    ::link((src + "/etc/hosts").c_str(), (src + "/var/hosts.hard").c_str());
    ::chmod((src + "/var/log/boot.log").c_str(), 0600);

    pxar::VectorSink meta, payload;
    PxarCreateOptions copts;
    auto created = CreatePxarArchive(src, &meta, &payload, copts);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    auto store = test::OpenSmallStore(*tmp_ / "store", {meta.data(), payload.data()}, 64 * 1024);
    ASSERT_TRUE(store);
    store_ = new std::shared_ptr<DataStore>(store);
    SnapshotWriterOptions o;
    o.dir = Dir("host/split/2024-06-01T00:00:00Z");
    auto w = SnapshotWriter::Begin(store, o);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    MemoryByteSource ms(meta.data()), ps(payload.data());
    ASSERT_TRUE((*w)->AddDynamicIndex("root.mpxar.didx", ms, 64 * 1024).ok());
    ASSERT_TRUE((*w)->AddDynamicIndex("root.ppxar.didx", ps, 64 * 1024).ok());
    ASSERT_TRUE((*w)->Finish().ok());
  }
  static void TearDownTestSuite() {
    delete store_;
    delete tmp_;
  }

  // Restores with `patterns` into a fresh directory; returns it.
  std::string Restore(const std::vector<std::string>& patterns, PxarRestoreStats* stats = nullptr) {
    static int n = 0;
    std::string target = *tmp_ / ("restore-" + std::to_string(n++));
    pxar::DecoderOptions d;
    d.report_directory_end = true;
    auto a = StorePxarArchive::Open(*store_, {}, Dir("host/split/2024-06-01T00:00:00Z"),
                                    "root.pxar", nullptr, d);
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    if (!a.ok()) return target;
    EXPECT_TRUE((*a)->names().payload);
    PxarMatchList m;
    for (const auto& p : patterns) EXPECT_TRUE(m.Add(p).ok());
    PxarRestoreOptions o;
    o.match_list = &m;
    auto s = RestorePxar((*a)->decoder(), target, o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (s.ok() && stats) *stats = *s;
    return target;
  }

  static bool Exists(const std::string& p) {
    struct stat st;
    return ::lstat(p.c_str(), &st) == 0;
  }

  static TempDir* tmp_;
  static std::shared_ptr<DataStore>* store_;
};
TempDir* SplitStoreTest::tmp_ = nullptr;
std::shared_ptr<DataStore>* SplitStoreTest::store_ = nullptr;

TEST_F(SplitStoreTest, RestoresEverythingFromMetadataAndPayloadStreams) {
  PxarRestoreStats stats;
  std::string t = Restore({}, &stats);
  EXPECT_EQ(test::ReadText(t + "/etc/hosts"), "127.0.0.1 localhost\n");
  EXPECT_EQ(test::ReadText(t + "/etc/ssl/cert.pem"), std::string(200000, 'c'));
  EXPECT_EQ(test::ReadFile(t + "/var/log/messages"),
            test::ReadFile(*tmp_ / "src/var/log/messages"));
  char link[64] = {};
  ASSERT_GT(::readlink((t + "/etc/hosts.link").c_str(), link, sizeof link), 0);
  EXPECT_STREQ(link, "hosts");
  struct stat a, b;
  ASSERT_EQ(::stat((t + "/etc/hosts").c_str(), &a), 0);
  ASSERT_EQ(::stat((t + "/var/hosts.hard").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  ASSERT_EQ(::stat((t + "/var/log/boot.log").c_str(), &a), 0);
  EXPECT_EQ(a.st_mode & 07777, 0600u);
  EXPECT_TRUE(Exists(t + "/empty"));
  EXPECT_EQ(stats.files, 4u);
}

TEST_F(SplitStoreTest, PatternsSelectLikePbs) {
  std::string t = Restore({"etc/**"});
  EXPECT_TRUE(Exists(t + "/etc/hosts"));
  EXPECT_TRUE(Exists(t + "/etc/ssl/cert.pem"));
  EXPECT_FALSE(Exists(t + "/var"));  // nothing inside was selected: never created
  EXPECT_FALSE(Exists(t + "/empty"));

  t = Restore({"**", "!*.log"});
  EXPECT_TRUE(Exists(t + "/var/log/messages"));
  EXPECT_FALSE(Exists(t + "/var/log/boot.log"));
  // PBS creates a directory eagerly only when its parent was selected; the root is not (the
  // default with patterns is "no"), so an empty top-level directory is not restored.
  EXPECT_FALSE(Exists(t + "/empty"));
  EXPECT_TRUE(Exists(t + "/etc/ssl"));

  t = Restore({"!*.log"});  // only excludes: nothing is selected (PBS's default with patterns)
  EXPECT_FALSE(Exists(t + "/etc"));

  t = Restore({"/var/log"});  // a directory selects its whole subtree
  EXPECT_TRUE(Exists(t + "/var/log/boot.log"));
  EXPECT_FALSE(Exists(t + "/var/hosts.hard"));

  PxarRestoreStats stats;
  t = Restore({"hosts.hard"}, &stats);  // its target is not restored: skipped with a warning
  EXPECT_FALSE(Exists(t + "/var/hosts.hard"));
  ASSERT_EQ(stats.warnings.size(), 1u);
  EXPECT_NE(stats.warnings[0].find("skipping hardlink"), std::string::npos);
}

TEST_F(SplitStoreTest, ExistingDirectoriesAndFilesNeedTheOptions) {
  std::string t = Restore({});
  pxar::DecoderOptions d;
  d.report_directory_end = true;
  auto a = StorePxarArchive::Open(*store_, {}, Dir("host/split/2024-06-01T00:00:00Z"), "root.mpxar",
                                  nullptr, d);
  ASSERT_TRUE(a.ok());
  PxarRestoreOptions o;
  auto s = RestorePxar((*a)->decoder(), t, o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kAlreadyExists) << s.status().ToString();

  auto b = StorePxarArchive::Open(*store_, {}, Dir("host/split/2024-06-01T00:00:00Z"),
                                  "root.ppxar.didx", nullptr, d);
  ASSERT_TRUE(b.ok());
  o.allow_existing_dirs = true;
  o.overwrite_files = o.overwrite_symlinks = o.overwrite_hardlinks = true;
  test::WriteText(t + "/etc/hosts", "changed");
  s = RestorePxar((*b)->decoder(), t, o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(test::ReadText(t + "/etc/hosts"), "127.0.0.1 localhost\n");
}

TEST_F(SplitStoreTest, ListsWithoutCatalogFromTheMetadataArchive) {
  auto l = ListPxarArchive(*store_, {}, Dir("host/split/2024-06-01T00:00:00Z"), "root.pxar",
                           "/var/log", nullptr);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_FALSE(l->from_catalog);
  EXPECT_EQ(l->archive, "root.mpxar.didx");
  ASSERT_EQ(l->entries.size(), 2u);
  EXPECT_EQ(l->entries[0].path, "/var/log/boot.log");
  EXPECT_EQ(l->entries[1].name, "messages");
  EXPECT_EQ(l->entries[1].size.value_or(0), 300000u);
  auto f = ListPxarArchive(*store_, {}, Dir("host/split/2024-06-01T00:00:00Z"), "root.pxar",
                           "etc/hosts.link", nullptr);
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->is_directory);
  ASSERT_EQ(f->entries.size(), 1u);
  EXPECT_EQ(f->entries[0].type, 'l');
  EXPECT_EQ(ListPxarArchive(*store_, {}, Dir("host/split/2024-06-01T00:00:00Z"), "root.pxar",
                            "/nope", nullptr)
                .status()
                .code(),
            Code::kNotFound);
}

}  // namespace
}  // namespace pbskit::importers
