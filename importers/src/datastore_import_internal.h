// Private parts of the datastore import: the chunk mover (datastore_import_chunks.cc) used by
// the snapshot walk (datastore_import.cc).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "pbskit/datastore/chunk_store.h"
#include "pbskit/datastore/worker_pool.h"
#include "pbskit/formats/hex.h"
#include "pbskit/importers/datastore_import.h"

namespace pbskit::import_detail {

// One chunk a snapshot needs: digest, decoded length expected by its index, and whether the
// index's crypt mode says the chunk is encrypted.
struct ChunkJob {
  Digest digest{};
  uint64_t size = 0;
  bool encrypted = false;
};

// What moving the chunks of one snapshot found.
struct SnapshotChunks {
  std::vector<Digest> bad;  // corrupt or missing chunks (the snapshot cannot be imported)
  Status error;             // a read error that is not corruption (IoError)
};

// Counters over the whole run (updated from worker threads).
struct ChunkCounters {
  std::atomic<uint64_t> linked{0}, cloned{0}, copied{0}, reused{0};
  std::atomic<uint64_t> bytes{0}, bytes_linked{0}, bytes_copied{0};
};

// Moves chunks from the source chunk store to the destination chunk store through one bounded
// WorkerPool. Remembers bad chunks for the whole run so a chunk shared by many snapshots is
// read once. Thread safety: MoveChunks is called by one thread at a time.
class ChunkMover {
 public:
  ChunkMover(ChunkStore* source, ChunkStore* dest, const DatastoreImportOptions& options,
             bool same_filesystem, ChunkCounters* counters);

  // Makes every chunk of `jobs` present in the destination (reused, linked, cloned or copied),
  // checking new ones unless verification is off. Corrupt / missing chunks and read errors are
  // reported in *out (the snapshot then must not be imported). Returns non-OK only for errors
  // that end the whole import: Unsupported for a zero-length (S3 cache) source chunk, IoError
  // when the destination cannot be written. `on_bytes` (optional) gets the encoded size of
  // each handled chunk.
  Status MoveChunks(const std::vector<ChunkJob>& jobs, SnapshotChunks* out,
                    const std::function<void(uint64_t)>& on_bytes);

  // Reason recorded for a bad chunk (empty when the chunk is not known to be bad).
  std::string BadReason(const Digest& d) const;

 private:
  enum class Outcome { kDone, kNeedsWork };
  Outcome Read(const ChunkJob& job, std::vector<uint8_t>* buf, bool* have_data,
               SnapshotChunks* out);
  void Work(const ChunkJob& job, std::vector<uint8_t>* buf, bool have_data,
            std::vector<uint8_t>* scratch, SnapshotChunks* out);
  Status Store(const ChunkJob& job, std::vector<uint8_t>* buf, bool have_data);
  Status LinkChunk(const Digest& d, bool* existed);
  Status CloneChunk(const Digest& d);
  Status CopyChunk(const Digest& d, std::vector<uint8_t>* buf, bool have_data);
  Status ReadSourceChunk(const Digest& d, std::vector<uint8_t>* buf);
  void MarkBad(const Digest& d, const std::string& reason, SnapshotChunks* out);
  void SetError(const Status& s, SnapshotChunks* out);

  ChunkStore* source_;
  ChunkStore* dest_;
  DatastoreImportOptions options_;
  bool same_fs_;
  ChunkCounters* counters_;
  WorkerPool pool_;

  mutable std::mutex mu_;  // guards bad_ and the SnapshotChunks being filled
  std::map<Digest, std::string> bad_;
  Status fatal_;
};

// Digest of a chunk file name as the bad-chunk report prints it.
inline std::string DigestText(const Digest& d) { return ToHex(d); }

}  // namespace pbskit::import_detail
