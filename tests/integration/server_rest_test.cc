// `pbskit serve` over loopback TLS: authentication (API token in both header forms, ticket +
// CSRF), ACL denial, hostile input, limits, and the datastore listing endpoints on a copy of
// the PBS 3.2.4 fixture datastore. The server runs in-process on a free port.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <filesystem>

#include "pbskit/datastore/datastore_config.h"
#include "pbskit/server/access_config.h"
#include "pbskit/server/http_client.h"
#include "pbskit/server/password.h"
#include "pbskit/server/serve.h"
#include "test_server.h"
#include "test_support.h"

namespace pbskit::server {
namespace {

namespace json = boost::json;

class ServerRestTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    std::string config = *dir_ / "etc";
    ServeConfig cfg = test::LoopbackServeConfig(*dir_);
    cfg.http.header_timeout = std::chrono::seconds(3);
    cfg.http.handshake_timeout = std::chrono::seconds(3);
    auto s = Serve::Start(cfg);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    serve_ = s->release();
    ASSERT_TRUE(serve_->default_setup().has_value());
    secret_ = serve_->default_setup()->secret;

    // A second datastore: a copy of the PBS-made fixture.
    std::string fixture = *dir_ / "fixture";
    test::CopyTree(test::Fixture("pbs-3.2.4-datastore"), fixture);
    auto lock = LockDatastoreConfig(config);
    ASSERT_TRUE(lock.ok());
    auto ds = DatastoreConfig::Load(config);
    ASSERT_TRUE(ds.ok());
    DatastoreConfigEntry e;
    e.name = "fixture";
    e.Set("path", fixture);
    ASSERT_TRUE(ds->Add(e).ok());
    ASSERT_TRUE(ds->Save(config).ok());

    // A pbs-realm user with a password and a token without any ACL.
    test::AddUser(config, "alice@pbs", "alice-password");
    test::AddToken(config, "alice@pbs!noacl", "noacl-secret");
    test::Grant(config, "/datastore/store1", "alice@pbs", "DatastoreAdmin");
  }
  static void TearDownTestSuite() {
    delete serve_;
    delete dir_;
  }

  HttpClientOptions Options() const {
    HttpClientOptions o;
    o.port = serve_->port();
    o.fingerprint = serve_->fingerprint();
    o.timeout_seconds = 30;
    return o;
  }
  std::unique_ptr<HttpClient> RootClient() {
    auto c = HttpClient::Connect(Options());
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    (*c)->UseToken("root@pam!pbskit", secret_);
    return std::move(c).value();
  }
  std::unique_ptr<HttpClient> Anonymous() {
    auto c = HttpClient::Connect(Options());
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return std::move(c).value();
  }
  void ExpectAlive() {
    auto v = RootClient()->Call("GET", "/version");
    ASSERT_TRUE(v.ok()) << v.status().ToString();
  }

  static test::TempDir* dir_;
  static Serve* serve_;
  static std::string secret_;
};

test::TempDir* ServerRestTest::dir_ = nullptr;
Serve* ServerRestTest::serve_ = nullptr;
std::string ServerRestTest::secret_;

TEST_F(ServerRestTest, FingerprintPinningRefusesOtherCertificates) {
  auto o = Options();
  o.fingerprint = std::string(95, '0').replace(2, 1, ":");
  auto c = HttpClient::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("fingerprint mismatch"), std::string::npos);
}

TEST_F(ServerRestTest, VersionWithTokenInBothHeaderForms) {
  auto c = Anonymous();
  for (const char* sep : {" ", "="}) {
    auto r = c->Request("GET", "//api2/json/version", "", "",
                        {{"Authorization", std::string("PBSAPIToken") + sep + "root@pam!pbskit:" + secret_}});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200) << r->body;
    auto v = json::parse(r->body);
    EXPECT_EQ(v.at("data").at("version").as_string(), "4.2");
    EXPECT_EQ(v.at("data").at("release").as_string(), "3");
    ASSERT_NE(r->Header("content-type"), nullptr);
    EXPECT_EQ(*r->Header("content-type"), "application/json;charset=UTF-8");
  }
}

TEST_F(ServerRestTest, MissingAndWrongCredentialsGive401) {
  auto c = Anonymous();
  auto r = c->Request("GET", "/api2/json/version");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->body, "authentication failed");
  r = c->Request("GET", "/api2/json/version", "", "",
                 {{"Authorization", "PBSAPIToken root@pam!pbskit:wrong-secret"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401);
  r = c->Request("GET", "/api2/json/version", "", "",
                 {{"Authorization", "PBSAPIToken root@pam!nosuchtoken:" + secret_}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401);
  // Unknown paths need authentication first, then give PBS's 404 text.
  r = c->Request("GET", "/api2/json/nosuch");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401);
  auto root = RootClient();
  r = root->Request("GET", "/api2/json/nosuch/path");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, "Path '/api2/json/nosuch/path' not found.");
  ExpectAlive();
}

TEST_F(ServerRestTest, TicketLoginCsrfAndRenewal) {
  auto c = Anonymous();
  EXPECT_FALSE(c->Login("alice@pbs", "wrong").ok());
  Status login_status = c->Login("alice@pbs", "alice-password");
  ASSERT_TRUE(login_status.ok()) << login_status.ToString();
  auto groups = c->Call("GET", "/admin/datastore/store1/groups");
  ASSERT_TRUE(groups.ok()) << groups.status().ToString();
  EXPECT_TRUE(groups->is_array());
  // POST with ticket and CSRF token works (the client sends both).
  auto ns = c->Call("POST", "/admin/datastore/store1/namespace", {{"name", "team"}});
  ASSERT_TRUE(ns.ok()) << ns.status().ToString();
  EXPECT_EQ(ns->as_string(), "team");

  // Without the CSRF header a ticket-authenticated POST is refused.
  auto login = Anonymous()->Call("POST", "/access/ticket",
                                 {{"username", "alice@pbs"}, {"password", "alice-password"}});
  ASSERT_TRUE(login.ok());
  std::string ticket(login->at("ticket").as_string());
  EXPECT_EQ(ticket.rfind("PBS:alice@pbs:", 0), 0u);
  auto raw = Anonymous()->Request("POST", "/api2/json/admin/datastore/store1/namespace",
                                  "{\"name\":\"x\"}", "application/json",
                                  {{"Cookie", "PBSAuthCookie=" + ticket}});
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->status, 401);
  // The ticket renews itself when given as password.
  auto renewed = Anonymous()->Call("POST", "/access/ticket",
                                   {{"username", "alice@pbs"}, {"password", ticket}});
  ASSERT_TRUE(renewed.ok()) << renewed.status().ToString();
  // A forged ticket is rejected.
  // Change a character inside the signature: the last base64 character may carry only
  // padding bits, so flipping it would not change the decoded signature.
  std::string forged = ticket;
  char& c8 = forged[forged.size() - 8];
  c8 = c8 == 'A' ? 'B' : 'A';
  raw = Anonymous()->Request("GET", "/api2/json/version", "", "",
                             {{"Cookie", "PBSAuthCookie=" + forged}});
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->status, 401);
}

TEST_F(ServerRestTest, AclDenialGives403WithPbsMessage) {
  auto c = Anonymous();
  c->UseToken("alice@pbs!noacl", "noacl-secret");
  auto r = c->Request("GET", "/api2/json/admin/datastore/store1/groups");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(r->body,
            "permission check failed - missing Datastore.Audit|Datastore.Backup on "
            "/datastore/store1");
  // The token's user has DatastoreAdmin, but a token only gets what its own ACL grants.
  auto list = c->Call("GET", "/admin/datastore");
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->as_array().empty());
}

TEST_F(ServerRestTest, HostileNamesGive400AndChangeNothing) {
  auto c = RootClient();
  for (const std::string& ns : std::vector<std::string>{"..", "a/../b", std::string("a\0b", 3), "/abs", ".hidden"}) {
    auto r = c->Call("GET", "/admin/datastore/fixture/groups", {{"ns", ns}});
    ASSERT_FALSE(r.ok()) << ns;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
  }
  for (const std::string& id : std::vector<std::string>{"..", "a/b", std::string("x\0y", 3), ""}) {
    auto r = c->Call("GET", "/admin/datastore/fixture/snapshots",
                     {{"backup-type", "vm"}, {"backup-id", id}});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
  }
  for (const std::string& file : std::vector<std::string>{"../owner", "a/b.blob", "..", std::string("x\0.blob", 7)}) {
    auto r = c->Call("GET", "/admin/datastore/fixture/download",
                     {{"backup-type", "vm"}, {"backup-id", "100"},
                      {"backup-time", 1714557600}, {"file-name", file}});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
  }
  for (const std::string path : {"/api2/json/admin/datastore/%2e%2e/groups",
                                  "/api2/json/admin/datastore/fix%2Fture/groups",
                                  "/api2/json/admin/datastore/fix%00ture/groups"}) {
    auto r = c->Request("GET", path);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 400) << path << ": " << r->body;
  }
  auto unknown = c->Call("GET", "/admin/datastore/fixture/groups", {{"bogus", "1"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().message(),
            "parameter verification failed - 'bogus': schema does not allow additional "
            "properties.");
  // Still the same groups.
  auto groups = c->Call("GET", "/admin/datastore/fixture/groups");
  ASSERT_TRUE(groups.ok());
  EXPECT_EQ(groups->as_array().size(), 4u);
}

TEST_F(ServerRestTest, MalformedHttpOversizedBodyAndLongUri) {
  auto o = Options();
  auto bad = HttpClient::RawExchange(o, "THIS IS NOT HTTP\r\n\r\n");
  ASSERT_TRUE(bad.ok()) << bad.status().ToString();
  EXPECT_EQ(bad->rfind("HTTP/1.1 400", 0), 0u) << *bad;

  auto c = RootClient();
  std::string big(600 * 1024, 'x');
  auto r = c->Request("POST", "/api2/json/admin/datastore/store1/namespace", big,
                      "application/json");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 413);

  auto l = RootClient()->Request("GET", "/api2/json/version?x=" + std::string(4000, 'a'));
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->status, 414);

  // A client that never finishes its header is cut off by the header timeout.
  auto slow = HttpClient::RawExchange(o, "GET /api2/json/version HTTP/1.1\r\nHost: x\r\n", 20);
  ASSERT_TRUE(slow.ok());
  EXPECT_TRUE(slow->empty()) << *slow;
  ExpectAlive();
}

TEST_F(ServerRestTest, ThousandParallelConnectionsDoNotStopTheServer) {
  boost::asio::io_context ioc;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::socket>> sockets;
  boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), serve_->port());
  for (int i = 0; i < 1000; ++i) {
    auto s = std::make_unique<boost::asio::ip::tcp::socket>(ioc);
    boost::system::error_code ec;
    s->connect(ep, ec);
    ASSERT_FALSE(ec) << "connection " << i << ": " << ec.message();
    sockets.push_back(std::move(s));
  }
  ExpectAlive();
  sockets.clear();
  ExpectAlive();
}

TEST_F(ServerRestTest, DatastoreListingsOnTheFixture) {
  auto c = RootClient();
  auto stores = c->Call("GET", "/admin/datastore");
  ASSERT_TRUE(stores.ok()) << stores.status().ToString();
  std::vector<std::string> names;
  for (const auto& s : stores->as_array()) names.emplace_back(s.at("store").as_string());
  EXPECT_EQ(names, (std::vector<std::string>{"store1", "fixture"}));

  auto groups = c->Call("GET", "/admin/datastore/fixture/groups");
  ASSERT_TRUE(groups.ok()) << groups.status().ToString();
  bool seen = false;
  for (const auto& g : groups->as_array()) {
    const auto& o = g.as_object();
    ASSERT_TRUE(o.contains("last-backup") && o.contains("backup-count") && o.contains("files"));
    if (o.at("backup-type") == "vm" && o.at("backup-id") == "100") {
      seen = true;
      EXPECT_EQ(o.at("backup-count").as_int64(), 2);
      EXPECT_EQ(o.at("last-backup").as_int64(), 1714644000);
      EXPECT_EQ(o.at("owner").as_string(), "root@pam");
    }
  }
  EXPECT_TRUE(seen);

  auto snaps = c->Call("GET", "/admin/datastore/fixture/snapshots",
                       {{"backup-type", "vm"}, {"backup-id", "100"}});
  ASSERT_TRUE(snaps.ok()) << snaps.status().ToString();
  ASSERT_EQ(snaps->as_array().size(), 2u);
  const auto& first = snaps->as_array()[0].as_object();
  EXPECT_EQ(first.at("backup-time").as_int64(), 1714557600);
  EXPECT_TRUE(first.contains("size"));
  EXPECT_EQ(first.at("verification").at("state").as_string(), "ok");
  EXPECT_TRUE(first.contains("comment"));
  EXPECT_EQ(snaps->as_array()[1].at("protected").as_bool(), true);

  auto ns = c->Call("GET", "/admin/datastore/fixture/namespace");
  ASSERT_TRUE(ns.ok()) << ns.status().ToString();
  std::vector<std::string> nss;
  for (const auto& n : ns->as_array()) nss.emplace_back(n.at("ns").as_string());
  EXPECT_EQ(nss, (std::vector<std::string>{"", "a", "a/b"}));

  auto files = c->Call("GET", "/admin/datastore/fixture/files",
                       {{"backup-type", "ct"}, {"backup-id", "101"},
                        {"backup-time", 1714561200}});
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  bool has_log = false;
  for (const auto& f : files->as_array()) has_log |= f.at("filename") == "client.log.blob";
  EXPECT_TRUE(has_log);

  auto dl = c->Request("GET",
                       "/api2/json/admin/datastore/fixture/download?backup-type=vm&backup-id=100&"
                       "backup-time=1714557600&file-name=index.json.blob");
  ASSERT_TRUE(dl.ok());
  EXPECT_EQ(dl->status, 200);
  auto on_disk = test::ReadFile(*dir_ / "fixture/vm/100/2024-05-01T10:00:00Z/index.json.blob");
  EXPECT_EQ(dl->body, std::string(on_disk.begin(), on_disk.end()));

  auto missing = c->Call("GET", "/admin/datastore/fixture/download",
                         {{"backup-type", "vm"}, {"backup-id", "100"},
                          {"backup-time", 1714557600}, {"file-name", "nope.blob"}});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);

  auto status = c->Call("GET", "/admin/datastore/fixture/status", {{"verbose", true}});
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_GT(status->at("total").to_number<uint64_t>(), 0u);
  EXPECT_EQ(status->at("counts").at("vm").at("groups").to_number<uint64_t>(), 3u);
}

TEST_F(ServerRestTest, NotesAndProtection) {
  auto c = RootClient();
  json::object snap{{"backup-type", "vm"}, {"backup-id", "201"}, {"backup-time", 1714914000}};
  json::object put = snap;
  put["notes"] = "line one\nline two";
  ASSERT_TRUE(c->Call("PUT", "/admin/datastore/fixture/notes", put).ok());
  auto notes = c->Call("GET", "/admin/datastore/fixture/notes", snap);
  ASSERT_TRUE(notes.ok());
  EXPECT_EQ(notes->as_string(), "line one\nline two");

  json::object prot = snap;
  prot["protected"] = true;
  ASSERT_TRUE(c->Call("PUT", "/admin/datastore/fixture/protected", prot).ok());
  auto del = c->Call("DELETE", "/admin/datastore/fixture/snapshots", snap);
  ASSERT_FALSE(del.ok());
  EXPECT_EQ(del.status().message(), "failed to delete snapshot - cannot remove protected snapshot");
  prot["protected"] = false;
  ASSERT_TRUE(c->Call("PUT", "/admin/datastore/fixture/protected", prot).ok());
  auto p = c->Call("GET", "/admin/datastore/fixture/protected", snap);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->as_bool());
}

TEST_F(ServerRestTest, ChangeOwnerAndPruneDryRun) {
  auto c = RootClient();
  json::object group{{"backup-type", "vm"}, {"backup-id", "201"}};
  json::object req = group;
  req["new-owner"] = "alice@pbs";
  ASSERT_TRUE(c->Call("POST", "/admin/datastore/fixture/change-owner", req).ok());
  req["new-owner"] = "ghost@pbs";
  auto bad = c->Call("POST", "/admin/datastore/fixture/change-owner", req);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "user 'ghost@pbs' is inactive or non-existent");
  EXPECT_EQ(test::ReadText(*dir_ / "fixture/vm/201/owner"), "alice@pbs\n");
  req["new-owner"] = "root@pam";
  ASSERT_TRUE(c->Call("POST", "/admin/datastore/fixture/change-owner", req).ok());

  json::object prune{{"backup-type", "vm"}, {"backup-id", "100"}, {"keep-last", 1},
                     {"dry-run", true}};
  auto rows = c->Call("POST", "/admin/datastore/fixture/prune", prune);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->as_array().size(), 2u);
  // Dry run: both snapshots are still there.
  auto snaps = c->Call("GET", "/admin/datastore/fixture/snapshots",
                       {{"backup-type", "vm"}, {"backup-id", "100"}});
  ASSERT_TRUE(snaps.ok());
  EXPECT_EQ(snaps->as_array().size(), 2u);
}

}  // namespace
}  // namespace pbskit::server
