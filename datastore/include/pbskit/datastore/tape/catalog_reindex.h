// Rebuilding media catalogs from tape content (PBS's `proxmox-tape catalog`), for every tape of
// a virtual drive:
//   1. each tape's labels are read and stored in the inventory (unrelated catalogs removed);
//   2. fast path (unless --scan): the catalog archives on the tapes are copied back — a tape's
//      own catalog from its last file, earlier set members' catalogs from the start of later
//      tapes — each checked (header, media and set uuid, full validation) before it replaces
//      <uuid>.log;
//   3. full scan for every tape whose catalog the fast path did not restore, and — unlike PBS —
//      also when the fast path failed on a tape (damaged catalog archive): every file is read,
//      chunk archives decoded with CRC checks, entries registered in tape order exactly as the
//      backup wrote them.
// The report says per tape how its catalog was rebuilt, what it holds, what was damaged, and
// which members of a media set are missing from the drive.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "pbskit/datastore/tape/tape_backup.h"
#include "pbskit/datastore/tape/tape_state.h"
#include "pbskit/datastore/tape/virtual_drive.h"

namespace pbskit::tape {

struct ReindexOptions {
  std::string drive_name;
  bool scan = false;     // skip the fast path
  bool force = false;    // rebuild catalogs that exist
  bool verbose = false;  // log every chunk digest
  TapeLog log;
};

struct TapeReindexResult {
  std::string label_text;
  Uuid media{};
  std::optional<Uuid> media_set;
  uint64_t seq_nr = 0;
  // "fast" (catalog archive), "scan", "fallback-scan" (fast path failed), "kept" (catalog
  // existed), "no-media-set" (labelled tape, catalog = labels only), "empty" (no label).
  std::string method;
  bool damaged = false;
  std::string error;               // why damaged / why the fast path failed
  std::vector<std::string> notes;  // files skipped (no end marker, incomplete, ...)
  uint64_t files = 0;
  uint64_t snapshots = 0;
  uint64_t chunk_archives = 0;
  uint64_t chunks = 0;
};

struct MissingMedia {
  Uuid media_set{};
  uint64_t seq_nr = 0;
  std::optional<std::string> label_text;  // when the inventory knows it
};

struct ReindexReport {
  std::vector<TapeReindexResult> tapes;
  std::vector<MissingMedia> missing;
  bool ok() const;  // nothing damaged, nothing missing
  std::string ToText() const;
  boost::json::value ToJson() const;
};

// Reindexes every tape of the drive (tapes in label order). Errors only for problems that stop
// everything (drive or state directory unusable); per-tape damage goes into the report.
Result<ReindexReport> ReindexDrive(VirtualTapeDrive* drive, const TapeStatusDir& state,
                                   const ReindexOptions& options);

// Fast path on the loaded tape (positioned after its labels): restores catalog archives about
// `members` of the tape's set (the tape's own always, others only when missing or listed in
// `overwrite`); adds the media uuids restored to *restored. Corruption / IoError when a file
// cannot be read; the catalogs restored before the error stay (and are in *restored).
Status FastCatalogRestore(VirtualTapeDrive* drive, const TapeStatusDir& state, const MediaId& id,
                          const std::set<Uuid>& members, const std::set<Uuid>& overwrite,
                          const TapeLog& log, std::set<Uuid>* restored);

// Full scan of the loaded tape, writing <uuid>.tmp and renaming it to <uuid>.log on success.
// Fills the counters of *result. Corruption / IoError naming the file number on a damaged
// tape (no catalog is written then).
Status ScanMediaCatalog(VirtualTapeDrive* drive, const TapeStatusDir& state, const MediaId& id,
                        bool verbose, const TapeLog& log, TapeReindexResult* result);

}  // namespace pbskit::tape
