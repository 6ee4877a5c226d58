// A PBS datastore: the chunk store plus the namespace / group / snapshot tree (FORMATS.md §1).
//
// Opening never writes anything: a datastore written by any PBS version (1.x without ns/, groups
// without owner, old lock files, unknown manifest keys) can be listed and read in place on a
// read-only filesystem. Writing operations take the PBS locks (locks.h) of the active scheme.
// All methods are thread safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "pbskit/datastore/chunk_store.h"
#include "pbskit/datastore/fs.h"
#include "pbskit/datastore/locks.h"
#include "pbskit/formats/dynamic_index.h"
#include "pbskit/formats/fixed_index.h"
#include "pbskit/formats/manifest.h"
#include "pbskit/formats/names.h"
#include "pbskit/formats/status.h"

namespace pbskit {

inline constexpr char kManifestBlobName[] = "index.json.blob";
inline constexpr char kClientLogBlobName[] = "client.log.blob";
inline constexpr char kProtectedMarker[] = ".protected";

struct SnapshotInfo {
  BackupDir dir;
  bool finished = false;      // index.json.blob present
  bool is_protected = false;  // .protected present
  // Regular files matching ^(.*\.([fd]idx|blob)|\.protected)$ except .protected, sorted.
  std::vector<std::string> files;
};

struct DataStoreOptions {
  SyncLevel sync_level = SyncLevel::kFilesystem;  // datastore.cfg tuning sync-level
};

class DataStore {
 public:
  // Opens the datastore at `path` (requires <path>/.chunks; NotFound otherwise). `name` is the
  // datastore name used for lock paths. Never writes.
  static Result<std::shared_ptr<DataStore>> Open(const std::string& path, const std::string& name,
                                                 Filesystem* fs = PosixFilesystem(),
                                                 DataStoreOptions options = {});
  // Creates a new datastore (ChunkStore::Create) and opens it. AlreadyExists if <path>/.chunks
  // exists; InvalidArgument for a bad name.
  static Result<std::shared_ptr<DataStore>> Create(const std::string& path,
                                                   const std::string& name,
                                                   Filesystem* fs = PosixFilesystem(),
                                                   DataStoreOptions options = {});

  ChunkStore& chunk_store() { return *chunks_; }
  const ChunkStore& chunk_store() const { return *chunks_; }
  const std::string& base() const { return base_; }
  const std::string& name() const { return name_; }
  SyncLevel sync_level() const { return options_.sync_level; }
  Filesystem* fs() const { return fs_; }
  const DatastoreLocks& locks() const { return locks_; }

  // ---- paths (no filesystem access) ----
  std::string NamespacePath(const BackupNamespace& ns) const;  // <base>[/ns/a/ns/b]
  std::string GroupPath(const BackupNamespace& ns, const BackupGroup& g) const;
  std::string SnapshotPath(const BackupNamespace& ns, const BackupDir& d) const;

  // ---- namespaces ----
  // Child namespaces of `parent` (recursive: all descendants, depth-first, parents before
  // children), sorted by name per level. The parent itself is included first when `recursive`
  // (as PBS's ListNamespacesRecursive does). NotFound if `parent` does not exist; InvalidArgument
  // if a directory name below ns/ is not a valid component.
  Result<std::vector<BackupNamespace>> ListNamespaces(const BackupNamespace& parent,
                                                      bool recursive) const;
  Result<bool> NamespaceExists(const BackupNamespace& ns) const;
  // Creates the namespace directory (its parent must exist: NotFound otherwise; AlreadyExists
  // when present).
  Status CreateNamespace(const BackupNamespace& ns);
  // Removes a namespace and its children. Without delete_groups, only empty namespaces go
  // (a namespace holding groups gives InvalidArgument "... is not empty"); with it, every group
  // is removed first (protected snapshots keep their groups and make this fail with
  // InvalidArgument). The root cannot be removed.
  Status RemoveNamespace(const BackupNamespace& ns, bool delete_groups);

  // ---- groups ----
  // Groups of `ns`, in PBS sort order. NotFound if `ns` does not exist.
  Result<std::vector<BackupGroup>> ListGroups(const BackupNamespace& ns) const;
  Result<bool> GroupExists(const BackupNamespace& ns, const BackupGroup& g) const;
  // Owner from the group's `owner` file (first line, trailing whitespace trimmed). NotFound if
  // the file is missing.
  Result<std::string> GetOwner(const BackupNamespace& ns, const BackupGroup& g) const;
  // Writes the owner file via tmp+rename. Without force, fails with AlreadyExists when an owner
  // is already set.
  Status SetOwner(const BackupNamespace& ns, const BackupGroup& g, const std::string& auth_id,
                  bool force);
  // Creates the group directory (parents as needed) under the group lock and writes the owner
  // with O_EXCL, like PBS create_locked_backup_group. Returns the current owner (the existing
  // one if the group already had one) and the still-held group lock.
  Result<std::pair<std::string, LockGuardPtr>> CreateLockedGroup(const BackupNamespace& ns,
                                                                 const BackupGroup& g,
                                                                 const std::string& auth_id);
  // Group notes ("" when no notes file).
  Result<std::string> GetGroupNotes(const BackupNamespace& ns, const BackupGroup& g) const;
  Status SetGroupNotes(const BackupNamespace& ns, const BackupGroup& g, const std::string& notes);
  // Removes every snapshot of the group (protected ones are kept and make the result
  // InvalidArgument "group ... has protected snapshots"), then the group if empty.
  Status RemoveGroup(const BackupNamespace& ns, const BackupGroup& g);

  // ---- snapshots ----
  // Snapshots of a group, oldest first. Directory names that are not backup times are ignored.
  // NotFound if the group does not exist.
  Result<std::vector<SnapshotInfo>> ListSnapshots(const BackupNamespace& ns,
                                                  const BackupGroup& g) const;
  Result<SnapshotInfo> GetSnapshotInfo(const BackupNamespace& ns, const BackupDir& d) const;
  // Newest finished snapshot of a group, if any.
  Result<std::optional<BackupDir>> LastFinishedSnapshot(const BackupNamespace& ns,
                                                        const BackupGroup& g) const;

  // Decodes index.json.blob (CRC checked). NotFound if missing; Corruption on a bad blob or
  // bad JSON; IoError on read errors.
  Result<Manifest> LoadManifest(const BackupNamespace& ns, const BackupDir& d) const;
  // Load-modify-replace of the manifest under the manifest lock. Only `unprotected` is handed
  // to fn; the signed part is never touched. Written via tmp+rename (fsync per sync level).
  Status UpdateManifestUnprotected(const BackupNamespace& ns, const BackupDir& d,
                                   const std::function<Status(boost::json::object&)>& fn);
  // Writes a new manifest blob for a snapshot (writer's final step). Caller holds the
  // snapshot lock.
  Status StoreManifest(const BackupNamespace& ns, const BackupDir& d, const Manifest& m);

  Result<bool> IsProtected(const BackupNamespace& ns, const BackupDir& d) const;
  // Creates / removes .protected under the snapshot lock. NotFound if the snapshot is missing.
  Status SetProtected(const BackupNamespace& ns, const BackupDir& d, bool is_protected);
  // Snapshot notes from unprotected.notes ("" when none).
  Result<std::string> GetSnapshotNotes(const BackupNamespace& ns, const BackupDir& d) const;
  Status SetSnapshotNotes(const BackupNamespace& ns, const BackupDir& d, const std::string& notes);

  // Removes a snapshot directory under the snapshot + manifest locks ("forget"). A protected
  // snapshot gives InvalidArgument "cannot remove protected snapshot" unless force. With the
  // new lock scheme an emptied group is removed too (owner, notes, directory).
  // NotFound if missing; Busy when locked.
  Status RemoveSnapshot(const BackupNamespace& ns, const BackupDir& d, bool force);
  // Like RemoveSnapshot, for a caller that already holds the snapshot lock (prune, writer
  // cleanup); takes only the manifest lock. Does not remove the group.
  Status RemoveSnapshotLocked(const BackupNamespace& ns, const BackupDir& d, bool force);

  // Raw bytes of a file inside a snapshot. InvalidArgument for a bad file name (CheckArchiveName
  // or client.log.blob / index.json.blob); NotFound if missing.
  Result<std::vector<uint8_t>> ReadSnapshotFile(const BackupNamespace& ns, const BackupDir& d,
                                                const std::string& filename) const;
  Result<FixedIndex> OpenFixedIndex(const BackupNamespace& ns, const BackupDir& d,
                                    const std::string& archive) const;
  Result<DynamicIndex> OpenDynamicIndex(const BackupNamespace& ns, const BackupDir& d,
                                        const std::string& archive) const;

  // ---- locks (see locks.h) ----
  Result<LockGuardPtr> LockGroup(const BackupNamespace& ns, const BackupGroup& g) const {
    return locks_.LockGroup(ns, g);
  }
  Result<LockGuardPtr> LockSnapshot(const BackupNamespace& ns, const BackupDir& d) const {
    return locks_.LockSnapshot(ns, d);
  }
  Result<LockGuardPtr> LockSnapshotShared(const BackupNamespace& ns, const BackupDir& d) const {
    return locks_.LockSnapshotShared(ns, d);
  }
  Result<LockGuardPtr> LockManifest(const BackupNamespace& ns, const BackupDir& d) const {
    return locks_.LockManifest(ns, d);
  }

 private:
  DataStore(std::string base, std::string name, Filesystem* fs, DataStoreOptions options,
            std::unique_ptr<ChunkStore> chunks);
  Status RemoveSnapshotDir(const BackupNamespace& ns, const BackupDir& d, bool force);
  Status RemoveGroupIfEmpty(const BackupNamespace& ns, const BackupGroup& g);

  std::string base_;
  std::string name_;
  Filesystem* fs_;
  DataStoreOptions options_;
  std::unique_ptr<ChunkStore> chunks_;
  DatastoreLocks locks_;
};

}  // namespace pbskit
