// The tape status directory (<state-dir>/tape, PBS's /var/lib/proxmox-backup/tape):
//   inventory.json  + .inventory.lck   every known medium: labels, location, status
//   <uuid>.log                         media catalog (formats/tape/media_catalog.h)
//   <uuid>.tmp                         catalog being rebuilt
//   <uuid>.index                       snapshot-list cache of a catalog
// Every inventory change is lock + re-read + modify + atomic write, as PBS does it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "pbskit/datastore/fs.h"
#include "pbskit/formats/status.h"
#include "pbskit/formats/tape/media_catalog.h"
#include "pbskit/formats/tape/media_content.h"

namespace pbskit::tape {

struct MediaId {
  MediaLabel label;
  std::optional<MediaSetLabel> media_set_label;
};

struct InventoryEntry {
  MediaId id;
  std::optional<std::string> location;  // "offline" | "online-<changer>" | "vault-<name>"
  std::optional<std::string> status;    // "full" | "damaged" | "retired" | "writable" | "unknown"
  std::optional<uint64_t> bytes_used;
};

// inventory.json as a list ordered by media uuid.
class Inventory {
 public:
  // Reads <dir>/inventory.json (missing = empty). Corruption naming the file for bad JSON.
  static Result<Inventory> Load(Filesystem* fs, const std::string& dir);
  // Serialises like PBS (serde pretty, sorted keys, entries by uuid).
  std::string ToJson() const;

  const std::vector<InventoryEntry>& entries() const { return entries_; }
  const InventoryEntry* Find(const Uuid& media_uuid) const;
  // InvalidArgument when no or more than one medium has this label text.
  Result<const InventoryEntry*> FindByLabel(const std::string& label_text) const;
  // Members of a media set, indexed by seq_nr (holes = unknown tapes). Corruption "found
  // duplicate sequence number in media set '<uuid>/<n>'".
  Result<std::vector<std::optional<Uuid>>> MediaSetMembers(const Uuid& set_uuid) const;
  // Every media-set uuid (not the unassigned one) with the pool and start time (ctime of seq 0
  // when known).
  struct SetInfo {
    Uuid uuid{};
    std::string pool;
    std::optional<int64_t> start_time;
    int64_t last_ctime = 0;  // greatest member ctime
  };
  std::vector<SetInfo> MediaSets() const;

  // In-memory mutations (persist with Update()).
  void Store(const MediaId& id, bool clear_status);
  void SetStatus(const Uuid& media_uuid, std::optional<std::string> status);
  void SetLocation(const Uuid& media_uuid, std::optional<std::string> location);

  // Lock .inventory.lck, re-read, apply `fn`, write atomically (mode 0640). *this receives the
  // new state. IoError / Corruption from reading and writing.
  static Result<Inventory> Update(Filesystem* fs, const std::string& dir,
                                  const std::function<Status(Inventory*)>& fn);

 private:
  std::vector<InventoryEntry> entries_;
};

// Paths and file operations for media catalogs in the status directory.
class TapeStatusDir {
 public:
  TapeStatusDir(Filesystem* fs, std::string dir) : fs_(fs), dir_(std::move(dir)) {}
  // Creates the directory (0750) if missing.
  Status Init() const;

  const std::string& dir() const { return dir_; }
  Filesystem* fs() const { return fs_; }
  std::string CatalogPath(const Uuid& media) const;  // <dir>/<uuid>.log
  std::string TmpPath(const Uuid& media) const;      // <dir>/<uuid>.tmp
  std::string IndexPath(const Uuid& media) const;    // <dir>/<uuid>.index

  Result<bool> CatalogExists(const Uuid& media) const;
  // Raw bytes of <uuid>.log (read under a shared flock). NotFound when missing.
  Result<std::vector<uint8_t>> ReadCatalog(const Uuid& media) const;
  // Loads and validates a catalog (ParseMediaCatalog).
  Result<MediaCatalogContent> LoadCatalog(const MediaId& id) const;
  // Replaces <uuid>.log atomically with `bytes` (written as <uuid>.tmp, fsynced, renamed),
  // dropping a stale .index.
  Status WriteCatalog(const Uuid& media, std::span<const uint8_t> bytes) const;
  // Appends `bytes` to <uuid>.log under an exclusive flock and fdatasyncs (PBS commit()).
  // NotFound when the catalog does not exist.
  Status AppendCatalog(const Uuid& media, std::span<const uint8_t> bytes) const;
  // Unlinks <uuid>.log and <uuid>.index (missing is fine).
  Status DestroyCatalog(const Uuid& media) const;
  // PBS destroy_unrelated_catalog: removes a catalog that does not belong to the tape's
  // current labels. Returns true when something was removed.
  Result<bool> DestroyUnrelatedCatalog(const MediaId& id) const;
  // Media with a catalog: every *.log whose stem is a uuid.
  Result<std::vector<Uuid>> MediaWithCatalogs() const;

  // (store, snapshot) pairs of a medium via the `.index` cache: the cache is used when its id
  // line matches the catalog's (inode, size, mtime), otherwise rebuilt from the catalog and
  // written atomically (0640). NotFound when the catalog is missing; Corruption from the
  // catalog loader.
  Result<std::vector<std::pair<std::string, std::string>>> SnapshotList(const MediaId& id) const;

 private:
  Result<std::string> CacheId(const Uuid& media) const;

  Filesystem* fs_;
  std::string dir_;
};

// A new catalog for `id`: magic, L(file 0, media uuid, 0) and, when the tape has a media-set
// label, L(file 1, set uuid, seq_nr).
Result<MediaCatalogBuilder> NewMediaCatalog(const MediaId& id);

}  // namespace pbskit::tape
