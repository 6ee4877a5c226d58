// Streaming VMA decoder (PXAR-VZDUMP.md §3).
#include "pbskit/formats/vma.h"

#include <openssl/evp.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>

#include "pbskit/formats/hex.h"

namespace pbskit {
namespace {

uint32_t Be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint64_t Be64(const uint8_t* p) { return (uint64_t{Be32(p)} << 32) | Be32(p + 4); }

std::array<uint8_t, 16> Md5(std::span<const uint8_t> data) {
  std::array<uint8_t, 16> out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_md5(), nullptr);
  return out;
}

// MD5 of `bytes` with bytes [off, off+16) taken as zero.
std::array<uint8_t, 16> Md5Zeroed(std::span<const uint8_t> bytes, size_t off) {
  std::vector<uint8_t> copy(bytes.begin(), bytes.end());
  std::memset(copy.data() + off, 0, 16);
  return Md5(copy);
}

}  // namespace

const VmaDevice* VmaHeader::FindDevice(uint8_t id) const {
  for (const auto& d : devices)
    if (d.id == id) return &d;
  return nullptr;
}

Result<VmaHeader> ParseVmaHeader(std::span<const uint8_t> bytes, const std::string& name) {
  auto bad = [&](const std::string& what) {
    return Status::Corruption("VMA header of '" + name + "': " + what);
  };
  if (bytes.size() < kVmaFixedHeaderSize) return bad("shorter than 12288 bytes");
  if (!std::equal(kVmaMagic.begin(), kVmaMagic.end(), bytes.begin()))
    return bad("wrong magic (not a VMA file)");
  VmaHeader h;
  h.version = Be32(&bytes[4]);
  if (h.version != 1) return bad("unsupported version " + std::to_string(h.version));
  std::copy_n(&bytes[8], 16, h.uuid.begin());
  h.ctime = static_cast<int64_t>(Be64(&bytes[24]));
  h.blob_buffer_offset = Be32(&bytes[48]);
  h.blob_buffer_size = Be32(&bytes[52]);
  h.header_size = Be32(&bytes[56]);
  if (h.header_size < kVmaFixedHeaderSize || h.header_size > bytes.size())
    return bad("header_size " + std::to_string(h.header_size) + " out of range");
  if (h.blob_buffer_offset < kVmaFixedHeaderSize ||
      uint64_t{h.blob_buffer_offset} + h.blob_buffer_size > h.header_size)
    return bad("blob buffer [" + std::to_string(h.blob_buffer_offset) + ", +" +
               std::to_string(h.blob_buffer_size) + ") outside the header");
  auto hdr = bytes.first(h.header_size);
  std::array<uint8_t, 16> stored;
  std::copy_n(&hdr[32], 16, stored.begin());
  if (Md5Zeroed(hdr, 32) != stored) return bad("MD5 checksum mismatch");

  // Blobs: u16 LE length + bytes, packed from relative offset 1.
  std::map<uint32_t, std::span<const uint8_t>> blobs;
  auto buf = hdr.subspan(h.blob_buffer_offset, h.blob_buffer_size);
  for (uint32_t pos = 1; pos + 2 <= buf.size();) {
    uint32_t len = buf[pos] | (uint32_t{buf[pos + 1]} << 8);
    if (pos + 2 + len > buf.size()) break;
    blobs[pos] = buf.subspan(pos + 2, len);
    pos += 2 + len;
  }
  auto blob = [&](uint32_t ptr) -> std::optional<std::span<const uint8_t>> {
    auto it = blobs.find(ptr);
    if (it == blobs.end()) return std::nullopt;
    return it->second;
  };
  auto str = [&](uint32_t ptr) -> std::optional<std::string> {
    auto b = blob(ptr);
    if (!b || b->empty() || b->back() != 0) return std::nullopt;
    std::string s(reinterpret_cast<const char*>(b->data()), b->size() - 1);
    if (s.find('\0') != std::string::npos) return std::nullopt;
    return s;
  };
  for (uint32_t i = 0; i < kVmaMaxConfigs; ++i) {
    uint32_t np = Be32(&hdr[2044 + 4 * i]), dp = Be32(&hdr[3068 + 4 * i]);
    if (np == 0 || dp == 0) continue;
    auto n = str(np);
    auto d = blob(dp);
    if (!n) return bad("config " + std::to_string(i) + " name pointer " + std::to_string(np) +
                       " does not point to a string");
    if (!d) return bad("config '" + *n + "' data pointer " + std::to_string(dp) + " is invalid");
    h.configs.push_back({*n, std::vector<uint8_t>(d->begin(), d->end())});
  }
  for (uint32_t id = 1; id < kVmaMaxDevices; ++id) {
    const uint8_t* e = &hdr[4096 + 32 * id];
    uint32_t np = Be32(e);
    uint64_t size = Be64(e + 8);
    if (size == 0 && np == 0) continue;
    if (size == 0) continue;  // no device without a size
    auto n = str(np);
    if (!n) return bad("device " + std::to_string(id) + " name pointer is invalid");
    for (const auto& other : h.devices)
      if (other.name == *n) return bad("device name '" + *n + "' used twice");
    h.devices.push_back({static_cast<uint8_t>(id), *n, size});
  }
  return h;
}

VmaReader::VmaReader(ReadFn read, std::string name)
    : read_(std::move(read)), name_(std::move(name)) {}

Status VmaReader::ReadExact(uint8_t* dst, size_t n, size_t* got) {
  *got = 0;
  while (*got < n) {
    auto r = read_(std::span<uint8_t>(dst + *got, n - *got));
    if (!r.ok()) return r.status();
    if (*r == 0) break;
    *got += *r;
    offset_ += *r;
  }
  return Status::OK();
}

Status VmaReader::Damage(bool truncated, std::string reason) {
  failed_ = true;
  VmaDamage d;
  d.truncated = truncated;
  d.intact_bytes = intact_;
  d.last_dev = last_dev_;
  d.last_cluster = last_cluster_;
  d.reason = reason;
  damage_ = d;
  std::string msg = "VMA archive '" + name_ + "' " + reason + "; intact up to byte " +
                    std::to_string(intact_);
  if (last_cluster_)
    msg += " / cluster " + std::to_string(*last_cluster_) + " of device " +
           std::to_string(*last_dev_);
  return Status::Corruption(msg);
}

Result<const VmaHeader*> VmaReader::ReadHeader() {
  if (header_read_ || failed_) return Status::InvalidArgument("VMA header already read");
  std::vector<uint8_t> buf(kVmaFixedHeaderSize);
  size_t got = 0;
  PBSKIT_RETURN_IF_ERROR(ReadExact(buf.data(), buf.size(), &got));
  if (got < 8 || !std::equal(kVmaMagic.begin(), kVmaMagic.end(), buf.begin())) {
    failed_ = true;
    return Status::Corruption("'" + name_ + "' is not a VMA archive (wrong magic)");
  }
  if (got < buf.size())
    return Damage(true, "truncated inside the header at byte " + std::to_string(offset_));
  uint32_t header_size = Be32(&buf[56]);
  if (header_size < kVmaFixedHeaderSize || header_size > 16 * 1024 * 1024) {
    failed_ = true;
    return Status::Corruption("VMA header of '" + name_ + "': header_size " +
                              std::to_string(header_size) + " out of range");
  }
  buf.resize(header_size);
  PBSKIT_RETURN_IF_ERROR(
      ReadExact(buf.data() + kVmaFixedHeaderSize, header_size - kVmaFixedHeaderSize, &got));
  if (got < header_size - kVmaFixedHeaderSize)
    return Damage(true, "truncated inside the header at byte " + std::to_string(offset_));
  auto h = ParseVmaHeader(buf, name_);
  if (!h.ok()) {
    failed_ = true;
    return h.status();
  }
  header_ = std::move(h).value();
  header_read_ = true;
  intact_ = offset_;
  seen_.assign(kVmaMaxDevices, {});
  for (const auto& d : header_.devices) seen_[d.id].assign(d.cluster_count(), false);
  cluster_.resize(kVmaClusterSize);
  block_.resize(kVmaClusterSize);
  return &header_;
}

Status VmaReader::ReadExtentHeader(bool* eof) {
  *eof = false;
  std::array<uint8_t, kVmaExtentHeaderSize> eh;
  extent_offset_ = offset_;
  size_t got = 0;
  PBSKIT_RETURN_IF_ERROR(ReadExact(eh.data(), eh.size(), &got));
  if (got == 0) {
    *eof = true;
    return Status::OK();
  }
  const std::string at = " at byte " + std::to_string(extent_offset_);
  if (got < eh.size()) return Damage(true, "truncated inside the extent header" + at);
  if (!std::equal(kVmaExtentMagic.begin(), kVmaExtentMagic.end(), eh.begin()))
    return Damage(false, "has a bad extent magic" + at);
  if (eh[4] != 0 || eh[5] != 0) return Damage(false, "has a non-zero reserved field in extent" + at);
  if (!std::equal(header_.uuid.begin(), header_.uuid.end(), &eh[8]))
    return Damage(false, "has an extent with a foreign uuid" + at);
  std::array<uint8_t, 16> stored;
  std::copy_n(&eh[24], 16, stored.begin());
  if (Md5Zeroed(eh, 24) != stored) return Damage(false, "has an extent MD5 mismatch" + at);
  uint32_t block_count = (uint32_t{eh[6]} << 8) | eh[7];
  uint32_t bits = 0;
  for (uint32_t i = 0; i < kVmaBlockInfoPerExtent; ++i) {
    blockinfo_[i] = Be64(&eh[40 + 8 * i]);
    uint8_t dev = (blockinfo_[i] >> 32) & 0xff;
    if (dev != 0) bits += std::popcount(static_cast<uint16_t>(blockinfo_[i] >> 48));
  }
  if (bits != block_count)
    return Damage(false, "has an extent" + at + " with block_count " +
                             std::to_string(block_count) + " but " + std::to_string(bits) +
                             " blocks in its masks (missing blocks)");
  next_info_ = 0;
  ++extents_;
  intact_ = offset_;
  return Status::OK();
}

Result<std::optional<VmaCluster>> VmaReader::Next() {
  if (!header_read_ || failed_)
    return Status::InvalidArgument("VMA reader of '" + name_ + "' is not readable");
  for (;;) {
    while (next_info_ < kVmaBlockInfoPerExtent) {
      uint64_t info = blockinfo_[next_info_++];
      uint8_t dev = (info >> 32) & 0xff;
      if (dev == 0) continue;
      uint16_t mask = static_cast<uint16_t>(info >> 48);
      uint32_t cluster = static_cast<uint32_t>(info);
      const VmaDevice* d = header_.FindDevice(dev);
      const std::string where = "cluster " + std::to_string(cluster) + " of device " +
                                std::to_string(dev) + " in extent at byte " +
                                std::to_string(extent_offset_);
      if (!d) return Damage(false, "references unknown device in " + where);
      if (cluster >= seen_[dev].size()) return Damage(false, "has a " + where + " beyond the device size");
      if (seen_[dev][cluster]) return Damage(false, "has a duplicate " + where);
      VmaCluster c;
      c.dev_id = dev;
      c.cluster = cluster;
      c.mask = mask;
      c.file_offset = offset_;
      if (mask == 0xffff) {
        size_t got = 0;
        PBSKIT_RETURN_IF_ERROR(ReadExact(cluster_.data(), kVmaClusterSize, &got));
        if (got < kVmaClusterSize) return Damage(true, "truncated in " + where);
      } else {
        uint32_t n = std::popcount(mask);
        size_t got = 0;
        PBSKIT_RETURN_IF_ERROR(ReadExact(block_.data(), size_t{n} * kVmaBlockSize, &got));
        if (got < size_t{n} * kVmaBlockSize) return Damage(true, "truncated in " + where);
        std::fill(cluster_.begin(), cluster_.end(), 0);
        const uint8_t* src = block_.data();
        for (uint32_t j = 0; j < kVmaBlocksPerCluster; ++j) {
          if (!(mask & (1u << j))) continue;
          std::memcpy(cluster_.data() + j * kVmaBlockSize, src, kVmaBlockSize);
          src += kVmaBlockSize;
        }
      }
      seen_[dev][cluster] = true;
      intact_ = offset_;
      last_dev_ = dev;
      last_cluster_ = cluster;
      c.data = cluster_;
      return std::optional<VmaCluster>(c);
    }
    bool eof = false;
    PBSKIT_RETURN_IF_ERROR(ReadExtentHeader(&eof));
    if (eof) return std::optional<VmaCluster>();
  }
}

std::vector<std::pair<uint32_t, uint32_t>> VmaReader::MissingClusters(uint8_t dev_id) const {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  if (dev_id >= seen_.size()) return out;
  const auto& s = seen_[dev_id];
  for (uint32_t i = 0; i < s.size();) {
    if (s[i]) {
      ++i;
      continue;
    }
    uint32_t j = i;
    while (j + 1 < s.size() && !s[j + 1]) ++j;
    out.emplace_back(i, j);
    i = j + 1;
  }
  return out;
}

Status VmaReader::CheckComplete() {
  for (const auto& d : header_.devices) {
    auto gaps = MissingClusters(d.id);
    if (gaps.empty()) continue;
    uint64_t n = 0;
    for (auto [a, b] : gaps) n += uint64_t{b} - a + 1;
    return Damage(true, "ends after " + std::to_string(offset_) + " bytes missing " +
                            std::to_string(n) + " clusters of device " + std::to_string(d.id) +
                            " (" + d.name + "), first gap clusters " +
                            std::to_string(gaps[0].first) + "-" + std::to_string(gaps[0].second));
  }
  return Status::OK();
}

}  // namespace pbskit
