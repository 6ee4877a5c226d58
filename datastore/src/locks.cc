// Group / snapshot / manifest locks in PBS's new (lock files under /run) and old (directory
// flock) schemes.
#include "pbskit/datastore/locks.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/hex.h"

namespace pbskit {
namespace {

std::mutex& RootMutex() {
  static std::mutex mu;
  return mu;
}
std::string& RootOverride() {
  static auto* s = new std::string();
  return *s;
}

std::string Quoted(const std::string& path) { return "\"" + path + "\""; }

}  // namespace

std::string LockRoot() {
  {
    std::lock_guard<std::mutex> l(RootMutex());
    if (!RootOverride().empty()) return RootOverride();
  }
  const char* env = std::getenv("PBSKIT_LOCK_ROOT");
  if (env && *env) return env;
  return kDefaultLockRoot;
}

void SetLockRootForTesting(const std::string& root) {
  std::lock_guard<std::mutex> l(RootMutex());
  RootOverride() = root;
}

bool OldLockingActive() {
  std::string root = LockRoot();
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  std::string flag = DirName(root) + "/old-locking";
  return ::access(flag.c_str(), F_OK) == 0;
}

std::string LockFileRelativePath(const BackupNamespace& ns, std::string_view rpath) {
  std::string prefix = ns.LockPrefix();
  std::string enc = SystemdEscapePath(rpath);
  if (enc.size() < 255) return prefix.empty() ? enc : prefix + "/" + enc;
  Digest hash = Sha256(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(rpath.data()),
                                                rpath.size()));
  std::string name =
      enc.substr(0, 80) + "..." + enc.substr(enc.size() - 80) + "-" + ToHex(hash);
  return (prefix.empty() ? std::string("hashed/") : prefix + "/hashed/") + name;
}

std::string DatastoreLocks::StoreRoot() const { return LockRoot() + "/" + store_; }

std::string DatastoreLocks::GroupLockPath(const BackupNamespace& ns, const BackupGroup& g) const {
  return StoreRoot() + "/" + LockFileRelativePath(ns, g.ToString());
}

std::string DatastoreLocks::SnapshotLockPath(const BackupNamespace& ns, const BackupDir& d) const {
  return StoreRoot() + "/" + LockFileRelativePath(ns, d.ToString());
}

std::string DatastoreLocks::ManifestLockPath(const BackupNamespace& ns, const BackupDir& d) const {
  return StoreRoot() + "/" + LockFileRelativePath(ns, d.ToString() + "/" + kManifestLockName);
}

std::string DatastoreLocks::OldManifestLockPath(const BackupNamespace& ns,
                                                const BackupDir& d) const {
  std::string rel = ns.IsRoot() ? d.ToString() : ns.Path() + "/" + d.ToString();
  return StoreRoot() + "/" + rel + "/" + d.TimeString() + kManifestLockName;
}

Result<LockGuardPtr> DatastoreLocks::LockFile(const std::string& path, LockMode mode,
                                              int timeout_ms, const std::string& what) const {
  auto fail = [&](const Status& st) {
    return Status(st.code(), "unable to acquire " + what + " " + Quoted(path) + " - " +
                                 st.message());
  };
  Status st = MkdirAll(fs_, DirName(path), 0755);
  if (!st.ok()) return fail(st);
  auto fd = fs_->Open(path, O_RDWR | O_APPEND | O_CREAT, 0660);
  if (!fd.ok()) return fail(fd.status());
  ScopedFd guard(fs_, *fd);
  (void)fs_->Chmod(path, 0660);  // PBS creates lock files 0660 regardless of the umask
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    st = fs_->Flock(guard.get(), mode, true);
    if (st.ok()) break;
    if (!st.IsBusy() || std::chrono::steady_clock::now() >= deadline) {
      if (st.IsBusy()) {
        return Status::Busy("unable to acquire " + what + " " + Quoted(path) +
                            " - Resource temporarily unavailable (held by another operation)");
      }
      return fail(st);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // The holder of a lock may delete the file (snapshot/group removal); a lock on an unlinked
  // inode protects nothing, so re-check that the path still names our inode.
  auto mine = fs_->FStat(guard.get());
  auto now = fs_->Stat(path, true);
  if (!mine.ok() || !now.ok() || mine->st_ino != now->st_ino || mine->st_dev != now->st_dev) {
    return Status::Busy("could not acquire lock, another thread modified the lock file " +
                        Quoted(path));
  }
  return std::make_unique<BackupLockGuard>(fs_, guard.release(), path);
}

Result<LockGuardPtr> DatastoreLocks::LockDir(const std::string& dir, LockMode mode,
                                             const std::string& what,
                                             const std::string& why) const {
  auto fd = fs_->Open(dir, O_RDONLY | O_DIRECTORY);
  if (!fd.ok()) {
    return Status(fd.status().code(), "unable to open " + what + " directory " + Quoted(dir) +
                                          " for locking - " + fd.status().message());
  }
  ScopedFd guard(fs_, *fd);
  Status st = fs_->Flock(guard.get(), mode, true);
  if (!st.ok()) {
    return Status(st.code(), "unable to acquire lock on " + what + " directory " + Quoted(dir) +
                                 " - " + (st.IsBusy() ? why : st.message()));
  }
  return std::make_unique<BackupLockGuard>(fs_, guard.release(), dir);
}

namespace {
std::string GroupDir(const std::string& base, const BackupNamespace& ns, const BackupGroup& g) {
  std::string p = base;
  if (!ns.IsRoot()) p += "/" + ns.Path();
  return p + "/" + g.ToString();
}
}  // namespace

Result<LockGuardPtr> DatastoreLocks::LockGroup(const BackupNamespace& ns,
                                               const BackupGroup& g) const {
  if (OldLockingActive()) {
    return LockDir(GroupDir(base_, ns, g), LockMode::kExclusive, "backup group",
                   "possible runing backup, group is in use");
  }
  return LockFile(GroupLockPath(ns, g), LockMode::kExclusive, 0, "backup group lock");
}

Result<LockGuardPtr> DatastoreLocks::LockSnapshot(const BackupNamespace& ns,
                                                  const BackupDir& d) const {
  if (OldLockingActive()) {
    return LockDir(GroupDir(base_, ns, d.group) + "/" + d.TimeString(), LockMode::kExclusive,
                   "snapshot", "backup is running or snapshot is in use");
  }
  return LockFile(SnapshotLockPath(ns, d), LockMode::kExclusive, 0, "snapshot lock");
}

Result<LockGuardPtr> DatastoreLocks::LockSnapshotShared(const BackupNamespace& ns,
                                                        const BackupDir& d) const {
  if (OldLockingActive()) {
    return LockDir(GroupDir(base_, ns, d.group) + "/" + d.TimeString(), LockMode::kShared,
                   "snapshot",
                   "backup is running or snapshot is in use, could not acquire shared lock");
  }
  return LockFile(SnapshotLockPath(ns, d), LockMode::kShared, 0, "shared snapshot lock");
}

Result<LockGuardPtr> DatastoreLocks::LockManifest(const BackupNamespace& ns,
                                                  const BackupDir& d) const {
  std::string path = OldLockingActive() ? OldManifestLockPath(ns, d) : ManifestLockPath(ns, d);
  return LockFile(path, LockMode::kExclusive, 5000, "manifest lock");
}

void DatastoreLocks::RemoveSnapshotLockFiles(const BackupNamespace& ns, const BackupDir& d) const {
  if (OldLockingActive()) return;
  (void)fs_->Unlink(ManifestLockPath(ns, d));
  (void)fs_->Unlink(SnapshotLockPath(ns, d));
}

void DatastoreLocks::RemoveGroupLockFile(const BackupNamespace& ns, const BackupGroup& g) const {
  if (OldLockingActive()) return;
  (void)fs_->Unlink(GroupLockPath(ns, g));
}

}  // namespace pbskit
