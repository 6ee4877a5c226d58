// .didx codec (FORMATS.md §3.1, §3.3, §3.4) and the header helpers both index kinds share.
#include "pbskit/formats/dynamic_index.h"

#include <algorithm>
#include <cstring>
#include <ctime>

#include "index_common.h"
#include "pbskit/formats/crypto.h"

namespace pbskit {
namespace index_internal {

void ReadCommonHeader(std::span<const uint8_t> file, std::array<uint8_t, 16>* uuid, int64_t* ctime,
                      Digest* csum) {
  std::memcpy(uuid->data(), file.data() + 8, 16);
  *ctime = static_cast<int64_t>(LoadLe64(file.data() + 24));
  std::memcpy(csum->data(), file.data() + 32, 32);
}

void WriteCommonHeader(const std::array<uint8_t, 8>& magic, const std::array<uint8_t, 16>& uuid,
                       int64_t ctime, const Digest& csum, uint8_t* out) {
  std::memcpy(out, magic.data(), 8);
  std::memcpy(out + 8, uuid.data(), 16);
  StoreLe64(out + 24, static_cast<uint64_t>(ctime));
  std::memcpy(out + 32, csum.data(), 32);
}

std::array<uint8_t, 16> NewUuid() {
  std::array<uint8_t, 16> u;
  RandomBytes(u);
  u[6] = static_cast<uint8_t>((u[6] & 0x0f) | 0x40);
  u[8] = static_cast<uint8_t>((u[8] & 0x3f) | 0x80);
  return u;
}

}  // namespace index_internal

Result<DynamicIndex> DynamicIndex::Parse(std::span<const uint8_t> file, const std::string& name) {
  if (file.size() < kIndexHeaderSize) {
    return Status::Corruption(name + ": dynamic index too short (" + std::to_string(file.size()) +
                              " bytes, header needs " + std::to_string(kIndexHeaderSize) + ")");
  }
  if (!std::equal(kDynamicIndexMagic.begin(), kDynamicIndexMagic.end(), file.begin())) {
    return Status::Corruption(name + ": wrong dynamic index magic (got " +
                              ToHex(file.subspan(0, 8)) + ", expected " +
                              ToHex(kDynamicIndexMagic) + ")");
  }
  const size_t table = file.size() - kIndexHeaderSize;
  if (table % kDynamicEntrySize != 0) {
    return Status::Corruption(name + ": dynamic index entry table of " + std::to_string(table) +
                              " bytes is not a multiple of 40");
  }
  DynamicIndex idx;
  index_internal::ReadCommonHeader(file, &idx.uuid_, &idx.ctime_, &idx.header_csum_);
  const size_t count = table / kDynamicEntrySize;
  idx.entries_.resize(count);
  uint64_t prev = 0;
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* e = file.data() + kIndexHeaderSize + i * kDynamicEntrySize;
    DynamicEntry& out = idx.entries_[i];
    out.end = LoadLe64(e);
    std::memcpy(out.digest.data(), e + 8, 32);
    if (out.end <= prev) {
      return Status::Corruption(name + ": dynamic index entry " + std::to_string(i) + " ends at " +
                                std::to_string(out.end) + ", not after the previous end " +
                                std::to_string(prev));
    }
    prev = out.end;
  }
  return idx;
}

std::pair<uint64_t, uint64_t> DynamicIndex::chunk_range(size_t i) const {
  return {i == 0 ? 0 : entries_[i - 1].end, entries_[i].end};
}

size_t DynamicIndex::FindChunk(uint64_t offset) const {
  auto it = std::upper_bound(entries_.begin(), entries_.end(), offset,
                             [](uint64_t off, const DynamicEntry& e) { return off < e.end; });
  return static_cast<size_t>(it - entries_.begin());
}

namespace {
Digest EntryTableCsum(const std::vector<DynamicEntry>& entries) {
  Sha256Stream s;
  uint8_t buf[kDynamicEntrySize];
  for (const DynamicEntry& e : entries) {
    StoreLe64(buf, e.end);
    std::memcpy(buf + 8, e.digest.data(), 32);
    s.Update(std::span<const uint8_t>(buf, sizeof buf));
  }
  return s.Finish();
}
}  // namespace

Digest DynamicIndex::ComputeCsum() const { return EntryTableCsum(entries_); }

DynamicIndexWriter::DynamicIndexWriter()
    : uuid_(index_internal::NewUuid()), ctime_(std::time(nullptr)) {}

Status DynamicIndexWriter::Add(uint64_t end, const Digest& d) {
  if (end <= size()) {
    return Status::InvalidArgument("dynamic index: chunk end " + std::to_string(end) +
                                   " is not after the previous end " + std::to_string(size()));
  }
  entries_.push_back(DynamicEntry{end, d});
  return Status::OK();
}

Result<std::vector<uint8_t>> DynamicIndexWriter::Finish(Digest* csum) {
  std::vector<uint8_t> out(kIndexHeaderSize + entries_.size() * kDynamicEntrySize, 0);
  uint8_t* p = out.data() + kIndexHeaderSize;
  for (const DynamicEntry& e : entries_) {
    StoreLe64(p, e.end);
    std::memcpy(p + 8, e.digest.data(), 32);
    p += kDynamicEntrySize;
  }
  Digest c = Sha256(std::span<const uint8_t>(out).subspan(kIndexHeaderSize));
  index_internal::WriteCommonHeader(kDynamicIndexMagic, uuid_, ctime_, c, out.data());
  if (csum != nullptr) *csum = c;
  return out;
}

}  // namespace pbskit
