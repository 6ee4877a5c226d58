// Host file access, /proc/mounts parsing and command execution for the checker.
#include "pbskit/checker/host.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

namespace pbskit::checker {
namespace {

std::string DecodeOctal(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' &&
        s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 +
                                      (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

bool MountEntry::HasOption(std::string_view o) const {
  return std::find(options.begin(), options.end(), o) != options.end();
}

Host::Host(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  live_ = root_.empty() || root_ == "/";
  if (root_.empty()) root_ = "/";
}

std::string Host::Local(std::string_view abs) const {
  if (live_) return std::string(abs);
  return root_ + std::string(abs);
}

Result<std::string> Host::ReadFile(std::string_view abs) const {
  std::string path = Local(abs);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return Status::NotFound(std::string(abs) + ": no such file");
    }
    return Status::IoError(std::string(abs) + ": " + std::strerror(err));
  }
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Status::IoError(std::string(abs) + ": " + std::strerror(err));
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return data;
}

bool Host::Exists(std::string_view abs) const {
  struct stat st;
  return ::lstat(Local(abs).c_str(), &st) == 0;
}

bool Host::IsFile(std::string_view abs) const {
  struct stat st;
  return ::stat(Local(abs).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool Host::IsDir(std::string_view abs) const {
  struct stat st;
  return ::stat(Local(abs).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::optional<int64_t> Host::MtimeNs(std::string_view abs) const {
  struct stat st;
  if (::stat(Local(abs).c_str(), &st) != 0) return std::nullopt;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

Result<std::vector<std::string>> Host::ListDir(std::string_view abs) const {
  DIR* d = ::opendir(Local(abs).c_str());
  if (!d) {
    int err = errno;
    if (err == ENOENT) return Status::NotFound(std::string(abs) + ": no such directory");
    return Status::IoError(std::string(abs) + ": " + std::strerror(err));
  }
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    names.push_back(std::move(n));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<MountEntry> ParseMounts(std::string_view text) {
  std::vector<MountEntry> out;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string dev, mp, fstype, opts;
    if (!(ls >> dev >> mp >> fstype >> opts)) continue;
    MountEntry m;
    m.device = DecodeOctal(dev);
    m.mount_point = DecodeOctal(mp);
    m.fstype = fstype;
    size_t pos = 0;
    while (pos <= opts.size()) {
      size_t c = opts.find(',', pos);
      if (c == std::string::npos) c = opts.size();
      if (c > pos) m.options.push_back(opts.substr(pos, c - pos));
      pos = c + 1;
    }
    out.push_back(std::move(m));
  }
  return out;
}

Result<std::vector<MountEntry>> Host::Mounts() const {
  PBSKIT_ASSIGN_OR_RETURN(std::string text, ReadFile("/proc/mounts"));
  return ParseMounts(text);
}

std::optional<MountEntry> Host::MountFor(const std::vector<MountEntry>& mounts,
                                         std::string_view abs) {
  std::optional<MountEntry> best;
  for (const auto& m : mounts) {
    const std::string& mp = m.mount_point;
    bool covers = mp == "/" || abs == mp ||
                  (abs.size() > mp.size() && abs.substr(0, mp.size()) == mp &&
                   abs[mp.size()] == '/');
    // Later entries shadow earlier ones on the same mount point (mount order).
    if (covers && (!best || mp.size() >= best->mount_point.size())) best = m;
  }
  return best;
}

Result<CommandOutput> Host::Run(const std::vector<std::string>& argv) const {
  if (!live_) {
    return Status::Unsupported("commands are not run for a host tree (" + argv[0] + ")");
  }
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return Status::FromErrno(errno, "pipe");
  int errpipe[2];  // reports an exec failure to the parent
  if (::pipe2(errpipe, O_CLOEXEC) != 0) {
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    return Status::FromErrno(errno, "pipe");
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    for (int fd : {pipefd[0], pipefd[1], errpipe[0], errpipe[1]}) ::close(fd);
    return Status::FromErrno(err, "fork");
  }
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 2);
    }
    ::dup2(pipefd[1], 1);
    ::execvp(args[0], args.data());
    int err = errno;
    ssize_t w = ::write(errpipe[1], &err, sizeof err);
    (void)w;
    ::_exit(127);
  }
  ::close(pipefd[1]);
  ::close(errpipe[1]);
  CommandOutput result;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(pipefd[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.out.append(buf, static_cast<size_t>(n));
  }
  ::close(pipefd[0]);
  int exec_err = 0;
  ssize_t got = ::read(errpipe[0], &exec_err, sizeof exec_err);
  ::close(errpipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (got == static_cast<ssize_t>(sizeof exec_err)) {
    return Status::NotFound("failed to execute '" + argv[0] + "': " + std::strerror(exec_err));
  }
  result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

Result<FsSpace> Host::Space(std::string_view abs) const {
  if (!live_) {
    return Status::Unsupported("free space is not measured for a host tree");
  }
  struct statvfs sv;
  if (::statvfs(std::string(abs).c_str(), &sv) != 0) {
    return Status::FromErrno(errno, std::string("statvfs ") + std::string(abs));
  }
  FsSpace s;
  s.total = static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize;
  s.available = static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize;
  return s;
}

}  // namespace pbskit::checker
