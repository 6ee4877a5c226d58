// Verify with PBS semantics (FORMATS.md §8.5, proxmox-backup src/backup/verify.rs):
//   per snapshot (shared snapshot lock, skipped when not lockable): load the manifest, then per
//   file: blobs (CRC, size, SHA-256, plain ones must decode); indexes (recomputed csum/size
//   against the manifest, then every chunk once per job: CRC, magic, crypt mode against the
//   index, and for plain chunks digest and length). Chunks are read in inode order (tuning
//   chunk-order=inode) by reader threads and checked by verify threads (one WorkerPool, reused
//   buffers, no per-chunk allocation). Memory: index tables are streamed from their files, an
//   index's chunk list costs 12 bytes per chunk still to check and the job-wide verified / corrupt
//   sets about 32 bytes per distinct chunk (1M chunks: about 55 MB peak). A chunk that is missing
//   or corrupt is renamed <digest>.<N>.bad; a transient read error (IoError) counts as an error
//   but never renames.
//   The result goes into the manifest's unprotected `verify_state` {state, upid} under the
//   manifest lock.
// Log lines use PBS's task-log wording ("verify datastore store1", "verify group ...",
// "  check <archive>", "  verified X/Y MiB in Z seconds, speed A/B MiB/s (N errors)", ...).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/task_log.h"
#include "pbskit/datastore/worker_pool.h"
#include "pbskit/formats/dynamic_index.h"
#include "pbskit/formats/fixed_index.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/manifest.h"
#include "pbskit/formats/names.h"
#include "pbskit/formats/status.h"

namespace pbskit {

class VerifyIndexReader;  // datastore/src/verify_index.h

struct VerifyOptions {
  size_t read_threads = 1;    // PBS default-verification-readers
  size_t verify_threads = 4;  // PBS default-verification-workers
  bool inode_order = true;    // tuning chunk-order (inode | none)
  // Skip snapshots that already carry a verify_state, unless it is older than
  // outdated_after_days (days since the verifying task's start, PBS verify_filter).
  bool ignore_verified = false;
  std::optional<int64_t> outdated_after_days;
  int64_t now = 0;  // epoch seconds for the outdated check; 0 = the current time
  // Set by another thread to stop the job (borrowed; null = never). Polled per chunk and per
  // snapshot; a snapshot whose check was cut short gets no verify_state.
  const std::atomic<bool>* abort = nullptr;
};

// What a verify task covers: a whole namespace tree (no group), a group, or one snapshot.
struct VerifyTarget {
  BackupNamespace ns;                  // root = the whole datastore
  std::optional<BackupGroup> group;    // set: only this group of `ns`
  std::optional<int64_t> backup_time;  // set (with group): only this snapshot
  size_t max_depth = kMaxNamespaceDepth;
};

// PBS's worker type and worker id for a verify task of `target` ("verify_snapshot",
// "store1:/vm/100/663220B0"; "verify_group", "store1:ns/a/vm/100"; "verify", "store1").
std::pair<std::string, std::string> VerifyWorkerTypeAndId(const std::string& store,
                                                          const VerifyTarget& target);

// A set of chunk digests kept compact for whole-datastore jobs: 65536 shards chosen by the
// first two digest bytes, each a sorted array of the remaining 30 bytes grown by about 1/8 at a
// time, so an entry costs about 32 bytes (1M digests: about 36 MB) and growing never copies more
// than one shard. Lookups are a binary search in a shard of size / 65536 entries. The shard table
// is allocated on the first insert (an empty set costs nothing). Thread safe (one mutex).
class DigestSet {
 public:
  DigestSet();
  ~DigestSet();
  DigestSet(const DigestSet&) = delete;
  DigestSet& operator=(const DigestSet&) = delete;
  bool Contains(const Digest& d) const;
  // True when newly inserted. May allocate (the shard grows; the table on the first insert).
  bool Insert(const Digest& d);
  size_t size() const;
  // Heap bytes held: shard arrays at their capacity plus the shard table.
  size_t memory_bytes() const;

 private:
  using Tail = std::array<uint8_t, 30>;
  mutable std::mutex mu_;
  std::vector<std::vector<Tail>> shards_;  // empty until the first insert, then 65536
  size_t count_ = 0;
};

struct VerifyStats {
  uint64_t snapshots_verified = 0;  // snapshots checked (ok or failed)
  uint64_t snapshots_skipped = 0;   // recently verified, locked, vanished
  uint64_t snapshots_failed = 0;
  uint64_t chunks_verified = 0;     // distinct chunks found good
  uint64_t chunks_corrupt = 0;      // distinct chunks found bad (renamed when possible)
  uint64_t read_bytes = 0, decoded_bytes = 0;
};

// One verify job: owns the verified/corrupt digest sets shared by every snapshot it checks and
// the worker pool with its buffers. Not thread safe (one call at a time); internally parallel.
class VerifyWorker {
 public:
  // `log` is borrowed (must outlive the worker); `upid` is the task's UPID string written into
  // verify_state.
  VerifyWorker(std::shared_ptr<DataStore> store, TaskLogger* log, std::string upid,
               VerifyOptions options);

  // Verifies one snapshot. Returns true when it verified OK or was skipped, false when it
  // failed (errors are logged, verify_state "failed" is written). Never returns an error for
  // problems of the data itself.
  bool VerifySnapshot(const BackupNamespace& ns, const BackupDir& dir);
  // Verifies every snapshot of a group, newest first, logging "percentage done" lines.
  // Returns the snapshots that failed, printed as PBS does ("ns/a/vm/100/<time>").
  std::vector<std::string> VerifyGroup(const BackupNamespace& ns, const BackupGroup& group);
  // Verifies every group in `ns` and its child namespaces down to max_depth ("verify datastore
  // <name>", "found N groups", then each group). Returns failed snapshots (and listing errors).
  std::vector<std::string> VerifyAll(const BackupNamespace& ns, size_t max_depth);

  const VerifyStats& stats() const { return stats_; }
  // True once VerifyOptions::abort is set. The Verify* calls stop at the next chunk or snapshot
  // when it is; RunVerifyTask then returns Aborted("abort requested - aborting task").
  bool Aborted() const { return !CheckTaskAbort(options_.abort).ok(); }
  const DigestSet& corrupt_chunks() const { return corrupt_; }

 private:
  struct Progress {
    uint64_t done_groups = 0, total_groups = 0, done_snapshots = 0, group_snapshots = 0;
    std::string ToString() const;
  };
  std::vector<std::string> VerifyGroupWithProgress(const BackupNamespace& ns,
                                                   const BackupGroup& group, Progress* progress);
  bool Filter(const Manifest& manifest) const;
  Status VerifyFile(const BackupNamespace& ns, const BackupDir& dir, const FileInfo& info);
  Status VerifyBlob(const BackupNamespace& ns, const BackupDir& dir, const FileInfo& info);
  // Checks the chunks of one index, read from its file entry by entry (verify_index.h): the
  // index itself is never held in memory, only 12 bytes per distinct chunk still to check.
  Status VerifyIndexChunks(VerifyIndexReader& index, CryptMode crypt_mode);
  // Records a bad chunk: corrupt set, log line, error count, and (rename) <digest>.<N>.bad.
  void MarkCorrupt(const Digest& d, const std::string& message, bool rename,
                   std::atomic<uint64_t>* errors);
  std::string StoreDir(const BackupDir& dir) const;  // "<store>:<type>/<id>/<time>"

  std::shared_ptr<DataStore> store_;
  TaskLogger* log_;
  std::string upid_;
  VerifyOptions options_;
  WorkerPool pool_;
  std::vector<std::vector<uint8_t>> read_bufs_;    // one per pool slot
  std::vector<std::vector<uint8_t>> decode_bufs_;  // one per verify thread
  DigestSet verified_, corrupt_;
  VerifyStats stats_;
};

struct VerifyTaskResult {
  std::vector<std::string> failed;  // snapshots (or listing errors) that failed
  VerifyStats stats;
};

// Runs a whole verify task like PBS's verify API worker: the target's snapshots are verified
// and, when any failed, "Failed to verify the following snapshots/groups:" and one "\t<dir>"
// line each are logged and the result is Status::Corruption("verification failed
// - please check the log for details"). NotFound when the target group / snapshot / namespace
// does not exist. Aborted("abort requested - aborting task") when options.abort was set during
// the run (the snapshot being checked then keeps its old verify_state). OK otherwise.
Status RunVerifyTask(std::shared_ptr<DataStore> store, const VerifyTarget& target,
                     const VerifyOptions& options, const std::string& upid, TaskLogger* log,
                     VerifyTaskResult* result = nullptr);

}  // namespace pbskit
