// POSIX Filesystem and the file helpers built on the Filesystem interface.
#include "pbskit/datastore/fs.h"

#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace pbskit {
namespace {

Status ErrnoStatus(int err, const std::string& what) {
  std::string msg = what + ": " + std::strerror(err);
  switch (err) {
    case ENOENT: return Status::NotFound(msg);
    case EEXIST: return Status::AlreadyExists(msg);
    case EACCES:
    case EPERM:
    case EROFS: return Status::PermissionDenied(msg);
    case EWOULDBLOCK: return Status::Busy(msg);
    default: return Status::IoError(msg);
  }
}

class PosixFs final : public Filesystem {
 public:
  Result<int> Open(const std::string& path, int flags, mode_t mode) override {
    int fd;
    do {
      fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return ErrnoStatus(errno, "open " + path);
    return fd;
  }
  Status Close(int fd) override {
    if (::close(fd) != 0 && errno != EINTR) return ErrnoStatus(errno, "close");
    return Status::OK();
  }
  Result<size_t> PRead(int fd, void* buf, size_t n, uint64_t off) override {
    size_t done = 0;
    auto* p = static_cast<uint8_t*>(buf);
    while (done < n) {
      ssize_t r = ::pread(fd, p + done, n - done, static_cast<off_t>(off + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "read");
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    return done;
  }
  Status PWriteAll(int fd, const void* buf, size_t n, uint64_t off) override {
    size_t done = 0;
    auto* p = static_cast<const uint8_t*>(buf);
    while (done < n) {
      ssize_t r = ::pwrite(fd, p + done, n - done, static_cast<off_t>(off + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "write");
      }
      done += static_cast<size_t>(r);
    }
    return Status::OK();
  }
  Status Fsync(int fd) override {
    if (::fsync(fd) != 0) return ErrnoStatus(errno, "fsync");
    return Status::OK();
  }
  Status Ftruncate(int fd, uint64_t size) override {
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) return ErrnoStatus(errno, "ftruncate");
    return Status::OK();
  }
  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoStatus(errno, "rename " + from + " to " + to);
    }
    return Status::OK();
  }
  Status Unlink(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoStatus(errno, "unlink " + path);
    return Status::OK();
  }
  Status Mkdir(const std::string& path, mode_t mode) override {
    if (::mkdir(path.c_str(), mode) != 0) return ErrnoStatus(errno, "mkdir " + path);
    return Status::OK();
  }
  Status Rmdir(const std::string& path) override {
    if (::rmdir(path.c_str()) != 0) return ErrnoStatus(errno, "rmdir " + path);
    return Status::OK();
  }
  Result<struct stat> Stat(const std::string& path, bool follow) override {
    struct stat st;
    int r = follow ? ::stat(path.c_str(), &st) : ::lstat(path.c_str(), &st);
    if (r != 0) return ErrnoStatus(errno, "stat " + path);
    return st;
  }
  Result<struct stat> FStat(int fd) override {
    struct stat st;
    if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, "fstat");
    return st;
  }
  Status Utimens(const std::string& path, const struct timespec times[2]) override {
    if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoStatus(errno, "utimensat " + path);
    }
    return Status::OK();
  }
  Status ReadDir(const std::string& path, std::vector<DirEntry>* out) override {
    out->clear();
    DIR* dir = ::opendir(path.c_str());
    if (!dir) return ErrnoStatus(errno, "opendir " + path);
    while (true) {
      errno = 0;
      struct dirent* e = ::readdir(dir);
      if (!e) {
        int err = errno;
        ::closedir(dir);
        if (err != 0) return ErrnoStatus(err, "readdir " + path);
        return Status::OK();
      }
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      out->push_back(DirEntry{e->d_name, e->d_type, static_cast<uint64_t>(e->d_ino)});
    }
  }
  Status SyncFs(int fd) override {
    if (::syncfs(fd) != 0) return ErrnoStatus(errno, "syncfs");
    return Status::OK();
  }
  Result<int> MkTemp(std::string* path_template, mode_t mode) override {
    std::vector<char> buf(path_template->begin(), path_template->end());
    buf.push_back('\0');
    int fd = ::mkostemp(buf.data(), O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, "mkstemp " + *path_template);
    *path_template = buf.data();
    if (::fchmod(fd, mode) != 0) {
      int err = errno;
      ::close(fd);
      ::unlink(path_template->c_str());
      return ErrnoStatus(err, "fchmod " + *path_template);
    }
    return fd;
  }
  Status Flock(int fd, LockMode mode, bool nonblock) override {
    int op = (mode == LockMode::kShared ? LOCK_SH : LOCK_EX) | (nonblock ? LOCK_NB : 0);
    while (::flock(fd, op) != 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "flock");
    }
    return Status::OK();
  }
  Status FcntlLock(int fd, LockMode mode) override {
    struct flock fl {};
    fl.l_type = mode == LockMode::kShared ? F_RDLCK : F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 0;
    if (::fcntl(fd, F_SETLK, &fl) != 0) {
      if (errno == EACCES || errno == EAGAIN) return Status::Busy("fcntl lock: held by another process");
      return ErrnoStatus(errno, "fcntl lock");
    }
    return Status::OK();
  }
  Status FcntlUnlock(int fd) override {
    struct flock fl {};
    fl.l_type = F_UNLCK;
    fl.l_whence = SEEK_SET;
    if (::fcntl(fd, F_SETLK, &fl) != 0) return ErrnoStatus(errno, "fcntl unlock");
    return Status::OK();
  }
  Status Chmod(const std::string& path, mode_t mode) override {
    if (::chmod(path.c_str(), mode) != 0) return ErrnoStatus(errno, "chmod " + path);
    return Status::OK();
  }
};

}  // namespace

Filesystem::~Filesystem() = default;

Status Filesystem::FsyncDir(const std::string& dir) {
  PBSKIT_ASSIGN_OR_RETURN(int fd, Open(dir, O_RDONLY | O_DIRECTORY));
  ScopedFd guard(this, fd);
  Status st = Fsync(fd);
  if (!st.ok()) return st.WithContext("fsync directory " + dir);
  return guard.Close();
}

Filesystem* PosixFilesystem() {
  static PosixFs* fs = new PosixFs();
  return fs;
}

const char* SyncLevelName(SyncLevel level) {
  switch (level) {
    case SyncLevel::kNone: return "none";
    case SyncLevel::kFile: return "file";
    case SyncLevel::kFilesystem: return "filesystem";
  }
  return "filesystem";
}

Result<SyncLevel> ParseSyncLevel(std::string_view text) {
  if (text == "none") return SyncLevel::kNone;
  if (text == "file") return SyncLevel::kFile;
  if (text == "filesystem") return SyncLevel::kFilesystem;
  return Status::InvalidArgument("invalid sync-level '" + std::string(text) +
                                 "' (expected none, file or filesystem)");
}

ScopedFd& ScopedFd::operator=(ScopedFd&& o) noexcept {
  if (this != &o) {
    Reset();
    fs_ = o.fs_;
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

Status ScopedFd::Close() {
  if (fd_ < 0) return Status::OK();
  int fd = fd_;
  fd_ = -1;
  return fs_->Close(fd);
}

void ScopedFd::Reset() {
  if (fd_ >= 0) (void)Close();
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string JoinPath(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  if (a.back() == '/') return a + b;
  return a + "/" + b;
}

Result<std::vector<uint8_t>> ReadWholeFile(Filesystem* fs, const std::string& path) {
  PBSKIT_ASSIGN_OR_RETURN(int fd, fs->Open(path, O_RDONLY));
  ScopedFd guard(fs, fd);
  std::vector<uint8_t> data;
  auto st = fs->FStat(fd);
  if (!st.ok()) return st.status().WithContext(path);
  size_t cap = st->st_size > 0 ? static_cast<size_t>(st->st_size) : 4096;
  uint64_t off = 0;
  while (true) {
    data.resize(off + cap);
    auto n = fs->PRead(fd, data.data() + off, cap, off);
    if (!n.ok()) return n.status().WithContext("read " + path);
    off += *n;
    if (*n < cap) break;
    cap = 64 * 1024;  // file grew or size unknown: keep reading
  }
  data.resize(off);
  return data;
}

Result<std::string> ReadWholeFileText(Filesystem* fs, const std::string& path) {
  PBSKIT_ASSIGN_OR_RETURN(auto data, ReadWholeFile(fs, path));
  return std::string(data.begin(), data.end());
}

Status WriteFileAtomic(Filesystem* fs, const std::string& path, std::span<const uint8_t> data,
                       SyncLevel level, mode_t mode) {
  std::string tmp = path + ".tmp_XXXXXX";
  PBSKIT_ASSIGN_OR_RETURN(int fd, fs->MkTemp(&tmp, mode));
  ScopedFd guard(fs, fd);
  auto fail = [&](const Status& st) {
    guard.Reset();
    (void)fs->Unlink(tmp);
    return st;
  };
  Status st = fs->PWriteAll(fd, data.data(), data.size(), 0);
  if (!st.ok()) return fail(st.WithContext("write " + tmp));
  if (level != SyncLevel::kNone) {
    st = fs->Fsync(fd);
    if (!st.ok()) return fail(st.WithContext("fsync " + tmp));
  }
  st = guard.Close();
  if (!st.ok()) return fail(st.WithContext("close " + tmp));
  st = fs->Rename(tmp, path);
  if (!st.ok()) return fail(st);
  if (level != SyncLevel::kNone) {
    PBSKIT_RETURN_IF_ERROR(fs->FsyncDir(DirName(path)));
  }
  return Status::OK();
}

Status WriteFileAtomic(Filesystem* fs, const std::string& path, std::string_view text,
                       SyncLevel level, mode_t mode) {
  return WriteFileAtomic(
      fs, path,
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()), level,
      mode);
}

Status CreateFileExclusive(Filesystem* fs, const std::string& path, std::span<const uint8_t> data,
                           SyncLevel level, mode_t mode) {
  PBSKIT_ASSIGN_OR_RETURN(int fd, fs->Open(path, O_WRONLY | O_CREAT | O_EXCL, mode));
  ScopedFd guard(fs, fd);
  Status st = fs->PWriteAll(fd, data.data(), data.size(), 0);
  if (st.ok() && level != SyncLevel::kNone) st = fs->Fsync(fd);
  if (st.ok()) st = guard.Close();
  if (!st.ok()) {
    guard.Reset();
    (void)fs->Unlink(path);
    return st.WithContext("write " + path);
  }
  if (level == SyncLevel::kFile) PBSKIT_RETURN_IF_ERROR(fs->FsyncDir(DirName(path)));
  return Status::OK();
}

Status MkdirAll(Filesystem* fs, const std::string& path, mode_t mode) {
  if (path.empty()) return Status::OK();
  auto st = fs->Stat(path, true);
  if (st.ok()) {
    if (S_ISDIR(st->st_mode)) return Status::OK();
    return Status::AlreadyExists(path + ": exists and is not a directory");
  }
  if (!st.status().IsNotFound()) return st.status();
  std::string parent = DirName(path);
  if (parent != path && parent != "." && parent != "/") {
    PBSKIT_RETURN_IF_ERROR(MkdirAll(fs, parent, mode));
  }
  Status s = fs->Mkdir(path, mode);
  if (s.code() == Code::kAlreadyExists) return Status::OK();  // raced with another creator
  return s;
}

Status RemoveTree(Filesystem* fs, const std::string& path) {
  PBSKIT_ASSIGN_OR_RETURN(struct stat st, fs->Stat(path, false));
  if (!S_ISDIR(st.st_mode)) return fs->Unlink(path);
  std::vector<DirEntry> entries;
  PBSKIT_RETURN_IF_ERROR(fs->ReadDir(path, &entries));
  for (const auto& e : entries) {
    Status s = RemoveTree(fs, path + "/" + e.name);
    if (!s.ok() && !s.IsNotFound()) return s;
  }
  return fs->Rmdir(path);
}

Status TouchAtime(Filesystem* fs, const std::string& path) {
  struct timespec times[2];
  times[0].tv_sec = 0;
  times[0].tv_nsec = UTIME_NOW;
  times[1].tv_sec = 0;
  times[1].tv_nsec = UTIME_OMIT;
  return fs->Utimens(path, times);
}

Result<bool> PathExists(Filesystem* fs, const std::string& path) {
  auto st = fs->Stat(path, false);
  if (st.ok()) return true;
  if (st.status().IsNotFound()) return false;
  return st.status();
}

}  // namespace pbskit
