// Verify's streaming view of a fixed (.fidx) or dynamic (.didx) index file: the header is
// checked like FixedIndex::Parse / DynamicIndex::Parse do (same Corruption messages), the entry
// table is streamed in 64 KiB blocks (index checksum, one callback per entry) and single entries
// are read back with pread. Nothing proportional to the chunk count is held, so verifying an
// index of 1M chunks does not need its 32-40 MB table in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/fs.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/manifest.h"
#include "pbskit/formats/names.h"
#include "pbskit/formats/status.h"

namespace pbskit {

class VerifyIndexReader {
 public:
  // Opens `archive` (kFixedIndex or kDynamicIndex, as `type` says) of snapshot `dir` in `ns`
  // through store.fs() and checks its header and length. Errors: InvalidArgument for a bad
  // archive name or another type; NotFound (DataStore::ReadSnapshotFile wording) when missing;
  // IoError when unreadable; Corruption (FixedIndex/DynamicIndex::Parse wording, naming the
  // file's path) for a short file, wrong magic, bad chunk size, zero image size, or a table
  // length that does not fit the header / the entry size.
  static Result<VerifyIndexReader> Open(const DataStore& store, const BackupNamespace& ns,
                                        const BackupDir& dir, const std::string& archive,
                                        ArchiveType type);

  VerifyIndexReader(VerifyIndexReader&&) = default;
  VerifyIndexReader& operator=(VerifyIndexReader&&) = default;

  size_t chunk_count() const { return count_; }
  // Image size: from the header (fixed) or the last entry's end (dynamic; 0 before the first
  // successful Scan).
  uint64_t size() const { return size_; }
  const std::string& name() const { return name_; }

  // Streams the whole entry table in file order, calls fn(pos, digest) for each entry (fn may
  // be empty) and, when csum is not null, stores SHA-256 over the table (what the manifest's
  // csum must equal) in *csum.
  // A non-OK status from fn ends the scan and is returned. Corruption for a dynamic entry that
  // does not end after the previous one; IoError when the file cannot be read (or shrank).
  // Not thread safe with respect to other Scan calls; ReadEntry may run concurrently.
  Status Scan(const std::function<Status(size_t pos, const Digest& d)>& fn, Digest* csum);

  // Digest and chunk length (bytes of the image it covers) of entry `pos` < chunk_count(), read
  // with pread. For dynamic indexes the length relies on the ends Scan validated. IoError when
  // the read fails or comes back short. Thread safe.
  Status ReadEntry(size_t pos, Digest* digest, uint64_t* length) const;

 private:
  VerifyIndexReader() = default;

  Filesystem* fs_ = nullptr;
  ScopedFd fd_;
  std::string name_;  // the file's path, as the parse errors name it
  bool fixed_ = true;
  uint64_t count_ = 0;
  uint64_t size_ = 0;
  uint64_t chunk_size_ = 0;  // fixed only
};

}  // namespace pbskit
