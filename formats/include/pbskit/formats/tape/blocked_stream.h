// PBS tape block layer: every tape block is 256 KiB, a 16-byte header followed by payload.
// A tape file is a "block stream": blocks with rising sequence numbers, the last one flagged
// END_OF_STREAM, then a filemark. BlockedWriter produces such streams, BlockedReader checks and
// decodes them. Both work over a small block device interface (TapeBlockWriter/Reader) so the
// same code serves a virtual drive directory, an in-memory buffer or a real drive.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "pbskit/formats/status.h"

namespace pbskit::tape {

inline constexpr size_t kBlockSize = 262144;  // PROXMOX_TAPE_BLOCK_SIZE
inline constexpr size_t kBlockHeaderSize = 16;
inline constexpr size_t kBlockPayloadSize = kBlockSize - kBlockHeaderSize;  // 262128
// SHA-256("Proxmox Tape Block Header v1.0")[0..8]
inline constexpr std::array<uint8_t, 8> kBlockHeaderMagic = {0xdc, 0xbd, 0xaf, 0xca,
                                                             0xeb, 0xa0, 0xa5, 0x28};
inline constexpr uint8_t kBlockFlagEndOfStream = 0x01;
inline constexpr uint8_t kBlockFlagIncomplete = 0x02;

// Decoded 16-byte block header.
struct BlockHeader {
  std::array<uint8_t, 8> magic{};
  uint8_t flags = 0;
  uint32_t size = 0;  // 24 bits on tape
  uint32_t seq_nr = 0;

  // Encodes into out[0..16). Requires out.size() >= 16 and size < 2^24.
  void Encode(std::span<uint8_t> out) const;
  // Decodes from in[0..16). Requires in.size() >= 16. Never fails (checks are the reader's).
  static BlockHeader Decode(std::span<const uint8_t> in);
};

// Outcome of reading one block from a tape device.
enum class BlockReadKind {
  kData,         // `bytes` bytes were read
  kEndOfFile,    // a filemark was read
  kEndOfStream,  // end of recorded data (nothing after the last filemark)
};
struct BlockReadOutcome {
  BlockReadKind kind = BlockReadKind::kData;
  size_t bytes = 0;
};

// Device side of writing: accepts whole blocks and filemarks.
class TapeBlockWriter {
 public:
  virtual ~TapeBlockWriter() = default;
  // Writes one block (block.size() == kBlockSize). Returns true when the device signalled
  // logical end of media (early warning: the block was written, space is running out).
  // IoError when the block could not be written (e.g. physical end of media, "no space").
  virtual Result<bool> WriteBlock(std::span<const uint8_t> block) = 0;
  // Writes a filemark. IoError when the device refuses.
  virtual Status WriteFilemark() = 0;
};

// Device side of reading: one call reads one block (or meets a filemark / end of data).
class TapeBlockReader {
 public:
  virtual ~TapeBlockReader() = default;
  // Reads the next block into `buffer` (normally kBlockSize bytes; a smaller buffer is only
  // used to probe for a filemark). IoError on read failures and short blocks.
  virtual Result<BlockReadOutcome> ReadBlock(std::span<uint8_t> buffer) = 0;
};

// Writes one block stream. Not thread safe. The TapeBlockWriter must outlive this object.
class BlockedWriter {
 public:
  explicit BlockedWriter(TapeBlockWriter* device);
  // A writer destroyed without Finish() still writes the filemark (errors ignored), leaving an
  // aborted stream without end marker, as PBS does.
  ~BlockedWriter();
  BlockedWriter(const BlockedWriter&) = delete;
  BlockedWriter& operator=(const BlockedWriter&) = delete;

  // Appends stream data; full blocks go to the device at once. Returns the sticky LEOM flag
  // (true once any block write reported logical end of media). IoError from the device; after
  // an error or Finish() further writes are InvalidArgument.
  Result<bool> Write(std::span<const uint8_t> data);
  // Writes the final block (END_OF_STREAM, plus INCOMPLETE when `incomplete`) and one
  // filemark. Returns the sticky LEOM flag. IoError from the device; InvalidArgument if
  // already finished.
  Result<bool> Finish(bool incomplete);
  // Number of stream bytes accepted so far.
  uint64_t bytes_written() const { return bytes_written_; }
  bool logical_end_of_media() const { return leom_; }

 private:
  Status EmitBlock(uint8_t flags, size_t size);

  TapeBlockWriter* device_;
  std::vector<uint8_t> block_;
  size_t fill_ = 0;
  uint32_t seq_nr_ = 0;
  uint64_t bytes_written_ = 0;
  bool leom_ = false;
  bool finished_ = false;
  bool failed_ = false;
  bool filemark_written_ = false;
};

// Reads one block stream. Not thread safe. The TapeBlockReader must outlive this object.
class BlockedReader {
 public:
  // What Open found at the current tape position.
  enum class OpenKind { kStream, kEndOfFile, kEndOfStream };

  // Reads and checks the first block. Returns kEndOfFile if a filemark comes first (an empty
  // file), kEndOfStream at end of recorded data; then `reader` is not usable. IoError for a
  // device error or short block; Corruption for a block that is not a valid first PBS block
  // (unknown magic, wrong sequence number, bad size) or for data after the end block.
  static Result<OpenKind> Open(TapeBlockReader* device, BlockedReader* reader);

  BlockedReader() = default;
  BlockedReader(BlockedReader&&) = default;
  BlockedReader& operator=(BlockedReader&&) = default;

  // Copies up to out.size() stream bytes; 0 means the end of the stream. Corruption when the
  // file ends without end marker ("detected tape stream without end marker") or a block is
  // invalid; IoError from the device.
  Result<size_t> Read(std::span<uint8_t> out);
  // Reads exactly out.size() bytes; Corruption "unexpected end of tape stream" if it ends first.
  Status ReadExact(std::span<uint8_t> out);
  // Reads the rest of the stream.
  Result<std::vector<uint8_t>> ReadToEnd();
  // Skips to the end of the file, tolerating a missing end marker. Returns the bytes skipped.
  Result<uint64_t> SkipData();
  // After the end was reached: whether an END_OF_STREAM block was seen. InvalidArgument before.
  Result<bool> HasEndMarker() const;
  // After the end was reached: the INCOMPLETE flag of the end block. InvalidArgument before
  // the end or when there was no end marker.
  Result<bool> IsIncomplete() const;

 private:
  // Reads the next block; returns its payload size (0 at the filemark).
  Result<size_t> NextBlock(bool check_end_marker);
  Status CheckBlock(uint32_t expected_seq, size_t* size, bool* end_marker) const;
  Status ConsumeFilemark();

  TapeBlockReader* device_ = nullptr;
  std::vector<uint8_t> block_;
  size_t size_ = 0;      // valid payload bytes of the current block
  size_t read_pos_ = 0;  // consumed payload bytes of the current block
  uint32_t seq_nr_ = 0;
  bool found_end_marker_ = false;
  bool incomplete_ = false;
  bool got_eod_ = false;
};

// Block device over memory: writes append to a byte vector (one tape file), reads consume a
// byte span block by block and report kEndOfFile at its end. `max_blocks` (0 = unlimited)
// emulates a small tape: writes beyond it report LEOM for two more blocks, then fail.
class BufferTapeWriter : public TapeBlockWriter {
 public:
  explicit BufferTapeWriter(std::vector<uint8_t>* out, size_t max_blocks = 0)
      : out_(out), max_blocks_(max_blocks) {}
  Result<bool> WriteBlock(std::span<const uint8_t> block) override;
  Status WriteFilemark() override;
  size_t filemarks() const { return filemarks_; }

 private:
  std::vector<uint8_t>* out_;
  size_t max_blocks_;
  size_t blocks_ = 0;
  size_t filemarks_ = 0;
};

class BufferTapeReader : public TapeBlockReader {
 public:
  explicit BufferTapeReader(std::span<const uint8_t> data) : data_(data) {}
  Result<BlockReadOutcome> ReadBlock(std::span<uint8_t> buffer) override;

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  bool got_eof_ = false;
};

}  // namespace pbskit::tape
