// The real PBS 3.2.4 datastore fixture, listed through the CLI where it lies (read-only), and the
// CLI's handling of hostile names. Afterwards the fixture must be byte-for-byte unchanged.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/json.hpp>
#include <filesystem>
#include <map>

#include "test_support.h"

namespace fs = std::filesystem;

namespace pbskit {
namespace {

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

class FixtureListingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { before_ = new std::string(TreeHash(Store())); }
  static void TearDownTestSuite() {
    EXPECT_EQ(TreeHash(Store()), *before_) << "the fixture datastore was modified";
    delete before_;
  }
  static std::string Store() { return test::Fixture("pbs-3.2.4-datastore"); }

  test::CommandResult Run(std::vector<std::string> args) {
    return test::RunCli(args, {"PBSKIT_CONFIG_DIR=" + (tmp_ / "etc"),
                               "PBSKIT_LOCK_ROOT=" + (tmp_ / "run/locks")});
  }
  boost::json::value Json(std::vector<std::string> args) {
    args.push_back("--output-format");
    args.push_back("json");
    auto r = Run(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return boost::json::parse(r.out);
  }

  static std::string* before_;
  test::TempDir tmp_;
};
std::string* FixtureListingTest::before_ = nullptr;

TEST_F(FixtureListingTest, RootSnapshots) {
  auto v = Json({"snapshot", "list", "--store", Store()});
  const auto& a = v.as_array();
  ASSERT_EQ(a.size(), 5u);
  std::map<std::string, boost::json::object> by;
  for (const auto& item : a) {
    const auto& o = item.as_object();
    std::string key = std::string(o.at("backup-type").as_string()) + "/" +
                      std::string(o.at("backup-id").as_string()) + "@" +
                      std::to_string(o.at("backup-time").as_int64());
    by[key] = o;
  }
  const auto& ct = by.at("ct/101@1714561200");
  EXPECT_EQ(ct.at("owner").as_string(), "root@pam");
  EXPECT_EQ(ct.at("verification").as_object().at("state").as_string(), "ok");
  EXPECT_FALSE(ct.at("protected").as_bool());
  // Files: the manifest's three, index.json.blob, and client.log.blob (not in the manifest).
  std::vector<std::string> files;
  for (const auto& f : ct.at("files").as_array()) {
    files.push_back(std::string(f.as_object().at("filename").as_string()));
  }
  EXPECT_EQ(files, (std::vector<std::string>{"pct.conf.blob", "root.pxar.didx",
                                             "catalog.pcat1.didx", "index.json.blob",
                                             "client.log.blob"}));
  EXPECT_EQ(ct.at("files").as_array()[0].as_object().at("size").as_int64(), 112);
  EXPECT_FALSE(ct.at("files").as_array()[4].as_object().contains("size"));

  const auto& vm100a = by.at("vm/100@1714557600");
  EXPECT_EQ(vm100a.at("comment").as_string(), "first backup of vm 100");
  EXPECT_EQ(vm100a.at("verification").as_object().at("state").as_string(), "ok");
  const auto& vm100b = by.at("vm/100@1714644000");
  EXPECT_TRUE(vm100b.at("protected").as_bool());
  EXPECT_FALSE(vm100b.contains("verification"));
  const auto& vm200 = by.at("vm/200@1714910400");
  EXPECT_EQ(vm200.at("fingerprint").as_string(),
            "c1:5b:4a:95:d5:ba:ed:b6:4d:dd:e2:bc:f0:f5:d7:47:d4:b5:fa:a3:8b:88:9a:5e:ac:a2:ad:79:"
            "da:a2:3f:af");
  EXPECT_EQ(vm200.at("files").as_array()[0].as_object().at("crypt-mode").as_string(), "encrypt");
  const auto& vm201 = by.at("vm/201@1714914000");
  EXPECT_FALSE(vm201.contains("verification"));
}

TEST_F(FixtureListingTest, NamespacesAndTheirSnapshots) {
  auto v = Json({"namespace", "list", "--store", Store()});
  std::vector<std::string> names;
  for (const auto& i : v.as_object().at("data").as_array()) {
    names.push_back(std::string(i.as_object().at("ns").as_string()));
  }
  EXPECT_EQ(names, (std::vector<std::string>{"", "a", "a/b"}));
  auto text = Run({"namespace", "list", "--store", Store()});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_EQ(text.out, "a\na/b\n");

  auto a = Json({"snapshot", "list", "--store", Store(), "--ns", "a"});
  ASSERT_EQ(a.as_array().size(), 1u);
  EXPECT_EQ(a.as_array()[0].as_object().at("owner").as_string(), "web@pbs");
  // The directory form names the namespace itself.
  auto ab = Json({"snapshot", "list", "--store", Store(), "ns/a/ns/b/host/web"});
  ASSERT_EQ(ab.as_array().size(), 1u);
  const auto& o = ab.as_array()[0].as_object();
  EXPECT_EQ(o.at("owner").as_string(), "web@pbs!backup");
  EXPECT_EQ(o.at("backup-time").as_int64(), 1714809600);
  EXPECT_TRUE(o.contains("comment"));
  // --ns and a path in another namespace contradict each other.
  auto bad = Run({"snapshot", "list", "--store", Store(), "--ns", "a", "ns/x/host/web"});
  EXPECT_EQ(bad.exit_code, 2);
}

TEST_F(FixtureListingTest, GroupsFilesShowNotes) {
  auto groups = Json({"group", "list", "--store", Store()});
  ASSERT_EQ(groups.as_array().size(), 4u);
  std::map<std::string, boost::json::object> by;
  for (const auto& g : groups.as_array()) {
    const auto& o = g.as_object();
    by[std::string(o.at("backup-type").as_string()) + "/" +
       std::string(o.at("backup-id").as_string())] = o;
  }
  EXPECT_EQ(by.at("vm/100").at("backup-count").as_int64(), 2);
  EXPECT_EQ(by.at("vm/100").at("last-backup").as_int64(), 1714644000);
  EXPECT_EQ(by.at("vm/100").at("owner").as_string(), "root@pam");
  auto text = Run({"group", "list", "--store", Store()});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("vm/100/2024-05-02T10:00:00Z"), std::string::npos);

  auto files = Json({"snapshot", "files", "--store", Store(), "vm/200/2024-05-05T12:00:00Z"});
  ASSERT_EQ(files.as_array().size(), 4u);
  EXPECT_EQ(files.as_array()[3].as_object().at("filename").as_string(), "index.json.blob");
  EXPECT_EQ(files.as_array()[3].as_object().at("crypt-mode").as_string(), "sign-only");

  auto show = Json({"snapshot", "show", "--store", Store(), "vm/100/2024-05-01T10:00:00Z"});
  EXPECT_EQ(show.as_object().at("manifest").as_object().at("backup-id").as_string(), "100");
  auto notes = Run({"snapshot", "notes", "get", "--store", Store(), "vm/100/2024-05-01T10:00:00Z"});
  EXPECT_EQ(notes.exit_code, 0);
  EXPECT_EQ(notes.out.rfind("first backup of vm 100\n", 0), 0u);
  auto group_notes = Run({"group", "notes", "get", "--store", Store(), "vm/100"});
  EXPECT_EQ(group_notes.exit_code, 0) << group_notes.err;
}

TEST_F(FixtureListingTest, HostileNamesAreRefused) {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"snapshot", "list", "--store", Store(), "vm/.."},
           {"snapshot", "list", "--store", Store(), "--ns", "../.."},
           {"snapshot", "list", "--store", Store(), "--ns", "a/../../etc"},
           {"snapshot", "files", "--store", Store(), "vm/100/../../../etc"},
           {"snapshot", "forget", "--store", Store(), "vm/1 00/2024-05-01T10:00:00Z"},
           {"namespace", "create", "--store", Store(), "--ns", "x/../y"},
           {"namespace", "delete", "--store", Store(), "--ns", ".."},
           {"group", "notes", "set", "--store", Store(), "vm/../../x", "n"},
           {"snapshot", "list", "--store", "../etc"}}) {
    auto r = Run(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << " " << args.back() << ": " << r.err;
    EXPECT_EQ(r.err.rfind("Error: ", 0), 0u) << r.err;
  }
}

TEST_F(FixtureListingTest, DatastoreCreateListStatus) {
  std::string path = tmp_ / "newstore";
  auto r = Run({"datastore", "create", "store2", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::is_directory(path + "/.chunks/ffff"));
  EXPECT_TRUE(fs::is_regular_file(path + "/.lock"));
  // The atime safety check inserted the 4 MiB zero chunk.
  EXPECT_TRUE(fs::is_regular_file(
      path + "/.chunks/bb9f/bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8"));
  EXPECT_NE(r.out.find("Access time update check successful."), std::string::npos);
  EXPECT_EQ(test::ReadText(tmp_ / "etc/datastore.cfg"), "datastore: store2\n\tpath " + path + "\n");
  auto again = Run({"datastore", "create", "store2", tmp_ / "x"});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("already exists"), std::string::npos);
  auto list = Json({"datastore", "list"});
  ASSERT_EQ(list.as_array().size(), 1u);
  EXPECT_EQ(list.as_array()[0].as_object().at("path").as_string(), path);
  auto status = Json({"datastore", "status"});
  ASSERT_EQ(status.as_array().size(), 1u);
  EXPECT_GT(status.as_array()[0].as_object().at("total").to_number<uint64_t>(), 0u);
  // The registered name works as --store; an empty datastore lists nothing.
  auto snaps = Json({"snapshot", "list", "--store", "store2"});
  EXPECT_TRUE(snaps.as_array().empty());
  auto ns = Run({"namespace", "create", "--store", "store2", "--ns", "team1"});
  EXPECT_EQ(ns.exit_code, 0) << ns.err;
  EXPECT_TRUE(fs::is_directory(path + "/ns/team1"));
  auto del = Run({"namespace", "delete", "--store", "store2", "--ns", "team1"});
  EXPECT_EQ(del.exit_code, 0) << del.err;
  EXPECT_FALSE(fs::exists(path + "/ns/team1"));
  auto unknown = Run({"snapshot", "list", "--store", "nosuchstore"});
  EXPECT_EQ(unknown.exit_code, 2);
}

}  // namespace
}  // namespace pbskit
