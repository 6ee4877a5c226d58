#include "pbskit/formats/names.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace pbskit {
namespace {

TEST(BackupTypeTest, ParseAndName) {
  EXPECT_EQ(*ParseBackupType("vm"), BackupType::kVm);
  EXPECT_EQ(*ParseBackupType("ct"), BackupType::kCt);
  EXPECT_EQ(*ParseBackupType("host"), BackupType::kHost);
  EXPECT_STREQ(BackupTypeName(BackupType::kHost), "host");
  for (const char* bad : {"", "VM", "lxc", "vm ", "qemu"}) {
    auto r = ParseBackupType(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  }
}

TEST(SafeIdTest, Regex) {
  for (const char* good : {"a", "A", "0", "_", "_x", "a.b", "a-b", "100", "web.example.com",
                           "a__.--", "Z9"}) {
    EXPECT_TRUE(IsSafeId(good)) << good;
  }
  for (std::string bad : {std::string(""), std::string("."), std::string(".."),
                          std::string("-a"), std::string(".hidden"), std::string("a/b"),
                          std::string("a b"), std::string("a:b"), std::string("ä"),
                          std::string("a\0b", 3), std::string("a\nb"), std::string("a+b")}) {
    EXPECT_FALSE(IsSafeId(bad)) << bad;
  }
}

TEST(ArchiveNameTest, Check) {
  EXPECT_TRUE(CheckArchiveName("drive-scsi0.img.fidx").ok());
  EXPECT_TRUE(CheckArchiveName("root.pxar.didx").ok());
  EXPECT_TRUE(CheckArchiveName("index.json.blob").ok());
  EXPECT_FALSE(CheckArchiveName("x.img").ok());
  EXPECT_FALSE(CheckArchiveName(".fidx").ok());
  EXPECT_FALSE(CheckArchiveName("fidx").ok());
  auto dots = CheckArchiveName("..");
  EXPECT_EQ(dots.code(), Code::kInvalidArgument);
  EXPECT_NE(dots.message().find("relative path"), std::string::npos) << dots.message();
  auto slash = CheckArchiveName("../etc/passwd.blob");
  EXPECT_NE(slash.message().find("'/'"), std::string::npos) << slash.message();
  auto nul = CheckArchiveName(std::string("a\0.blob", 7));
  EXPECT_NE(nul.message().find("NUL"), std::string::npos) << nul.message();
  EXPECT_NE(nul.message().find("\\x00"), std::string::npos) << nul.message();
}

TEST(DatastoreNameTest, Length) {
  EXPECT_TRUE(CheckDatastoreName("abc").ok());
  EXPECT_TRUE(CheckDatastoreName(std::string(32, 'a')).ok());
  EXPECT_FALSE(CheckDatastoreName("ab").ok());
  EXPECT_FALSE(CheckDatastoreName(std::string(33, 'a')).ok());
  EXPECT_FALSE(CheckDatastoreName("../x").ok());
}

TEST(BackupTimeTest, FormatAndParse) {
  EXPECT_EQ(FormatBackupTime(1714561200), "2024-05-01T11:00:00Z");
  EXPECT_EQ(FormatBackupTime(1), "1970-01-01T00:00:01Z");
  EXPECT_EQ(FormatBackupTime(951782400), "2000-02-29T00:00:00Z");
  EXPECT_EQ(FormatBackupTime(253402300799), "9999-12-31T23:59:59Z");
  EXPECT_EQ(*ParseBackupTime("2024-05-01T11:00:00Z"), 1714561200);
  EXPECT_EQ(*ParseBackupTime("2019-11-15T09:39:15Z"), 1573810755);
  EXPECT_EQ(*ParseBackupTime("2000-02-29T00:00:00Z"), 951782400);
  for (int64_t t : {int64_t{1}, int64_t{86399}, int64_t{1700000000}, int64_t{4102444800}}) {
    EXPECT_EQ(*ParseBackupTime(FormatBackupTime(t)), t);
  }
  // Leap second 60 is accepted like PBS's RFC 3339 parser does.
  EXPECT_TRUE(ParseBackupTime("2016-12-31T23:59:60Z").ok());
  for (const char* bad :
       {"", "2024-05-01T11:00:00", "2024-05-01 11:00:00Z", "2024-05-01T11:00:00+00:00",
        "2024-5-01T11:00:00Z", "2024-13-01T11:00:00Z", "2023-02-29T00:00:00Z",
        "2024-05-01T24:00:00Z", "2024-05-01T11:60:00Z", "1970-01-01T00:00:00Z",
        "2024-05-01t11:00:00Z", "2024-05-01T11:00:61Z"}) {
    EXPECT_FALSE(ParseBackupTime(bad).ok()) << bad;
  }
}

TEST(NamespaceTest, ParseAndPaths) {
  auto root = BackupNamespace::Parse("");
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(root->IsRoot());
  EXPECT_EQ(root->Path(), "");
  auto ns = BackupNamespace::Parse("a/b/c");
  ASSERT_TRUE(ns.ok());
  EXPECT_EQ(ns->depth(), 3u);
  EXPECT_EQ(ns->ToString(), "a/b/c");
  EXPECT_EQ(ns->Path(), "ns/a/ns/b/ns/c");
  EXPECT_EQ(ns->LockPrefix(), "a:b:c");
  EXPECT_EQ(ns->Parent().ToString(), "a/b");
  EXPECT_EQ(ns->Child("d")->ToString(), "a/b/c/d");
  EXPECT_TRUE(BackupNamespace::Parse("a")->Contains(*ns));
  EXPECT_FALSE(ns->Contains(*BackupNamespace::Parse("a")));
  EXPECT_TRUE(root->Contains(*ns));
}

TEST(NamespaceTest, Limits) {
  // Depth: 7 components allowed, 8 refused.
  EXPECT_TRUE(BackupNamespace::Parse("1/2/3/4/5/6/7").ok());
  auto deep = BackupNamespace::Parse("1/2/3/4/5/6/7/8");
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("too deep"), std::string::npos);
  // Length: a single component up to 255, joined name up to 256.
  EXPECT_TRUE(BackupNamespace::Parse(std::string(255, 'a')).ok());
  EXPECT_FALSE(BackupNamespace::Parse(std::string(256, 'a')).ok());
  std::string two = std::string(127, 'a') + "/" + std::string(127, 'b');  // 255 chars
  EXPECT_TRUE(BackupNamespace::Parse(two).ok());
  std::string two_long = std::string(127, 'a') + "/" + std::string(128, 'b');  // 256 chars
  EXPECT_TRUE(BackupNamespace::Parse(two_long).ok());
  std::string too_long = std::string(128, 'a') + "/" + std::string(128, 'b');  // 257 chars
  EXPECT_FALSE(BackupNamespace::Parse(too_long).ok());
  for (std::string bad : {std::string("/a"), std::string("a/"), std::string("a//b"),
                          std::string(".."), std::string("a/../b"), std::string("a/.x"),
                          std::string("a\0b", 3), std::string("ns:x")}) {
    EXPECT_FALSE(BackupNamespace::Parse(bad).ok()) << bad;
  }
}

TEST(GroupTest, ParseAndOrder) {
  auto g = BackupGroup::Parse("vm/100");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->type, BackupType::kVm);
  EXPECT_EQ(g->id, "100");
  EXPECT_EQ(g->ToString(), "vm/100");
  EXPECT_FALSE(BackupGroup::Parse("vm").ok());
  EXPECT_FALSE(BackupGroup::Parse("vm/").ok());
  EXPECT_FALSE(BackupGroup::Parse("xx/100").ok());
  EXPECT_FALSE(BackupGroup::Parse("vm/1/2").ok());
  EXPECT_FALSE(BackupGroup::Parse("vm/..").ok());

  std::vector<BackupGroup> groups;
  for (const char* s : {"vm/abc", "vm/100", "host/web", "vm/20", "ct/101", "vm/Abc",
                        "vm/18446744073709551616", "host/a"}) {
    groups.push_back(*BackupGroup::Parse(s));
  }
  std::sort(groups.begin(), groups.end());
  std::vector<std::string> names;
  for (auto& x : groups) names.push_back(x.ToString());
  // ct < host < vm; numeric ids first in numeric order; others bytewise (a u64 overflow is
  // not numeric).
  EXPECT_EQ(names, (std::vector<std::string>{"ct/101", "host/a", "host/web", "vm/20", "vm/100",
                                             "vm/18446744073709551616", "vm/Abc", "vm/abc"}));
}

TEST(SnapshotTest, Parse) {
  auto d = BackupDir::Parse("vm/100/2024-05-01T10:00:00Z");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->group.ToString(), "vm/100");
  EXPECT_EQ(d->time, 1714557600);
  EXPECT_EQ(d->ToString(), "vm/100/2024-05-01T10:00:00Z");
  EXPECT_FALSE(BackupDir::Parse("vm/100").ok());
  EXPECT_FALSE(BackupDir::Parse("vm/100/yesterday").ok());
}

TEST(SnapshotOrGroupPathTest, BothForms) {
  auto p = ParseSnapshotOrGroupPath("vm/100/2024-05-01T10:00:00Z");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(std::get<0>(*p).IsRoot());
  EXPECT_EQ(std::get<1>(*p).ToString(), "vm/100");
  EXPECT_EQ(std::get<2>(*p), 1714557600);

  p = ParseSnapshotOrGroupPath("ns/a/ns/b/host/web/2024-05-04T08:00:00Z/");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(std::get<0>(*p).ToString(), "a/b");
  EXPECT_EQ(std::get<1>(*p).ToString(), "host/web");
  ASSERT_TRUE(std::get<2>(*p).has_value());

  p = ParseSnapshotOrGroupPath("ns/a/host/web");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(std::get<0>(*p).ToString(), "a");
  EXPECT_FALSE(std::get<2>(*p).has_value());

  for (const char* bad : {"", "vm", "ns/a", "ns/../vm/100", "vm/100/2024", "vm/100/x/y",
                          "/vm/100", "ns//vm/100", "ns/a/ns", "vm/../100"}) {
    auto r = ParseSnapshotOrGroupPath(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    }
  }
}

TEST(SystemdEscapeTest, LockNameExamples) {
  // FORMATS.md §8.7 / §12.9.
  EXPECT_EQ(SystemdEscapePath("vm/100"), "vm-100");
  EXPECT_EQ(SystemdEscapePath("vm/100/2022-05-02T08:11:33Z"),
            "vm-100-2022\\x2d05\\x2d02T08\\x3a11\\x3a33Z");
  EXPECT_EQ(SystemdEscapePath("vm/100/2022-05-02T08:11:33Z/.index.json.lck"),
            "vm-100-2022\\x2d05\\x2d02T08\\x3a11\\x3a33Z-.index.json.lck");
  EXPECT_EQ(SystemdEscapePath("host/my-host"), "host-my\\x2dhost");
  EXPECT_EQ(SystemdEscapePath("//a/b"), "a-b");
  EXPECT_EQ(SystemdEscapePath("/"), "-");
  EXPECT_EQ(SystemdEscapePath(".x"), "\\x2ex");
  EXPECT_EQ(SystemdEscapePath("a\nb"), "a\\x0ab");
  EXPECT_EQ(SystemdEscapePath("\xff"), "\\xff");
}

}  // namespace
}  // namespace pbskit
