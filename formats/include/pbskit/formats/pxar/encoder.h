// pxar encoder: builds a v1 unified archive or a v2 split archive (metadata + payload stream)
// item by item, byte-identical to the pxar crate used by PBS for the same calls.
//
// Usage (what `pbskit pxar create` and the backup writer do):
//   VectorSink out;                          // or any PxarSink (chunker, file, ...)
//   auto enc = Encoder::Create(&out, nullptr, root_metadata);   // v1
//   enc->CreateDirectory("etc", dir_meta); enc->AddFile(meta, "hosts", bytes); ...
//   enc->FinishDirectory();                  // closes "etc" (writes its goodbye table)
//   enc->Finish();                           // closes the root, flushes the payload tail
// Children must be added in the order they should appear (PBS: sorted by raw name bytes).
// The encoder never reorders and keeps only one goodbye record (24 bytes) per child of each
// open directory in memory; file contents stream straight to the sinks.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/formats/pxar/format.h"
#include "pbskit/formats/status.h"

namespace pbskit::pxar {

// Destination of encoded bytes. Write must consume all of `data` or fail; a failure poisons
// the encoder (every later call returns Aborted).
class PxarSink {
 public:
  virtual ~PxarSink() = default;
  virtual Status Write(std::span<const uint8_t> data) = 0;
};

// Collects everything in memory (tests, small archives).
class VectorSink : public PxarSink {
 public:
  Status Write(std::span<const uint8_t> data) override {
    data_.insert(data_.end(), data.begin(), data.end());
    return Status::OK();
  }
  const std::vector<uint8_t>& data() const { return data_; }
  std::vector<uint8_t>& data() { return data_; }

 private:
  std::vector<uint8_t> data_;
};

// Offset of a file's FILENAME item in the (metadata) stream; the target of AddHardlink.
struct LinkOffset {
  uint64_t raw = 0;
};

// Not thread safe; one encoder per archive. Sinks are borrowed and must outlive the encoder.
class Encoder {
 public:
  // Starts an archive whose root directory has `root` metadata (must be a directory).
  // `payload` null: v1 unified archive. Non-null: v2 split archive; the FORMAT_VERSION item is
  // written to `archive`, PAYLOAD_START_MARKER to `payload`, and `prelude` (if given, may be
  // empty) as PRELUDE right after the version. InvalidArgument: root not a directory, prelude
  // with v1. Sink errors are returned as is.
  static Result<std::unique_ptr<Encoder>> Create(PxarSink* archive, PxarSink* payload,
                                                 const Metadata& root,
                                                 const std::string* prelude = nullptr);

  // Starts a regular file of exactly `size` bytes in the current directory; the content must
  // then be given with WriteFileData (in total `size` bytes) before EndFile. v1: PAYLOAD item
  // inline; v2: PAYLOAD_REF in the archive and PAYLOAD header + data in the payload stream.
  // Returns the LinkOffset for later hardlinks. InvalidArgument: bad name, metadata not a
  // regular file, a file already open.
  Result<LinkOffset> BeginFile(const Metadata& metadata, std::string_view name, uint64_t size);
  // InvalidArgument when more than the announced size would be written or no file is open.
  Status WriteFileData(std::span<const uint8_t> data);
  // InvalidArgument when fewer bytes than announced were written (the archive is unusable).
  Status EndFile();
  // BeginFile + WriteFileData(all) + EndFile.
  Result<LinkOffset> AddFile(const Metadata& metadata, std::string_view name,
                             std::span<const uint8_t> content);

  // v2 only: a regular file whose payload already exists in the payload stream at
  // `payload_offset` (the PAYLOAD header's offset; payload reuse in metadata change-detection
  // mode). The goodbye record covers only the metadata, as in PBS. InvalidArgument: v1,
  // payload_offset below payload_position().
  Result<LinkOffset> AddPayloadRef(const Metadata& metadata, std::string_view name,
                                   uint64_t size, uint64_t payload_offset);
  // v2 only: accounts for `size` bytes the caller put into the payload stream itself
  // (injected chunks). InvalidArgument for v1.
  Status Advance(uint64_t size);

  // Symlink with target bytes verbatim. InvalidArgument: name, metadata not a symlink.
  Status AddSymlink(const Metadata& metadata, std::string_view name, std::string_view target);
  // A hardlink to an earlier file: `target_path` relative to the archive root (no leading
  // '/'), `target` that file's LinkOffset. InvalidArgument if the target is not before us.
  Status AddHardlink(std::string_view name, std::string_view target_path, LinkOffset target);
  // Character or block device. InvalidArgument unless metadata is a device.
  Status AddDevice(const Metadata& metadata, std::string_view name, const Device& device);
  Status AddFifo(const Metadata& metadata, std::string_view name);
  Status AddSocket(const Metadata& metadata, std::string_view name);

  // Opens a subdirectory; children follow until FinishDirectory. InvalidArgument: name,
  // metadata not a directory.
  Status CreateDirectory(std::string_view name, const Metadata& metadata);
  // Writes the goodbye table of the innermost open subdirectory. InvalidArgument when only
  // the root is open (use Finish).
  Status FinishDirectory();
  // Closes the root directory and, for v2, writes PAYLOAD_TAIL_MARKER. InvalidArgument while
  // subdirectories or a file are still open. After Finish no other call is allowed.
  Status Finish();

  // Bytes written to the archive (metadata) stream so far.
  uint64_t position() const { return position_; }
  // Bytes accounted in the payload stream so far (v2; 0 for v1). Before BeginFile this is the
  // offset its PAYLOAD header will get (PBS sends it to the payload chunker as a boundary).
  uint64_t payload_position() const { return payload_position_; }
  bool split() const { return payload_ != nullptr; }
  // Number of open directories including the root (0 after Finish).
  size_t depth() const { return stack_.size(); }

 private:
  struct DirState {
    std::vector<GoodbyeItem> items;  // offsets absolute until the table is written
    uint64_t entry_offset = 0;
    uint64_t file_offset = 0;  // FILENAME offset (subdirectories)
    uint64_t name_hash = 0;
  };

  Encoder(PxarSink* archive, PxarSink* payload) : archive_(archive), payload_(payload) {}
  Status Check() const;
  Status Fail(Status st);
  Status WriteArchive(std::span<const uint8_t> data);
  Status WriteItem(uint64_t htype, std::span<const uint8_t> content);
  Status WriteHeader(PxarSink* sink, uint64_t htype, uint64_t content_size, uint64_t* pos);
  Status EncodeMetadata(const Metadata& metadata);
  Status EncodeFilename(std::string_view name);
  Result<LinkOffset> AddEntry(const Metadata* metadata, std::string_view name, uint64_t htype,
                              std::span<const uint8_t> content, bool has_item);
  Status WriteGoodbye();

  PxarSink* archive_;
  PxarSink* payload_;
  uint64_t position_ = 0;
  uint64_t payload_position_ = 0;
  std::vector<DirState> stack_;
  bool failed_ = false;
  bool finished_ = false;
  // Open file (BeginFile .. EndFile).
  bool file_open_ = false;
  uint64_t file_remaining_ = 0;
  GoodbyeItem file_item_;
};

}  // namespace pbskit::pxar
