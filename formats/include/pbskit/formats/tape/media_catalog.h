// The PBS media catalog `<uuid>.log` (format v1.1): which tape file holds which chunk archive
// (and its chunk digests) and which snapshot archive. Pure codec: MediaCatalogBuilder appends
// entries to a byte buffer, enforcing the same rules ParseMediaCatalog checks on load.
// Placement on disk (TAPE_STATUS_DIR/<uuid>.log), locking and commits belong to datastore/.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/formats/hex.h"
#include "pbskit/formats/status.h"
#include "pbskit/formats/tape/media_content.h"

namespace pbskit::tape {

// SHA-256("Proxmox Backup Media Catalog v1.1")[0..8]; v1.0 is refused.
inline constexpr Magic kMediaCatalogMagic11 = {0x4c, 0x8e, 0xe8, 0xc1, 0x20, 0xa8, 0x89, 0x71};
inline constexpr Magic kMediaCatalogMagic10 = {0xdd, 0x1d, 0xa4, 0x01, 0x3b, 0x45, 0x13, 0x28};

// One decoded catalog entry.
struct MediaCatalogEntry {
  enum class Type : char {
    kLabel = 'L',
    kChunkArchiveStart = 'A',
    kChunk = 'C',
    kChunkArchiveEnd = 'E',
    kSnapshot = 'S',
  };
  Type type = Type::kLabel;
  uint64_t file_number = 0;  // L, A, E, S (for C: the file of the open archive)
  Uuid uuid{};               // L (media / media-set uuid), A, E, S (content uuid)
  uint64_t seq_nr = 0;       // L only
  std::string store;         // A, C, S
  std::string snapshot;      // S
  Digest digest{};           // C
};

// What a catalog says, per datastore.
struct MediaCatalogStoreContent {
  std::map<std::string, uint64_t> snapshot_index;  // snapshot name -> file number
  std::map<Digest, uint64_t> chunk_index;          // chunk digest -> file number
};

struct MediaCatalogContent {
  bool found_magic = false;            // false only for an empty file
  std::optional<Uuid> media_set_uuid;  // from the file-1 label entry
  std::optional<uint64_t> media_set_seq_nr;
  bool archive_open = false;               // ends inside A..E (loadable, not appendable)
  std::vector<MediaCatalogEntry> entries;  // in file order
  std::map<std::string, MediaCatalogStoreContent> content;  // by datastore name
};

// Checks "[ns/<a>/ns/<b>/]type/id/time" as written in snapshot entries and archive headers.
// InvalidArgument naming the text otherwise.
Status CheckTapeSnapshotName(std::string_view name);

// Appends valid catalog entries to an in-memory byte buffer. Not thread safe.
class MediaCatalogBuilder {
 public:
  // A builder for a new, empty catalog of media `media_uuid`; the magic is queued first.
  explicit MediaCatalogBuilder(const Uuid& media_uuid);
  // Continues the catalog `existing` (validated with ParseMediaCatalog; Corruption /
  // InvalidArgument as there). InvalidArgument if it ends inside a chunk archive.
  static Result<MediaCatalogBuilder> Open(const Uuid& media_uuid,
                                          std::span<const uint8_t> existing);

  // Each register call checks the PBS rules and returns InvalidArgument with PBS's text when
  // the entry would make the catalog invalid (nothing is appended then).
  // file 0: uuid = media uuid, seq_nr 0; file 1: media-set uuid and position in the set.
  Status RegisterLabel(const Uuid& uuid, uint64_t seq_nr, uint64_t file_number);
  Status StartChunkArchive(const Uuid& content_uuid, uint64_t file_number, std::string_view store);
  Status RegisterChunk(const Digest& digest);
  Status EndChunkArchive(const Uuid& content_uuid, uint64_t file_number);
  Status RegisterSnapshot(const Uuid& content_uuid, uint64_t file_number, std::string_view store,
                          std::string_view snapshot);

  // Bytes appended since construction (including the magic for a new catalog). Callers append
  // these to the `.log` file, then call ClearPending.
  const std::vector<uint8_t>& pending() const { return pending_; }
  void ClearPending() { pending_.clear(); }
  bool inside_chunk_archive() const { return current_.has_value(); }

 private:
  struct OpenArchive {
    Uuid uuid;
    uint64_t file_number;
    std::string store;
  };
  Uuid media_uuid_;
  std::optional<std::pair<Uuid, uint64_t>> last_;
  std::optional<OpenArchive> current_;
  std::vector<uint8_t> pending_;
  bool record_ = true;  // false while ParseMediaCatalog replays entries

  friend Result<MediaCatalogContent> ParseMediaCatalog(std::span<const uint8_t>, const Uuid&,
                                                       const std::optional<MediaSetLabel>&);
};

// Loads and validates a whole catalog (TAPE.md §7.3). `media_set` (if known) must match the
// file-1 label entry. Corruption with PBS's message for any rule violation, wrong magic
// ("wrong magic number"), the old format ("old catalog format (v1.0) is no longer supported"),
// an unknown entry type or a truncated entry. An empty input is valid (found_magic false).
Result<MediaCatalogContent> ParseMediaCatalog(std::span<const uint8_t> bytes,
                                              const Uuid& media_uuid,
                                              const std::optional<MediaSetLabel>& media_set);

// parse_catalog_header: magic (if any) and the first two entries, both of which must be labels.
// Returns found_magic, media uuid and media-set uuid where present. Corruption as above, and
// "got unexpected entry type" when an entry other than 'L' comes first.
struct MediaCatalogHeader {
  bool found_magic = false;
  std::optional<Uuid> media_uuid;
  std::optional<Uuid> media_set_uuid;
};
Result<MediaCatalogHeader> ParseMediaCatalogHeader(std::span<const uint8_t> bytes);

}  // namespace pbskit::tape
