// Restore of snapshots from a media set into a datastore (PBS's `proxmox-tape restore`, the
// catalog-driven variant PBS uses with --snapshots):
//   1. the set's members come from the inventory; which tape holds a snapshot comes from the
//      `.index` snapshot caches, its file number and the chunk locations from the catalogs;
//   2. the selected snapshot archives are read first (only those tape files) into a temporary
//      directory; their index files say which chunks are needed;
//   3. chunks not yet in the target datastore are read from exactly the chunk archives that
//      hold them, every chunk verified (unencrypted: decoded and SHA-256 compared with its
//      digest; encrypted: CRC) before it is inserted;
//   4. a snapshot is moved into the datastore only when all its chunks are there; the others
//      are reported as incomplete with the reason (missing tape, damaged file, unknown chunk).
// Chunks and snapshots already restored stay; running the restore again completes the rest.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/tape/tape_backup.h"
#include "pbskit/datastore/tape/tape_state.h"
#include "pbskit/datastore/tape/virtual_drive.h"

namespace pbskit::tape {

struct TapeRestoreOptions {
  Uuid media_set{};
  std::string drive_name;
  // "[store:]<tape snapshot name>"; empty = every snapshot of the set.
  std::vector<std::string> snapshots;
  std::string owner = "root@pam";
  TapeLog log;
};

struct SnapshotRestoreResult {
  std::string store;     // source datastore name on tape
  std::string snapshot;  // tape snapshot name "[ns/..]type/id/time"
  // "restored", "exists" (already in the target, left alone), "incomplete", "not-found".
  std::string status;
  std::string reason;  // for incomplete / not-found
};

struct TapeRestoreReport {
  std::vector<SnapshotRestoreResult> snapshots;
  std::vector<std::string> damaged;        // "media 'L' file N: <error>"
  std::vector<std::string> missing_media;  // labels of set members not in the drive
  uint64_t chunks_restored = 0;            // inserted now
  uint64_t chunks_present = 0;             // already in the target datastore
  std::vector<std::string> media_read;     // labels of the tapes that were loaded
  uint64_t files_read = 0;                 // tape files read
  bool ok() const;                         // every selected snapshot restored or existing
  std::string ToText() const;
  boost::json::value ToJson() const;
};

// Restores. Errors (nothing restored): NotFound for an unknown media set; InvalidArgument for
// a bad snapshot argument; IoError for an unusable drive, state directory or target
// datastore. Per-snapshot and per-tape problems go into the report.
Result<TapeRestoreReport> RestoreMediaSet(VirtualTapeDrive* drive, const TapeStatusDir& state,
                                          std::shared_ptr<DataStore> target,
                                          const TapeRestoreOptions& options);

}  // namespace pbskit::tape
