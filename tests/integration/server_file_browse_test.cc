// The file browser endpoints of `pbskit serve` (PBS's `catalog` and `pxar-file-download`) over
// loopback TLS: a directory tree is backed up with `pbskit backup dir` in legacy mode (pxar +
// catalog) and in split mode (mpxar/ppxar, no catalog), then listed, downloaded file by file
// and as zip / tar.zst (read back with libarchive), with PBS's answers to hostile paths and to
// callers without privileges.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <map>
#include <tuple>

#include "pbskit/formats/crypto.h"
#include "pbskit/server/access_config.h"
#include "pbskit/server/acl.h"
#include "pbskit/server/http_client.h"
#include "pbskit/server/password.h"
#include "pbskit/server/serve.h"
#include "archive_members.h"
#include "test_server.h"
#include "test_support.h"

namespace pbskit::server {
namespace {

namespace json = boost::json;

constexpr int64_t kLegacy = 1717000000;  // host/legacy: root.pxar.didx + catalog
constexpr int64_t kSplit = 1717000100;   // host/split: root.mpxar.didx + root.ppxar.didx
constexpr int64_t kOwned = 1717000200;   // host/owned: legacy, owned by bob@pbs
constexpr int64_t kEnc = 1717000300;     // host/enc: legacy, encrypted
constexpr int64_t kSigned = 1717000400;  // host/signed: legacy, sign-only
constexpr int64_t kMtime = 1700000000;

std::string B64(const std::string& s) {
  return Base64Encode(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

using Member = test::ArchiveMember;

std::map<std::string, Member> Members(const std::string& bytes) {
  return test::ArchiveMembers(bytes);
}

std::string Names(const std::map<std::string, Member>& m) {
  std::string s;
  for (const auto& [name, member] : m) s += name + " ";
  return s;
}

class ServerFileBrowseTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    const std::string config = *dir_ / "etc";
    auto s = Serve::Start(test::LoopbackServeConfig(*dir_));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    serve_ = s->release();
    ASSERT_TRUE(serve_->default_setup().has_value());
    secret_ = serve_->default_setup()->secret;

    // bob@pbs may only back up (Datastore.Backup); alice@pbs!noacl has no ACL at all.
    test::AddUser(config, "bob@pbs", "bob-password");
    test::AddUser(config, "alice@pbs");
    test::AddToken(config, "alice@pbs!noacl", "noacl-secret");
    test::Grant(config, "/datastore/store1", "bob@pbs", "DatastoreBackup");

    // The tree: hello.txt and dir/hard are one file (dir/hard comes first in the archive, so
    // hello.txt is the hardlink); dir/ also holds a symlink, a FIFO and a nested directory.
    const std::string tree = *dir_ / "tree";
    std::filesystem::create_directories(tree + "/dir/nested");
    std::filesystem::create_directories(tree + "/empty");
    test::WriteText(tree + "/hello.txt", "hello world\n");
    test::WriteText(tree + "/dir/a.txt", "aaa\n");
    test::WriteText(tree + "/dir/big.bin", *big_);
    test::WriteText(tree + "/dir/nested/deep.txt", "deep\n");
    ASSERT_EQ(::symlink("a.txt", (tree + "/dir/link").c_str()), 0);
    ASSERT_EQ(::link((tree + "/hello.txt").c_str(), (tree + "/dir/hard").c_str()), 0);
    ASSERT_EQ(::mkfifo((tree + "/dir/fifo").c_str(), 0640), 0);
    ASSERT_EQ(::chmod((tree + "/dir/a.txt").c_str(), 0640), 0);
    struct timespec times[2] = {{kMtime, 0}, {kMtime, 0}};
    for (const char* f : {"/dir/a.txt", "/dir/big.bin", "/hello.txt"})
      ASSERT_EQ(::utimensat(AT_FDCWD, (tree + f).c_str(), times, 0), 0);

    Backup("legacy", kLegacy, {});
    Backup("split", kSplit, {"--change-detection-mode", "data"});
    Backup("owned", kOwned, {"--owner", "bob@pbs"});
    const std::string key = test::Fixture("pbs-3.2.4-datastore.key.json");
    Backup("enc", kEnc, {"--keyfile", key});
    Backup("signed", kSigned, {"--keyfile", key, "--crypt-mode", "sign-only"});
  }
  static void Backup(const std::string& id, int64_t time, std::vector<std::string> extra) {
    std::vector<std::string> args = {"--config-dir",
                                     *dir_ / "etc",
                                     "--state-dir",
                                     *dir_ / "state",
                                     "backup",
                                     "dir",
                                     *dir_ / "tree",
                                     "--store",
                                     "store1",
                                     "--type",
                                     "host",
                                     "--id",
                                     id,
                                     "--backup-time",
                                     std::to_string(time),
                                     "--chunk-size",
                                     "64"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = test::RunCli(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete serve_;
    delete dir_;
  }

  std::unique_ptr<HttpClient> Client(const std::string& token = "root@pam!pbskit",
                                     const std::string& secret = "") {
    return test::TokenClient(*serve_, token, secret.empty() ? secret_ : secret);
  }
  static json::object Snapshot(const std::string& id, int64_t time) {
    return {{"backup-type", "host"}, {"backup-id", id}, {"backup-time", time}};
  }
  // GET …/store1/<endpoint> with the snapshot and `extra` parameters.
  static ClientResponse Get(HttpClient& c, const std::string& endpoint, const std::string& id,
                            int64_t time, const json::object& extra) {
    json::object p = Snapshot(id, time);
    for (const auto& [k, v] : extra) p[k] = v;
    auto r = c.Request(
        "GET", "/api2/json/admin/datastore/store1/" + endpoint + "?" + HttpClient::EncodeQuery(p));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : ClientResponse{};
  }
  // The catalog listing at `filepath` (already encoded), as JSON entries keyed by text.
  std::map<std::string, json::object> List(const std::string& id, int64_t time,
                                           const std::string& filepath,
                                           const std::string& archive = "") {
    auto c = Client();
    json::object extra{{"filepath", filepath}};
    if (!archive.empty()) extra["archive-name"] = archive;
    ClientResponse r = Get(*c, "catalog", id, time, extra);
    EXPECT_EQ(r.status, 200) << r.body;
    std::map<std::string, json::object> out;
    if (r.status != 200) return out;
    const json::value body = json::parse(r.body);
    for (const auto& v : body.at("data").as_array())
      out[std::string(v.at("text").as_string())] = v.as_object();
    return out;
  }
  ClientResponse Download(const std::string& id, int64_t time, const std::string& filepath,
                          const json::object& more = {}) {
    auto c = Client();
    json::object extra{{"filepath", filepath}};
    for (const auto& [k, v] : more) extra[k] = v;
    return Get(*c, "pxar-file-download", id, time, extra);
  }

  static test::TempDir* dir_;
  static Serve* serve_;
  static std::string secret_;
  static const std::string* big_;
};

test::TempDir* ServerFileBrowseTest::dir_ = nullptr;
Serve* ServerFileBrowseTest::serve_ = nullptr;
std::string ServerFileBrowseTest::secret_;
const std::string* ServerFileBrowseTest::big_ = new std::string(test::Pattern(300000, 11));

TEST_F(ServerFileBrowseTest, CatalogListsArchivesDirectoriesAndFiles) {
  for (const std::string root : {"root", "/"}) {
    auto top = List("legacy", kLegacy, root);
    ASSERT_EQ(top.size(), 1u);
    EXPECT_EQ(json::serialize(top["root.pxar.didx"]),
              "{\"filepath\":\"" + B64("/root.pxar.didx") +
                  "\",\"text\":\"root.pxar.didx\",\"type\":\"d\",\"leaf\":false}");
  }
  auto archive = List("legacy", kLegacy, B64("/root.pxar.didx"));
  ASSERT_EQ(archive.size(), 3u);
  // Below the root PBS builds the paths without the leading '/'.
  EXPECT_EQ(archive["dir"].at("filepath").as_string(), B64("root.pxar.didx/dir"));
  EXPECT_EQ(archive["dir"].at("type").as_string(), "d");
  EXPECT_EQ(archive["empty"].at("leaf").as_bool(), false);
  EXPECT_EQ(archive["hello.txt"].at("type").as_string(), "h");
  EXPECT_EQ(archive["hello.txt"].at("leaf").as_bool(), true);
  EXPECT_FALSE(archive["hello.txt"].contains("size"));

  auto dir = List("legacy", kLegacy, std::string(archive["dir"].at("filepath").as_string()));
  std::string types;
  for (const auto& [name, e] : dir)
    types += name + ":" + std::string(e.at("type").as_string()) + " ";
  EXPECT_EQ(types, "a.txt:f big.bin:f fifo:p hard:f link:l nested:d ");
  EXPECT_EQ(json::serialize(dir["a.txt"]),
            "{\"filepath\":\"" + B64("root.pxar.didx/dir/a.txt") +
                "\",\"text\":\"a.txt\",\"type\":\"f\",\"leaf\":true,\"size\":4,\"mtime\":" +
                std::to_string(kMtime) + "}");
  EXPECT_EQ(dir["big.bin"].at("size").as_int64(), 300000);
  EXPECT_FALSE(dir["nested"].contains("size"));
  EXPECT_FALSE(dir["link"].contains("mtime"));

  auto nested = List("legacy", kLegacy, std::string(dir["nested"].at("filepath").as_string()));
  ASSERT_EQ(nested.size(), 1u);
  EXPECT_EQ(nested["deep.txt"].at("filepath").as_string(),
            B64("root.pxar.didx/dir/nested/deep.txt"));
  EXPECT_EQ(nested["deep.txt"].at("size").as_int64(), 5);
}

TEST_F(ServerFileBrowseTest, SplitArchivesListThroughTheMetadataArchive) {
  // No catalog in split mode: PBS fails to open it unless an archive is named.
  auto c = Client();
  ClientResponse r = Get(*c, "catalog", "split", kSplit, {{"filepath", "root"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body.rfind("unable to read dynamic index '\"", 0), 0u) << r.body;
  EXPECT_NE(r.body.find("catalog.pcat1.didx\"' - Unable to open dynamic index \""),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("No such file or directory (os error 2)"), std::string::npos) << r.body;

  auto top = List("split", kSplit, "root", "root.mpxar.didx");
  std::string names;
  for (const auto& [name, e] : top) names += name + " ";
  EXPECT_EQ(names, "dir empty hello.txt ");
  EXPECT_EQ(top["dir"].at("filepath").as_string(), B64("/dir"));
  EXPECT_EQ(top["hello.txt"].at("type").as_string(), "h");

  auto dir = List("split", kSplit, B64("/dir"), "root.mpxar.didx");
  auto legacy = List("legacy", kLegacy, B64("/root.pxar.didx/dir"));
  ASSERT_EQ(dir.size(), legacy.size());
  for (auto& [name, e] : dir) {
    // The same entries as the catalog gives, with archive paths as file paths.
    EXPECT_EQ(e.at("filepath").as_string(), B64("/dir/" + name));
    json::object l = legacy[name];
    l.erase("filepath");
    json::object m = e;
    m.erase("filepath");
    EXPECT_EQ(json::serialize(m), json::serialize(l)) << name;
  }
  // A legacy name falls back to the split pair; the legacy archive lists through its metadata.
  auto nested = List("split", kSplit, B64("/dir/nested"), "root.pxar");
  ASSERT_EQ(nested.size(), 1u);
  EXPECT_EQ(nested["deep.txt"].at("filepath").as_string(), B64("/dir/nested/deep.txt"));
  auto unified = List("legacy", kLegacy, B64("dir/nested"), "root.pxar.didx");
  EXPECT_EQ(json::serialize(unified["deep.txt"]), json::serialize(nested["deep.txt"]));
}

TEST_F(ServerFileBrowseTest, SingleFilesDownloadByteIdentical) {
  ClientResponse r = Download("legacy", kLegacy, B64("/root.pxar.didx/dir/big.bin"));
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_NE(r.Header("content-type"), nullptr);
  EXPECT_EQ(*r.Header("content-type"), "application/octet-stream");
  EXPECT_EQ(r.body, *big_);
  // Without the leading slash, and from the split archive by archive name.
  r = Download("legacy", kLegacy, B64("root.pxar.didx/dir/nested/deep.txt"));
  EXPECT_EQ(r.body, "deep\n");
  r = Download("split", kSplit, B64("/dir/big.bin"), {{"archive-name", "root.mpxar.didx"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, *big_);
  r = Download("split", kSplit, B64("/root.mpxar.didx/dir/a.txt"));
  EXPECT_EQ(r.body, "aaa\n");
  // hello.txt is a hardlink: its target's content is sent.
  for (auto [id, time, path] : {std::tuple{"legacy", kLegacy, "/root.pxar.didx/hello.txt"},
                                std::tuple{"split", kSplit, "/root.mpxar.didx/hello.txt"}}) {
    r = Download(id, time, B64(path));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, "hello world\n");
  }
  r = Download("legacy", kLegacy, B64("/root.pxar.didx/empty.txt"));
  EXPECT_EQ(r.status, 400);
}

TEST_F(ServerFileBrowseTest, DirectoriesDownloadAsZipAndTarZst) {
  for (auto [id, time, path] : {std::tuple{"legacy", kLegacy, "/root.pxar.didx/dir"},
                                std::tuple{"split", kSplit, "/root.mpxar.didx/dir"}}) {
    ClientResponse r = Download(id, time, B64(path));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(*r.Header("content-type"), "application/octet-stream");
    ASSERT_NE(r.Header("transfer-encoding"), nullptr);
    EXPECT_EQ(*r.Header("transfer-encoding"), "chunked");
    ASSERT_GE(r.body.size(), 4u);
    EXPECT_EQ(r.body.substr(0, 4), std::string("PK\x03\x04", 4)) << id;
    auto zip = Members(r.body);
    // The FIFO has no place in a zip (PBS skips it); the hardlink target is a plain file.
    EXPECT_EQ(Names(zip),
              "dir dir/a.txt dir/big.bin dir/hard dir/link dir/nested "
              "dir/nested/deep.txt ")
        << id;
    EXPECT_EQ(zip["dir"].type, AE_IFDIR);
    EXPECT_EQ(zip["dir/a.txt"].content, "aaa\n");
    EXPECT_EQ(zip["dir/a.txt"].perm, 0640u);
    EXPECT_EQ(zip["dir/big.bin"].content, *big_);
    EXPECT_EQ(zip["dir/hard"].content, "hello world\n");
    EXPECT_EQ(zip["dir/link"].type, AE_IFLNK);
    EXPECT_EQ(zip["dir/link"].symlink, "a.txt");
    EXPECT_EQ(zip["dir/nested/deep.txt"].content, "deep\n");

    r = Download(id, time, B64(path), {{"tar", true}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body.substr(0, 4), std::string("\x28\xb5\x2f\xfd", 4)) << id;  // zstd frame
    auto tar = Members(r.body);
    EXPECT_EQ(Names(tar),
              "dir dir/a.txt dir/big.bin dir/fifo dir/hard dir/link dir/nested "
              "dir/nested/deep.txt ")
        << id;
    EXPECT_EQ(tar["dir/fifo"].type, AE_IFIFO);
    EXPECT_EQ(tar["dir/big.bin"].content, *big_);
    EXPECT_EQ(tar["dir/hard"].content, "hello world\n");
    EXPECT_EQ(tar["dir/link"].symlink, "a.txt");
    EXPECT_EQ(tar["dir/nested"].perm, 0755u);
  }
  // The archive root: everything, without a member for the root itself; hello.txt links to
  // dir/hard inside the tar, and is a copy in the zip.
  ClientResponse r = Download("legacy", kLegacy, B64("/root.pxar.didx"), {{"tar", "1"}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto all = Members(r.body);
  EXPECT_EQ(all.size(), 10u) << Names(all);
  EXPECT_EQ(all["hello.txt"].hardlink, "dir/hard");
  EXPECT_EQ(all["empty"].type, AE_IFDIR);
  r = Download("split", kSplit, B64("/"), {{"archive-name", "root.mpxar.didx"}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto zip = Members(r.body);
  EXPECT_EQ(zip["hello.txt"].content, "hello world\n");
  EXPECT_EQ(zip.count("dir/fifo"), 0u);

  // Chunked bodies end cleanly: the connection carries the next request.
  auto c = Client();
  for (bool tar : {false, true, false}) {
    r = Get(*c, "pxar-file-download", "legacy", kLegacy,
            {{"filepath", B64("/root.pxar.didx/dir/nested")}, {"tar", tar}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(Members(r.body)["nested/deep.txt"].content, "deep\n");
    EXPECT_EQ(r.Header("connection"), nullptr) << *r.Header("connection");
  }
}

TEST_F(ServerFileBrowseTest, HostilePathsAndMissingEntriesGet400) {
  struct Case {
    std::string endpoint, id;
    int64_t time;
    json::object params;
    std::string message;
  };
  const std::string nul("/root.pxar.didx/dir/a\0.txt", 26);
  std::vector<Case> cases = {
      {"pxar-file-download",
       "legacy",
       kLegacy,
       {{"filepath", B64("/root.pxar.didx/../etc/passwd")}},
       "cannot enter parent directory in archive"},
      {"pxar-file-download",
       "legacy",
       kLegacy,
       {{"filepath", B64("/root.pxar.didx/dir/..")}},
       "cannot enter parent directory in archive"},
      {"pxar-file-download",
       "legacy",
       kLegacy,
       {{"filepath", B64(nul)}},
       "error opening '\"dir/a\\0.txt\"'"},
      {"pxar-file-download",
       "legacy",
       kLegacy,
       {{"filepath", "!!!"}},
       "Invalid symbol 33, offset 0."},
      {"pxar-file-download",
       "legacy",
       kLegacy,
       {{"filepath", "L3Jvb3R"}},
       "Invalid last symbol 82, offset 6."},
      {"pxar-file-download",
       "legacy",
       kLegacy,
       {{"filepath", B64("/root.pxar.didx/nope")}},
       "error opening '\"nope\"'"},
      {"pxar-file-download",
       "legacy",
       kLegacy,
       {{"filepath", B64("/root.pxar.didx/hello.txt/x")}},
       "enter_directory() on a non-directory"},
      {"pxar-file-download",
       "legacy",
       kLegacy,
       {{"filepath", B64("/root.pxar.didx/dir/fifo")}},
       "cannot download file of type Fifo"},
      {"pxar-file-download",
       "legacy",
       kLegacy,
       {{"filepath", B64("/other.pxar.didx/x")}},
       "archive not found in manifest"},
      {"pxar-file-download",
       "legacy",
       kLegacy,
       {{"filepath", B64("/etc/passwd")}},
       "failed to parse archive type for 'etc'"},
      {"pxar-file-download",
       "legacy",
       kLegacy,
       {{"filepath", B64("/\xff.pxar.didx/x")}},
       "invalid utf-8 sequence of 1 bytes from index 0"},
      {"pxar-file-download",
       "legacy",
       kLegacy + 1,
       {{"filepath", B64("/root.pxar.didx/dir")}},
       "manifest not found for snapshot 'host/legacy/2024-05-29T16:26:41Z'"},
      {"pxar-file-download",
       "split",
       kSplit,
       {{"filepath", B64("/dir/../x")}, {"archive-name", "root.mpxar.didx"}},
       "cannot enter parent directory in archive"},
      {"catalog",
       "legacy",
       kLegacy,
       {{"filepath", "!!!"}},
       "base64 decoding of path failed - Invalid symbol 33, offset 0."},
      {"catalog",
       "legacy",
       kLegacy,
       {{"filepath", B64("/root.pxar.didx/nope")}},
       "path \"/root.pxar.didx/nope\" not found in catalog"},
      {"catalog",
       "legacy",
       kLegacy,
       {{"filepath", B64("/root.pxar.didx/..")}},
       "path \"/root.pxar.didx/..\" not found in catalog"},
      {"catalog",
       "legacy",
       kLegacy,
       {{"filepath", B64(nul)}},
       "path \"/root.pxar.didx/dir/a\\0.txt\" not found in catalog"},
      {"catalog",
       "legacy",
       kLegacy,
       {{"filepath", B64("/root.pxar.didx/dir/a.txt")}},
       "parent is not a directory - internal error"},
      {"catalog",
       "split",
       kSplit,
       {{"filepath", B64("/dir/..")}, {"archive-name", "root.mpxar.didx"}},
       "lookup failed - cannot enter parent directory in archive"},
      {"catalog",
       "split",
       kSplit,
       {{"filepath", B64("/nope")}, {"archive-name", "root.mpxar.didx"}},
       "lookup failed - error opening '\"/nope\"'"},
      {"catalog",
       "split",
       kSplit,
       {{"filepath", B64("/hello.txt/x")}, {"archive-name", "root.mpxar.didx"}},
       "lookup failed - enter_directory() on a non-directory"},
      {"catalog",
       "split",
       kSplit,
       {{"filepath", B64("/dir/fifo")}, {"archive-name", "root.mpxar.didx"}},
       "expected directory entry, got entry kind 'Fifo'"},
      {"catalog",
       "split",
       kSplit,
       {{"filepath", "root"}, {"archive-name", "other.mpxar.didx"}},
       "archive not found in manifest"},
  };
  auto c = Client();
  for (const Case& k : cases) {
    ClientResponse r = Get(*c, k.endpoint, k.id, k.time, k.params);
    EXPECT_EQ(r.status, 400) << k.endpoint << " " << json::serialize(k.params) << ": " << r.body;
    EXPECT_EQ(r.body, k.message) << k.endpoint << " " << json::serialize(k.params);
  }
  // A file where a directory is expected, listed through the metadata: pxar's entry kind.
  ClientResponse r = Get(*c, "catalog", "split", kSplit,
                         {{"filepath", B64("/dir/a.txt")}, {"archive-name", "root.mpxar.didx"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(
      r.body.rfind("expected directory entry, got entry kind 'File { size: 4, offset: Some(", 0),
      0u)
      << r.body;
  EXPECT_NE(r.body.find("payload_offset: Some("), std::string::npos) << r.body;
  // archive-name must be a safe id.
  r = Get(*c, "catalog", "split", kSplit, {{"filepath", "root"}, {"archive-name", "../x"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("archive-name"), std::string::npos) << r.body;
}

TEST_F(ServerFileBrowseTest, EncryptedArchivesAreRefusedSignedOnesBrowse) {
  auto c = Client();
  ClientResponse r = Get(*c, "catalog", "enc", kEnc, {{"filepath", "root"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, "cannot decode 'catalog.pcat1.didx' - is encrypted");
  r = Get(*c, "catalog", "enc", kEnc, {{"filepath", "root"}, {"archive-name", "root.pxar"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, "cannot decode 'root.pxar.didx' - is encrypted");
  r = Get(*c, "pxar-file-download", "enc", kEnc, {{"filepath", B64("/root.pxar.didx/dir/a.txt")}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, "cannot decode 'root.pxar.didx' - is encrypted");

  // Sign-only: plain chunks under a signed manifest; the server reads them without the key.
  auto dir = List("signed", kSigned, B64("/root.pxar.didx/dir"));
  EXPECT_EQ(dir.size(), 6u);
  EXPECT_EQ(dir["a.txt"].at("size").as_int64(), 4);
  r = Download("signed", kSigned, B64("/root.pxar.didx/dir/big.bin"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, *big_);
}

TEST_F(ServerFileBrowseTest, PrivilegesReadOrBackupForOwnGroups) {
  auto noacl = Client("alice@pbs!noacl", "noacl-secret");
  for (const char* endpoint : {"catalog", "pxar-file-download"}) {
    ClientResponse r =
        Get(*noacl, endpoint, "legacy", kLegacy, {{"filepath", B64("/root.pxar.didx/dir/a.txt")}});
    EXPECT_EQ(r.status, 403) << endpoint;
    EXPECT_EQ(r.body,
              "permission check failed - missing Datastore.Read|Datastore.Backup on "
              "/datastore/store1");
  }
  // Datastore.Backup: only the caller's own groups, other groups fail PBS's owner check.
  HttpClientOptions o;
  o.port = serve_->port();
  o.fingerprint = serve_->fingerprint();
  auto bob = HttpClient::Connect(o);
  ASSERT_TRUE(bob.ok());
  ASSERT_TRUE((*bob)->Login("bob@pbs", "bob-password").ok());
  ClientResponse r = Get(**bob, "catalog", "owned", kOwned, {{"filepath", B64("/root.pxar.didx")}});
  EXPECT_EQ(r.status, 200) << r.body;
  r = Get(**bob, "pxar-file-download", "owned", kOwned,
          {{"filepath", B64("/root.pxar.didx/dir/a.txt")}});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "aaa\n");
  for (const char* endpoint : {"catalog", "pxar-file-download"}) {
    r = Get(**bob, endpoint, "legacy", kLegacy, {{"filepath", B64("/root.pxar.didx/dir/a.txt")}});
    EXPECT_EQ(r.status, 400) << endpoint;
    EXPECT_EQ(r.body, "backup owner check failed (bob@pbs != root@pam)");
  }
}

}  // namespace
}  // namespace pbskit::server
