#include "pbskit/datastore/datastore_config.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "test_support.h"

namespace fs = std::filesystem;

namespace pbskit {
namespace {

// FORMATS.md §9 example.
const char kSpecExample[] =
    "datastore: store1\n"
    "\tcomment My store\n"
    "\tgc-schedule daily\n"
    "\tpath /backup/disk1/store1\n"
    "\ttuning chunk-order=none,gc-atime-cutoff=1445,sync-level=filesystem\n"
    "\n"
    "datastore: s3store\n"
    "\tbackend bucket=pbs-bucket,client=my-s3-ep,type=s3\n"
    "\tpath /mnt/datastore/s3store-cache\n";

TEST(DatastoreConfigTest, ParsesSpecExampleAndWritesItBack) {
  test::TempDir tmp;
  test::WriteText(tmp / "datastore.cfg", kSpecExample);
  auto cfg = DatastoreConfig::Load(tmp.path());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  ASSERT_EQ(cfg->entries().size(), 2u);
  const auto* s1 = cfg->Find("store1");
  ASSERT_NE(s1, nullptr);
  EXPECT_EQ(s1->path(), "/backup/disk1/store1");
  EXPECT_EQ(s1->comment(), "My store");
  auto tuning = s1->tuning();
  ASSERT_TRUE(tuning.ok());
  EXPECT_EQ(tuning->chunk_order, "none");
  EXPECT_FALSE(tuning->InodeChunkOrder());
  EXPECT_EQ(tuning->EffectiveGcAtimeCutoffMinutes(), 1445);
  EXPECT_EQ(tuning->EffectiveSyncLevel(), SyncLevel::kFilesystem);
  EXPECT_TRUE(tuning->EffectiveAtimeSafetyCheck());
  EXPECT_EQ(tuning->ToString(), "chunk-order=none,gc-atime-cutoff=1445,sync-level=filesystem");
  EXPECT_EQ(cfg->Find("nope"), nullptr);
  // Written exactly like PBS: sorted properties, tab indent, blank line between sections.
  EXPECT_EQ(cfg->ToString(), kSpecExample);
}

TEST(DatastoreConfigTest, SaveModeAddRemove) {
  test::TempDir tmp;
  std::string dir = tmp / "etc";
  auto cfg = DatastoreConfig::Load(dir);  // missing file: empty config
  ASSERT_TRUE(cfg.ok());
  EXPECT_TRUE(cfg->entries().empty());
  DatastoreConfigEntry e;
  e.name = "backup1";
  e.Set("path", "/srv/backup1");
  e.Set("comment", "first");
  ASSERT_TRUE(cfg->Add(e).ok());
  EXPECT_EQ(cfg->Add(e).code(), Code::kAlreadyExists);
  DatastoreConfigEntry bad;
  bad.name = "../x";
  bad.Set("path", "/x");
  EXPECT_EQ(cfg->Add(bad).code(), Code::kInvalidArgument);
  DatastoreConfigEntry nopath;
  nopath.name = "nopath";
  EXPECT_EQ(cfg->Add(nopath).code(), Code::kInvalidArgument);
  ASSERT_TRUE(cfg->Save(dir).ok());
  EXPECT_EQ(test::ReadText(dir + "/datastore.cfg"),
            "datastore: backup1\n\tcomment first\n\tpath /srv/backup1\n");
  EXPECT_EQ(fs::status(dir + "/datastore.cfg").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  auto reloaded = DatastoreConfig::Load(dir);
  ASSERT_TRUE(reloaded.ok());
  ASSERT_NE(reloaded->Find("backup1"), nullptr);
  ASSERT_TRUE(reloaded->Remove("backup1").ok());
  EXPECT_TRUE(reloaded->Remove("backup1").IsNotFound());
  EXPECT_EQ(reloaded->ToString(), "");
}

TEST(DatastoreConfigTest, Errors) {
  test::TempDir tmp;
  test::WriteText(tmp / "datastore.cfg", "datastore: x1\n\tcomment no path\n");
  auto cfg = DatastoreConfig::Load(tmp.path());
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("has no path"), std::string::npos);
  test::WriteText(tmp / "datastore.cfg", "garbage line\n");
  cfg = DatastoreConfig::Load(tmp.path());
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("datastore.cfg:1"), std::string::npos);
  for (const char* t : {"sync-level=always", "gc-atime-cutoff=0", "gc-atime-cutoff=2881",
                        "gc-cache-capacity=8388609", "chunk-order=random",
                        "gc-atime-safety-check=maybe", "sync-level=file,sync-level=none"}) {
    EXPECT_FALSE(DatastoreTuning::Parse(t).ok()) << t;
  }
  auto t = DatastoreTuning::Parse("gc-atime-safety-check=false,sync-level=file,gc-cache-capacity=0");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->EffectiveAtimeSafetyCheck());
  EXPECT_EQ(t->EffectiveSyncLevel(), SyncLevel::kFile);
  EXPECT_EQ(t->EffectiveGcCacheCapacity(), 0);
}

TEST(DatastoreConfigTest, MaintenanceMode) {
  auto m = MaintenanceMode::Parse("read-only,message=backup%20window");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->type, "read-only");
  EXPECT_EQ(*m->message, "backup%20window");
  EXPECT_EQ(m->ToString(), "read-only,message=backup%20window");
  EXPECT_TRUE(MaintenanceMode::Parse("type=offline").ok());
  EXPECT_FALSE(MaintenanceMode::Parse("type=sleeping").ok());
  DatastoreConfigEntry e;
  e.name = "abc";
  e.Set("maintenance-mode", "offline");
  auto mm = e.maintenance_mode();
  ASSERT_TRUE(mm.ok() && mm->has_value());
  EXPECT_EQ((*mm)->type, "offline");
}

TEST(DatastoreConfigTest, VerifyNew) {
  DatastoreConfigEntry e;
  e.name = "abc";
  auto unset = e.verify_new();
  ASSERT_TRUE(unset.ok());
  EXPECT_FALSE(*unset);
  e.Set("verify-new", "true");
  EXPECT_TRUE(*e.verify_new());
  e.Set("verify-new", "0");
  EXPECT_FALSE(*e.verify_new());
  e.Set("verify-new", "maybe");
  auto bad = e.verify_new();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "datastore 'abc': invalid boolean for 'verify-new': 'maybe'");
}

TEST(OpenStoreTest, ByNameAndByPath) {
  test::TempDir tmp;
  fs::create_directories(tmp / "data/.chunks");
  fs::create_directories(tmp / "other/.chunks");
  std::string etc = tmp / "etc";
  fs::create_directories(etc);
  test::WriteText(etc + "/datastore.cfg", "datastore: named\n\tpath " + (tmp / "data") +
                                              "\n\ttuning sync-level=none\n");
  auto by_name = OpenStore(etc, "named");
  ASSERT_TRUE(by_name.ok()) << by_name.status().ToString();
  EXPECT_EQ(by_name->store->name(), "named");
  EXPECT_EQ(by_name->store->sync_level(), SyncLevel::kNone);
  ASSERT_TRUE(by_name->config.has_value());
  // A configured path gets the configured name (lock paths must match PBS's).
  auto by_path = OpenStore(etc, tmp / "data/");
  ASSERT_TRUE(by_path.ok()) << by_path.status().ToString();
  EXPECT_EQ(by_path->store->name(), "named");
  auto unconfigured = OpenStore(etc, tmp / "other");
  ASSERT_TRUE(unconfigured.ok());
  EXPECT_EQ(unconfigured->store->name(), "other");
  EXPECT_FALSE(unconfigured->config.has_value());
  auto missing = OpenStore(etc, "missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().IsNotFound());
  EXPECT_NE(missing.status().message().find("datastore 'missing' does not exist"),
            std::string::npos);
  EXPECT_TRUE(OpenStore(etc, tmp / "nothing-here").status().IsNotFound());
}

}  // namespace
}  // namespace pbskit
