// The filesystem interface all datastore I/O goes through.
//
// PosixFilesystem() is the real thing; FaultFilesystem (fault_fs.h) wraps it to inject errors and
// simulated crashes in tests. Every method maps 1:1 to a POSIX call and returns IoError (message
// "<call> <path>: <strerror>") on failure, NotFound for ENOENT, AlreadyExists for EEXIST and
// Busy for a lock held elsewhere. Implementations are thread safe.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/formats/status.h"

namespace pbskit {

// How hard writes are pushed to stable storage (datastore.cfg tuning `sync-level`).
//   kNone        no fsync at all
//   kFile        fsync every file and its directory after writing it
//   kFilesystem  syncfs() at the end of a backup (PBS default since 2.3.0)
enum class SyncLevel { kNone, kFile, kFilesystem };
const char* SyncLevelName(SyncLevel level);  // "none" | "file" | "filesystem"
Result<SyncLevel> ParseSyncLevel(std::string_view text);

struct DirEntry {
  std::string name;
  unsigned char type = DT_UNKNOWN;  // d_type (DT_REG, DT_DIR, DT_LNK, DT_UNKNOWN ...)
  uint64_t ino = 0;                 // d_ino
};

enum class LockMode { kShared, kExclusive };

class Filesystem {
 public:
  virtual ~Filesystem();

  // open(2). Returns the fd (O_CLOEXEC is always added). NotFound / AlreadyExists / IoError.
  virtual Result<int> Open(const std::string& path, int flags, mode_t mode = 0644) = 0;
  virtual Status Close(int fd) = 0;
  // pread(2) until `n` bytes or EOF; returns the number of bytes read (< n only at EOF).
  virtual Result<size_t> PRead(int fd, void* buf, size_t n, uint64_t off) = 0;
  // pwrite(2) until all `n` bytes are written.
  virtual Status PWriteAll(int fd, const void* buf, size_t n, uint64_t off) = 0;
  virtual Status Fsync(int fd) = 0;
  virtual Status Ftruncate(int fd, uint64_t size) = 0;
  // rename(2): atomically replaces `to`.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Unlink(const std::string& path) = 0;
  virtual Status Mkdir(const std::string& path, mode_t mode) = 0;
  virtual Status Rmdir(const std::string& path) = 0;
  // stat(2) when follow, else lstat(2).
  virtual Result<struct stat> Stat(const std::string& path, bool follow = false) = 0;
  virtual Result<struct stat> FStat(int fd) = 0;
  // utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW).
  virtual Status Utimens(const std::string& path, const struct timespec times[2]) = 0;
  // All entries except "." and ".." (unsorted). NotFound if the directory does not exist.
  virtual Status ReadDir(const std::string& path, std::vector<DirEntry>* out) = 0;
  // syncfs(2) on the filesystem holding fd.
  virtual Status SyncFs(int fd) = 0;
  // mkstemp(3)-like: `path_template` ends in "XXXXXX" which is replaced; the file is created
  // O_RDWR|O_CREAT|O_EXCL with `mode`. Returns the fd; *path_template holds the real name.
  virtual Result<int> MkTemp(std::string* path_template, mode_t mode) = 0;
  // flock(2) on fd. nonblock: Busy when held elsewhere.
  virtual Status Flock(int fd, LockMode mode, bool nonblock) = 0;
  // fcntl(F_SETLK) whole-file record lock (F_RDLCK / F_WRLCK); Busy when held by another
  // process. Remember: fcntl locks are per process and vanish when ANY fd of the file closes.
  virtual Status FcntlLock(int fd, LockMode mode) = 0;
  virtual Status FcntlUnlock(int fd) = 0;
  virtual Status Chmod(const std::string& path, mode_t mode) = 0;

  // Opens `dir` O_RDONLY|O_DIRECTORY, fsyncs and closes it.
  virtual Status FsyncDir(const std::string& dir);
};

// The process-wide POSIX implementation (never deleted).
Filesystem* PosixFilesystem();

// Owns an fd opened through a Filesystem; closes it on destruction (errors ignored there).
class ScopedFd {
 public:
  ScopedFd() = default;
  ScopedFd(Filesystem* fs, int fd) : fs_(fs), fd_(fd) {}
  ~ScopedFd() { Reset(); }
  ScopedFd(ScopedFd&& o) noexcept : fs_(o.fs_), fd_(o.fd_) { o.fd_ = -1; }
  ScopedFd& operator=(ScopedFd&& o) noexcept;
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { int f = fd_; fd_ = -1; return f; }
  // Closes now and reports the close error.
  Status Close();
  void Reset();

 private:
  Filesystem* fs_ = nullptr;
  int fd_ = -1;
};

// Directory part of `path` ("." when there is none) and last component.
std::string DirName(const std::string& path);
std::string BaseName(const std::string& path);
// "a" + "/" + "b" without doubling slashes; an empty side yields the other.
std::string JoinPath(const std::string& a, const std::string& b);

// Reads a whole file. NotFound when missing, IoError otherwise.
Result<std::vector<uint8_t>> ReadWholeFile(Filesystem* fs, const std::string& path);
Result<std::string> ReadWholeFileText(Filesystem* fs, const std::string& path);

// Writes `data` to "<path>.tmp_XXXXXX" in the same directory, fsyncs it (kFile and
// kFilesystem), renames it over `path` and (kFile) fsyncs the directory. Never leaves a partial
// file under `path`; the temp file is removed on failure. The file gets `mode`.
Status WriteFileAtomic(Filesystem* fs, const std::string& path, std::span<const uint8_t> data,
                       SyncLevel level, mode_t mode = 0644);
Status WriteFileAtomic(Filesystem* fs, const std::string& path, std::string_view text,
                       SyncLevel level, mode_t mode = 0644);
// Creates `path` with O_CREAT|O_EXCL and writes `data` (fsync per level). AlreadyExists when
// the file is there. A partial file can remain only if the process dies in the middle.
Status CreateFileExclusive(Filesystem* fs, const std::string& path, std::span<const uint8_t> data,
                           SyncLevel level, mode_t mode = 0644);
// mkdir -p. Existing directories are fine; an existing non-directory is AlreadyExists.
Status MkdirAll(Filesystem* fs, const std::string& path, mode_t mode = 0755);
// rm -r of `path` (a file or a directory tree). NotFound when `path` does not exist.
Status RemoveTree(Filesystem* fs, const std::string& path);
// Sets atime = now, keeps mtime (utimensat {UTIME_NOW, UTIME_OMIT}, no symlink follow).
Status TouchAtime(Filesystem* fs, const std::string& path);
// True when path exists (lstat). IoError for errors other than ENOENT.
Result<bool> PathExists(Filesystem* fs, const std::string& path);

}  // namespace pbskit
