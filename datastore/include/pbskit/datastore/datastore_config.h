// The datastore registry `<config-dir>/datastore.cfg` (FORMATS.md §9): PBS section-config with
// sections `datastore: <name>`. pbskit reads /etc/proxmox-backup/datastore.cfg as it is and
// writes its own config dir the way PBS does (0640, tmp + rename, properties sorted), guarded by
// `<config-dir>/.datastore.lck`.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/fs.h"
#include "pbskit/formats/status.h"

namespace pbskit {

inline constexpr char kDatastoreCfgName[] = "datastore.cfg";

// `tuning` property string.
struct DatastoreTuning {
  std::optional<std::string> chunk_order;          // "inode" (default) | "none"
  std::optional<SyncLevel> sync_level;             // default filesystem
  std::optional<bool> gc_atime_safety_check;       // default true
  std::optional<int64_t> gc_atime_cutoff;          // minutes 1..2880, default 1445
  std::optional<int64_t> gc_cache_capacity;        // 0..8388608, default 1048576
  std::vector<std::pair<std::string, std::string>> other;  // keys pbskit does not interpret

  // InvalidArgument naming the key for a bad value or a duplicate key.
  static Result<DatastoreTuning> Parse(std::string_view text);
  // Property string with keys sorted.
  std::string ToString() const;

  SyncLevel EffectiveSyncLevel() const { return sync_level.value_or(SyncLevel::kFilesystem); }
  bool EffectiveAtimeSafetyCheck() const { return gc_atime_safety_check.value_or(true); }
  int64_t EffectiveGcAtimeCutoffMinutes() const { return gc_atime_cutoff.value_or(1445); }
  int64_t EffectiveGcCacheCapacity() const { return gc_cache_capacity.value_or(1048576); }
  bool InodeChunkOrder() const { return chunk_order.value_or("inode") != "none"; }
};

// `maintenance-mode` property string: type=<t>[,message=<text>].
struct MaintenanceMode {
  std::string type;                    // read-only | offline | delete | unmount | s3-refresh
  std::optional<std::string> message;  // as stored (percent-encoded)
  static Result<MaintenanceMode> Parse(std::string_view text);
  std::string ToString() const;
  // Lookup-only operations are always allowed; "read" forbidden by offline/delete/unmount...,
  // "write" by every type.
  bool AllowsRead() const { return type == "read-only"; }
  bool AllowsWrite() const { return false; }
};

struct DatastoreConfigEntry {
  std::string name;
  // Every property in file order, `path` included (the section id is not repeated).
  std::vector<std::pair<std::string, std::string>> properties;

  const std::string* Get(std::string_view key) const;
  void Set(const std::string& key, const std::string& value);
  void Erase(std::string_view key);
  std::string path() const;     // "" when missing
  std::string comment() const;  // "" when missing
  Result<DatastoreTuning> tuning() const;
  Result<std::optional<MaintenanceMode>> maintenance_mode() const;
  // The `verify-new` flag (verify each new backup after it finished); false when unset,
  // InvalidArgument when not a boolean.
  Result<bool> verify_new() const;
};

class DatastoreConfig {
 public:
  // Reads <config_dir>/datastore.cfg. A missing file is an empty config; a syntax error is
  // InvalidArgument "<file>:<line>: ..."; IoError on read errors.
  static Result<DatastoreConfig> Load(const std::string& config_dir,
                                      Filesystem* fs = PosixFilesystem());

  const std::vector<DatastoreConfigEntry>& entries() const { return entries_; }
  const DatastoreConfigEntry* Find(std::string_view name) const;
  // The entry whose path (made absolute, trailing '/' dropped) equals `path`, if any.
  const DatastoreConfigEntry* FindByPath(const std::string& path) const;
  // AlreadyExists for a duplicate name; InvalidArgument for a bad name or missing path.
  Status Add(DatastoreConfigEntry entry);
  // NotFound when not configured.
  Status Remove(std::string_view name);
  // Section-config text (sorted properties; "" when empty).
  std::string ToString() const;
  // Writes <config_dir>/datastore.cfg (0640, tmp + rename, fsync), creating config_dir 0700.
  Status Save(const std::string& config_dir, Filesystem* fs = PosixFilesystem()) const;

 private:
  std::vector<DatastoreConfigEntry> entries_;
};

// Exclusive lock on <config_dir>/.datastore.lck (blocking up to 10 s; Busy afterwards).
// Creates config_dir when missing.
Result<LockGuardPtr> LockDatastoreConfig(const std::string& config_dir,
                                         Filesystem* fs = PosixFilesystem());

// A store argument resolved: the configured entry (when the store is configured, by name or by
// path) and the opened datastore.
struct OpenedStore {
  std::shared_ptr<DataStore> store;
  std::optional<DatastoreConfigEntry> config;
};

// Opens `store_arg`: a datastore name configured in <config_dir>/datastore.cfg, or a path (an
// argument containing '/' or naming an existing directory with .chunks) to a datastore
// directory. For a path that is configured, the configured name is used for locks; otherwise
// the directory's base name. Sync level comes from the config's tuning. Never writes.
// NotFound "datastore '<x>' does not exist" when neither works; InvalidArgument for a bad
// config.
Result<OpenedStore> OpenStore(const std::string& config_dir, const std::string& store_arg,
                              Filesystem* fs = PosixFilesystem());

}  // namespace pbskit
