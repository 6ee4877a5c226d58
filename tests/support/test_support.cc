#include "test_support.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace fs = std::filesystem;

namespace pbskit::test {

std::string Fixture(const std::string& rel) {
  return fs::weakly_canonical(fs::path(PBSKIT_FIXTURES) / rel).string();
}
std::string TestData(const std::string& rel) {
  return (fs::path(PBSKIT_TESTDATA) / rel).string();
}
std::string Binary() { return PBSKIT_BINARY; }

std::string ScratchBase(Scratch where) {
  const char* tmpdir = std::getenv("TMPDIR");
  std::string disk = tmpdir && *tmpdir ? tmpdir : "/tmp";
  const char* force = std::getenv("PBSKIT_TEST_SCRATCH");
  if (where == Scratch::kDisk || (force && std::string(force) == "disk")) return disk;
  constexpr int64_t kTmpfsMagic = 0x01021994;
  constexpr uint64_t kNeeded = 2ull << 30;
  struct statfs s {};
  if (::statfs("/dev/shm", &s) != 0 || static_cast<int64_t>(s.f_type) != kTmpfsMagic ||
      ::access("/dev/shm", W_OK | X_OK) != 0 ||
      static_cast<uint64_t>(s.f_bavail) * static_cast<uint64_t>(s.f_bsize) < kNeeded) {
    return disk;
  }
  return "/dev/shm";
}

TempDir::TempDir(Scratch where) {
  std::string tmpl = ScratchBase(where) + "/pbskit-test-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}
TempDir::~TempDir() {
  std::error_code ec;
  // Make everything writable first: tests may chmod files read-only.
  for (auto it = fs::recursive_directory_iterator(path_, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec))
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
  }
  fs::remove_all(path_, ec);
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}
std::string ReadText(const std::string& path) {
  auto v = ReadFile(path);
  return std::string(v.begin(), v.end());
}
void WriteFile(const std::string& path, const std::vector<uint8_t>& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + path);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}
void WriteText(const std::string& path, const std::string& text) {
  WriteFile(path, std::vector<uint8_t>(text.begin(), text.end()));
}

static std::string HexSha(const void* p, size_t n) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(p, n, md, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < len; i++) {
    s.push_back(kHex[md[i] >> 4]);
    s.push_back(kHex[md[i] & 15]);
  }
  return s;
}
std::string Sha256Hex(const std::vector<uint8_t>& d) { return HexSha(d.data(), d.size()); }
std::string Sha256Hex(const std::string& d) { return HexSha(d.data(), d.size()); }

void CopyTree(const std::string& from, const std::string& to) {
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  std::error_code ec;
  fs::permissions(to, fs::perms::owner_all, fs::perm_options::add, ec);
  for (auto& e : fs::recursive_directory_iterator(to)) {
    if (e.is_symlink()) continue;
    auto add = e.is_directory() ? fs::perms::owner_all : (fs::perms::owner_read | fs::perms::owner_write);
    fs::permissions(e.path(), add, fs::perm_options::add, ec);
  }
}

static void ReadAll(int fd, std::string* out, std::string* err, int fd_err, int pid,
                    int timeout_s) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  bool open_out = true, open_err = true;
  char buf[65536];
  while (open_out || open_err) {
    pollfd p[2] = {{fd, POLLIN, 0}, {fd_err, POLLIN, 0}};
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now())
                                    .count());
    if (left <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    if (!open_out) p[0].fd = -1;
    if (!open_err) p[1].fd = -1;
    if (poll(p, 2, left) <= 0) continue;
    for (int i = 0; i < 2; i++) {
      if (p[i].revents & (POLLIN | POLLHUP)) {
        ssize_t n = read(p[i].fd, buf, sizeof buf);
        if (n <= 0) {
          (i == 0 ? open_out : open_err) = false;
        } else {
          (i == 0 ? out : err)->append(buf, static_cast<size_t>(n));
        }
      }
    }
  }
}

CommandResult RunCli(const std::vector<std::string>& args, const std::vector<std::string>& env,
                     int timeout_s, const std::string& stdin_data) {
  int pout[2], perr[2], pin[2];
  if (pipe(pout) || pipe(perr) || pipe(pin)) throw std::runtime_error("pipe failed");
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(pin[0], 0);
    dup2(pout[1], 1);
    dup2(perr[1], 2);
    close(pin[1]);
    close(pout[0]);
    close(perr[0]);
    for (const auto& e : env) putenv(strdup(e.c_str()));
    std::vector<char*> argv;
    std::string bin = Binary();
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  close(pin[0]);
  close(pout[1]);
  close(perr[1]);
  if (!stdin_data.empty()) {
    ssize_t ignored = write(pin[1], stdin_data.data(), stdin_data.size());
    (void)ignored;
  }
  close(pin[1]);
  CommandResult r;
  ReadAll(pout[0], &r.out, &r.err, perr[0], pid, timeout_s);
  close(pout[0]);
  close(perr[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s[i] = static_cast<char>(x & 0xff);
  }
  return s;
}

}  // namespace pbskit::test
