// Streaming pxar decoder for v1 (.pxar) and v2 split archives (.mpxar + .ppxar).
//
// The decoder reads the archive strictly front to back through a PxarSource and yields one
// Entry per archive entry in archive order (root first). File contents are not buffered: after
// Next() returned a kFile entry, ReadContent() streams its bytes (from the archive for v1,
// from the payload source for v2); whatever is not read is skipped by the next Next().
//
// Memory: the current entry, the path, and per open directory one 24-byte record per child
// already seen (needed to validate its goodbye table). Item sizes are checked against the
// per-type maximum before anything is allocated, so hostile input cannot make it allocate
// more than ~64 KiB per item (PRELUDE: at most DecoderOptions::max_prelude bytes).
//
// Every structural problem is Corruption with a message "<name>: offset N: <what>", where N
// is the stream offset of the offending item. Errors from the sources pass through unchanged
// (a read error is never turned into Corruption; an early end of stream is Corruption).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pbskit/formats/pxar/format.h"
#include "pbskit/formats/status.h"

namespace pbskit::pxar {

// Sequential input. Read returns how many bytes were stored (0 = end of stream). Skip moves
// forward by n bytes; the default reads and discards. Implementations over a datastore
// (dynamic index + chunk reader) override Skip to avoid loading skipped chunks.
class PxarSource {
 public:
  virtual ~PxarSource() = default;
  virtual Result<size_t> Read(std::span<uint8_t> buf) = 0;
  // Corruption("... unexpected end ...") if the stream ends before n bytes.
  virtual Status Skip(uint64_t n);
};

// Source over a byte span (borrowed; must outlive the source).
class SpanSource : public PxarSource {
 public:
  explicit SpanSource(std::span<const uint8_t> data) : data_(data) {}
  Result<size_t> Read(std::span<uint8_t> buf) override;
  Status Skip(uint64_t n) override;

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

enum class EntryKind {
  kVersion,    // v2 FORMAT_VERSION item (first item of a split metadata archive)
  kPrelude,    // v2 PRELUDE item
  kDirectory,  // includes the root, path "/"
  kFile,
  kSymlink,
  kHardlink,
  kDevice,
  kFifo,
  kSocket,
  // End of a directory (its goodbye table); only with DecoderOptions::report_directory_end.
  // `path` is the directory's path, `offset` the goodbye table's offset.
  kDirectoryEnd,
};

// Single-letter kind as in catalogs and the fixture listings: d f l h c b p s (v/P for
// version/prelude).
char EntryKindLetter(EntryKind kind, const Metadata& metadata);

struct Entry {
  EntryKind kind = EntryKind::kDirectory;
  // Absolute path inside the archive: "/" for the root, "/dir/name" otherwise. Raw bytes
  // (not necessarily UTF-8); every component passed ValidateFilename.
  std::string path;
  Metadata metadata;  // empty for hardlinks, version and prelude entries
  uint64_t file_size = 0;                  // kFile
  std::optional<uint64_t> payload_offset;  // kFile in a v2 archive: PAYLOAD header offset
  std::string link_target;  // kSymlink: target bytes; kHardlink: target path (no leading '/')
  uint64_t hardlink_offset = 0;  // kHardlink: distance back to the target's FILENAME
  Device device;                 // kDevice
  uint64_t format_version = 1;   // kVersion
  std::string prelude;           // kPrelude
  // Stream offset of the entry's FILENAME item (root: of its ENTRY item).
  uint64_t offset = 0;
};

struct DecoderOptions {
  std::string name = "pxar archive";  // used in error messages
  bool validate_goodbye = true;       // check every goodbye table against the entries read
  uint64_t max_prelude = 16 * 1024 * 1024;
  // Emit a kDirectoryEnd entry after each directory's last child (extractors restore the
  // directory's mtime there; re-encoders close the directory).
  bool report_directory_end = false;
};

// Not thread safe. Sources are borrowed and must outlive the decoder.
class Decoder {
 public:
  // `payload` may be null: v1 archives never need it; for a split archive without payload
  // input the metadata decodes fully and ReadContent returns Unsupported.
  Decoder(PxarSource* archive, PxarSource* payload, DecoderOptions options = {});

  // Advances to the next entry. Returns true with *entry filled, false after the root
  // directory's goodbye table (the end of the archive). Corruption for malformed input (see
  // file comment), source errors unchanged. After an error the decoder stays failed.
  Result<bool> Next(Entry* entry);

  // Reads up to buf.size() bytes of the current kFile entry's content; 0 when it is
  // exhausted. InvalidArgument when the current entry is not a file; Unsupported for v2
  // without payload source; Corruption if the payload stream does not hold a PAYLOAD item of
  // the referenced size at the referenced offset.
  Result<size_t> ReadContent(std::span<uint8_t> buf);

  // Format version seen so far (1 until a FORMAT_VERSION item was read).
  uint64_t format_version() const { return version_; }
  // Bytes consumed from the archive stream.
  uint64_t position() const { return pos_; }

 private:
  struct Child {
    uint64_t hash;
    uint64_t start;
    uint64_t size;      // size PBS writes for a freshly encoded entry
    uint64_t alt_size;  // accepted alternative (v2 payload-ref: metadata only)
  };
  struct Dir {
    size_t path_len;        // length of the parent's path (restored on leaving)
    uint64_t entry_offset;  // offset of the directory's ENTRY item (root: 0)
    uint64_t start;         // offset of its FILENAME (the parent's goodbye record)
    uint64_t hash;          // hash of its name
    std::vector<Child> children;
  };
  enum class State { kBegin, kAfterVersion, kInDirectory, kEnd, kFailed };

  Status Corrupt(uint64_t at, const std::string& what);
  Status ReadExact(uint8_t* buf, size_t n, uint64_t item_offset);
  Status SkipArchive(uint64_t n, uint64_t item_offset);
  Status ReadHeader(uint64_t* htype, uint64_t* full_size, bool* eof);
  Status ReadContentBytes(uint64_t htype, uint64_t full_size, std::string* out);
  Status CheckSize(uint64_t htype, uint64_t full_size);
  Status FinishPendingFile();
  Result<bool> ReadEntry(uint64_t htype, uint64_t full_size, Entry* entry);
  Status ReadGoodbye(uint64_t full_size);
  Status FinishChild(uint64_t start, const std::string& name, uint64_t size, uint64_t alt);
  Status Step(Entry* entry, bool* produced);

  PxarSource* archive_;
  PxarSource* payload_;
  DecoderOptions opts_;
  State state_ = State::kBegin;
  Status error_;
  uint64_t pos_ = 0;
  uint64_t version_ = 1;
  std::string path_;
  std::vector<Dir> dirs_;
  // A header read ahead (the item that ended a fifo/socket/directory entry).
  bool have_peek_ = false;
  uint64_t peek_type_ = 0, peek_size_ = 0, peek_offset_ = 0;
  // Current file content.
  bool in_file_ = false;
  uint64_t file_remaining_ = 0;  // v1: bytes still in the archive stream
  bool file_split_ = false;
  uint64_t file_ref_offset_ = 0, file_size_ = 0, file_read_ = 0;
  bool file_header_checked_ = false;
  // Payload stream bookkeeping (v2).
  uint64_t payload_pos_ = 0;      // bytes consumed from the payload source
  uint64_t payload_min_next_ = kHeaderSize;  // lowest legal next PAYLOAD_REF offset
  bool payload_started_ = false;
};

}  // namespace pbskit::pxar
