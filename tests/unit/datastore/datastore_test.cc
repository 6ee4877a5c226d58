#include "pbskit/datastore/datastore.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace pbskit {
namespace {

BackupNamespace Ns(const std::string& s) { return *BackupNamespace::Parse(s); }
BackupGroup Group(const std::string& s) { return *BackupGroup::Parse(s); }
BackupDir Snap(const std::string& s) { return *BackupDir::Parse(s); }

// Hash of a whole tree: every path, type, size, mode, mtime and file content.
std::string TreeHash(const std::string& root) {
  std::map<std::string, std::string> entries;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    struct stat st;
    lstat(it->path().c_str(), &st);
    std::string rec = std::to_string(st.st_mode) + ":" + std::to_string(st.st_size) + ":" +
                      std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
    if (S_ISREG(st.st_mode)) rec += ":" + test::Sha256Hex(test::ReadFile(it->path()));
    entries[fs::relative(it->path(), root).string()] = rec;
  }
  std::string all;
  for (const auto& [k, v] : entries) all += k + "=" + v + "\n";
  return test::Sha256Hex(all);
}

std::vector<uint8_t> ManifestBlob(const std::string& json) {
  auto blob = DataBlob::Encode(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(json.data()), json.size()),
      nullptr, true);
  return blob->raw();
}

class DataStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLockRootForTesting(tmp_ / "run/locks");
    fs::create_directories(tmp_ / "ds/.chunks");
    test::WriteText(tmp_ / "ds/.lock", "");
    auto ds = DataStore::Open(tmp_ / "ds", "store1");
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    ds_ = *ds;
  }
  void TearDown() override { SetLockRootForTesting(""); }

  // A finished snapshot with a manifest listing one blob.
  void MakeSnapshot(const BackupNamespace& ns, const std::string& snap, bool finished = true) {
    BackupDir d = Snap(snap);
    std::string dir = ds_->SnapshotPath(ns, d);
    fs::create_directories(dir);
    if (!fs::exists(ds_->GroupPath(ns, d.group) + "/owner")) {
      test::WriteText(ds_->GroupPath(ns, d.group) + "/owner", "root@pam\n");
    }
    test::WriteText(dir + "/qemu-server.conf.blob", "x");
    if (!finished) return;
    Manifest m;
    m.backup_type = BackupTypeName(d.group.type);
    m.backup_id = d.group.id;
    m.backup_time = d.time;
    FileInfo f;
    f.filename = "qemu-server.conf.blob";
    f.size = 1;
    m.files.push_back(f);
    ASSERT_TRUE(ds_->StoreManifest(ns, d, m).ok());
  }

  test::TempDir tmp_;
  std::shared_ptr<DataStore> ds_;
};

TEST_F(DataStoreTest, OpenRequiresChunks) {
  auto r = DataStore::Open(tmp_ / "nothing", "x");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsNotFound());
  EXPECT_NE(r.status().message().find(".chunks"), std::string::npos);
  EXPECT_EQ(DataStore::Create(tmp_ / "new", "a/b").status().code(), Code::kInvalidArgument);
}

TEST_F(DataStoreTest, Paths) {
  EXPECT_EQ(ds_->NamespacePath(Ns("")), tmp_ / "ds");
  EXPECT_EQ(ds_->GroupPath(Ns("a/b"), Group("vm/100")), tmp_ / "ds/ns/a/ns/b/vm/100");
  EXPECT_EQ(ds_->SnapshotPath(Ns(""), Snap("ct/1/2024-05-01T11:00:00Z")),
            tmp_ / "ds/ct/1/2024-05-01T11:00:00Z");
}

TEST_F(DataStoreTest, Namespaces) {
  EXPECT_TRUE(ds_->ListNamespaces(Ns(""), true)->size() == 1);  // the root only
  EXPECT_TRUE(ds_->CreateNamespace(Ns("b")).ok());
  EXPECT_TRUE(ds_->CreateNamespace(Ns("a")).ok());
  EXPECT_TRUE(ds_->CreateNamespace(Ns("a/x")).ok());
  EXPECT_EQ(ds_->CreateNamespace(Ns("a")).code(), Code::kAlreadyExists);
  Status st = ds_->CreateNamespace(Ns("c/d"));
  EXPECT_TRUE(st.IsNotFound());
  EXPECT_NE(st.message().find("parent"), std::string::npos);
  auto all = ds_->ListNamespaces(Ns(""), true);
  ASSERT_TRUE(all.ok());
  std::vector<std::string> names;
  for (const auto& n : *all) names.push_back(n.ToString());
  EXPECT_EQ(names, (std::vector<std::string>{"", "a", "a/x", "b"}));
  auto direct = ds_->ListNamespaces(Ns(""), false);
  ASSERT_EQ(direct->size(), 2u);
  EXPECT_TRUE(ds_->ListNamespaces(Ns("zz"), true).status().IsNotFound());
  // A bad directory name below ns/ makes the listing fail with a message naming it.
  fs::create_directories(tmp_ / "ds/ns/.bad");
  auto bad = ds_->ListNamespaces(Ns(""), true);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(".bad"), std::string::npos);
  fs::remove(tmp_ / "ds/ns/.bad");

  // Removal: non-empty refused without delete_groups; with it everything goes.
  MakeSnapshot(Ns("a/x"), "vm/1/2024-01-01T00:00:00Z");
  st = ds_->RemoveNamespace(Ns("a"), false);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_TRUE(fs::exists(tmp_ / "ds/ns/a/ns/x/vm/1"));
  EXPECT_TRUE(ds_->RemoveNamespace(Ns("a"), true).ok());
  EXPECT_FALSE(fs::exists(tmp_ / "ds/ns/a"));
  EXPECT_TRUE(ds_->RemoveNamespace(Ns("b"), false).ok());
  EXPECT_EQ(ds_->RemoveNamespace(Ns(""), true).code(), Code::kInvalidArgument);
}

TEST_F(DataStoreTest, GroupsOwnersNotes) {
  for (const char* g : {"vm/100", "vm/20", "ct/5", "host/web", "vm/abc"}) {
    auto r = ds_->CreateLockedGroup(Ns(""), Group(g), "root@pam");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->first, "root@pam");
  }
  fs::create_directories(tmp_ / "ds/vm/.hidden");      // not a backup id: ignored
  fs::create_directories(tmp_ / "ds/other/1");         // not a backup type: ignored
  test::WriteText(tmp_ / "ds/vm/file", "");            // not a directory: ignored
  auto groups = ds_->ListGroups(Ns(""));
  ASSERT_TRUE(groups.ok());
  std::vector<std::string> names;
  for (const auto& g : *groups) names.push_back(g.ToString());
  EXPECT_EQ(names, (std::vector<std::string>{"ct/5", "host/web", "vm/20", "vm/100", "vm/abc"}));

  EXPECT_EQ(test::ReadText(tmp_ / "ds/vm/100/owner"), "root@pam\n");
  // Existing group: the existing owner is returned; the group lock is exclusive.
  auto again = ds_->CreateLockedGroup(Ns(""), Group("vm/100"), "other@pbs");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->first, "root@pam");
  EXPECT_TRUE(ds_->CreateLockedGroup(Ns(""), Group("vm/100"), "x@pbs").status().IsBusy());
  again->second.reset();

  EXPECT_EQ(ds_->SetOwner(Ns(""), Group("vm/100"), "x@pbs", false).code(), Code::kAlreadyExists);
  ASSERT_TRUE(ds_->SetOwner(Ns(""), Group("vm/100"), "web@pbs!backup", true).ok());
  EXPECT_EQ(*ds_->GetOwner(Ns(""), Group("vm/100")), "web@pbs!backup");
  test::WriteText(tmp_ / "ds/vm/20/owner", "spaced@pam  \r\nsecond line\n");
  EXPECT_EQ(*ds_->GetOwner(Ns(""), Group("vm/20")), "spaced@pam");
  fs::remove(tmp_ / "ds/vm/20/owner");
  EXPECT_TRUE(ds_->GetOwner(Ns(""), Group("vm/20")).status().IsNotFound());

  EXPECT_EQ(*ds_->GetGroupNotes(Ns(""), Group("vm/100")), "");
  ASSERT_TRUE(ds_->SetGroupNotes(Ns(""), Group("vm/100"), "line1\nline2").ok());
  EXPECT_EQ(*ds_->GetGroupNotes(Ns(""), Group("vm/100")), "line1\nline2");
  EXPECT_TRUE(ds_->SetGroupNotes(Ns(""), Group("vm/999"), "x").IsNotFound());
  // Groups can only be created in existing namespaces.
  EXPECT_TRUE(ds_->CreateLockedGroup(Ns("nope"), Group("vm/1"), "a@pam").status().IsNotFound());
}

TEST_F(DataStoreTest, SnapshotsManifestProtectionAndRemoval) {
  MakeSnapshot(Ns(""), "vm/100/2024-05-02T10:00:00Z");
  MakeSnapshot(Ns(""), "vm/100/2024-05-01T10:00:00Z");
  MakeSnapshot(Ns(""), "vm/100/2024-05-03T10:00:00Z", /*finished=*/false);
  fs::create_directories(tmp_ / "ds/vm/100/not-a-time");
  test::WriteText(tmp_ / "ds/vm/100/2024-05-01T10:00:00Z/drive.img.tmp_fidx", "partial");
  auto list = ds_->ListSnapshots(Ns(""), Group("vm/100"));
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].dir.ToString(), "vm/100/2024-05-01T10:00:00Z");
  EXPECT_TRUE((*list)[0].finished);
  EXPECT_EQ((*list)[0].files,
            (std::vector<std::string>{"index.json.blob", "qemu-server.conf.blob"}));
  EXPECT_FALSE((*list)[2].finished);
  auto last = ds_->LastFinishedSnapshot(Ns(""), Group("vm/100"));
  ASSERT_TRUE(last.ok() && last->has_value());
  EXPECT_EQ((*last)->ToString(), "vm/100/2024-05-02T10:00:00Z");

  BackupDir d = Snap("vm/100/2024-05-01T10:00:00Z");
  auto m = ds_->LoadManifest(Ns(""), d);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->backup_id, "100");
  ASSERT_TRUE(ds_->SetSnapshotNotes(Ns(""), d, "note 1\nmore").ok());
  EXPECT_EQ(*ds_->GetSnapshotNotes(Ns(""), d), "note 1\nmore");
  ASSERT_TRUE(ds_->UpdateManifestUnprotected(Ns(""), d, [](boost::json::object& u) {
                u["verify_state"] = boost::json::object{{"state", "ok"}, {"upid", "UPID:x"}};
                return Status::OK();
              }).ok());
  m = ds_->LoadManifest(Ns(""), d);
  EXPECT_EQ(m->unprotected.at("notes").as_string(), "note 1\nmore");
  EXPECT_EQ(m->files.size(), 1u);
  // A failing update leaves the manifest untouched.
  auto before = test::ReadFile(ds_->SnapshotPath(Ns(""), d) + "/index.json.blob");
  EXPECT_EQ(ds_->UpdateManifestUnprotected(Ns(""), d, [](boost::json::object& u) {
              u.clear();
              return Status::Aborted("no");
            }).code(),
            Code::kAborted);
  EXPECT_EQ(test::ReadFile(ds_->SnapshotPath(Ns(""), d) + "/index.json.blob"), before);

  // Hostile file names never leave the snapshot directory.
  for (std::string bad : {std::string("../owner"), std::string(".."), std::string("/etc/passwd"),
                          std::string("a\0.blob", 7)}) {
    auto r = ds_->ReadSnapshotFile(Ns(""), d, bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(ds_->ReadSnapshotFile(Ns(""), d, "missing.blob").status().IsNotFound());

  // Protection.
  EXPECT_FALSE(*ds_->IsProtected(Ns(""), d));
  ASSERT_TRUE(ds_->SetProtected(Ns(""), d, true).ok());
  EXPECT_TRUE(*ds_->IsProtected(Ns(""), d));
  EXPECT_TRUE(ds_->GetSnapshotInfo(Ns(""), d)->is_protected);
  Status st = ds_->RemoveSnapshot(Ns(""), d, false);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("protected"), std::string::npos);
  EXPECT_TRUE(fs::exists(ds_->SnapshotPath(Ns(""), d)));
  EXPECT_TRUE(ds_->SetProtected(Ns(""), Snap("vm/100/2020-01-01T00:00:00Z"), true).IsNotFound());

  // A locked snapshot cannot be removed.
  auto guard = ds_->LockSnapshotShared(Ns(""), Snap("vm/100/2024-05-02T10:00:00Z"));
  ASSERT_TRUE(guard.ok());
  EXPECT_TRUE(ds_->RemoveSnapshot(Ns(""), Snap("vm/100/2024-05-02T10:00:00Z"), false).IsBusy());
  guard->reset();

  ASSERT_TRUE(ds_->SetProtected(Ns(""), d, false).ok());
  for (const char* s : {"vm/100/2024-05-01T10:00:00Z", "vm/100/2024-05-02T10:00:00Z",
                        "vm/100/2024-05-03T10:00:00Z"}) {
    ASSERT_TRUE(ds_->RemoveSnapshot(Ns(""), Snap(s), false).ok()) << s;
  }
  EXPECT_TRUE(ds_->RemoveSnapshot(Ns(""), d, false).IsNotFound());
  // The directory "not-a-time" keeps the group directory alive; without it the group goes.
  EXPECT_TRUE(fs::exists(tmp_ / "ds/vm/100"));
  fs::remove(tmp_ / "ds/vm/100/not-a-time");
  MakeSnapshot(Ns(""), "vm/100/2024-06-01T00:00:00Z");
  ASSERT_TRUE(ds_->SetGroupNotes(Ns(""), Group("vm/100"), "n").ok());
  ASSERT_TRUE(ds_->RemoveSnapshot(Ns(""), Snap("vm/100/2024-06-01T00:00:00Z"), false).ok());
  EXPECT_FALSE(fs::exists(tmp_ / "ds/vm/100"));
  EXPECT_FALSE(fs::exists(ds_->locks().GroupLockPath(Ns(""), Group("vm/100"))));
}

TEST_F(DataStoreTest, RemoveGroupKeepsProtected) {
  MakeSnapshot(Ns(""), "ct/1/2024-01-01T00:00:00Z");
  MakeSnapshot(Ns(""), "ct/1/2024-01-02T00:00:00Z");
  ASSERT_TRUE(ds_->SetProtected(Ns(""), Snap("ct/1/2024-01-02T00:00:00Z"), true).ok());
  EXPECT_EQ(ds_->RemoveGroup(Ns(""), Group("ct/1")).code(), Code::kInvalidArgument);
  auto left = ds_->ListSnapshots(Ns(""), Group("ct/1"));
  ASSERT_EQ(left->size(), 1u);
  EXPECT_TRUE((*left)[0].is_protected);
  ASSERT_TRUE(ds_->SetProtected(Ns(""), Snap("ct/1/2024-01-02T00:00:00Z"), false).ok());
  EXPECT_TRUE(ds_->RemoveGroup(Ns(""), Group("ct/1")).ok());
  EXPECT_FALSE(fs::exists(tmp_ / "ds/ct/1"));
}

// A datastore as PBS 1.x left it: no ns/, a group without owner, the pre-1.0.6 manifest lock in
// the snapshot directory, a manifest with keys pbskit does not know. Listing and reading it must
// not change a single byte, mode or timestamp.
TEST(OldDataStoreTest, OpensReadOnlyWithoutChanges) {
  test::TempDir tmp;
  std::string base = tmp / "old";
  fs::create_directories(base + "/.chunks/0000");
  std::string snap = base + "/vm/100/2020-11-10T10:00:00Z";
  fs::create_directories(snap);
  test::WriteText(snap + "/.index.json.lck", "");
  test::WriteText(snap + "/qemu-server.conf.blob", "x");
  test::WriteFile(snap + "/index.json.blob",
                  ManifestBlob(R"({"backup-type":"vm","backup-id":"100","backup-time":1605002400,)"
                               R"("files":[{"filename":"qemu-server.conf.blob","size":1,)"
                               R"("csum":")" + std::string(64, '0') +
                               R"("}],"future-key":{"a":1}})"));
  fs::create_directories(base + "/ct/7/2020-11-10T10:00:00Z");  // unfinished, no owner
  std::string before = TreeHash(base);

  SetLockRootForTesting(tmp / "run/locks");
  auto ds = DataStore::Open(base, "old");
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  auto nss = (*ds)->ListNamespaces(BackupNamespace(), true);
  ASSERT_TRUE(nss.ok());
  EXPECT_EQ(nss->size(), 1u);
  auto groups = (*ds)->ListGroups(BackupNamespace());
  ASSERT_TRUE(groups.ok());
  ASSERT_EQ(groups->size(), 2u);
  EXPECT_TRUE((*ds)->GetOwner(BackupNamespace(), Group("vm/100")).status().IsNotFound());
  for (const auto& g : *groups) {
    auto snaps = (*ds)->ListSnapshots(BackupNamespace(), g);
    ASSERT_TRUE(snaps.ok());
    for (const auto& s : *snaps) {
      if (!s.finished) continue;
      auto m = (*ds)->LoadManifest(BackupNamespace(), s.dir);
      ASSERT_TRUE(m.ok()) << m.status().ToString();
      EXPECT_TRUE(m->unknown.contains("future-key"));
      EXPECT_EQ(m->files[0].crypt_mode, CryptMode::kNone);  // pre-0.8 default
      EXPECT_TRUE((*ds)->ReadSnapshotFile(BackupNamespace(), s.dir, "qemu-server.conf.blob").ok());
    }
  }
  EXPECT_EQ(TreeHash(base), before);
  EXPECT_FALSE(fs::exists(base + "/.lock"));  // reading never creates the lock file
  SetLockRootForTesting("");
}

}  // namespace
}  // namespace pbskit
