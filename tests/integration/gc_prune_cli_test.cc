// `pbskit prune`, `pbskit gc` and `pbskit task` through the CLI, and a kill -9 loop on backup,
// verify, GC and prune: afterwards every finished snapshot verifies and no partial file sits
// under a final name.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/fixed_index.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/manifest.h"
#include "test_support.h"

namespace pbskit {
namespace {

namespace fs = std::filesystem;

class GcPruneCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = {"PBSKIT_LOCK_ROOT=" + tmp_ / "locks", "TZ=UTC"};
    auto r = Run({"datastore", "create", "store1", store()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::vector<uint8_t> img(3 * 1024 * 1024);
    std::mt19937 rng(7);
    for (auto& b : img) b = static_cast<uint8_t>(rng() % 7);
    test::WriteFile(tmp_ / "img", img);
  }
  std::string store() { return tmp_ / "store"; }
  test::CommandResult Run(std::vector<std::string> args, int timeout = 300) {
    args.insert(args.begin(), {"--config-dir", tmp_ / "etc", "--state-dir", tmp_ / "state"});
    return test::RunCli(args, env_, timeout);
  }
  void BackupOnce() {
    auto r = Run({"backup", "image", tmp_ / "img", "--store", "store1", "--type", "vm", "--id", "100"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // next backup time
  }
  std::vector<std::string> SnapshotDirs() {
    std::vector<std::string> out;
    if (!fs::exists(store() + "/vm/100")) return out;
    for (const auto& e : fs::directory_iterator(store() + "/vm/100")) {
      if (e.is_directory()) out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  void ExpectConsistent(const std::string& when) {
    for (const auto& t : SnapshotDirs()) {
      if (!fs::exists(store() + "/vm/100/" + t + "/index.json.blob")) continue;
      auto r = Run({"verify", "--store", "store1", "vm/100/" + t});
      EXPECT_EQ(r.exit_code, 0) << when << ": vm/100/" << t << "\n" << r.out << r.err;
    }
    for (const auto& e : fs::recursive_directory_iterator(store())) {
      if (!e.is_regular_file()) continue;
      std::string name = e.path().filename().string();
      if (name.find(".tmp_") != std::string::npos) continue;
      auto bytes = test::ReadFile(e.path().string());
      if (IsDigestHex(name)) {
        EXPECT_TRUE(DataBlob::FromRaw(bytes).ok()) << when << ": " << e.path();
      } else if (name.size() > 5 && name.substr(name.size() - 5) == ".fidx") {
        EXPECT_TRUE(FixedIndex::Parse(bytes, name).ok()) << when << ": " << e.path();
      } else if (name == "index.json.blob") {
        EXPECT_TRUE(Manifest::FromBlob(bytes, name).ok()) << when << ": " << e.path();
      } else if (name == ".gc-status") {
        boost::system::error_code ec;
        (void)boost::json::parse(test::ReadText(e.path().string()), ec);
        EXPECT_FALSE(ec) << when << ": .gc-status does not parse";
      }
    }
  }

  test::TempDir tmp_;
  std::vector<std::string> env_;
};

TEST_F(GcPruneCliTest, PruneGcAndTaskLogs) {
  for (int i = 0; i < 3; ++i) BackupOnce();
  auto snaps = SnapshotDirs();
  ASSERT_EQ(snaps.size(), 3u);

  auto dry = Run({"prune", "--store", "store1", "vm/100", "--keep-last", "1", "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_NE(dry.out.find("snapshot"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("action"), std::string::npos);
  EXPECT_NE(dry.out.find("vm/100/" + snaps[0] + " "), std::string::npos);
  EXPECT_NE(dry.out.find("remove"), std::string::npos);
  EXPECT_EQ(SnapshotDirs().size(), 3u);

  auto js = Run({"prune", "--store", "store1", "vm/100", "--keep-last", "1", "--output-format",
                 "json"});
  ASSERT_EQ(js.exit_code, 0) << js.err;
  auto v = boost::json::parse(js.out);
  ASSERT_TRUE(v.is_array());
  ASSERT_EQ(v.as_array().size(), 3u);
  EXPECT_EQ(js.out.rfind("[{\"backup-id\":\"100\",\"backup-time\":", 0), 0u) << js.out;
  EXPECT_EQ(v.as_array()[2].as_object().at("keep").as_bool(), true);
  EXPECT_EQ(v.as_array()[0].as_object().at("keep").as_bool(), false);
  EXPECT_EQ(v.as_array()[0].as_object().at("protected").as_bool(), false);
  EXPECT_EQ(SnapshotDirs(), std::vector<std::string>{snaps[2]});

  auto gc = Run({"gc", "--store", "store1"});
  ASSERT_EQ(gc.exit_code, 0) << gc.err;
  EXPECT_NE(gc.out.find("starting garbage collection on store store1\n"), std::string::npos);
  EXPECT_NE(gc.out.find("Access time update check successful, proceeding with GC.\n"),
            std::string::npos);
  EXPECT_NE(gc.out.find("Original data usage: 3 MiB\n"), std::string::npos) << gc.out;
  EXPECT_NE(gc.out.find("TASK OK\n"), std::string::npos);
  EXPECT_TRUE(fs::exists(store() + "/.gc-status"));

  auto bad = Run({"prune", "--store", "store1", "vm/100", "--keep-daily", "0"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("Error: "), std::string::npos);
  auto nogroup = Run({"prune", "--store", "store1", "vm/999", "--keep-last", "1"});
  EXPECT_EQ(nogroup.exit_code, 2) << nogroup.out << nogroup.err;

  auto tasks = Run({"task", "list", "--all", "--output-format", "json"});
  ASSERT_EQ(tasks.exit_code, 0) << tasks.err;
  auto list = boost::json::parse(tasks.out).as_array();
  bool saw_gc = false, saw_prune = false;
  for (const auto& t : list) {
    std::string type(t.as_object().at("worker_type").as_string());
    saw_gc |= type == "garbage_collection";
    saw_prune |= type == "prune";
    if (type == "garbage_collection") {
      EXPECT_EQ(std::string(t.as_object().at("status").as_string()), "OK");
      auto log = Run({"task", "log", std::string(t.as_object().at("upid").as_string())});
      EXPECT_EQ(log.exit_code, 0);
      EXPECT_NE(log.out.find(": TASK OK\n"), std::string::npos) << log.out;
    }
  }
  EXPECT_TRUE(saw_gc);
  EXPECT_TRUE(saw_prune);
}

// Starts pbskit with `args`, kills it with SIGKILL after `delay_ms` (if still running).
void RunAndKill(const std::vector<std::string>& args, const std::vector<std::string>& env,
                int delay_ms) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    std::vector<char*> argv;
    std::string bin = test::Binary();
    argv.push_back(bin.data());
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
}

TEST_F(GcPruneCliTest, KillNineLoop) {
  BackupOnce();
  BackupOnce();
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> delay(20, 600);
  const std::string cfg = tmp_ / "etc", state = tmp_ / "state";
  auto args = [&](std::vector<std::string> a) {
    a.insert(a.begin(), {"--config-dir", cfg, "--state-dir", state});
    return a;
  };
  for (int round = 0; round < 3; ++round) {
    const std::vector<std::vector<std::string>> commands = {
        args({"backup", "image", tmp_ / "img", "--store", "store1", "--type", "vm", "--id", "100"}),
        args({"verify", "--store", "store1"}),
        args({"gc", "--store", "store1"}),
        args({"prune", "--store", "store1", "vm/100", "--keep-last", "2"}),
    };
    for (const auto& c : commands) {
      int d = delay(rng);
      RunAndKill(c, env_, d);
      ExpectConsistent("round " + std::to_string(round) + " " + c[4] + " killed after " +
                       std::to_string(d) + " ms");
      std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    }
  }
  // Everything still works afterwards.
  BackupOnce();
  auto gc = Run({"gc", "--store", "store1"});
  EXPECT_EQ(gc.exit_code, 0) << gc.out << gc.err;
  auto prune = Run({"prune", "--store", "store1", "vm/100", "--keep-last", "1"});
  EXPECT_EQ(prune.exit_code, 0) << prune.err;
  ExpectConsistent("final");
}

}  // namespace
}  // namespace pbskit
