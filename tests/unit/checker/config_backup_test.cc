#include "pbskit/checker/config_backup.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "test_support.h"

namespace pbskit::checker {
namespace {

TEST(ConfigBackupTest, RoundTripAndRestore) {
  Host host(test::TestData("hosts/old-remote-sync/root"));
  auto files = CollectConfigFiles(host);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  std::vector<std::string> paths;
  for (const auto& f : *files) paths.push_back(f.path);
  EXPECT_NE(std::find(paths.begin(), paths.end(), "/etc/proxmox-backup/sync.cfg"), paths.end());
  EXPECT_NE(std::find(paths.begin(), paths.end(), "/etc/apt/sources.list"), paths.end());
  EXPECT_NE(std::find(paths.begin(), paths.end(),
                      "/etc/apt/sources.list.d/pbs-no-subscription.list"),
            paths.end());

  test::TempDir dir;
  std::string archive = dir / "config.tar.zst";
  ASSERT_TRUE(WriteConfigBackup(*files, archive).ok());
  auto back = ReadConfigBackup(archive);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), files->size());
  for (size_t i = 0; i < files->size(); ++i) {
    EXPECT_EQ((*back)[i].path, (*files)[i].path);
    EXPECT_EQ((*back)[i].data, (*files)[i].data);
    EXPECT_EQ((*back)[i].mode, (*files)[i].mode);
  }

  std::string root = dir / "restored";
  ::mkdir(root.c_str(), 0755);
  ASSERT_TRUE(RestoreConfigFiles(*back, root).ok());
  EXPECT_EQ(test::ReadText(root + "/etc/proxmox-backup/sync.cfg"),
            test::ReadText(test::TestData("hosts/old-remote-sync/root/etc/proxmox-backup/sync.cfg")));
}

TEST(ConfigBackupTest, TamperedContentIsRejected) {
  std::vector<ConfigBackupFile> files(1);
  files[0].path = "/etc/proxmox-backup/datastore.cfg";
  files[0].data = "datastore: a\n\tpath /a\n";
  files[0].sha256 = std::string(64, '0');  // does not match the data
  test::TempDir dir;
  ASSERT_TRUE(WriteConfigBackup(files, dir / "bad.tar.zst").ok());
  auto r = ReadConfigBackup(dir / "bad.tar.zst");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_NE(r.status().message().find("SHA-256 mismatch"), std::string::npos);

  auto missing = ReadConfigBackup(dir / "nope.tar.zst");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kIoError);
}

TEST(ConfigBackupTest, UnsafePathsAreNotRestored) {
  std::vector<ConfigBackupFile> files(1);
  files[0].path = "/etc/../../escape";
  test::TempDir dir;
  EXPECT_EQ(RestoreConfigFiles(files, dir.path()).code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace pbskit::checker
