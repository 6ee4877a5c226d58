// Group, snapshot and manifest locks, interoperable with PBS (FORMATS.md §8.7).
//
// New scheme (PBS >= 3.3.5): flock(2) on lock files below
//   <lock root>/<store>/<ns components joined by ':'>/<systemd-escaped rpath>
// (lock root default /run/proxmox-backup/locks). Escaped names of 255 bytes or more go to
//   <ns prefix>/hashed/<first 80>...<last 80>-<sha256 hex of rpath>.
// Lock files are created 0660 and opened O_RDWR|O_APPEND; after locking, the holder re-stats the
// path and fails if its inode differs from the locked fd (the file was removed and recreated).
//
// Old scheme (PBS < 3.3.5, active while "<parent of lock root>/old-locking" exists): flock on the
// group / snapshot directory itself; the manifest lock is
//   <lock root>/<store>/<ns path>/<type>/<id>/<time>/<time>.index.json.lck.
//
// The lock root comes from SetLockRootForTesting(), else env PBSKIT_LOCK_ROOT, else the PBS
// default. Guards release on destruction; they may be moved between threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "pbskit/datastore/fs.h"
#include "pbskit/formats/names.h"
#include "pbskit/formats/status.h"

namespace pbskit {

inline constexpr char kDefaultLockRoot[] = "/run/proxmox-backup/locks";
inline constexpr char kManifestLockName[] = ".index.json.lck";

// The lock root in effect (see the file comment).
std::string LockRoot();
// Overrides the lock root for this process ("" restores env/default). Not thread safe with
// concurrent lock operations; call it in test setup.
void SetLockRootForTesting(const std::string& root);
// True when the old (directory flock) scheme is active: "<dirname(LockRoot())>/old-locking"
// exists.
bool OldLockingActive();

// lock_file_path_helper: the lock file path relative to <lock root>/<store> for namespace `ns`
// and the datastore-relative path `rpath` below it ("vm/100", "vm/100/<time>",
// "vm/100/<time>/.index.json.lck").
std::string LockFileRelativePath(const BackupNamespace& ns, std::string_view rpath);

// A held flock. Releases (closes the fd) on destruction.
class BackupLockGuard {
 public:
  BackupLockGuard(Filesystem* fs, int fd, std::string path)
      : fd_(fs, fd), path_(std::move(path)) {}
  const std::string& path() const { return path_; }

 private:
  ScopedFd fd_;
  std::string path_;
};
using LockGuardPtr = std::unique_ptr<BackupLockGuard>;

// Lock operations for one datastore. Cheap to copy; thread safe.
class DatastoreLocks {
 public:
  DatastoreLocks(std::string store_name, std::string base, Filesystem* fs)
      : store_(std::move(store_name)), base_(std::move(base)), fs_(fs) {}

  // Absolute lock-file paths of the new scheme.
  std::string GroupLockPath(const BackupNamespace& ns, const BackupGroup& g) const;
  std::string SnapshotLockPath(const BackupNamespace& ns, const BackupDir& d) const;
  std::string ManifestLockPath(const BackupNamespace& ns, const BackupDir& d) const;
  // Old-scheme manifest lock path.
  std::string OldManifestLockPath(const BackupNamespace& ns, const BackupDir& d) const;

  // Exclusive, non-blocking. Busy "unable to acquire backup group lock "<path>" ..." when held;
  // NotFound when (old scheme) the group directory is missing; IoError otherwise.
  Result<LockGuardPtr> LockGroup(const BackupNamespace& ns, const BackupGroup& g) const;
  // Exclusive (writers, prune, protect, forget), non-blocking; Busy when held.
  Result<LockGuardPtr> LockSnapshot(const BackupNamespace& ns, const BackupDir& d) const;
  // Shared (readers, verify), non-blocking; Busy when held exclusively.
  Result<LockGuardPtr> LockSnapshotShared(const BackupNamespace& ns, const BackupDir& d) const;
  // Exclusive, waits up to 5 s; Busy "unable to acquire manifest lock ..." after that.
  Result<LockGuardPtr> LockManifest(const BackupNamespace& ns, const BackupDir& d) const;

  // Best-effort removal of the lock files of a removed snapshot / group (new scheme only).
  void RemoveSnapshotLockFiles(const BackupNamespace& ns, const BackupDir& d) const;
  void RemoveGroupLockFile(const BackupNamespace& ns, const BackupGroup& g) const;

  const std::string& store_name() const { return store_; }

 private:
  Result<LockGuardPtr> LockFile(const std::string& path, LockMode mode, int timeout_ms,
                                const std::string& what) const;
  Result<LockGuardPtr> LockDir(const std::string& dir, LockMode mode, const std::string& what,
                               const std::string& why) const;
  std::string StoreRoot() const;

  std::string store_;
  std::string base_;
  Filesystem* fs_;
};

}  // namespace pbskit
