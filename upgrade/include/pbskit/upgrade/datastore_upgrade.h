// In-place upgrade of a datastore written by an older PBS version to what PBS 4.x expects
// (FORMATS.md §1.1, §1.4, §1.5, §8.3, §11).
//
// What it changes (each change is listed; with dry_run nothing is written):
//   * the chunk store skeleton: missing `.chunks/0000`…`ffff` prefix directories are created,
//     the modes PBS's "reuse existing datastore" check demands are set (datastore directory
//     0755, `.chunks` and prefix directories 0750, `.lock` 0644) and, when running as root, the
//     owner becomes the `backup` user; a missing `.lock` is created;
//   * crash leftovers no PBS process owns once the datastore is locked: chunk temp files
//     `<digest>.tmp_XXXXXX`, temp files inside finished snapshots (`*.tmp_fidx`, `*.tmp_didx`,
//     `*.tmp_XXXXXX`) and the PBS ≤ 1.0.5 manifest lock `.index.json.lck` in snapshot
//     directories;
//   * groups without a usable `owner` file get one (4.x refuses backups into them otherwise);
//   * an unreadable `.gc-status` is replaced by an empty status (4.x would log an error on every
//     open).
// What it never changes: chunk files, index files, blobs and manifests.
// What it reports without changing (problems make the result "not clean"): namespace
// directories with names PBS cannot list, fixed indexes whose chunk size is not a power of two
// (refused by PBS ≥ 4.1.5 readers), `.protected` markers that are not files, an S3 local cache.
// Informational notes: unfinished snapshots, groups without snapshots, manifests older than
// 0.8.0 (defaults apply), a missing `.gc-status`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pbskit/datastore/task_log.h"
#include "pbskit/formats/status.h"

namespace pbskit {

struct DatastoreUpgradeOptions {
  bool dry_run = false;
  // Owner written for groups without an owner file.
  std::string default_owner = "root@pam";
  // Optional sink: every change, problem and note is also logged there as it is found.
  TaskLogger* log = nullptr;
};

struct UpgradeChange {
  std::string path;         // datastore-relative ("." for the datastore directory)
  std::string description;  // what is (or would be) done, e.g. "create directory (mode 0750)"
};

struct DatastoreUpgradeResult {
  std::vector<UpgradeChange> changes;  // made, or with dry_run: would be made
  std::vector<std::string> problems;   // found but not fixable here
  std::vector<std::string> notes;      // informational
  uint64_t namespaces = 0, groups = 0, snapshots = 0;
  bool dry_run = false;
};

// Upgrades the datastore at `path` in place (see the file comment). Holds the exclusive process
// lock on `<path>/.lock` while changing anything (Busy "datastore is in use ..." while a backup,
// GC or another upgrade runs); a dry run takes no lock and writes nothing.
// Returns the list of changes even when problems were found. NotFound when `path` is not a
// datastore (no `.chunks` directory); IoError when a change fails (the changes made before are
// in the error message's context only, rerunning continues where it stopped); Unsupported for
// the local cache of an S3-backed datastore (recognised by `.using` markers), which PBS
// manages itself. Idempotent: a second run finds nothing to change.
Result<DatastoreUpgradeResult> UpgradeDatastore(const std::string& path,
                                                const DatastoreUpgradeOptions& options);

}  // namespace pbskit
