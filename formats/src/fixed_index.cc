// .fidx codec (FORMATS.md §3.1, §3.2, §3.4).
#include "pbskit/formats/fixed_index.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <ctime>

#include "index_common.h"
#include "pbskit/formats/crypto.h"

namespace pbskit {

Result<FixedIndex> FixedIndex::Parse(std::span<const uint8_t> file, const std::string& name) {
  if (file.size() < kIndexHeaderSize) {
    return Status::Corruption(name + ": fixed index too short (" + std::to_string(file.size()) +
                              " bytes, header needs " + std::to_string(kIndexHeaderSize) + ")");
  }
  if (!std::equal(kFixedIndexMagic.begin(), kFixedIndexMagic.end(), file.begin())) {
    return Status::Corruption(name + ": wrong fixed index magic (got " + ToHex(file.subspan(0, 8)) +
                              ", expected " + ToHex(kFixedIndexMagic) + ")");
  }
  FixedIndex idx;
  index_internal::ReadCommonHeader(file, &idx.uuid_, &idx.ctime_, &idx.header_csum_);
  idx.size_ = LoadLe64(file.data() + 64);
  idx.chunk_size_ = LoadLe64(file.data() + 72);
  if (idx.chunk_size_ == 0 || !std::has_single_bit(idx.chunk_size_)) {
    return Status::Corruption(name + ": fixed index chunk size " + std::to_string(idx.chunk_size_) +
                              " is not a power of two");
  }
  if (idx.size_ == 0) return Status::Corruption(name + ": fixed index image size is 0");
  const uint64_t count = (idx.size_ - 1) / idx.chunk_size_ + 1;
  const uint64_t table = file.size() - kIndexHeaderSize;
  if (count > table / 32 || table != count * 32) {
    return Status::Corruption(name + ": fixed index size mismatch (image size " +
                              std::to_string(idx.size_) + " with chunk size " +
                              std::to_string(idx.chunk_size_) + " needs " + std::to_string(count) +
                              " digests, file holds " + std::to_string(table) + " table bytes)");
  }
  idx.digests_.resize(count);
  std::memcpy(idx.digests_.data(), file.data() + kIndexHeaderSize, table);
  return idx;
}

std::pair<uint64_t, uint64_t> FixedIndex::chunk_range(size_t i) const {
  uint64_t start = static_cast<uint64_t>(i) * chunk_size_;
  return {start, std::min(start + chunk_size_, size_)};
}

size_t FixedIndex::FindChunk(uint64_t offset) const {
  if (offset >= size_) return digests_.size();
  return static_cast<size_t>(offset / chunk_size_);
}

Digest FixedIndex::ComputeCsum() const {
  return Sha256(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(digests_.data()),
                                         digests_.size() * sizeof(Digest)));
}

FixedIndexWriter::FixedIndexWriter(uint64_t size, uint64_t chunk_size)
    : size_(size), chunk_size_(chunk_size), ctime_(std::time(nullptr)) {
  if (size > 0 && chunk_size > 0 && std::has_single_bit(chunk_size)) {
    const uint64_t count = (size - 1) / chunk_size + 1;
    digests_.resize(count);
    set_.assign(count, false);
  }
  uuid_ = index_internal::NewUuid();
}

FixedIndexWriter FixedIndexWriter::Growable(uint64_t chunk_size) {
  FixedIndexWriter w(0, chunk_size);
  w.growable_ = chunk_size > 0 && std::has_single_bit(chunk_size);
  return w;
}

Status FixedIndexWriter::AddChunk(uint64_t start, uint64_t len, const Digest& d) {
  if (chunk_size_ == 0 || !std::has_single_bit(chunk_size_)) {
    return Status::InvalidArgument("fixed index: chunk size " + std::to_string(chunk_size_) +
                                   " is not a power of two");
  }
  if (len > UINT64_MAX - start) {
    return Status::InvalidArgument("add_chunk: start and size are too large: " +
                                   std::to_string(start) + "+" + std::to_string(len));
  }
  const uint64_t end = start + len;
  if (end > size_) {
    if (!growable_) {
      return Status::InvalidArgument("fixed index: refusing to resize from " +
                                     std::to_string(size_) + " to " + std::to_string(end));
    }
    const uint64_t count = (end - 1) / chunk_size_ + 1;
    if (count * chunk_size_ != end) growable_ = false;  // a short chunk is the last one
    digests_.resize(count);
    set_.resize(count, false);
    size_ = end;
  }
  if ((end != size_ && len != chunk_size_) || len > chunk_size_ || len == 0) {
    return Status::InvalidArgument("fixed index: chunk with unexpected length (" +
                                   std::to_string(len) + " != " + std::to_string(chunk_size_) +
                                   ")");
  }
  if (start % chunk_size_ != 0) {
    return Status::InvalidArgument(
        "fixed index: got unaligned chunk (pos = " + std::to_string(start) + ")");
  }
  return SetDigest(static_cast<size_t>(start / chunk_size_), d);
}

Status FixedIndexWriter::SetDigest(size_t i, const Digest& d) {
  if (i >= digests_.size()) {
    return Status::InvalidArgument("fixed index: chunk " + std::to_string(i) +
                                   " out of range (index has " + std::to_string(digests_.size()) +
                                   " chunks)");
  }
  digests_[i] = d;
  set_[i] = true;
  return Status::OK();
}

Result<std::vector<uint8_t>> FixedIndexWriter::Finish(Digest* csum) {
  if (size_ == 0) return Status::InvalidArgument("fixed index: image size 0 is not representable");
  if (chunk_size_ == 0 || !std::has_single_bit(chunk_size_)) {
    return Status::InvalidArgument("fixed index: chunk size " + std::to_string(chunk_size_) +
                                   " is not a power of two");
  }
  for (size_t i = 0; i < set_.size(); ++i) {
    if (!set_[i]) {
      return Status::InvalidArgument("fixed index: digest of chunk " + std::to_string(i) +
                                     " was never set");
    }
  }
  std::vector<uint8_t> out(kIndexHeaderSize + digests_.size() * 32, 0);
  std::memcpy(out.data() + kIndexHeaderSize, digests_.data(), digests_.size() * 32);
  Digest c = Sha256(std::span<const uint8_t>(out).subspan(kIndexHeaderSize));
  index_internal::WriteCommonHeader(kFixedIndexMagic, uuid_, ctime_, c, out.data());
  StoreLe64(out.data() + 64, size_);
  StoreLe64(out.data() + 72, chunk_size_);
  if (csum != nullptr) *csum = c;
  return out;
}

}  // namespace pbskit
