// Tape backup of a datastore into a media pool (PBS's tape backup job and PoolWriter):
// the pool's current media set is continued (allocation `continue`) or a new one started
// (`always`, or when the current set is unusable); tapes join the set when needed (labelled
// tapes of the pool first, then unassigned ones); each tape gets its media-set label, the
// catalog archives of the earlier members, then per snapshot the chunk archives of the chunks
// not yet in the set and the snapshot archive; the job ends with a catalog archive of the last
// tape. Media catalogs (<uuid>.log) are committed after the tape data, as PBS does.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/tape/tape_state.h"
#include "pbskit/datastore/tape/virtual_drive.h"
#include "pbskit/formats/names.h"
#include "pbskit/formats/status.h"
#include "pbskit/formats/tape/tape_config.h"

namespace pbskit::tape {

// PBS group filters: "type:<vm|ct|host>", "group:<type>/<id>", "regex:<ECMAScript regex on
// type/id>", each optionally prefixed with "exclude:". A group is taken when there is no
// include filter or one matches, and no exclude filter matches.
class GroupFilter {
 public:
  // InvalidArgument "invalid group filter '<text>'".
  static Result<GroupFilter> Parse(const std::vector<std::string>& filters);
  bool Matches(const BackupGroup& group) const;

 private:
  struct One {
    bool exclude = false;
    std::string kind;  // type | group | regex
    std::string value;
  };
  std::vector<One> filters_;
};

using TapeLog = std::function<void(const std::string&)>;

struct TapeBackupOptions {
  MediaPoolConfig pool;
  std::string drive_name;  // the virtual drive (its own changer)
  BackupNamespace ns;
  std::optional<uint64_t> max_depth;  // unlimited when unset
  std::vector<std::string> group_filter;
  bool latest_only = false;
  bool force_media_set = false;
  TapeLog log;  // task log lines (PBS wording); may be empty
};

struct TapeBackupSummary {
  Uuid media_set{};
  std::vector<std::string> snapshots;   // "[ns/..]type/id/time" written by this job
  std::vector<std::string> used_tapes;  // label texts
  uint64_t chunks_written = 0;
  uint64_t bytes_written = 0;
};

// Runs the backup job. `drive` is the opened virtual drive named drive_name; `state` the tape
// status directory. Errors: InvalidArgument for a bad pool policy or filter; NotFound
// "alloc writable media in pool '<p>' failed: no usable media found" when no tape can be
// added; IoError / Corruption from the drive, datastore or catalogs.
Result<TapeBackupSummary> RunTapeBackup(std::shared_ptr<DataStore> store, VirtualTapeDrive* drive,
                                        const TapeStatusDir& state,
                                        const TapeBackupOptions& options);

// Reads file 0/1 of the tape in the drive and stores the media id in the inventory (location
// online-<drive>), deleting a catalog that does not belong to the labels. Used by label and
// by the re-indexer. Returns the labels (nullopt label for an empty tape).
Result<VirtualTapeLabels> InventorizeLoadedTape(VirtualTapeDrive* drive,
                                                const std::string& drive_name,
                                                const TapeStatusDir& state);

// Labels the tape `label_text` in the drive (format + file 0, optional pool reservation),
// stores it in the inventory and writes its catalog (magic + L0). InvalidArgument when the
// label text is already used by another inventoried tape or the tape holds a label already
// (unless `force`).
Result<MediaId> LabelTape(VirtualTapeDrive* drive, const std::string& drive_name,
                          const TapeStatusDir& state, const std::string& label_text,
                          const std::optional<std::string>& pool, bool force, int64_t ctime);

}  // namespace pbskit::tape
