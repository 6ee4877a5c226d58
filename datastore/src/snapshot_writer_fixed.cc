// SnapshotWriter: fixed indexes assembled by the caller (StoreChunkData +
// AddFixedIndexFromDigests), for importers that see an image's chunks out of order.
#include <chrono>

#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/formats/fixed_index.h"

namespace pbskit {

Result<Digest> SnapshotWriter::StoreChunkData(std::span<const uint8_t> data,
                                              ArchiveUploadStats* stats) {
  if (finished_ || aborted_ || failed_)
    return Status::Aborted("snapshot writer for '" + snapshot_path_ + "' is no longer usable");
  Digest d;
  PBSKIT_RETURN_IF_ERROR(StoreChunk(data, &d, stats));
  return d;
}

Result<ArchiveResult> SnapshotWriter::AddFixedIndexFromDigests(const std::string& archive,
                                                               uint64_t size,
                                                               std::span<const Digest> digests,
                                                               const ArchiveUploadStats& stats,
                                                               uint64_t chunk_size) {
  PBSKIT_RETURN_IF_ERROR(CheckNewArchive(archive, ArchiveType::kFixedIndex));
  const bool pow2 = chunk_size != 0 && (chunk_size & (chunk_size - 1)) == 0;
  if (!pow2 || chunk_size < 65536 || chunk_size > kDefaultFixedChunkSize)
    return Status::InvalidArgument("fixed index chunk size must be a power of two between 64 KiB "
                                   "and 4 MiB, got " + std::to_string(chunk_size));
  if (size == 0)
    return Fail(Status::InvalidArgument(
        "archive '" + archive + "': the image is empty - a fixed index cannot describe 0 bytes"));
  auto t0 = std::chrono::steady_clock::now();
  FixedIndexWriter writer(size, chunk_size);
  if (writer.chunk_count() != digests.size())
    return Fail(Status::InvalidArgument(
        "archive '" + archive + "': " + std::to_string(digests.size()) + " digests for " +
        std::to_string(writer.chunk_count()) + " chunks of " + std::to_string(size) + " bytes"));
  for (size_t i = 0; i < digests.size(); ++i) {
    Status s = writer.SetDigest(i, digests[i]);
    if (!s.ok()) return Fail(s);
  }
  Digest csum;
  auto bytes = writer.Finish(&csum);
  if (!bytes.ok()) return Fail(bytes.status());
  Status ws = WriteIndexFile(archive, *bytes);
  if (!ws.ok()) return Fail(ws);

  ArchiveResult result;
  result.stats = stats;
  result.stats.chunk_count = digests.size();
  result.stats.size = size;
  result.stats.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() + stats.seconds;
  result.info = FileInfo{archive, options_.crypt_mode, size, csum};
  files_.push_back(result.info);
  return result;
}

}  // namespace pbskit
