// Block stream writer/reader for PBS tapes (see docs/formats/tape.md).
#include "pbskit/formats/tape/blocked_stream.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace pbskit::tape {

void BlockHeader::Encode(std::span<uint8_t> out) const {
  std::memcpy(out.data(), magic.data(), 8);
  out[8] = flags;
  out[9] = static_cast<uint8_t>(size);
  out[10] = static_cast<uint8_t>(size >> 8);
  out[11] = static_cast<uint8_t>(size >> 16);
  for (int i = 0; i < 4; ++i) out[12 + i] = static_cast<uint8_t>(seq_nr >> (8 * i));
}

BlockHeader BlockHeader::Decode(std::span<const uint8_t> in) {
  BlockHeader h;
  std::memcpy(h.magic.data(), in.data(), 8);
  h.flags = in[8];
  h.size = uint32_t(in[9]) | (uint32_t(in[10]) << 8) | (uint32_t(in[11]) << 16);
  h.seq_nr = uint32_t(in[12]) | (uint32_t(in[13]) << 8) | (uint32_t(in[14]) << 16) |
             (uint32_t(in[15]) << 24);
  return h;
}

// ---------------------------------------------------------------- writer

BlockedWriter::BlockedWriter(TapeBlockWriter* device) : device_(device), block_(kBlockSize) {}

BlockedWriter::~BlockedWriter() {
  if (!filemark_written_) (void)device_->WriteFilemark();
}

Status BlockedWriter::EmitBlock(uint8_t flags, size_t size) {
  BlockHeader h;
  h.magic = kBlockHeaderMagic;
  h.flags = flags;
  h.size = static_cast<uint32_t>(size);
  h.seq_nr = seq_nr_;
  h.Encode(block_);
  auto leom = device_->WriteBlock(block_);
  if (!leom.ok()) {
    failed_ = true;
    return leom.status();
  }
  if (*leom) leom_ = true;
  ++seq_nr_;
  return Status::OK();
}

Result<bool> BlockedWriter::Write(std::span<const uint8_t> data) {
  if (finished_ || failed_) {
    return Status::InvalidArgument("tape block writer: write after finish or failed write");
  }
  while (!data.empty()) {
    size_t n = std::min(data.size(), kBlockPayloadSize - fill_);
    std::memcpy(block_.data() + kBlockHeaderSize + fill_, data.data(), n);
    fill_ += n;
    bytes_written_ += n;
    data = data.subspan(n);
    if (fill_ == kBlockPayloadSize) {
      PBSKIT_RETURN_IF_ERROR(EmitBlock(0, kBlockPayloadSize));
      fill_ = 0;
    }
  }
  return leom_;
}

Result<bool> BlockedWriter::Finish(bool incomplete) {
  if (finished_ || failed_) {
    return Status::InvalidArgument("tape block writer: finish called twice or after an error");
  }
  std::fill(block_.begin() + kBlockHeaderSize + fill_, block_.end(), 0);
  uint8_t flags = kBlockFlagEndOfStream | (incomplete ? kBlockFlagIncomplete : 0);
  PBSKIT_RETURN_IF_ERROR(EmitBlock(flags, fill_));
  finished_ = true;
  filemark_written_ = true;
  PBSKIT_RETURN_IF_ERROR(device_->WriteFilemark());
  return leom_;
}

// ---------------------------------------------------------------- reader

Status BlockedReader::CheckBlock(uint32_t expected_seq, size_t* size, bool* end_marker) const {
  BlockHeader h = BlockHeader::Decode(block_);
  if (h.magic != kBlockHeaderMagic) {
    return Status::Corruption(
        "got tape block with unknown magic number - not written by PBS or incompatible LTO "
        "version");
  }
  if (h.seq_nr != expected_seq) {
    return Status::Corruption("detected tape block with wrong sequence number (" +
                              std::to_string(expected_seq) + " != " + std::to_string(h.seq_nr) +
                              ")");
  }
  *end_marker = (h.flags & kBlockFlagEndOfStream) != 0;
  if (h.size > kBlockPayloadSize) {
    return Status::Corruption("detected tape block with wrong payload size (" +
                              std::to_string(h.size) + " > " + std::to_string(kBlockPayloadSize) +
                              ")");
  }
  if (h.size == 0 && !*end_marker) {
    return Status::Corruption("detected tape block with zero payload size");
  }
  *size = h.size;
  return Status::OK();
}

Status BlockedReader::ConsumeFilemark() {
  std::array<uint8_t, 512> probe{};
  PBSKIT_ASSIGN_OR_RETURN(auto r, device_->ReadBlock(probe));
  switch (r.kind) {
    case BlockReadKind::kData:
      return Status::Corruption("detected tape block after block-stream end marker");
    case BlockReadKind::kEndOfStream:
      return Status::Corruption("got unexpected end of tape");
    case BlockReadKind::kEndOfFile:
      break;
  }
  return Status::OK();
}

Result<BlockedReader::OpenKind> BlockedReader::Open(TapeBlockReader* device,
                                                    BlockedReader* reader) {
  BlockedReader r;
  r.device_ = device;
  r.block_.resize(kBlockSize);
  PBSKIT_ASSIGN_OR_RETURN(auto first, device->ReadBlock(r.block_));
  if (first.kind == BlockReadKind::kEndOfFile) return OpenKind::kEndOfFile;
  if (first.kind == BlockReadKind::kEndOfStream) return OpenKind::kEndOfStream;
  if (first.bytes != kBlockSize) return Status::IoError("got wrong block size");
  bool end = false;
  PBSKIT_RETURN_IF_ERROR(r.CheckBlock(0, &r.size_, &end));
  if (end) {
    r.found_end_marker_ = true;
    r.incomplete_ = (r.block_[8] & kBlockFlagIncomplete) != 0;
    PBSKIT_RETURN_IF_ERROR(r.ConsumeFilemark());
    r.got_eod_ = true;
  }
  r.seq_nr_ = 1;
  *reader = std::move(r);
  return OpenKind::kStream;
}

Result<size_t> BlockedReader::NextBlock(bool check_end_marker) {
  PBSKIT_ASSIGN_OR_RETURN(auto r, device_->ReadBlock(block_));
  if (r.kind == BlockReadKind::kEndOfFile) {
    got_eod_ = true;
    size_ = 0;
    read_pos_ = 0;
    if (!found_end_marker_ && check_end_marker) {
      return Status::Corruption("detected tape stream without end marker");
    }
    return size_t{0};
  }
  if (r.kind == BlockReadKind::kEndOfStream) {
    return Status::Corruption("got unexpected end of tape");
  }
  if (r.bytes != kBlockSize) return Status::IoError("got wrong block size");
  size_t size = 0;
  bool end = false;
  PBSKIT_RETURN_IF_ERROR(CheckBlock(seq_nr_, &size, &end));
  ++seq_nr_;
  size_ = size;
  read_pos_ = 0;
  if (end) {
    found_end_marker_ = true;
    incomplete_ = (block_[8] & kBlockFlagIncomplete) != 0;
    PBSKIT_RETURN_IF_ERROR(ConsumeFilemark());
    got_eod_ = true;
  }
  return size;
}

Result<size_t> BlockedReader::Read(std::span<uint8_t> out) {
  if (device_ == nullptr) return Status::InvalidArgument("tape block reader is not open");
  if (out.empty()) return size_t{0};
  while (read_pos_ >= size_) {
    if (got_eod_) return size_t{0};
    PBSKIT_ASSIGN_OR_RETURN(size_t n, NextBlock(true));
    if (n == 0 && got_eod_) return size_t{0};
  }
  size_t n = std::min(out.size(), size_ - read_pos_);
  std::memcpy(out.data(), block_.data() + kBlockHeaderSize + read_pos_, n);
  read_pos_ += n;
  return n;
}

Status BlockedReader::ReadExact(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    PBSKIT_ASSIGN_OR_RETURN(size_t n, Read(out.subspan(done)));
    if (n == 0) {
      return Status::Corruption("unexpected end of tape stream (wanted " +
                                std::to_string(out.size()) + " bytes, got " + std::to_string(done) +
                                ")");
    }
    done += n;
  }
  return Status::OK();
}

Result<std::vector<uint8_t>> BlockedReader::ReadToEnd() {
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(kBlockPayloadSize);
  for (;;) {
    PBSKIT_ASSIGN_OR_RETURN(size_t n, Read(buf));
    if (n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  }
  return out;
}

Result<uint64_t> BlockedReader::SkipData() {
  if (device_ == nullptr) return Status::InvalidArgument("tape block reader is not open");
  uint64_t bytes = size_ > read_pos_ ? size_ - read_pos_ : 0;
  read_pos_ = size_;
  while (!got_eod_) {
    PBSKIT_ASSIGN_OR_RETURN(size_t n, NextBlock(false));
    bytes += n;
    read_pos_ = size_;
  }
  return bytes;
}

Result<bool> BlockedReader::HasEndMarker() const {
  if (!got_eod_) return Status::InvalidArgument("has_end_marker failed: EOD not reached");
  return found_end_marker_;
}

Result<bool> BlockedReader::IsIncomplete() const {
  if (!got_eod_) return Status::InvalidArgument("is_incomplete failed: EOD not reached");
  if (!found_end_marker_) {
    return Status::InvalidArgument("is_incomplete failed: no end marker found");
  }
  return incomplete_;
}

// ---------------------------------------------------------------- memory device

Result<bool> BufferTapeWriter::WriteBlock(std::span<const uint8_t> block) {
  if (block.size() != kBlockSize) {
    return Status::InvalidArgument("tape block write with wrong block size (" +
                                   std::to_string(block.size()) +
                                   " != " + std::to_string(kBlockSize) + ")");
  }
  if (max_blocks_ != 0 && blocks_ >= max_blocks_ + 2) {
    return Status::IoError("no space left on device (end of tape)");
  }
  out_->insert(out_->end(), block.begin(), block.end());
  ++blocks_;
  return max_blocks_ != 0 && blocks_ > max_blocks_;
}

Status BufferTapeWriter::WriteFilemark() {
  ++filemarks_;
  return Status::OK();
}

Result<BlockReadOutcome> BufferTapeReader::ReadBlock(std::span<uint8_t> buffer) {
  if (got_eof_) return Status::IoError("detected read after EOF");
  size_t rest = data_.size() - pos_;
  if (rest == 0) {
    got_eof_ = true;
    return BlockReadOutcome{BlockReadKind::kEndOfFile, 0};
  }
  if (rest < kBlockSize) {
    return Status::IoError("got wrong block size (short block of " + std::to_string(rest) +
                           " bytes at offset " + std::to_string(pos_) + ")");
  }
  // Like a variable-block drive with SILI: a smaller buffer gets the head of the block.
  size_t n = std::min(buffer.size(), kBlockSize);
  std::memcpy(buffer.data(), data_.data() + pos_, n);
  pos_ += kBlockSize;
  return BlockReadOutcome{BlockReadKind::kData, n};
}

}  // namespace pbskit::tape
