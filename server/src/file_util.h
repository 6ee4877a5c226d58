// Small private file helpers for the server's configuration files.
#pragma once

#include <string>
#include <sys/types.h>

#include "pbskit/formats/status.h"

namespace pbskit::server {

// Reads a whole file. NotFound when it does not exist, IoError otherwise.
Result<std::string> ReadFileText(const std::string& path);

// Writes `data` to `path` atomically: "<path>.tmp_<pid>" + fsync + rename, with `mode`.
// IoError naming the file on failure; the temporary file is removed then.
Status ReplaceFile(const std::string& path, const std::string& data, mode_t mode);

// Creates `dir` and missing parents with mode 0700 (existing directories are kept).
Status EnsureDirectory(const std::string& dir);

// Exclusive advisory lock on `path` (created if missing), held until the object dies.
class FileLock {
 public:
  static Result<FileLock> Acquire(const std::string& path);
  FileLock(FileLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  FileLock& operator=(FileLock&&) = delete;
  FileLock(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace pbskit::server
