#include "pbskit/datastore/prune.h"

#include <algorithm>
#include <ctime>
#include <functional>
#include <map>
#include <set>

namespace pbskit {
namespace {

std::string StrftimeLocal(const char* format, int64_t epoch) {
  time_t t = static_cast<time_t>(epoch);
  struct tm tm {};
  localtime_r(&t, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof buf, format, &tm);
  return std::string(buf, n);
}

using Marks = std::map<int64_t, PruneMark>;  // backup time -> mark (one group: times are unique)

// PBS mark_selections.
void MarkSelections(Marks& mark, const std::vector<PruneSnapshot>& list, uint64_t keep,
                    const std::function<std::string(const PruneSnapshot&)>& select_id) {
  std::set<std::string> include;
  std::set<std::string> already_included;
  for (const auto& info : list) {
    auto it = mark.find(info.dir.time);
    if (it != mark.end() && it->second == PruneMark::kKeep) already_included.insert(select_id(info));
  }
  for (const auto& info : list) {
    if (mark.count(info.dir.time)) continue;
    if (info.is_protected) {
      mark[info.dir.time] = PruneMark::kProtected;
      continue;
    }
    std::string sel = select_id(info);
    if (already_included.count(sel)) continue;
    if (!include.count(sel)) {
      if (include.size() >= keep) break;
      include.insert(sel);
      mark[info.dir.time] = PruneMark::kKeep;
    } else {
      mark[info.dir.time] = PruneMark::kRemove;
    }
  }
}

// PBS remove_incomplete_snapshots.
void RemoveIncompleteSnapshots(Marks& mark, const std::vector<PruneSnapshot>& list) {
  bool keep_unfinished = true;
  for (const auto& info : list) {
    if (info.finished) {
      keep_unfinished = false;
    } else {
      mark[info.dir.time] = keep_unfinished ? PruneMark::kKeepPartial : PruneMark::kRemove;
      keep_unfinished = false;
    }
  }
}

// Removes one snapshot. The manifest goes first, under the snapshot and manifest locks, so a
// crash in the middle of the directory removal leaves an unfinished snapshot (which the next
// prune removes) and never a "finished" snapshot with missing index files.
Status RemovePrunedSnapshot(DataStore& store, const BackupNamespace& ns, const BackupDir& d) {
  {
    PBSKIT_ASSIGN_OR_RETURN(LockGuardPtr snap_lock, store.LockSnapshot(ns, d));
    PBSKIT_ASSIGN_OR_RETURN(LockGuardPtr manifest_lock, store.LockManifest(ns, d));
    PBSKIT_ASSIGN_OR_RETURN(bool prot, store.IsProtected(ns, d));
    if (prot) return Status::InvalidArgument("cannot remove protected snapshot");
    const std::string dir = store.SnapshotPath(ns, d);
    Status st = store.fs()->Unlink(dir + "/" + kManifestBlobName);
    if (!st.ok() && !st.IsNotFound()) return st;
    if (st.ok() && store.sync_level() != SyncLevel::kNone) {
      PBSKIT_RETURN_IF_ERROR(store.fs()->FsyncDir(dir));
    }
  }
  return store.RemoveSnapshot(ns, d, /*force=*/false);
}

}  // namespace

bool KeepOptions::KeepsSomething() const {
  return keep_last.value_or(0) + keep_hourly.value_or(0) + keep_daily.value_or(0) +
             keep_weekly.value_or(0) + keep_monthly.value_or(0) + keep_yearly.value_or(0) >
         0;
}

Status KeepOptions::Validate() const {
  const std::pair<const char*, const std::optional<uint64_t>*> opts[] = {
      {"keep-last", &keep_last},     {"keep-hourly", &keep_hourly},
      {"keep-daily", &keep_daily},   {"keep-weekly", &keep_weekly},
      {"keep-monthly", &keep_monthly}, {"keep-yearly", &keep_yearly}};
  for (const auto& [name, v] : opts) {
    if (v->has_value() && **v < 1) {
      return Status::InvalidArgument(std::string(name) + ": value must have a minimum value of 1");
    }
  }
  return Status::OK();
}

std::string KeepOptions::ToCliArgs() const {
  const std::pair<const char*, const std::optional<uint64_t>*> opts[] = {
      {"last", &keep_last},     {"hourly", &keep_hourly},   {"daily", &keep_daily},
      {"weekly", &keep_weekly}, {"monthly", &keep_monthly}, {"yearly", &keep_yearly}};
  std::string out;
  for (const auto& [name, v] : opts) {
    if (v->has_value() && **v > 0) {
      if (!out.empty()) out += ' ';
      out += std::string("--keep-") + name + " " + std::to_string(**v);
    }
  }
  return out;
}

const char* PruneMarkName(PruneMark mark) {
  switch (mark) {
    case PruneMark::kProtected: return "protected";
    case PruneMark::kKeep: return "keep";
    case PruneMark::kKeepPartial: return "keep-partial";
    case PruneMark::kRemove: return "remove";
  }
  return "remove";
}

std::vector<PruneDecision> ComputePruneInfo(std::vector<PruneSnapshot> list,
                                            const KeepOptions& options) {
  std::sort(list.begin(), list.end(),
            [](const PruneSnapshot& a, const PruneSnapshot& b) { return a.dir.time > b.dir.time; });
  Marks mark;
  RemoveIncompleteSnapshots(mark, list);

  auto by_format = [](const char* format) {
    return [format](const PruneSnapshot& s) { return StrftimeLocal(format, s.dir.time); };
  };
  if (options.keep_last) {
    MarkSelections(mark, list, *options.keep_last,
                   [](const PruneSnapshot& s) { return FormatBackupTime(s.dir.time); });
  }
  if (options.keep_hourly) MarkSelections(mark, list, *options.keep_hourly, by_format("%Y/%m/%d/%H"));
  if (options.keep_daily) MarkSelections(mark, list, *options.keep_daily, by_format("%Y/%m/%d"));
  // ISO week-based year and week: may differ from the calendar year around New Year.
  if (options.keep_weekly) MarkSelections(mark, list, *options.keep_weekly, by_format("%G/%V"));
  if (options.keep_monthly) MarkSelections(mark, list, *options.keep_monthly, by_format("%Y/%m"));
  if (options.keep_yearly) MarkSelections(mark, list, *options.keep_yearly, by_format("%Y"));

  std::vector<PruneDecision> out;
  out.reserve(list.size());
  for (auto& s : list) {
    PruneMark m = PruneMark::kRemove;
    if (s.is_protected) {
      m = PruneMark::kProtected;
    } else if (auto it = mark.find(s.dir.time); it != mark.end()) {
      m = it->second;
    }
    out.push_back({std::move(s), m});
  }
  return out;
}

std::string PruneWorkerId(const std::string& store, const BackupNamespace& ns,
                          const BackupGroup& g) {
  return store + ":" + ns.ToString() + ":" + g.ToString();
}

Result<std::vector<PruneResultItem>> PruneGroup(DataStore& store, const BackupNamespace& ns,
                                                const BackupGroup& g, const KeepOptions& options,
                                                bool dry_run, TaskLogger* log) {
  PBSKIT_RETURN_IF_ERROR(options.Validate());
  PBSKIT_ASSIGN_OR_RETURN(std::vector<SnapshotInfo> snapshots, store.ListSnapshots(ns, g));
  std::vector<PruneSnapshot> list;
  list.reserve(snapshots.size());
  for (const auto& s : snapshots) list.push_back({s.dir, s.finished, s.is_protected});

  std::vector<PruneDecision> info = ComputePruneInfo(std::move(list), options);
  std::reverse(info.begin(), info.end());  // delete older snapshots first
  const bool keep_all = !options.KeepsSomething();

  if (!dry_run && log) {
    if (keep_all) {
      log->Info("No prune selection - keeping all files.");
    } else {
      std::string opts;
      if (!ns.IsRoot()) opts = "--ns " + ns.ToString();
      std::string keep = options.ToCliArgs();
      if (!keep.empty()) opts += (opts.empty() ? "" : " ") + keep;
      log->Info("retention options: " + opts);
      std::string where = ns.IsRoot() ? "datastore '" + store.name() + "', root namespace"
                                      : "datastore '" + store.name() + "', namespace '" +
                                            ns.ToString() + "'";
      log->Info("Starting prune on " + where + " group \"" + g.ToString() + "\"");
    }
  }

  std::vector<PruneResultItem> out;
  out.reserve(info.size());
  for (const auto& d : info) {
    PruneResultItem item;
    item.ns = ns;
    item.dir = d.snapshot.dir;
    item.mark = d.mark;
    item.keep = keep_all || PruneMarkKeeps(d.mark);
    item.is_protected = d.mark == PruneMark::kProtected;
    if (!dry_run) {
      if (log) log->Info(d.snapshot.dir.ToString() + " " + PruneMarkName(d.mark));
      if (!item.keep) {
        Status st = RemovePrunedSnapshot(store, ns, d.snapshot.dir);
        if (st.ok()) {
          item.removed = true;
        } else if (log) {
          std::string rel = ns.IsRoot() ? d.snapshot.dir.ToString()
                                        : ns.Path() + "/" + d.snapshot.dir.ToString();
          log->Warn("failed to remove dir \"" + rel + "\": " + st.message());
        }
      }
    }
    out.push_back(std::move(item));
  }
  return out;
}

}  // namespace pbskit
