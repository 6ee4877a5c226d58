// A fault-injecting Filesystem for crash and error-path tests.
//
// It forwards every call to a base Filesystem (normally PosixFilesystem()) and counts calls per
// operation kind. Tests can
//   * make the Nth call of a kind fail once with an errno (FailNth),
//   * simulate a process crash at the Nth call of a kind (CrashAtNth): that call and every later
//     mutating call fail with Aborted("simulated crash ..."); a crashing PWriteAll can first
//     write a prefix of its data, so a torn write is left on disk,
//   * simulate power loss (DropUnsyncedData): every file written through this object since its
//     last fsync (or syncfs) is truncated to the size it had when it was last made durable, and
//     renames whose directory was not fsynced since are undone where possible.
// A typical crash test runs an operation once unfaulted to learn CallCount(kAny), then reruns it
// on a fresh copy for each n in 1..count with CrashAtNth(kAny, n) and checks the invariants.
// All methods are thread safe.
#pragma once

#include <cerrno>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "pbskit/datastore/fs.h"

namespace pbskit {

enum class FsOp {
  kAny = 0,  // counts every call below
  kOpen,     // Open and MkTemp
  kWrite,    // PWriteAll and Ftruncate
  kFsync,    // Fsync and FsyncDir
  kRename,
  kUnlink,
  kMkdir,
  kRmdir,
  kUtimens,
  kSyncFs,
  kChmod,
  kRead,     // PRead, ReadDir, Stat, FStat (never "mutating": allowed after a crash)
  kCount_,
};
const char* FsOpName(FsOp op);

class FaultFilesystem : public Filesystem {
 public:
  explicit FaultFilesystem(Filesystem* base = PosixFilesystem());
  ~FaultFilesystem() override;

  // The `n`th (1-based, counted from now) call of kind `op` fails once with `err`
  // (returned as IoError, or NotFound for ENOENT). Several rules may be armed.
  void FailNth(FsOp op, uint64_t n, int err = EIO);
  // The `n`th (1-based, counted from now) call of kind `op` simulates a crash: it and all later
  // mutating calls fail with Aborted. With torn_write, a crashing PWriteAll first writes
  // half of its bytes (rounded down).
  void CrashAtNth(FsOp op, uint64_t n, bool torn_write = false);
  bool crashed() const;
  // Forget all rules, the crash state and the counters (not the durability tracking).
  void Reset();
  // Number of calls of kind `op` since construction or the last Reset().
  uint64_t CallCount(FsOp op) const;

  // Simulates power loss: undoes everything not made durable (see the file comment). Call it
  // after the operation under test has returned (and its fds are closed).
  Status DropUnsyncedData();

  Result<int> Open(const std::string& path, int flags, mode_t mode = 0644) override;
  Status Close(int fd) override;
  Result<size_t> PRead(int fd, void* buf, size_t n, uint64_t off) override;
  Status PWriteAll(int fd, const void* buf, size_t n, uint64_t off) override;
  Status Fsync(int fd) override;
  Status Ftruncate(int fd, uint64_t size) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Unlink(const std::string& path) override;
  Status Mkdir(const std::string& path, mode_t mode) override;
  Status Rmdir(const std::string& path) override;
  Result<struct stat> Stat(const std::string& path, bool follow = false) override;
  Result<struct stat> FStat(int fd) override;
  Status Utimens(const std::string& path, const struct timespec times[2]) override;
  Status ReadDir(const std::string& path, std::vector<DirEntry>* out) override;
  Status SyncFs(int fd) override;
  Result<int> MkTemp(std::string* path_template, mode_t mode) override;
  Status Flock(int fd, LockMode mode, bool nonblock) override;
  Status FcntlLock(int fd, LockMode mode) override;
  Status FcntlUnlock(int fd) override;
  Status Chmod(const std::string& path, mode_t mode) override;
  Status FsyncDir(const std::string& dir) override;

 private:
  struct Rule {
    FsOp op;
    uint64_t at;  // absolute call number of that kind
    int err;
    bool crash;
    bool torn;
  };
  // Durability record of a file written through this object.
  struct FileState {
    uint64_t durable_size = 0;  // size at last fsync (0 when created here and never synced)
    bool dirty = false;
  };
  struct PendingRename {
    std::string from, to;
  };

  // Counts the call; returns non-OK when it must fail. *torn is set for a torn crash.
  Status Before(FsOp op, const std::string& what, bool* torn = nullptr);
  void MarkDirty(int fd);

  Filesystem* base_;
  mutable std::mutex mu_;
  uint64_t counts_[static_cast<int>(FsOp::kCount_)] = {};
  std::vector<Rule> rules_;
  bool crashed_ = false;
  std::map<int, std::string> fd_paths_;        // open fds -> path at open time
  std::map<std::string, FileState> files_;     // path -> durability state
  std::vector<PendingRename> pending_renames_; // renames not yet covered by a dir fsync
};

}  // namespace pbskit
