// PBS tape content files after the labels: chunk archives (v1.1), snapshot archives (v1.1 root
// namespace, v1.2 other namespaces; a pxar v1 stream of the snapshot's files) and catalog
// archives (v1.0 / v1.1; a media catalog copied verbatim). Writers produce one complete tape file
// (header, data, end block, filemark) through a TapeBlockWriter; readers work on an opened
// BlockedReader. No filesystem access here: snapshot files come in through callbacks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/formats/hex.h"
#include "pbskit/formats/pxar/format.h"
#include "pbskit/formats/status.h"
#include "pbskit/formats/tape/blocked_stream.h"
#include "pbskit/formats/tape/media_content.h"

namespace pbskit::tape {

inline constexpr size_t kChunkArchiveEntryHeaderSize = 48;
// An archive is closed after the chunk that takes it past this size (MAX_CHUNK_ARCHIVE_SIZE).
inline constexpr uint64_t kMaxChunkArchiveSize = 4ull * 1024 * 1024 * 1024;
// Upper bound accepted for the JSON header of an archive.
inline constexpr uint32_t kArchiveHeaderMaxSize = 64 * 1024;

// Reads the MediaContentHeader and its header data from an opened stream, checking only the
// header magic (Corruption "missing MediaContentHeader") and a header size <= 64 KiB.
// Corruption / IoError from the stream otherwise.
Status ReadAnyContentHeader(BlockedReader* reader, MediaContentHeader* header, std::string* data);

// ------------------------------------------------------------------ chunk archives

// JSON header {"store": ...} (serde pretty, declaration order).
std::string ChunkArchiveHeaderJson(std::string_view store);
// InvalidArgument "unable to parse chunk archive header - ..." for bad JSON.
Result<std::string> ParseChunkArchiveHeader(std::string_view json);

// Writes one chunk archive. Not thread safe; `device` must outlive the writer.
class ChunkArchiveWriter {
 public:
  // Writes the content header (fresh content uuid unless given) and the JSON header.
  // `close_on_leom`: at logical end of media the archive is finished at once (as PBS's backup
  // job does). IoError from the device.
  static Result<std::unique_ptr<ChunkArchiveWriter>> Begin(
      TapeBlockWriter* device, std::string_view store, bool close_on_leom, int64_t ctime,
      const std::optional<Uuid>& content_uuid = std::nullopt);

  // Appends one entry (header + raw DataBlob bytes, fed in 256 KiB slices). Returns false when
  // the archive was closed at LEOM before the chunk's last slice went out (the chunk then does
  // not count as written; only the last entry of an archive can be cut like this). Also false
  // once the archive is closed. IoError from the device.
  Result<bool> TryWriteChunk(const Digest& digest, std::span<const uint8_t> raw_blob);
  // Writes the end block and the filemark (no-op if already closed at LEOM). Returns whether
  // LEOM was seen. IoError from the device.
  Result<bool> Finish();

  const Uuid& uuid() const { return uuid_; }
  // Stream bytes written so far (header included).
  uint64_t bytes_written() const { return writer_->bytes_written(); }
  bool closed() const { return closed_; }

 private:
  ChunkArchiveWriter(TapeBlockWriter* device, bool close_on_leom)
      : writer_(std::make_unique<BlockedWriter>(device)), close_on_leom_(close_on_leom) {}

  std::unique_ptr<BlockedWriter> writer_;
  bool close_on_leom_;
  bool closed_ = false;
  Uuid uuid_{};
};

// Decodes the entries of a chunk archive whose header was already read.
class ChunkArchiveDecoder {
 public:
  explicit ChunkArchiveDecoder(BlockedReader* reader) : reader_(reader) {}
  // Next entry: true with digest and raw blob (magic known and CRC verified), false at the end.
  // A stream ending before an entry header, or inside the blob of the last entry, is a normal
  // end (a truncated last chunk is dropped, as PBS does); truncated() says whether that
  // happened. Corruption "wrong magic number" for a bad entry header, a blob with an unknown
  // magic or a CRC mismatch (naming the digest); IoError from the device.
  Result<bool> Next(Digest* digest, std::vector<uint8_t>* raw_blob);
  bool truncated() const { return truncated_; }

 private:
  Status ReadOrEof(std::span<uint8_t> out, bool* eof);

  BlockedReader* reader_;
  bool truncated_ = false;
};

// ------------------------------------------------------------------ snapshot archives

struct SnapshotArchiveHeader {
  std::string snapshot;  // "[ns/a/ns/b/]type/id/time"
  std::string store;
  std::string ToJson() const;  // serde pretty, declaration order (snapshot, store)
  // InvalidArgument "unable to parse snapshot archive header - ..." / bad snapshot name.
  static Result<SnapshotArchiveHeader> FromJson(std::string_view json);
};

// One file of a snapshot archive. `read(offset, buf)` returns bytes read (0 at the end).
struct SnapshotArchiveFile {
  std::string name;
  pxar::Stat stat;  // must be a regular file
  uint64_t size = 0;
  std::function<Result<size_t>(uint64_t offset, std::span<uint8_t> buf)> read;
};

// Writes a snapshot archive: v1.1 when `root_namespace`, else v1.2. Returns the content uuid,
// or nullopt when logical end of media was hit: the stream is then finished with the
// INCOMPLETE flag and the whole archive must be written again on the next tape. IoError from
// the device or a file reader; InvalidArgument "file '<name>' changed while reading" / "shrunk".
Result<std::optional<Uuid>> WriteSnapshotArchive(
    TapeBlockWriter* device, const SnapshotArchiveHeader& header, bool root_namespace,
    const std::vector<SnapshotArchiveFile>& files, int64_t ctime,
    const std::optional<Uuid>& content_uuid = std::nullopt);

// Reads the pxar body of a snapshot archive (header already read). `on_file(name, stat, size,
// read)` is called per file, in archive order; `read` streams the file's bytes (0 = end) and
// must be used before the callback returns. Corruption when the root is not a directory, an
// entry is not a regular file directly below the root, or the pxar stream is damaged; the
// block reader's errors pass through (a stream cut at LEOM shows up as Corruption).
Status ReadSnapshotArchive(
    BlockedReader* reader,
    const std::function<Status(const std::string& name, const pxar::Stat& stat, uint64_t size,
                               const std::function<Result<size_t>(std::span<uint8_t>)>& read)>&
        on_file);

// ------------------------------------------------------------------ catalog archives

struct CatalogArchiveHeader {
  Uuid uuid{};                 // media the catalog describes
  Uuid media_set_uuid{};       // its media set
  uint64_t seq_nr = 0;         // its position in the set
  std::string ToJson() const;  // serde pretty, declaration order (uuid, media_set_uuid, seq_nr)
  // InvalidArgument "unable to parse catalog archive header - ...".
  static Result<CatalogArchiveHeader> FromJson(std::string_view json);
};

// Writes a catalog archive (v1.1 when `ns_magic`, else v1.0) with `catalog` (the .log bytes).
// Returns the content uuid, or nullopt when logical end of media came first: the stream is
// finished INCOMPLETE and the catalog must go to the next tape. (PBS keeps writing after LEOM
// until the device refuses; stopping at LEOM gives the same result and cannot run a virtual
// tape into "no space".) IoError from the device.
Result<std::optional<Uuid>> WriteCatalogArchive(
    TapeBlockWriter* device, const CatalogArchiveHeader& header, bool ns_magic,
    std::span<const uint8_t> catalog, int64_t ctime,
    const std::optional<Uuid>& content_uuid = std::nullopt);

}  // namespace pbskit::tape
