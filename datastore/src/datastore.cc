// DataStore: opening, paths, namespaces, groups (owner, notes) and snapshot listing.
// Manifest, protection and removal live in datastore_snapshot.cc.
#include "pbskit/datastore/datastore.h"

#include <algorithm>

#include <fmt/format.h>

namespace pbskit {
namespace {

bool IsDirEntry(Filesystem* fs, const std::string& parent, const DirEntry& e) {
  if (e.type == DT_DIR) return true;
  if (e.type != DT_UNKNOWN) return false;
  auto st = fs->Stat(parent + "/" + e.name, false);
  return st.ok() && S_ISDIR(st->st_mode);
}

bool IsRegEntry(Filesystem* fs, const std::string& parent, const DirEntry& e) {
  if (e.type == DT_REG) return true;
  if (e.type != DT_UNKNOWN) return false;
  auto st = fs->Stat(parent + "/" + e.name, false);
  return st.ok() && S_ISREG(st->st_mode);
}

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string TrimRight(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) {
    s.pop_back();
  }
  return s;
}

}  // namespace

DataStore::DataStore(std::string base, std::string name, Filesystem* fs, DataStoreOptions options,
                     std::unique_ptr<ChunkStore> chunks)
    : base_(std::move(base)),
      name_(std::move(name)),
      fs_(fs),
      options_(options),
      chunks_(std::move(chunks)),
      locks_(name_, base_, fs) {}

Result<std::shared_ptr<DataStore>> DataStore::Open(const std::string& path,
                                                   const std::string& name, Filesystem* fs,
                                                   DataStoreOptions options) {
  PBSKIT_ASSIGN_OR_RETURN(auto chunks, ChunkStore::Open(path, fs, options.sync_level));
  std::string base = chunks->base();
  return std::shared_ptr<DataStore>(
      new DataStore(base, name, fs, options, std::move(chunks)));
}

Result<std::shared_ptr<DataStore>> DataStore::Create(const std::string& path,
                                                     const std::string& name, Filesystem* fs,
                                                     DataStoreOptions options) {
  PBSKIT_RETURN_IF_ERROR(CheckDatastoreName(name));
  PBSKIT_ASSIGN_OR_RETURN(auto chunks, ChunkStore::Create(path, fs, options.sync_level));
  std::string base = chunks->base();
  return std::shared_ptr<DataStore>(
      new DataStore(base, name, fs, options, std::move(chunks)));
}

std::string DataStore::NamespacePath(const BackupNamespace& ns) const {
  return ns.IsRoot() ? base_ : base_ + "/" + ns.Path();
}

std::string DataStore::GroupPath(const BackupNamespace& ns, const BackupGroup& g) const {
  return NamespacePath(ns) + "/" + g.ToString();
}

std::string DataStore::SnapshotPath(const BackupNamespace& ns, const BackupDir& d) const {
  return GroupPath(ns, d.group) + "/" + d.TimeString();
}

// ---- namespaces ----

Result<bool> DataStore::NamespaceExists(const BackupNamespace& ns) const {
  auto st = fs_->Stat(NamespacePath(ns), true);
  if (st.ok()) return S_ISDIR(st->st_mode);
  if (st.status().IsNotFound()) return false;
  return st.status();
}

Result<std::vector<BackupNamespace>> DataStore::ListNamespaces(const BackupNamespace& parent,
                                                               bool recursive) const {
  PBSKIT_ASSIGN_OR_RETURN(bool exists, NamespaceExists(parent));
  if (!exists) {
    return Status::NotFound("namespace '" + parent.ToString() + "' does not exist in datastore '" +
                            name_ + "'");
  }
  std::vector<BackupNamespace> out;
  if (recursive) out.push_back(parent);
  // Depth-first, parents before children, children sorted by name.
  std::function<Status(const BackupNamespace&)> walk = [&](const BackupNamespace& ns) -> Status {
    std::string dir = NamespacePath(ns) + "/ns";
    std::vector<DirEntry> entries;
    Status st = fs_->ReadDir(dir, &entries);
    if (st.IsNotFound()) return Status::OK();
    if (!st.ok()) return st;
    std::sort(entries.begin(), entries.end(),
              [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
    for (const auto& e : entries) {
      if (!IsDirEntry(fs_, dir, e)) continue;
      auto child = ns.Child(e.name);
      if (!child.ok()) {
        return Status::InvalidArgument("invalid namespace directory '" + dir + "/" + e.name +
                                       "': " + child.status().message());
      }
      out.push_back(*child);
      if (recursive) PBSKIT_RETURN_IF_ERROR(walk(*child));
    }
    return Status::OK();
  };
  PBSKIT_RETURN_IF_ERROR(walk(parent));
  return out;
}

Status DataStore::CreateNamespace(const BackupNamespace& ns) {
  if (ns.IsRoot()) return Status::AlreadyExists("the root namespace always exists");
  PBSKIT_ASSIGN_OR_RETURN(bool parent_exists, NamespaceExists(ns.Parent()));
  if (!parent_exists) {
    return Status::NotFound("cannot create new namespace, parent '" + ns.Parent().ToString() +
                            "' doesn't already exists");
  }
  PBSKIT_ASSIGN_OR_RETURN(bool exists, NamespaceExists(ns));
  if (exists) return Status::AlreadyExists("namespace '" + ns.ToString() + "' already exists");
  std::string parent_ns_dir = NamespacePath(ns.Parent()) + "/ns";
  PBSKIT_RETURN_IF_ERROR(MkdirAll(fs_, parent_ns_dir, 0755));
  PBSKIT_RETURN_IF_ERROR(fs_->Mkdir(NamespacePath(ns), 0755));
  if (sync_level() == SyncLevel::kFile) PBSKIT_RETURN_IF_ERROR(fs_->FsyncDir(parent_ns_dir));
  return Status::OK();
}

Status DataStore::RemoveNamespace(const BackupNamespace& ns, bool delete_groups) {
  if (ns.IsRoot()) return Status::InvalidArgument("the root namespace cannot be removed");
  PBSKIT_ASSIGN_OR_RETURN(auto all, ListNamespaces(ns, true));
  bool removed_all = true;
  if (delete_groups) {
    for (const auto& child : all) {
      PBSKIT_ASSIGN_OR_RETURN(auto groups, ListGroups(child));
      for (const auto& g : groups) {
        Status st = RemoveGroup(child, g);
        if (st.code() == Code::kInvalidArgument) {
          removed_all = false;  // protected snapshots stay
        } else if (!st.ok()) {
          return st;
        }
      }
    }
  }
  // Bottom up with plain rmdir, so a group that appeared meanwhile stops the removal.
  std::stable_sort(all.begin(), all.end(), [](const BackupNamespace& a, const BackupNamespace& b) {
    return a.depth() > b.depth();
  });
  for (const auto& child : all) {
    std::string dir = NamespacePath(child);
    (void)fs_->Rmdir(dir + "/ns");
    // Empty type directories (vm/ct/host) left by removed groups do not keep a namespace alive.
    for (const char* t : {"vm", "ct", "host"}) (void)fs_->Rmdir(dir + "/" + t);
    Status st = fs_->Rmdir(dir);
    if (st.ok() || st.IsNotFound()) continue;
    removed_all = false;
    if (!delete_groups && st.message().find("not empty") == std::string::npos) return st;
  }
  if (!removed_all) {
    if (delete_groups) {
      return Status::InvalidArgument("namespace '" + ns.ToString() +
                                     "' only partially deleted: protected snapshots remain");
    }
    return Status::InvalidArgument("namespace '" + ns.ToString() +
                                   "' is not empty: it still contains backup groups (use "
                                   "--delete-groups to remove them)");
  }
  return Status::OK();
}

// ---- groups ----

Result<std::vector<BackupGroup>> DataStore::ListGroups(const BackupNamespace& ns) const {
  std::string dir = NamespacePath(ns);
  PBSKIT_ASSIGN_OR_RETURN(bool exists, NamespaceExists(ns));
  if (!exists) {
    return Status::NotFound("namespace '" + ns.ToString() + "' does not exist in datastore '" +
                            name_ + "'");
  }
  std::vector<BackupGroup> out;
  std::vector<DirEntry> types, ids;
  PBSKIT_RETURN_IF_ERROR(fs_->ReadDir(dir, &types));
  for (const auto& t : types) {
    auto type = ParseBackupType(t.name);
    if (!type.ok() || !IsDirEntry(fs_, dir, t)) continue;
    std::string tdir = dir + "/" + t.name;
    PBSKIT_RETURN_IF_ERROR(fs_->ReadDir(tdir, &ids));
    for (const auto& i : ids) {
      if (!IsSafeId(i.name) || !IsDirEntry(fs_, tdir, i)) continue;
      out.push_back(BackupGroup{*type, i.name});
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<bool> DataStore::GroupExists(const BackupNamespace& ns, const BackupGroup& g) const {
  auto st = fs_->Stat(GroupPath(ns, g), true);
  if (st.ok()) return S_ISDIR(st->st_mode);
  if (st.status().IsNotFound()) return false;
  return st.status();
}

Result<std::string> DataStore::GetOwner(const BackupNamespace& ns, const BackupGroup& g) const {
  std::string path = GroupPath(ns, g) + "/owner";
  auto text = ReadWholeFileText(fs_, path);
  if (!text.ok()) {
    return Status(text.status().code(),
                  "unable to read owner file '" + path + "' - " + text.status().message());
  }
  std::string first = text->substr(0, text->find('\n'));
  return TrimRight(first);
}

Status DataStore::SetOwner(const BackupNamespace& ns, const BackupGroup& g,
                           const std::string& auth_id, bool force) {
  std::string path = GroupPath(ns, g) + "/owner";
  std::string data = auth_id + "\n";
  if (force) return WriteFileAtomic(fs_, path, data, sync_level() == SyncLevel::kNone ? SyncLevel::kNone : SyncLevel::kFile);
  Status st = CreateFileExclusive(
      fs_, path, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()),
      sync_level());
  if (!st.ok()) return Status(st.code(), "unable to create owner file '" + path + "' - " + st.message());
  return st;
}

Result<std::pair<std::string, LockGuardPtr>> DataStore::CreateLockedGroup(
    const BackupNamespace& ns, const BackupGroup& g, const std::string& auth_id) {
  PBSKIT_ASSIGN_OR_RETURN(bool ns_exists, NamespaceExists(ns));
  if (!ns_exists) {
    return Status::NotFound("namespace '" + ns.ToString() + "' does not exist in datastore '" +
                            name_ + "'");
  }
  std::string type_dir = NamespacePath(ns) + "/" + BackupTypeName(g.type);
  PBSKIT_RETURN_IF_ERROR(MkdirAll(fs_, type_dir, 0755));
  std::string dir = GroupPath(ns, g);
  Status st = fs_->Mkdir(dir, 0755);
  if (st.ok()) {
    // New group: lock it, then write the owner with O_EXCL.
    PBSKIT_ASSIGN_OR_RETURN(auto guard, LockGroup(ns, g));
    PBSKIT_RETURN_IF_ERROR(SetOwner(ns, g, auth_id, false));
    return std::make_pair(auth_id, std::move(guard));
  }
  if (st.code() != Code::kAlreadyExists) return st;
  PBSKIT_ASSIGN_OR_RETURN(auto guard, LockGroup(ns, g));
  auto owner = GetOwner(ns, g);
  if (!owner.ok()) return owner.status();
  return std::make_pair(*owner, std::move(guard));
}

Result<std::string> DataStore::GetGroupNotes(const BackupNamespace& ns,
                                             const BackupGroup& g) const {
  auto text = ReadWholeFileText(fs_, GroupPath(ns, g) + "/notes");
  if (text.ok()) return *text;
  if (text.status().IsNotFound()) return std::string();
  return text.status();
}

Status DataStore::SetGroupNotes(const BackupNamespace& ns, const BackupGroup& g,
                                const std::string& notes) {
  PBSKIT_ASSIGN_OR_RETURN(bool exists, GroupExists(ns, g));
  if (!exists) return Status::NotFound("backup group '" + g.ToString() + "' does not exist");
  PBSKIT_ASSIGN_OR_RETURN(auto guard, LockGroup(ns, g));
  return WriteFileAtomic(fs_, GroupPath(ns, g) + "/notes", notes,
                         sync_level() == SyncLevel::kNone ? SyncLevel::kNone : SyncLevel::kFile);
}

// ---- snapshots ----

Result<SnapshotInfo> DataStore::GetSnapshotInfo(const BackupNamespace& ns,
                                                const BackupDir& d) const {
  std::string dir = SnapshotPath(ns, d);
  std::vector<DirEntry> entries;
  Status st = fs_->ReadDir(dir, &entries);
  if (st.IsNotFound()) {
    return Status::NotFound("snapshot '" + d.ToString() + "' does not exist" +
                            (ns.IsRoot() ? "" : " in namespace '" + ns.ToString() + "'"));
  }
  if (!st.ok()) return st;
  SnapshotInfo info;
  info.dir = d;
  for (const auto& e : entries) {
    if (e.name == kProtectedMarker) {
      info.is_protected = true;
      continue;
    }
    if (!(EndsWith(e.name, ".fidx") || EndsWith(e.name, ".didx") || EndsWith(e.name, ".blob"))) {
      continue;
    }
    if (!IsRegEntry(fs_, dir, e)) continue;
    if (e.name == kManifestBlobName) info.finished = true;
    info.files.push_back(e.name);
  }
  std::sort(info.files.begin(), info.files.end());
  return info;
}

Result<std::vector<SnapshotInfo>> DataStore::ListSnapshots(const BackupNamespace& ns,
                                                           const BackupGroup& g) const {
  std::string dir = GroupPath(ns, g);
  std::vector<DirEntry> entries;
  Status st = fs_->ReadDir(dir, &entries);
  if (st.IsNotFound()) {
    return Status::NotFound("backup group '" + g.ToString() + "' does not exist" +
                            (ns.IsRoot() ? "" : " in namespace '" + ns.ToString() + "'"));
  }
  if (!st.ok()) return st;
  std::vector<SnapshotInfo> out;
  for (const auto& e : entries) {
    auto t = ParseBackupTime(e.name);
    if (!t.ok() || !IsDirEntry(fs_, dir, e)) continue;
    auto info = GetSnapshotInfo(ns, BackupDir{g, *t});
    if (info.status().IsNotFound()) continue;  // removed meanwhile
    if (!info.ok()) return info.status();
    out.push_back(std::move(info).value());
  }
  std::sort(out.begin(), out.end(),
            [](const SnapshotInfo& a, const SnapshotInfo& b) { return a.dir.time < b.dir.time; });
  return out;
}

Result<std::optional<BackupDir>> DataStore::LastFinishedSnapshot(const BackupNamespace& ns,
                                                                 const BackupGroup& g) const {
  PBSKIT_ASSIGN_OR_RETURN(auto list, ListSnapshots(ns, g));
  std::optional<BackupDir> last;
  for (const auto& s : list) {
    if (s.finished) last = s.dir;
  }
  return last;
}

}  // namespace pbskit
