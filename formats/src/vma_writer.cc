// VMA encoder with the PVE writer's layout (PXAR-VZDUMP.md §3.2-3.5). Used by tests and the
// testdata generator; the importer only decodes.
#include <openssl/evp.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "pbskit/formats/vma.h"

namespace pbskit {
namespace {

void PutBe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
void PutBe64(uint8_t* p, uint64_t v) {
  PutBe32(p, static_cast<uint32_t>(v >> 32));
  PutBe32(p + 4, static_cast<uint32_t>(v));
}
void SetMd5(uint8_t* data, size_t n, size_t field) {
  std::memset(data + field, 0, 16);
  unsigned int len = 0;
  uint8_t out[16];
  EVP_Digest(data, n, out, &len, EVP_md5(), nullptr);
  std::memcpy(data + field, out, 16);
}

}  // namespace

Result<std::vector<uint8_t>> EncodeVma(const std::vector<VmaConfig>& configs,
                                       const std::vector<VmaDevice>& devices,
                                       const std::vector<VmaClusterInput>& clusters,
                                       const VmaWriteOptions& options) {
  if (configs.size() > kVmaMaxConfigs || devices.size() > kVmaMaxDevices - 2)
    return Status::InvalidArgument("EncodeVma: too many configs or devices");
  if (options.clusters_per_extent < 1 || options.clusters_per_extent > kVmaBlockInfoPerExtent)
    return Status::InvalidArgument("EncodeVma: clusters_per_extent must be 1..59");
  std::vector<uint8_t> blob(1, 0);
  auto add_blob = [&](std::span<const uint8_t> b) -> Result<uint32_t> {
    if (b.size() > 65535) return Status::InvalidArgument("EncodeVma: blob over 65535 bytes");
    uint32_t ptr = static_cast<uint32_t>(blob.size());
    blob.push_back(static_cast<uint8_t>(b.size()));
    blob.push_back(static_cast<uint8_t>(b.size() >> 8));
    blob.insert(blob.end(), b.begin(), b.end());
    return ptr;
  };
  auto cstr = [](const std::string& s) {
    std::vector<uint8_t> v(s.begin(), s.end());
    v.push_back(0);
    return v;
  };
  std::vector<uint8_t> fixed(kVmaFixedHeaderSize, 0);
  for (size_t i = 0; i < configs.size(); ++i) {
    PBSKIT_ASSIGN_OR_RETURN(uint32_t np, add_blob(cstr(configs[i].name)));
    PBSKIT_ASSIGN_OR_RETURN(uint32_t dp, add_blob(configs[i].data));
    PutBe32(&fixed[2044 + 4 * i], np);
    PutBe32(&fixed[3068 + 4 * i], dp);
  }
  for (size_t i = 0; i < devices.size(); ++i) {
    PBSKIT_ASSIGN_OR_RETURN(uint32_t np, add_blob(cstr(devices[i].name)));
    uint8_t* e = &fixed[4096 + 32 * (i + 1)];
    PutBe32(e, np);
    PutBe64(e + 8, devices[i].size);
  }
  const uint32_t used = static_cast<uint32_t>(blob.size());
  const uint32_t header_size = kVmaFixedHeaderSize + (used + 511) / 512 * 512;
  std::vector<uint8_t> out(header_size, 0);
  std::copy(fixed.begin(), fixed.end(), out.begin());
  std::copy(kVmaMagic.begin(), kVmaMagic.end(), out.begin());
  PutBe32(&out[4], 1);
  std::copy(options.uuid.begin(), options.uuid.end(), &out[8]);
  PutBe64(&out[24], static_cast<uint64_t>(options.ctime));
  PutBe32(&out[48], kVmaFixedHeaderSize);
  PutBe32(&out[52], used);
  PutBe32(&out[56], header_size);
  std::copy(blob.begin(), blob.end(), &out[kVmaFixedHeaderSize]);
  SetMd5(out.data(), header_size, 32);

  for (const auto& c : clusters) {
    if (c.dev_id == 0 || c.dev_id > devices.size())
      return Status::InvalidArgument("EncodeVma: cluster of unknown device " +
                                     std::to_string(c.dev_id));
    if (c.mask != 0 && c.data.size() != kVmaClusterSize)
      return Status::InvalidArgument("EncodeVma: cluster data must be 65536 bytes");
  }
  size_t i = 0;
  do {
    size_t n = std::min<size_t>(options.clusters_per_extent, clusters.size() - i);
    std::vector<uint8_t> eh(kVmaExtentHeaderSize, 0);
    std::vector<uint8_t> data;
    uint32_t blocks = 0;
    for (size_t k = 0; k < n; ++k) {
      const auto& c = clusters[i + k];
      uint64_t info = (uint64_t{c.mask} << 48) | (uint64_t{c.dev_id} << 32) | c.cluster;
      PutBe64(&eh[40 + 8 * k], info);
      for (uint32_t j = 0; j < kVmaBlocksPerCluster; ++j) {
        if (!(c.mask & (1u << j))) continue;
        data.insert(data.end(), c.data.begin() + j * kVmaBlockSize,
                    c.data.begin() + (j + 1) * kVmaBlockSize);
        ++blocks;
      }
    }
    std::copy(kVmaExtentMagic.begin(), kVmaExtentMagic.end(), eh.begin());
    eh[6] = static_cast<uint8_t>(blocks >> 8);
    eh[7] = static_cast<uint8_t>(blocks);
    std::copy(options.uuid.begin(), options.uuid.end(), &eh[8]);
    SetMd5(eh.data(), eh.size(), 24);
    out.insert(out.end(), eh.begin(), eh.end());
    out.insert(out.end(), data.begin(), data.end());
    i += n;
  } while (i < clusters.size());
  return out;
}

}  // namespace pbskit
