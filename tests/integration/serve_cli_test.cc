// `pbskit serve` as a user starts it: the first start on an empty config dir creates the
// embedded default (datastore, certificate, token printed once), the connection limit and
// timeout flags reach the server, bad flag values are usage errors and SIGTERM stops it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "pbskit/server/http_client.h"
#include "test_support.h"

namespace pbskit {
namespace {

namespace fs = std::filesystem;
using server::HttpClient;
using server::HttpClientOptions;

// A running `pbskit serve` child with its stdout and stderr captured.
class ServeProcess {
 public:
  explicit ServeProcess(const std::vector<std::string>& args) {
    int out[2], err[2];
    if (pipe(out) != 0 || pipe(err) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      dup2(err[1], 2);
      close(out[0]);
      close(err[0]);
      std::vector<std::string> all{test::Binary()};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    close(err[1]);
    out_ = out[0];
    err_ = err[0];
  }
  ~ServeProcess() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
    if (err_ >= 0) close(err_);
  }

  // Reads stdout until its first complete line (the JSON start-up report), up to `timeout_s`.
  std::string FirstLine(int timeout_s) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (stdout_.find('\n') == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
      if (!ReadSome(out_, &stdout_, 200)) break;
    }
    size_t nl = stdout_.find('\n');
    return nl == std::string::npos ? "" : stdout_.substr(0, nl);
  }

  // Sends `sig` and waits (bounded) for the exit; returns the exit code, -1 on timeout/signal.
  int Stop(int sig, int timeout_s) {
    kill(pid_, sig);
    for (int i = 0; i < timeout_s * 20; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        while (ReadSome(err_, &stderr_, 0)) {
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }
  const std::string& stderr_text() const { return stderr_; }
  bool started() const { return pid_ > 0 && out_ >= 0; }

 private:
  static bool ReadSome(int fd, std::string* to, int wait_ms) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, wait_ms) <= 0) return wait_ms > 0;  // nothing yet: keep waiting
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    to->append(buf, static_cast<size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int out_ = -1, err_ = -1;
  bool reaped_ = false;
  std::string stdout_, stderr_;
};

TEST(ServeCliTest, FirstStartCreatesTheDefaultAndTheFlagsReachTheServer) {
  std::signal(SIGPIPE, SIG_IGN);
  test::TempDir dir;
  const std::string config = dir / "etc";
  ServeProcess serve({"--config-dir", config, "--state-dir", dir / "state", "--output-format",
                      "json", "serve", "--listen", "127.0.0.1:0", "--max-connections", "2",
                      "--idle-timeout", "1"});
  ASSERT_TRUE(serve.started());
  const std::string line = serve.FirstLine(120);
  ASSERT_FALSE(line.empty()) << "no start-up report";
  boost::json::object info = boost::json::parse(line).as_object();
  EXPECT_EQ(info.at("store").as_string(), "store1");
  EXPECT_EQ(info.at("tokenid").as_string(), "root@pam!pbskit");
  const std::string store_path(info.at("store-path").as_string());
  EXPECT_TRUE(fs::is_directory(store_path + "/.chunks/ffff")) << store_path;
  EXPECT_TRUE(fs::exists(config + "/datastore.cfg"));
  const uint16_t port = static_cast<uint16_t>(info.at("port").to_number<int64_t>());
  const std::string repo(info.at("repository").as_string());
  EXPECT_EQ(repo, "root@pam!pbskit@127.0.0.1:" + std::to_string(port) + ":store1");

  HttpClientOptions o;
  o.port = port;
  o.fingerprint = std::string(info.at("fingerprint").as_string());
  auto connect = [&]() {
    auto c = HttpClient::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (c.ok()) (*c)->UseToken("root@pam!pbskit", std::string(info.at("value").as_string()));
    return c.ok() ? std::move(c).value() : nullptr;
  };
  auto version = [](HttpClient& c) {
    auto r = c.Request("GET", "/api2/json/version");
    return r.ok() ? std::to_string(r->status) + " " + r->body : r.status().ToString();
  };

  // Two connections are served; a third gets PBS's 503 with the configured limit.
  auto a = connect();
  auto b = connect();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(version(*a).substr(0, 4), "200 ");
  EXPECT_EQ(version(*b).substr(0, 4), "200 ");
  auto c = connect();
  ASSERT_TRUE(c);
  EXPECT_EQ(version(*c), "503 too many connections (limit 2), try again later");

  // --idle-timeout 1: the idle keep-alive connections are closed, so a new one is served.
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto d = connect();
    served = d && version(*d).substr(0, 4) == "200 ";
  }
  EXPECT_TRUE(served);

  EXPECT_EQ(serve.Stop(SIGTERM, 30), 0);
  EXPECT_NE(serve.stderr_text().find("shutting down"), std::string::npos) << serve.stderr_text();

  // The second start reuses the default and prints no secret.
  ServeProcess again({"--config-dir", config, "--state-dir", dir / "state", "--output-format",
                      "json", "serve", "--listen", "127.0.0.1:0"});
  const std::string line2 = again.FirstLine(120);
  ASSERT_FALSE(line2.empty());
  boost::json::object info2 = boost::json::parse(line2).as_object();
  EXPECT_FALSE(info2.contains("value"));
  EXPECT_EQ(info2.at("fingerprint"), info.at("fingerprint"));
  EXPECT_EQ(again.Stop(SIGINT, 30), 0);
}

TEST(ServeCliTest, BadLimitsAreUsageErrors) {
  test::TempDir dir;
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--max-connections", "0"},
        std::vector<std::string>{"--idle-timeout", "0"},
        std::vector<std::string>{"--header-timeout", "x"},
        std::vector<std::string>{"--protocol-idle-timeout", "100000"}}) {
    std::vector<std::string> args{"--config-dir", dir / "etc", "serve", "--listen",
                                  "127.0.0.1:0"};
    args.insert(args.end(), bad.begin(), bad.end());
    auto r = test::RunCli(args, {}, 60);
    EXPECT_EQ(r.exit_code, 2) << bad[0] << " " << bad[1] << ": " << r.err;
    EXPECT_NE(r.err.find(bad[0]), std::string::npos) << r.err;
  }
  EXPECT_FALSE(fs::exists(dir / "etc/datastore.cfg"));  // nothing was set up
}

}  // namespace
}  // namespace pbskit
