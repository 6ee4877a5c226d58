// Prune: which snapshots of one backup group to keep, exactly as PBS selects them
// (pbs-datastore prune.rs, FORMATS.md §8.6), and the removal of the others
// (src/api2/admin/datastore.rs prune).
//
// Selection, newest first:
//   1. unfinished snapshots (no index.json.blob): the newest one is kept ("keep-partial") only if
//      no finished snapshot is newer; every other unfinished snapshot is removed;
//   2. keep-last, -hourly, -daily, -weekly, -monthly, -yearly, in this order, each keeping the
//      newest snapshot of its N newest periods not yet covered by a kept snapshot. Periods are
//      taken in the server's LOCAL time zone (localtime_r: "%Y/%m/%d/%H", "%Y/%m/%d", ISO week
//      "%G/%V", "%Y/%m", "%Y"), as PBS's strftime_local does;
//   3. protected snapshots are always kept and never counted; everything unmarked is removed.
// Without any keep option everything is kept.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/task_log.h"
#include "pbskit/formats/names.h"
#include "pbskit/formats/status.h"

namespace pbskit {

struct KeepOptions {
  std::optional<uint64_t> keep_last;
  std::optional<uint64_t> keep_hourly;
  std::optional<uint64_t> keep_daily;
  std::optional<uint64_t> keep_weekly;
  std::optional<uint64_t> keep_monthly;
  std::optional<uint64_t> keep_yearly;

  // True when the counts add up to more than 0 (PBS keeps_something).
  bool KeepsSomething() const;
  // InvalidArgument "keep-<x>: value must be at least 1" for a set option of 0 (PBS's schema
  // minimum is 1).
  Status Validate() const;
  // PBS cli_keep_options: "--keep-last 3 --keep-daily 7" (set, non-zero options in the order
  // last, hourly, daily, weekly, monthly, yearly, joined by spaces).
  std::string ToCliArgs() const;
};

enum class PruneMark { kProtected, kKeep, kKeepPartial, kRemove };
// "protected" | "keep" | "keep-partial" | "remove" (as PBS prints them in the task log).
const char* PruneMarkName(PruneMark mark);
inline bool PruneMarkKeeps(PruneMark mark) { return mark != PruneMark::kRemove; }

struct PruneSnapshot {
  BackupDir dir;
  bool finished = true;        // index.json.blob present
  bool is_protected = false;   // .protected present
};

struct PruneDecision {
  PruneSnapshot snapshot;
  PruneMark mark = PruneMark::kRemove;
};

// PBS compute_prune_info: returns every snapshot of `list` with its mark, sorted newest first.
// Requires all snapshots to belong to one group (times unique). Uses the process's local time
// zone (TZ). Thread safe.
std::vector<PruneDecision> ComputePruneInfo(std::vector<PruneSnapshot> list,
                                            const KeepOptions& options);

// One row of a prune result, as PBS's prune API returns it.
struct PruneResultItem {
  BackupNamespace ns;
  BackupDir dir;
  PruneMark mark = PruneMark::kRemove;
  bool keep = false;         // keep-all (no options) or a keeping mark
  bool is_protected = false;
  bool removed = false;      // really removed (never in a dry run)
};

// Prunes group `g` of namespace `ns`: lists its snapshots, computes the marks, and unless
// `dry_run` removes the snapshots to drop, oldest first, each under its snapshot and manifest
// locks (DataStore::RemoveSnapshot; a group emptied this way is removed as PBS >= 3.3.5 does).
// A snapshot that cannot be removed (locked by a reader, I/O error) is reported as the PBS
// warning `failed to remove dir "<path>": <error>` and stays; the run goes on.
// Log lines (not in a dry run): "retention options: ...", "Starting prune on datastore 'S', root
// namespace group \"vm/100\"" (or "No prune selection - keeping all files."), then one
// "<type>/<id>/<time> <mark>" line per snapshot. Returns the rows oldest first.
// Errors: InvalidArgument for bad options; NotFound when the group does not exist; IoError when
// the snapshot list cannot be read. `log` may be null.
Result<std::vector<PruneResultItem>> PruneGroup(DataStore& store, const BackupNamespace& ns,
                                                const BackupGroup& g, const KeepOptions& options,
                                                bool dry_run, TaskLogger* log);

// The PBS worker id of a prune task: "<store>:<ns>:<type>/<id>" (ns "" for the root).
std::string PruneWorkerId(const std::string& store, const BackupNamespace& ns,
                          const BackupGroup& g);

}  // namespace pbskit
