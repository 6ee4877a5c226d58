// Verify, walk phase: datastore -> namespaces -> groups -> snapshots -> files, verify_state
// updates and the task-level result. Chunk checks are in verify_chunks.cc.
#include "pbskit/datastore/verify.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ctime>

#include "pbskit/formats/upid.h"
#include "verify_index.h"

namespace pbskit {
namespace {

// PBS BackupNamespace::display_as_path: "ns/a/ns/b" ("" for the root).
std::string DisplayAsPath(const BackupNamespace& ns) { return ns.Path(); }

// PBS print_ns_and_snapshot.
std::string PrintNsAndSnapshot(const BackupNamespace& ns, const BackupDir& dir) {
  return ns.IsRoot() ? dir.ToString() : DisplayAsPath(ns) + "/" + dir.ToString();
}

// PBS print_store_and_ns.
std::string PrintStoreAndNs(const std::string& store, const BackupNamespace& ns) {
  return ns.IsRoot() ? "datastore '" + store + "', root namespace"
                     : "datastore '" + store + "', namespace '" + ns.ToString() + "'";
}

}  // namespace

std::pair<std::string, std::string> VerifyWorkerTypeAndId(const std::string& store,
                                                          const VerifyTarget& target) {
  if (target.group && target.backup_time) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "%08" PRIX64, static_cast<uint64_t>(*target.backup_time));
    return {"verify_snapshot", store + ":" + DisplayAsPath(target.ns) + "/" +
                                   target.group->ToString() + "/" + hex};
  }
  if (target.group)
    return {"verify_group", store + ":" + DisplayAsPath(target.ns) + "/" + target.group->ToString()};
  return {"verify", target.ns.IsRoot() ? store : store + ":" + DisplayAsPath(target.ns)};
}

std::string VerifyWorker::Progress::ToString() const {
  auto pct = [&] {
    double per_groups = static_cast<double>(done_groups) / static_cast<double>(total_groups);
    if (group_snapshots == 0) return per_groups;
    double per_snapshots =
        static_cast<double>(done_snapshots) / static_cast<double>(group_snapshots);
    return per_groups + (1.0 / static_cast<double>(total_groups)) * per_snapshots;
  }() * 100.0;
  uint64_t current_group = done_groups < total_groups ? done_groups + 1 : done_groups;
  char buf[160];
  if (group_snapshots == 0) {
    std::snprintf(buf, sizeof buf, "%.2f%% (%" PRIu64 "/%" PRIu64 " groups)", pct, done_groups,
                  total_groups);
  } else if (total_groups == 1) {
    std::snprintf(buf, sizeof buf, "%.2f%% (%" PRIu64 "/%" PRIu64 " snapshots)", pct,
                  done_snapshots, group_snapshots);
  } else if (done_snapshots == group_snapshots) {
    std::snprintf(buf, sizeof buf, "%.2f%% (%" PRIu64 "/%" PRIu64 " groups)", pct, current_group,
                  total_groups);
  } else {
    std::snprintf(buf, sizeof buf,
                  "%.2f%% (%" PRIu64 "/%" PRIu64 " groups, %" PRIu64 "/%" PRIu64
                  " snapshots in group #%" PRIu64 ")",
                  pct, done_groups, total_groups, done_snapshots, group_snapshots, current_group);
  }
  return buf;
}

VerifyWorker::VerifyWorker(std::shared_ptr<DataStore> store, TaskLogger* log, std::string upid,
                           VerifyOptions options)
    : store_(std::move(store)),
      log_(log),
      upid_(std::move(upid)),
      options_(options),
      pool_({.read_threads = options.read_threads, .work_threads = options.verify_threads}),
      read_bufs_(pool_.slot_count()),
      decode_bufs_(pool_.work_threads()) {}

std::string VerifyWorker::StoreDir(const BackupDir& dir) const {
  return store_->name() + ":" + dir.ToString();
}

bool VerifyWorker::Filter(const Manifest& manifest) const {
  if (!options_.ignore_verified) return true;
  const auto* vs = manifest.unprotected.if_contains("verify_state");
  if (!vs || !vs->is_object()) return true;  // never verified: always include
  const auto* state = vs->as_object().if_contains("state");
  const auto* upid_text = vs->as_object().if_contains("upid");
  if (!state || !state->is_string() || !upid_text || !upid_text->is_string()) return true;
  if (state->as_string() != "ok" && state->as_string() != "failed") return true;
  auto upid = Upid::Parse(std::string_view(upid_text->as_string()));
  if (!upid.ok()) return true;
  if (!options_.outdated_after_days) return false;  // ignored and no maximum age
  int64_t now = options_.now ? options_.now : static_cast<int64_t>(std::time(nullptr));
  int64_t days_since = (now - upid->starttime) / 86400;
  return days_since > *options_.outdated_after_days;
}

Status VerifyWorker::VerifyFile(const BackupNamespace& ns, const BackupDir& dir,
                                const FileInfo& info) {
  PBSKIT_ASSIGN_OR_RETURN(ArchiveType type, ArchiveTypeOf(info.filename));
  auto check = [&](uint64_t size, const Digest& csum) -> Status {
    if (size != info.size)
      return Status::Corruption("wrong size (" + std::to_string(info.size) +
                                " != " + std::to_string(size) + ")");
    if (csum != info.csum) return Status::Corruption("wrong index checksum");
    return Status::OK();
  };
  switch (type) {
    case ArchiveType::kFixedIndex:
    case ArchiveType::kDynamicIndex: {
      // Streamed from the file: the table is never held in memory (verify_index.h).
      PBSKIT_ASSIGN_OR_RETURN(VerifyIndexReader idx,
                              VerifyIndexReader::Open(*store_, ns, dir, info.filename, type));
      Digest csum;
      PBSKIT_RETURN_IF_ERROR(idx.Scan(nullptr, &csum));
      PBSKIT_RETURN_IF_ERROR(check(idx.size(), csum));
      return VerifyIndexChunks(idx, info.crypt_mode);
    }
    case ArchiveType::kBlob:
      return VerifyBlob(ns, dir, info);
  }
  return Status::OK();
}

bool VerifyWorker::VerifySnapshot(const BackupNamespace& ns, const BackupDir& dir) {
  const std::string name = StoreDir(dir);
  auto exists = PathExists(store_->fs(), store_->SnapshotPath(ns, dir));
  if (exists.ok() && !*exists) {
    log_->Info("SKIPPED: verify " + name + " - snapshot does not exist (anymore).");
    stats_.snapshots_skipped++;
    return true;
  }
  auto lock = store_->LockSnapshotShared(ns, dir);
  if (!lock.ok()) {
    log_->Info("SKIPPED: verify " + name +
               " - could not acquire snapshot lock: " + lock.status().message());
    stats_.snapshots_skipped++;
    return true;
  }
  auto manifest = store_->LoadManifest(ns, dir);
  if (!manifest.ok()) {
    log_->Info("verify " + name + " - manifest load error: " + manifest.status().message());
    stats_.snapshots_failed++;
    return false;
  }
  if (!Filter(*manifest)) {
    log_->Info("SKIPPED: verify " + name + " (recently verified)");
    stats_.snapshots_skipped++;
    return true;
  }
  log_->Info("verify " + name);
  stats_.snapshots_verified++;

  size_t error_count = 0;
  for (const FileInfo& info : manifest->files) {
    log_->Info("  check " + info.filename);
    Status st = VerifyFile(ns, dir, info);
    if (Aborted()) return true;  // PBS: check_abort before recording the result, no state
    if (!st.ok()) {
      log_->Info("verify " + name + "/" + info.filename + " failed: " + st.message());
      ++error_count;
    }
  }
  stats_.chunks_verified = verified_.size();
  stats_.chunks_corrupt = corrupt_.size();

  Status update = store_->UpdateManifestUnprotected(ns, dir, [&](boost::json::object& u) {
    u["verify_state"] = boost::json::object{{"state", error_count == 0 ? "ok" : "failed"},
                                            {"upid", upid_}};
    return Status::OK();
  });
  if (!update.ok()) {
    log_->Info("verify " + name + " - manifest update error: " + update.message());
    stats_.snapshots_failed++;
    return false;
  }
  if (error_count) stats_.snapshots_failed++;
  return error_count == 0;
}

std::vector<std::string> VerifyWorker::VerifyGroupWithProgress(const BackupNamespace& ns,
                                                               const BackupGroup& group,
                                                               Progress* progress) {
  std::vector<std::string> errors;
  auto list = store_->ListSnapshots(ns, group);
  if (!list.ok()) {
    log_->Info("verify " + PrintStoreAndNs(store_->name(), ns) + ", group " + group.ToString() +
               " - unable to list backups: " + list.status().message());
    return errors;
  }
  log_->Info("verify group " + store_->name() + ":" + group.ToString() + " (" +
             std::to_string(list->size()) + " snapshots)");
  progress->group_snapshots = list->size();
  std::vector<SnapshotInfo> snapshots = std::move(list).value();
  std::stable_sort(snapshots.begin(), snapshots.end(),
                   [](const SnapshotInfo& a, const SnapshotInfo& b) { return a.dir.time > b.dir.time; });
  for (size_t pos = 0; pos < snapshots.size() && !Aborted(); ++pos) {
    if (!VerifySnapshot(ns, snapshots[pos].dir))
      errors.push_back(PrintNsAndSnapshot(ns, snapshots[pos].dir));
    progress->done_snapshots = pos + 1;
    log_->Info("percentage done: " + progress->ToString());
  }
  return errors;
}

std::vector<std::string> VerifyWorker::VerifyGroup(const BackupNamespace& ns,
                                                   const BackupGroup& group) {
  Progress progress;
  progress.total_groups = 1;
  return VerifyGroupWithProgress(ns, group, &progress);
}

std::vector<std::string> VerifyWorker::VerifyAll(const BackupNamespace& ns, size_t max_depth) {
  std::vector<std::string> errors;
  log_->Info("verify datastore " + store_->name());

  auto namespaces = store_->ListNamespaces(ns, /*recursive=*/true);
  if (!namespaces.ok()) {
    log_->Info("unable to list backups: " + namespaces.status().message());
    return errors;
  }
  std::vector<std::pair<BackupNamespace, BackupGroup>> list;
  for (const BackupNamespace& child : *namespaces) {
    if (child.depth() > ns.depth() + max_depth) continue;
    auto groups = store_->ListGroups(child);
    if (!groups.ok()) {
      log_->Info("error on iterating groups in ns '" + child.ToString() + "' - " +
                 groups.status().message());
      errors.push_back(groups.status().message());
      continue;
    }
    for (const BackupGroup& g : *groups) {
      if (g.type == BackupType::kHost && g.id == "benchmark") continue;
      list.emplace_back(child, g);
    }
  }
  std::stable_sort(list.begin(), list.end(),
                   [](const auto& a, const auto& b) { return a.second < b.second; });
  log_->Info("found " + std::to_string(list.size()) + " groups");

  Progress progress;
  progress.total_groups = list.size();
  for (size_t pos = 0; pos < list.size() && !Aborted(); ++pos) {
    progress.done_groups = pos;
    progress.done_snapshots = 0;
    progress.group_snapshots = 0;
    auto group_errors = VerifyGroupWithProgress(list[pos].first, list[pos].second, &progress);
    errors.insert(errors.end(), group_errors.begin(), group_errors.end());
  }
  return errors;
}

Status RunVerifyTask(std::shared_ptr<DataStore> store, const VerifyTarget& target,
                     const VerifyOptions& options, const std::string& upid, TaskLogger* log,
                     VerifyTaskResult* result) {
  if (!target.ns.IsRoot()) {
    PBSKIT_ASSIGN_OR_RETURN(bool ns_exists, store->NamespaceExists(target.ns));
    if (!ns_exists)
      return Status::NotFound("namespace '" + target.ns.ToString() +
                              "' does not exist in datastore '" + store->name() + "'");
  }
  if (target.group) {
    PBSKIT_ASSIGN_OR_RETURN(bool group_exists, store->GroupExists(target.ns, *target.group));
    if (!group_exists)
      return Status::NotFound("group '" + target.group->ToString() + "' does not exist in " +
                              PrintStoreAndNs(store->name(), target.ns));
  }
  VerifyWorker worker(store, log, upid, options);
  std::vector<std::string> failed;
  if (target.group && target.backup_time) {
    BackupDir dir{*target.group, *target.backup_time};
    auto exists = PathExists(store->fs(), store->SnapshotPath(target.ns, dir));
    if (exists.ok() && !*exists)
      return Status::NotFound("snapshot '" + dir.ToString() + "' does not exist in " +
                              PrintStoreAndNs(store->name(), target.ns));
    if (!worker.VerifySnapshot(target.ns, dir)) failed.push_back(PrintNsAndSnapshot(target.ns, dir));
  } else if (target.group) {
    failed = worker.VerifyGroup(target.ns, *target.group);
  } else {
    failed = worker.VerifyAll(target.ns, target.max_depth);
  }
  if (result) {
    result->failed = failed;
    result->stats = worker.stats();
  }
  PBSKIT_RETURN_IF_ERROR(CheckTaskAbort(options.abort));
  if (!failed.empty()) {
    log->Info("Failed to verify the following snapshots/groups:");
    for (const auto& f : failed) log->Info("\t" + f);
    return Status::Corruption("verification failed - please check the log for details");
  }
  return Status::OK();
}

}  // namespace pbskit
