// Import of a whole datastore written by any PBS version (1.x without namespaces, 2.x, 3.x, 4.x)
// into another datastore (FORMATS.md §11 compatibility notes, Appendix A).
//
// Every finished snapshot of every namespace and group of the source is copied below a target
// namespace of the destination with its group owner, group notes, `.protected` marker and the
// manifest exactly as it is (so signatures, snapshot notes, verify state and upload statistics
// carry over byte for byte). Chunks are deduplicated against the destination: a chunk the
// destination already has is reused; a new one is hard-linked or reflinked (FICLONE) when both
// stores share a filesystem, else copied. On the way every new chunk is checked (CRC, and for
// unencrypted chunks the digest and length) unless verification is switched off; a corrupt or
// missing chunk keeps every snapshot that uses it out of the destination.
//
// Crash safety: a snapshot is assembled in a hidden directory "<group>/.import.<time>.tmp"
// (chunks first, then indexes and blobs, the manifest last), synced, and renamed to its final
// name, so it appears complete or not at all. A rerun removes leftovers of an interrupted run
// and skips snapshots that are already there with the same manifest, so running the import
// again after a crash finishes the job, and running it twice changes nothing.
//
// The destination's chunk store is held with a shared process lock for the whole run (PBS
// garbage collection cannot start meanwhile); the source is only read and never locked, so a
// read-only copy can be imported.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/task_log.h"
#include "pbskit/formats/names.h"
#include "pbskit/formats/status.h"

namespace pbskit {

// How new chunks get into the destination.
enum class ChunkTransfer {
  kAuto,  // hard link, else reflink, else copy
  kLink,  // hard link only; both stores must be on one filesystem (InvalidArgument otherwise)
  kCopy,  // always write a new file
};
// "auto", "link", "copy".
const char* ChunkTransferName(ChunkTransfer t);

struct DatastoreImportProgress {
  uint64_t snapshots_done = 0;
  uint64_t snapshots_total = 0;
  uint64_t chunk_bytes = 0;  // source chunk bytes handled so far
  std::string current;       // snapshot being imported ("ns/a: vm/100/...")
};

struct DatastoreImportOptions {
  // Target namespace in the destination; source namespace "x/y" lands in "<ns>/x/y". Created
  // (with its parents) when missing.
  BackupNamespace ns;
  ChunkTransfer transfer = ChunkTransfer::kAuto;
  bool verify_chunks = true;  // false: --no-verify
  // Chunk pipeline: reader threads load source chunks, worker threads check and store them.
  size_t read_threads = 1;
  size_t work_threads = 4;
  // Owner for a source group without an `owner` file (PBS needs one for every group).
  std::string default_owner = "root@pam";
  // The `backend` property of the source's datastore.cfg entry when the source is a configured
  // datastore ("type=s3,..." marks the local cache of an S3-backed store).
  std::optional<std::string> source_backend;
  // Task log sink (required).
  TaskLogger* log = nullptr;
  // Called after each snapshot and now and then while chunks are moved; any thread, one call
  // at a time.
  std::function<void(const DatastoreImportProgress&)> progress;
  // Crash-test hook, called on the importing thread at the points where a crash matters:
  // "chunks-stored" (a snapshot's chunks are in place, its directory still hidden),
  // "manifest-written" (everything written, not yet renamed) and "renamed" (snapshot visible).
  // The CLI arms it from env PBSKIT_FAULT_IMPORT="<point>:<n>" to SIGKILL itself at the nth
  // call, so tests exercise a real kill -9.
  std::function<void(std::string_view point)> fault_point;
};

struct DatastoreImportResult {
  uint64_t namespaces = 0;  // source namespaces visited (root included)
  uint64_t groups = 0;
  uint64_t snapshots_total = 0;  // finished source snapshots
  uint64_t snapshots_imported = 0;
  uint64_t snapshots_skipped = 0;  // already in the destination with the same manifest
  uint64_t snapshots_failed = 0;
  uint64_t snapshots_unfinished = 0;  // source snapshots without manifest (not imported)
  uint64_t chunks_linked = 0;
  uint64_t chunks_cloned = 0;
  uint64_t chunks_copied = 0;
  uint64_t chunks_reused = 0;  // already in the destination
  uint64_t chunks_bad = 0;     // distinct corrupt or missing source chunks
  uint64_t chunk_bytes = 0;    // encoded bytes of all chunks handled (each once per snapshot)
  uint64_t bytes_linked = 0;   // of which hard-linked or reflinked (no data written)
  uint64_t bytes_copied = 0;   // of which written as new files
  uint64_t file_bytes = 0;     // index, blob and manifest bytes written
  // "<snapshot>: <reason>" for every snapshot not imported.
  std::vector<std::string> failures;
  // "<digest>: <reason> (used by <snapshot>, ...)" for every bad chunk.
  std::vector<std::string> bad_chunks;
};

// Checks whether `source_base` is the local cache of a PBS 4.x S3-backed datastore (FORMATS.md
// §10, §11): a datastore.cfg backend "type=s3", the bucket-side `.in-use` marker or `.cnt/`
// content tree, or `.using` marker files in `.chunks`. Returns Unsupported with the reason when
// it is, OK otherwise; IoError when `.chunks` cannot be read. Reads directory entries only
// (one readdir per prefix directory).
Status CheckNotS3Cache(const std::string& source_base,
                       const std::optional<std::string>& source_backend);

// Imports every finished snapshot of `source` into `dest` (see the file comment). The task log
// gets PBS-style lines; the result counts what happened.
// Requires: options.log set; source and dest distinct directories.
// Returns the result even when snapshots failed (failures listed, snapshots_failed > 0).
// Errors that stop the whole import: InvalidArgument (same store twice, --link across
// filesystems, target namespace too deep), Unsupported (S3 cache source, also when an evicted
// zero-length chunk is met mid-run), Busy (the destination's GC runs), IoError (destination not
// writable, source unreadable). Snapshots finished before such an error stay complete.
// Thread safety: one import per destination at a time (the group locks enforce it per group).
Result<DatastoreImportResult> ImportDatastore(const std::shared_ptr<DataStore>& source,
                                              const std::shared_ptr<DataStore>& dest,
                                              const DatastoreImportOptions& options);

}  // namespace pbskit
