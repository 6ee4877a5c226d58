// `pbskit serve` worker tasks over loopback TLS on a copy of the PBS 3.2.4 fixture datastore:
// verify, garbage collection and prune as tasks (UPIDs, status, PBS task logs in the same files
// `pbskit task` reads), the node task endpoints with their filters and privileges, GC status and
// download-decoded. The server runs in-process on a free port.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "pbskit/datastore/datastore_config.h"
#include "pbskit/datastore/task_log.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/fixed_index.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/names.h"
#include "pbskit/formats/upid.h"
#include "pbskit/server/access_config.h"
#include "pbskit/server/http_client.h"
#include "pbskit/server/password.h"
#include "pbskit/server/serve.h"
#include "test_support.h"

namespace pbskit::server {
namespace {

namespace json = boost::json;

struct Principal {
  std::string token;  // "user@realm!name"
  std::string secret;
};

class ServerTasksTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    store_ = new std::string(*dir_ / "fixture");
    ResetStore();
    config_ = *dir_ / "etc";
    state_ = *dir_ / "state";
    std::filesystem::create_directories(config_);

    // Datastore "fixture" = the copy; users and tokens with the roles the tests need.
    {
      auto lock = LockDatastoreConfig(config_);
      ASSERT_TRUE(lock.ok());
      auto ds = DatastoreConfig::Load(config_);
      ASSERT_TRUE(ds.ok());
      DatastoreConfigEntry e;
      e.name = "fixture";
      e.Set("path", *store_);
      ASSERT_TRUE(ds->Add(e).ok());
      ASSERT_TRUE(ds->Save(config_).ok());
    }
    auto users = UserConfig::Load(config_);
    ASSERT_TRUE(users.ok());
    auto tokens = LoadHashFile(config_ + "/token.shadow");
    ASSERT_TRUE(tokens.ok());
    auto acl = LoadAcl(config_);
    ASSERT_TRUE(acl.ok());
    auto add = [&](const std::string& user, const std::string& name, const std::string& path,
                   const std::string& role) {
      if (!users->Find(user)) {
        UserEntry u;
        u.id = user;
        ASSERT_TRUE(users->Add(u).ok());
      }
      UserEntry t;
      t.id = user + "!" + name;
      t.is_token = true;
      ASSERT_TRUE(users->Add(t).ok());
      auto hash = EncryptPassword(name + "-secret");
      ASSERT_TRUE(hash.ok());
      (*tokens)[t.id] = *hash;
      if (!path.empty()) acl->Insert(path, t.id, role, true);
      if (!path.empty() && user != "root@pam") acl->Insert(path, user, role, true);
    };
    add("root@pam", "admin", "/", "Admin");
    add("alice@pbs", "tok", "/datastore/fixture", "DatastoreBackup");
    add("bob@pbs", "tok", "/datastore/fixture", "DatastoreAudit");
    add("audit@pbs", "tok", "/system/tasks", "Audit");
    add("web@pbs", "backup", "/datastore/fixture", "DatastoreBackup");
    ASSERT_TRUE(users->Save(config_).ok());
    ASSERT_TRUE(SaveHashFile(config_ + "/token.shadow", *tokens, false).ok());
    ASSERT_TRUE(SaveAcl(config_, *acl).ok());

    ServeConfig cfg;
    cfg.config_dir = config_;
    cfg.state_dir = state_;
    cfg.listen = "127.0.0.1:0";
    cfg.threads = 2;
    cfg.cert_bits = 2048;
    cfg.create_default = false;
    cfg.auth_failure_delay = std::chrono::milliseconds(10);
    cfg.forbidden_delay = std::chrono::milliseconds(10);
    auto s = Serve::Start(cfg);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    serve_ = s->release();
  }
  static void TearDownTestSuite() {
    delete serve_;
    delete store_;
    delete dir_;
  }
  // A fresh copy of the fixture store. Only its 19 non-empty .chunks prefix directories exist:
  // nothing here inserts chunks, and verify, prune and GC skip missing prefix directories.
  static void ResetStore() {
    std::filesystem::remove_all(*store_);
    test::CopyTree(test::Fixture("pbs-3.2.4-datastore"), *store_);
  }
  static std::string StorePath(const std::string& rel) { return *store_ + "/" + rel; }

  std::unique_ptr<HttpClient> Client(const std::string& token) {
    HttpClientOptions o;
    o.port = serve_->port();
    o.fingerprint = serve_->fingerprint();
    o.timeout_seconds = 60;
    auto c = HttpClient::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    std::string name = token.substr(token.find('!') + 1);
    (*c)->UseToken(token, name + "-secret");
    return std::move(c).value();
  }
  std::unique_ptr<HttpClient> Root() { return Client("root@pam!admin"); }

  static std::string TaskPath(const std::string& upid, const std::string& sub = "") {
    return "/nodes/localhost/tasks/" + PercentEncodeUpid(upid) + sub;
  }
  static std::string PercentEncodeUpid(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.') {
        out += static_cast<char>(c);
      } else {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%%%02X", c);
        out += buf;
      }
    }
    return out;
  }

  // Polls the task status until it is stopped; returns the status object.
  json::object WaitTask(HttpClient& c, const std::string& upid) {
    for (int i = 0; i < 1200; ++i) {
      auto st = c.Call("GET", TaskPath(upid, "/status"));
      EXPECT_TRUE(st.ok()) << st.status().ToString();
      if (!st.ok()) return {};
      if (st->at("status").as_string() == "stopped") return st->as_object();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "task did not finish: " << upid;
    return {};
  }

  // The whole task log as text lines (without the {n,t} wrapping).
  std::vector<std::string> LogLines(HttpClient& c, const std::string& upid) {
    auto r = c.Request("GET", "/api2/json" + TaskPath(upid, "/log") + "?limit=0");
    EXPECT_TRUE(r.ok());
    std::vector<std::string> out;
    if (!r.ok() || r->status != 200) return out;
    auto v = json::parse(r->body);
    for (const auto& l : v.at("data").as_array()) out.emplace_back(l.at("t").as_string());
    return out;
  }
  // Log line text without its "<time>: " prefix.
  static std::string Message(const std::string& line) {
    auto pos = line.find(": ");
    return pos == std::string::npos ? line : line.substr(pos + 2);
  }
  static bool HasLine(const std::vector<std::string>& lines, const std::string& message) {
    for (const auto& l : lines) {
      if (Message(l) == message) return true;
    }
    return false;
  }

  static test::TempDir* dir_;
  static std::string* store_;
  static Serve* serve_;
  static std::string config_, state_;
};

test::TempDir* ServerTasksTest::dir_ = nullptr;
std::string* ServerTasksTest::store_ = nullptr;
Serve* ServerTasksTest::serve_ = nullptr;
std::string ServerTasksTest::config_;
std::string ServerTasksTest::state_;

TEST_F(ServerTasksTest, VerifyDatastoreRunsAsTaskWithPbsLog) {
  auto c = Root();
  auto r = c->Call("POST", "/admin/datastore/fixture/verify", {{"ignore-verified", false}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string upid_text(r->as_string());
  auto upid = Upid::Parse(upid_text);
  ASSERT_TRUE(upid.ok()) << upid_text;
  EXPECT_EQ(upid->worker_type, "verify");
  EXPECT_EQ(upid->worker_id, "fixture");
  EXPECT_EQ(upid->auth_id, "root@pam!admin");
  EXPECT_EQ(upid->ToString(), upid_text);

  json::object st = WaitTask(*c, upid_text);
  EXPECT_EQ(st["exitstatus"].as_string(), "OK");
  EXPECT_EQ(st["type"].as_string(), "verify");
  EXPECT_EQ(st["id"].as_string(), "fixture");
  EXPECT_EQ(st["user"].as_string(), "root@pam");
  EXPECT_EQ(st["tokenid"].as_string(), "admin");
  EXPECT_EQ(st["upid"].as_string(), upid_text);
  EXPECT_GE(st["endtime"].as_int64(), upid->starttime);

  auto lines = LogLines(*c, upid_text);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(Message(lines.front()), "verify datastore fixture");
  EXPECT_TRUE(HasLine(lines, "found 6 groups"));
  EXPECT_EQ(Message(lines.back()), "TASK OK");

  // The same files `pbskit task` reads.
  std::ifstream log(TaskLogPath(state_, *upid));
  ASSERT_TRUE(log.good());
  auto listed = ListTasks(state_, true);
  ASSERT_TRUE(listed.ok());
  bool found = false;
  for (const auto& e : *listed) {
    if (e.upid_str == upid_text) {
      found = true;
      ASSERT_TRUE(e.state.has_value());
      EXPECT_EQ(e.state->StatusText(), "OK");
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(ServerTasksTest, VerifyOfDamagedSnapshotEndsWithTaskError) {
  auto c = Root();
  auto files = c->Call("GET", "/admin/datastore/fixture/files",
                       {{"backup-type", "vm"}, {"backup-id", "100"}, {"backup-time", 1714557600}});
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  // Damage the chunk of the image's 1 MiB tail (third digest of the index) in the copy.
  auto raw = c->Request("GET",
                        "/api2/json/admin/datastore/fixture/download?backup-type=vm&backup-id=100&"
                        "backup-time=1714557600&file-name=drive-scsi0.img.fidx");
  ASSERT_TRUE(raw.ok());
  ASSERT_EQ(raw->status, 200);
  ASSERT_GE(raw->body.size(), 4096u + 32u);
  std::string hex = ToHex(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(raw->body.data()) + 4096 + 64, 32));
  std::string chunk = StorePath(".chunks/" + hex.substr(0, 4) + "/" + hex);
  {
    std::fstream f(chunk, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.good()) << chunk;
    f.seekp(100);
    f.put('\x5a');
  }
  auto r = c->Call("POST", "/admin/datastore/fixture/verify",
                   {{"backup-type", "vm"},
                    {"backup-id", "100"},
                    {"backup-time", 1714557600},
                    {"ignore-verified", false}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string upid(r->as_string());
  EXPECT_NE(upid.find(":verify_snapshot:fixture\\x3a-vm-100-"), std::string::npos) << upid;
  json::object st = WaitTask(*c, upid);
  EXPECT_EQ(st["exitstatus"].as_string(), "verification failed - please check the log for details");
  auto lines = LogLines(*c, upid);
  EXPECT_TRUE(HasLine(lines, "Failed to verify the following snapshots/groups:"));
  EXPECT_EQ(Message(lines.back()),
            "TASK ERROR: verification failed - please check the log for details");
  // The list shows the error as the task's status.
  auto list = c->Call("GET", "/nodes/localhost/tasks",
                      {{"typefilter", "verify_snapshot"}, {"errors", true}});
  ASSERT_TRUE(list.ok());
  bool seen = false;
  for (const auto& t : list->as_array()) {
    if (t.at("upid").as_string() == upid) {
      seen = true;
      EXPECT_EQ(t.at("status").as_string(),
                "verification failed - please check the log for details");
      EXPECT_EQ(t.at("worker_type").as_string(), "verify_snapshot");
    }
  }
  EXPECT_TRUE(seen);
  ResetStore();
}

TEST_F(ServerTasksTest, GarbageCollectionTaskAndStatus) {
  auto c = Root();
  auto r = c->Call("POST", "/admin/datastore/fixture/gc");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string upid(r->as_string());
  auto parsed = Upid::Parse(upid);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->worker_type, "garbage_collection");
  EXPECT_EQ(parsed->worker_id, "fixture");
  json::object st = WaitTask(*c, upid);
  EXPECT_EQ(st["exitstatus"].as_string(), "OK");
  auto lines = LogLines(*c, upid);
  EXPECT_TRUE(HasLine(lines, "starting garbage collection on store fixture"));
  EXPECT_EQ(Message(lines.back()), "TASK OK");

  auto status = c->Call("GET", "/admin/datastore/fixture/gc");
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  const auto& o = status->as_object();
  EXPECT_EQ(o.at("store").as_string(), "fixture");
  EXPECT_EQ(o.at("upid").as_string(), upid);
  EXPECT_EQ(o.at("disk-chunks").to_number<int64_t>(), 19);
  EXPECT_EQ(o.at("removed-chunks").to_number<int64_t>(), 0);
  EXPECT_EQ(o.at("last-run-state").as_string(), "OK");
  EXPECT_GE(o.at("duration").to_number<int64_t>(), 0);

  // Datastore.Audit may read the status but not start a GC (router-level 403).
  auto bob = Client("bob@pbs!tok");
  EXPECT_TRUE(bob->Call("GET", "/admin/datastore/fixture/gc").ok());
  auto denied = bob->Request("POST", "/api2/json/admin/datastore/fixture/gc");
  ASSERT_TRUE(denied.ok());
  EXPECT_EQ(denied->status, 403);
  EXPECT_EQ(denied->body, "permission check failed");
}

TEST_F(ServerTasksTest, PruneDatastoreDryRunLogsWithoutRemoving) {
  auto c = Root();
  auto r = c->Call("POST", "/admin/datastore/fixture/prune-datastore",
                   {{"keep-last", 1}, {"dry-run", true}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string upid(r->as_string());
  auto parsed = Upid::Parse(upid);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->worker_type, "prune");
  EXPECT_EQ(parsed->worker_id, "fixture:");
  json::object st = WaitTask(*c, upid);
  EXPECT_EQ(st["exitstatus"].as_string(), "OK");
  auto lines = LogLines(*c, upid);
  EXPECT_TRUE(HasLine(lines,
                      "Starting datastore prune on datastore 'fixture', root namespace, "
                      "down to full depth"));
  EXPECT_TRUE(HasLine(lines, "(dry test run)"));
  EXPECT_TRUE(HasLine(lines, "retention options: --keep-last 1"));
  EXPECT_TRUE(HasLine(lines, "Pruning group :\"vm/100\""));
  EXPECT_TRUE(HasLine(lines, "would keep vm/100/2024-05-01T10:00:00Z"));
  EXPECT_TRUE(HasLine(lines, "would keep protected vm/100/2024-05-02T10:00:00Z"));
  EXPECT_TRUE(HasLine(lines, "Pruning group a/b:\"host/web\""));
  EXPECT_TRUE(std::filesystem::exists(StorePath("vm/100/2024-05-01T10:00:00Z")));
}

TEST_F(ServerTasksTest, PruneGroupRemovesAndLogsAsTask) {
  // An older unprotected snapshot to remove: a copy of vm/100 2024-05-01 under an earlier time.
  std::filesystem::copy(StorePath("vm/100/2024-05-01T10:00:00Z"),
                        StorePath("vm/100/2024-04-01T10:00:00Z"));
  auto c = Root();
  // Synchronous prune: PBS still writes a "prune" task log; the result is the list.
  auto r = c->Call("POST", "/admin/datastore/fixture/prune",
                   {{"backup-type", "vm"}, {"backup-id", "100"}, {"keep-last", 1}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->as_array().size(), 3u);
  const auto& first = r->as_array()[0].as_object();  // oldest first
  EXPECT_EQ(first.at("backup-time").as_int64(), 1711965600);
  EXPECT_FALSE(first.at("keep").as_bool());
  EXPECT_FALSE(std::filesystem::exists(StorePath("vm/100/2024-04-01T10:00:00Z")));
  auto list =
      c->Call("GET", "/nodes/localhost/tasks", {{"typefilter", "prune"}, {"store", "fixture"}});
  ASSERT_TRUE(list.ok());
  bool seen = false;
  for (const auto& t : list->as_array()) {
    if (t.at("worker_id").is_string() && t.at("worker_id").as_string() == "fixture::vm/100") {
      seen = true;
      EXPECT_EQ(t.at("status").as_string(), "OK");
    }
  }
  EXPECT_TRUE(seen);

  // use-task: the UPID comes back at once.
  std::filesystem::copy(StorePath("vm/100/2024-05-01T10:00:00Z"),
                        StorePath("vm/100/2024-04-02T10:00:00Z"));
  auto t =
      c->Call("POST", "/admin/datastore/fixture/prune",
              {{"backup-type", "vm"}, {"backup-id", "100"}, {"keep-last", 1}, {"use-task", true}});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  std::string upid(t->as_string());
  json::object st = WaitTask(*c, upid);
  EXPECT_EQ(st["exitstatus"].as_string(), "OK");
  auto lines = LogLines(*c, upid);
  EXPECT_TRUE(HasLine(lines, "retention options: --keep-last 1"));
  EXPECT_TRUE(HasLine(lines, "vm/100/2024-04-02T10:00:00Z remove"));
  EXPECT_FALSE(std::filesystem::exists(StorePath("vm/100/2024-04-02T10:00:00Z")));
  ResetStore();
}

TEST_F(ServerTasksTest, TaskLogPagingAndListFilters) {
  auto c = Root();
  auto r = c->Call("POST", "/admin/datastore/fixture/verify",
                   {{"backup-type", "ct"}, {"backup-id", "101"}, {"ignore-verified", false}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string upid(r->as_string());
  WaitTask(*c, upid);
  auto all = LogLines(*c, upid);
  ASSERT_GE(all.size(), 4u);

  auto page =
      c->Request("GET", "/api2/json" + TaskPath(upid, "/log") + "?start=2&limit=2&test-status=1");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->status, 200) << page->body;
  auto v = json::parse(page->body).as_object();
  ASSERT_EQ(v.at("data").as_array().size(), 2u);
  EXPECT_EQ(v.at("data").as_array()[0].at("n").as_int64(), 2);
  EXPECT_EQ(v.at("data").as_array()[0].at("t").as_string(), all[1]);
  EXPECT_EQ(v.at("data").as_array()[1].at("n").as_int64(), 3);
  EXPECT_EQ(v.at("total").as_int64(), static_cast<int64_t>(all.size()));
  EXPECT_EQ(v.at("success").as_int64(), 1);
  EXPECT_FALSE(v.at("active").as_bool());

  auto dl = c->Request("GET", "/api2/json" + TaskPath(upid, "/log") + "?download=1");
  ASSERT_TRUE(dl.ok());
  EXPECT_EQ(dl->status, 200);
  ASSERT_NE(dl->Header("content-disposition"), nullptr);
  EXPECT_NE(dl->Header("content-disposition")->find("attachment; filename=task-"),
            std::string::npos);
  EXPECT_EQ(std::count(dl->body.begin(), dl->body.end(), '\n'), static_cast<long>(all.size()));

  // Nothing runs any more.
  auto running = c->Call("GET", "/nodes/localhost/tasks", {{"running", true}});
  ASSERT_TRUE(running.ok());
  EXPECT_TRUE(running->as_array().empty());
  // limit 1: one entry, total counts a "virtual" next one as PBS does.
  auto one = c->Request("GET", "/api2/json/nodes/localhost/tasks?limit=1");
  ASSERT_TRUE(one.ok());
  auto ov = json::parse(one->body).as_object();
  ASSERT_EQ(ov.at("data").as_array().size(), 1u);
  EXPECT_EQ(ov.at("total").as_int64(), 2);
  const auto& item = ov.at("data").as_array()[0].as_object();
  for (const char* k : {"upid", "node", "pid", "pstart", "starttime", "worker_type", "worker_id",
                        "user", "endtime", "status"}) {
    EXPECT_TRUE(item.contains(k)) << k;
  }
  EXPECT_EQ(item.at("node").as_string(), "localhost");
  // Newest first.
  EXPECT_EQ(item.at("upid").as_string(), upid);

  // statusfilter and bad input.
  auto ok_only = c->Call("GET", "/nodes/localhost/tasks", {{"statusfilter", "ok"}, {"limit", 0}});
  ASSERT_TRUE(ok_only.ok()) << ok_only.status().ToString();
  for (const auto& t : ok_only->as_array()) EXPECT_EQ(t.at("status").as_string(), "OK");
  auto bad = c->Request("GET", "/api2/json/nodes/localhost/tasks?statusfilter=fine");
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->status, 400);
  auto bad_upid = c->Request("GET", "/api2/json/nodes/localhost/tasks/UPID%3Ax/status");
  ASSERT_TRUE(bad_upid.ok());
  EXPECT_EQ(bad_upid->status, 400);
  EXPECT_NE(bad_upid->body.find("'upid'"), std::string::npos) << bad_upid->body;
}

TEST_F(ServerTasksTest, TaskPrivileges) {
  auto root = Root();
  auto r = root->Call("POST", "/admin/datastore/fixture/verify",
                      {{"backup-type", "vm"}, {"backup-id", "201"}});
  ASSERT_TRUE(r.ok());
  std::string root_task(r->as_string());
  WaitTask(*root, root_task);

  // alice (Datastore.Backup): cannot see or stop root's task, cannot GC or prune the store,
  // cannot verify groups she does not own.
  auto alice = Client("alice@pbs!tok");
  auto st = alice->Request("GET", "/api2/json" + TaskPath(root_task, "/status"));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->status, 400);
  EXPECT_EQ(st->body, "task access not allowed");
  auto log = alice->Request("GET", "/api2/json" + TaskPath(root_task, "/log"));
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(log->status, 400);
  auto stop = alice->Request("DELETE", "/api2/json" + TaskPath(root_task));
  ASSERT_TRUE(stop.ok());
  EXPECT_EQ(stop->status, 400);
  EXPECT_EQ(stop->body, "missing permissions 'Sys.Modify' on '/system/tasks'");
  auto list = alice->Call("GET", "/nodes/localhost/tasks", {{"limit", 0}});
  ASSERT_TRUE(list.ok());
  for (const auto& t : list->as_array()) {
    EXPECT_EQ(t.at("user").as_string().subview().substr(0, 9), "alice@pbs");
  }
  auto gc = alice->Request("POST", "/api2/json/admin/datastore/fixture/gc");
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(gc->status, 403);
  auto prune = alice->Request("POST", "/api2/json/admin/datastore/fixture/prune-datastore",
                              "{\"keep-last\":1}", "application/json");
  ASSERT_TRUE(prune.ok());
  EXPECT_EQ(prune->status, 400);
  EXPECT_EQ(prune->body,
            "missing permissions 'Datastore.Modify|Datastore.Prune' on '/datastore/fixture'");
  auto verify =
      alice->Request("POST", "/api2/json/admin/datastore/fixture/verify",
                     "{\"backup-type\":\"vm\",\"backup-id\":\"100\"}", "application/json");
  ASSERT_TRUE(verify.ok());
  EXPECT_EQ(verify->status, 400);
  EXPECT_EQ(verify->body, "backup owner check failed (alice@pbs!tok != root@pam)");
  // Bad parameter combination.
  auto partial = root->Request("POST", "/api2/json/admin/datastore/fixture/verify",
                               "{\"backup-type\":\"vm\"}", "application/json");
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(partial->status, 400);
  EXPECT_EQ(partial->body, "parameters do not specify a backup group or snapshot");

  // web@pbs!backup (Datastore.Backup) verifies only its own groups; its user sees the task.
  auto web = Client("web@pbs!backup");
  auto v = web->Call("POST", "/admin/datastore/fixture/verify", {{"ignore-verified", false}});
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  std::string web_task(v->as_string());
  json::object ws = WaitTask(*web, web_task);
  EXPECT_EQ(ws["exitstatus"].as_string(), "OK");
  auto lines = LogLines(*web, web_task);
  EXPECT_TRUE(HasLine(lines, "limiting to backups owned by web@pbs!backup"));
  EXPECT_TRUE(HasLine(lines, "found 1 groups"));

  // Sys.Audit on /system/tasks lists and reads every task.
  auto auditor = Client("audit@pbs!tok");
  auto all = auditor->Call("GET", "/nodes/localhost/tasks", {{"limit", 0}});
  ASSERT_TRUE(all.ok());
  bool saw_root = false, saw_web = false;
  for (const auto& t : all->as_array()) {
    saw_root |= t.at("upid").as_string() == root_task;
    saw_web |= t.at("upid").as_string() == web_task;
  }
  EXPECT_TRUE(saw_root);
  EXPECT_TRUE(saw_web);
  EXPECT_TRUE(auditor->Call("GET", TaskPath(root_task, "/log")).ok());
  // Datastore.Audit on the store does not open other users' verify tasks.
  auto bob = Client("bob@pbs!tok");
  auto bob_st = bob->Request("GET", "/api2/json" + TaskPath(root_task, "/status"));
  ASSERT_TRUE(bob_st.ok());
  EXPECT_EQ(bob_st->status, 400);
  // Stopping a finished own task is a no-op, as in PBS.
  EXPECT_TRUE(root->Call("DELETE", TaskPath(root_task)).ok());
}

TEST_F(ServerTasksTest, DownloadDecodedFollowsCryptModes) {
  auto c = Root();
  auto get = [&](const std::string& snap, const std::string& file) {
    std::string type = snap.substr(0, snap.find('/'));
    std::string rest = snap.substr(snap.find('/') + 1);
    std::string id = rest.substr(0, rest.find('/'));
    auto t = ParseBackupTime(rest.substr(rest.find('/') + 1));
    EXPECT_TRUE(t.ok());
    auto r = c->Request("GET", "/api2/json/admin/datastore/fixture/download-decoded?backup-type=" +
                                   type + "&backup-id=" + id +
                                   "&backup-time=" + std::to_string(*t) + "&file-name=" + file);
    EXPECT_TRUE(r.ok());
    return std::move(r).value();
  };
  auto sha = [](const std::string& s) {
    return ToHex(
        Sha256(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size())));
  };
  auto blob = get("ct/101/2024-05-01T11:00:00Z", "pct.conf.blob");
  ASSERT_EQ(blob.status, 200) << blob.body;
  EXPECT_EQ(*blob.Header("content-type"), "application/octet-stream");
  EXPECT_EQ(sha(blob.body), "4587121623ed9a97847d6f34236983c3746287f42a2f5a6d82bbdf1eb40c177c");
  auto pxar = get("ct/101/2024-05-01T11:00:00Z", "root.pxar.didx");
  ASSERT_EQ(pxar.status, 200) << pxar.body;
  EXPECT_EQ(pxar.body.size(), 475044u);
  EXPECT_EQ(sha(pxar.body), "80bd34b06226ac8bd829616679cd7c444c8297f3a9a5b827e5c58bfa420d00b5");
  auto img = get("vm/100/2024-05-01T10:00:00Z", "drive-scsi0.img.fidx");
  ASSERT_EQ(img.status, 200) << img.body;
  EXPECT_EQ(sha(img.body), "70f35d7c3f63127d1cf474bf7ee9a4e0d126c1df9683dd935abea274f0cdd65d");
  // sign-only files are not encrypted: they decode.
  auto signed_img = get("vm/201/2024-05-05T13:00:00Z", "drive-scsi0.img.fidx");
  ASSERT_EQ(signed_img.status, 200) << signed_img.body;
  EXPECT_EQ(sha(signed_img.body),
            "907ac6ce59f96cfbf32f265b4fe3ab92dcab8c33d5d75bb5bb0d77ab89981beb");
  // Encrypted files are refused.
  auto enc = get("vm/200/2024-05-05T12:00:00Z", "drive-scsi0.img.fidx");
  EXPECT_EQ(enc.status, 400);
  EXPECT_EQ(enc.body, "cannot decode 'drive-scsi0.img.fidx' - is encrypted");
  auto enc_blob = get("vm/200/2024-05-05T12:00:00Z", "qemu-server.conf.blob");
  EXPECT_EQ(enc_blob.status, 400);
  EXPECT_EQ(enc_blob.body, "cannot decode 'qemu-server.conf.blob' - is encrypted");
  // A missing file.
  auto missing = get("vm/100/2024-05-01T10:00:00Z", "nosuch.img.fidx");
  EXPECT_NE(missing.status, 200);
  // The decoded manifest.
  auto manifest = get("ct/101/2024-05-01T11:00:00Z", "index.json.blob");
  ASSERT_EQ(manifest.status, 200);
  EXPECT_EQ(json::parse(manifest.body).at("backup-id").as_string(), "101");

  // The body is streamed chunk by chunk after a 200 header: a chunk that turns out to be
  // missing ends the connection early, so the client never takes a short body for the file.
  auto index = FixedIndex::Parse(
      test::ReadFile(*store_ + "/vm/100/2024-05-01T10:00:00Z/drive-scsi0.img.fidx"), "fidx");
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  ASSERT_GE(index->chunk_count(), 1u);
  const std::string hex = ToHex(index->digest(index->chunk_count() - 1));
  const std::string chunk = *store_ + "/.chunks/" + hex.substr(0, 4) + "/" + hex;
  std::filesystem::rename(chunk, chunk + ".away");
  auto cut = c->Request("GET", "/api2/json/admin/datastore/fixture/download-decoded?backup-type="
                               "vm&backup-id=100&backup-time=1714557600&file-name="
                               "drive-scsi0.img.fidx");
  std::filesystem::rename(chunk + ".away", chunk);
  EXPECT_FALSE(cut.ok() && cut->status == 200 && sha(cut->body) == sha(img.body))
      << "a download with a missing chunk must not complete";
  if (cut.ok()) {
    EXPECT_LT(cut->body.size(), img.body.size());
  }
  auto again = get("vm/100/2024-05-01T10:00:00Z", "drive-scsi0.img.fidx");
  ASSERT_EQ(again.status, 200);
  EXPECT_EQ(sha(again.body), sha(img.body));
}

}  // namespace
}  // namespace pbskit::server
