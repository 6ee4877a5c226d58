// FaultFilesystem: error and crash injection plus a simple durability model for crash tests.
#include "pbskit/datastore/fault_fs.h"

#include <cstring>

#include <fmt/format.h>

namespace pbskit {

const char* FsOpName(FsOp op) {
  switch (op) {
    case FsOp::kAny: return "any";
    case FsOp::kOpen: return "open";
    case FsOp::kWrite: return "write";
    case FsOp::kFsync: return "fsync";
    case FsOp::kRename: return "rename";
    case FsOp::kUnlink: return "unlink";
    case FsOp::kMkdir: return "mkdir";
    case FsOp::kRmdir: return "rmdir";
    case FsOp::kUtimens: return "utimens";
    case FsOp::kSyncFs: return "syncfs";
    case FsOp::kChmod: return "chmod";
    case FsOp::kRead: return "read";
    case FsOp::kCount_: break;
  }
  return "?";
}

FaultFilesystem::FaultFilesystem(Filesystem* base) : base_(base) {}
FaultFilesystem::~FaultFilesystem() = default;

void FaultFilesystem::FailNth(FsOp op, uint64_t n, int err) {
  std::lock_guard<std::mutex> l(mu_);
  rules_.push_back(Rule{op, counts_[static_cast<int>(op)] + n, err, false, false});
}

void FaultFilesystem::CrashAtNth(FsOp op, uint64_t n, bool torn_write) {
  std::lock_guard<std::mutex> l(mu_);
  rules_.push_back(Rule{op, counts_[static_cast<int>(op)] + n, 0, true, torn_write});
}

bool FaultFilesystem::crashed() const {
  std::lock_guard<std::mutex> l(mu_);
  return crashed_;
}

void FaultFilesystem::Reset() {
  std::lock_guard<std::mutex> l(mu_);
  rules_.clear();
  crashed_ = false;
  for (auto& c : counts_) c = 0;
}

uint64_t FaultFilesystem::CallCount(FsOp op) const {
  std::lock_guard<std::mutex> l(mu_);
  return counts_[static_cast<int>(op)];
}

Status FaultFilesystem::Before(FsOp op, const std::string& what, bool* torn) {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t any = ++counts_[static_cast<int>(FsOp::kAny)];
  uint64_t mine = ++counts_[static_cast<int>(op)];
  if (crashed_) {
    if (op == FsOp::kRead) return Status::OK();
    return Status::Aborted(fmt::format("simulated crash: {} {} after the crash point",
                                       FsOpName(op), what));
  }
  for (auto it = rules_.begin(); it != rules_.end(); ++it) {
    bool hit = (it->op == FsOp::kAny && it->at == any) || (it->op == op && it->at == mine);
    if (!hit) continue;
    Rule r = *it;
    rules_.erase(it);
    if (r.crash) {
      crashed_ = true;
      if (torn) *torn = r.torn;
      return Status::Aborted(fmt::format("simulated crash at {} #{} ({})", FsOpName(op),
                                         r.op == FsOp::kAny ? any : mine, what));
    }
    std::string msg = fmt::format("injected error: {} {}: {}", FsOpName(op), what,
                                  std::strerror(r.err));
    if (r.err == ENOENT) return Status::NotFound(msg);
    return Status::IoError(msg);
  }
  return Status::OK();
}

void FaultFilesystem::MarkDirty(int fd) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = fd_paths_.find(fd);
  if (it != fd_paths_.end()) files_[it->second].dirty = true;
}

Result<int> FaultFilesystem::Open(const std::string& path, int flags, mode_t mode) {
  PBSKIT_RETURN_IF_ERROR(Before(FsOp::kOpen, path));
  bool existed = true;
  if (flags & O_CREAT) {
    struct stat st;
    existed = ::lstat(path.c_str(), &st) == 0;
  }
  PBSKIT_ASSIGN_OR_RETURN(int fd, base_->Open(path, flags, mode));
  if ((flags & O_ACCMODE) != O_RDONLY) {
    std::lock_guard<std::mutex> l(mu_);
    fd_paths_[fd] = path;
    auto [it, inserted] = files_.try_emplace(path);
    if (inserted && existed) {
      struct stat st;
      if (::fstat(fd, &st) == 0) it->second.durable_size = static_cast<uint64_t>(st.st_size);
    }
    if (!existed || (flags & O_TRUNC)) it->second.dirty = true;
  }
  return fd;
}

Status FaultFilesystem::Close(int fd) {
  {
    std::lock_guard<std::mutex> l(mu_);
    fd_paths_.erase(fd);
  }
  return base_->Close(fd);
}

Result<size_t> FaultFilesystem::PRead(int fd, void* buf, size_t n, uint64_t off) {
  PBSKIT_RETURN_IF_ERROR(Before(FsOp::kRead, "pread"));
  return base_->PRead(fd, buf, n, off);
}

Status FaultFilesystem::PWriteAll(int fd, const void* buf, size_t n, uint64_t off) {
  bool torn = false;
  Status st = Before(FsOp::kWrite, "pwrite", &torn);
  if (!st.ok()) {
    if (torn && n / 2 > 0) {
      MarkDirty(fd);
      (void)base_->PWriteAll(fd, buf, n / 2, off);
    }
    return st;
  }
  MarkDirty(fd);
  return base_->PWriteAll(fd, buf, n, off);
}

Status FaultFilesystem::Fsync(int fd) {
  PBSKIT_RETURN_IF_ERROR(Before(FsOp::kFsync, "fsync"));
  PBSKIT_RETURN_IF_ERROR(base_->Fsync(fd));
  std::lock_guard<std::mutex> l(mu_);
  auto it = fd_paths_.find(fd);
  if (it != fd_paths_.end()) {
    struct stat st;
    auto& f = files_[it->second];
    if (::fstat(fd, &st) == 0) f.durable_size = static_cast<uint64_t>(st.st_size);
    f.dirty = false;
  }
  return Status::OK();
}

Status FaultFilesystem::Ftruncate(int fd, uint64_t size) {
  PBSKIT_RETURN_IF_ERROR(Before(FsOp::kWrite, "ftruncate"));
  MarkDirty(fd);
  return base_->Ftruncate(fd, size);
}

Status FaultFilesystem::Rename(const std::string& from, const std::string& to) {
  PBSKIT_RETURN_IF_ERROR(Before(FsOp::kRename, from + " -> " + to));
  PBSKIT_RETURN_IF_ERROR(base_->Rename(from, to));
  std::lock_guard<std::mutex> l(mu_);
  auto it = files_.find(from);
  if (it != files_.end()) {
    files_[to] = it->second;
    files_.erase(from);
  } else {
    files_.erase(to);
  }
  for (auto& [fd, p] : fd_paths_) {
    if (p == from) p = to;
  }
  pending_renames_.push_back(PendingRename{from, to});
  return Status::OK();
}

Status FaultFilesystem::Unlink(const std::string& path) {
  PBSKIT_RETURN_IF_ERROR(Before(FsOp::kUnlink, path));
  PBSKIT_RETURN_IF_ERROR(base_->Unlink(path));
  std::lock_guard<std::mutex> l(mu_);
  files_.erase(path);
  return Status::OK();
}

Status FaultFilesystem::Mkdir(const std::string& path, mode_t mode) {
  PBSKIT_RETURN_IF_ERROR(Before(FsOp::kMkdir, path));
  return base_->Mkdir(path, mode);
}

Status FaultFilesystem::Rmdir(const std::string& path) {
  PBSKIT_RETURN_IF_ERROR(Before(FsOp::kRmdir, path));
  return base_->Rmdir(path);
}

Result<struct stat> FaultFilesystem::Stat(const std::string& path, bool follow) {
  PBSKIT_RETURN_IF_ERROR(Before(FsOp::kRead, path));
  return base_->Stat(path, follow);
}

Result<struct stat> FaultFilesystem::FStat(int fd) {
  PBSKIT_RETURN_IF_ERROR(Before(FsOp::kRead, "fstat"));
  return base_->FStat(fd);
}

Status FaultFilesystem::Utimens(const std::string& path, const struct timespec times[2]) {
  PBSKIT_RETURN_IF_ERROR(Before(FsOp::kUtimens, path));
  return base_->Utimens(path, times);
}

Status FaultFilesystem::ReadDir(const std::string& path, std::vector<DirEntry>* out) {
  PBSKIT_RETURN_IF_ERROR(Before(FsOp::kRead, path));
  return base_->ReadDir(path, out);
}

Status FaultFilesystem::SyncFs(int fd) {
  PBSKIT_RETURN_IF_ERROR(Before(FsOp::kSyncFs, "syncfs"));
  PBSKIT_RETURN_IF_ERROR(base_->SyncFs(fd));
  std::lock_guard<std::mutex> l(mu_);
  // Everything written so far is durable now.
  for (auto& [path, f] : files_) {
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0) f.durable_size = static_cast<uint64_t>(st.st_size);
    f.dirty = false;
  }
  pending_renames_.clear();
  return Status::OK();
}

Result<int> FaultFilesystem::MkTemp(std::string* path_template, mode_t mode) {
  PBSKIT_RETURN_IF_ERROR(Before(FsOp::kOpen, *path_template));
  PBSKIT_ASSIGN_OR_RETURN(int fd, base_->MkTemp(path_template, mode));
  std::lock_guard<std::mutex> l(mu_);
  fd_paths_[fd] = *path_template;
  FileState& f = files_[*path_template];
  f.durable_size = 0;
  f.dirty = true;
  return fd;
}

Status FaultFilesystem::Flock(int fd, LockMode mode, bool nonblock) {
  return base_->Flock(fd, mode, nonblock);
}
Status FaultFilesystem::FcntlLock(int fd, LockMode mode) { return base_->FcntlLock(fd, mode); }
Status FaultFilesystem::FcntlUnlock(int fd) { return base_->FcntlUnlock(fd); }

Status FaultFilesystem::Chmod(const std::string& path, mode_t mode) {
  PBSKIT_RETURN_IF_ERROR(Before(FsOp::kChmod, path));
  return base_->Chmod(path, mode);
}

Status FaultFilesystem::FsyncDir(const std::string& dir) {
  PBSKIT_RETURN_IF_ERROR(Before(FsOp::kFsync, "fsync dir " + dir));
  PBSKIT_RETURN_IF_ERROR(base_->FsyncDir(dir));
  std::lock_guard<std::mutex> l(mu_);
  std::string prefix = dir + "/";
  std::vector<PendingRename> keep;
  for (auto& r : pending_renames_) {
    if (r.to.compare(0, prefix.size(), prefix) != 0 ||
        r.to.find('/', prefix.size()) != std::string::npos) {
      keep.push_back(r);
    }
  }
  pending_renames_ = std::move(keep);
  return Status::OK();
}

Status FaultFilesystem::DropUnsyncedData() {
  std::lock_guard<std::mutex> l(mu_);
  // Undo un-synced renames newest first (only where the source name is free again, as a
  // journaling filesystem would show the old directory entry).
  for (auto it = pending_renames_.rbegin(); it != pending_renames_.rend(); ++it) {
    struct stat st;
    if (::lstat(it->to.c_str(), &st) != 0 || ::lstat(it->from.c_str(), &st) == 0) continue;
    if (::rename(it->to.c_str(), it->from.c_str()) != 0) {
      return Status::FromErrno(errno, "undo rename " + it->to);
    }
    auto f = files_.find(it->to);
    if (f != files_.end()) {
      files_[it->from] = f->second;
      files_.erase(it->to);
    }
  }
  pending_renames_.clear();
  for (auto& [path, f] : files_) {
    if (!f.dirty) continue;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) continue;  // already gone
    if (static_cast<uint64_t>(st.st_size) > f.durable_size || f.durable_size == 0) {
      if (::truncate(path.c_str(), static_cast<off_t>(f.durable_size)) != 0) {
        return Status::FromErrno(errno, "truncate " + path);
      }
    }
    f.dirty = false;
  }
  return Status::OK();
}

}  // namespace pbskit
