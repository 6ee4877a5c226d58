// VMA decoder and encoder: the computed vector of PXAR-VZDUMP.md §6.3, damaged archives, and the
// real (truncated) Proxmox VE sample of the fixtures.
#include "pbskit/formats/vma.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/hex.h"
#include "test_support.h"

namespace pbskit {
namespace {

std::vector<uint8_t> Filled(uint8_t c) { return std::vector<uint8_t>(kVmaClusterSize, c); }

// §6.3: one config, one 69632-byte device, block 0 of clusters 0 and 1 stored.
Result<std::vector<uint8_t>> SpecVector() {
  VmaWriteOptions o;
  for (int i = 0; i < 16; ++i) o.uuid[i] = static_cast<uint8_t>(i * 0x11);
  o.ctime = 1700000000;
  std::string conf = "memory: 512\n";
  std::vector<uint8_t> a = Filled(0), b = Filled(0);
  std::memset(a.data(), 'A', 4096);
  std::memset(b.data(), 'B', 4096);
  return EncodeVma({{"qemu-server.conf", std::vector<uint8_t>(conf.begin(), conf.end())}},
                   {{1, "drive-scsi0", 69632}}, {{1, 0, 1, a}, {1, 1, 1, b}}, o);
}

VmaReader::ReadFn MemoryReader(const std::vector<uint8_t>& data) {
  auto pos = std::make_shared<size_t>(0);
  return [&data, pos](std::span<uint8_t> buf) -> Result<size_t> {
    size_t n = std::min(buf.size(), data.size() - *pos);
    std::memcpy(buf.data(), data.data() + *pos, n);
    *pos += n;
    return n;
  };
}

// Decodes every cluster into a sparse map of device images (small test devices only).
struct Decoded {
  std::vector<std::vector<uint8_t>> images;  // by device index
  std::vector<std::tuple<uint32_t, uint16_t, uint64_t>> map;  // device 1: cluster, mask, offset
  Status end;
};

Decoded DecodeAll(VmaReader& r, uint64_t image_limit) {
  Decoded d;
  auto h = r.ReadHeader();
  if (!h.ok()) {
    d.end = h.status();
    return d;
  }
  for (const auto& dev : (*h)->devices)
    d.images.emplace_back(std::min(dev.size, image_limit), 0);
  for (;;) {
    auto c = r.Next();
    if (!c.ok()) {
      d.end = c.status();
      return d;
    }
    if (!*c) break;
    const VmaCluster& cl = **c;
    if (cl.dev_id == 1) d.map.emplace_back(cl.cluster, cl.mask, cl.file_offset);
    auto& img = d.images[cl.dev_id - 1];
    uint64_t off = uint64_t{cl.cluster} * kVmaClusterSize;
    if (off < img.size())
      std::memcpy(img.data() + off, cl.data.data(),
                  std::min<uint64_t>(kVmaClusterSize, img.size() - off));
  }
  d.end = r.CheckComplete();
  return d;
}

TEST(VmaTest, EncodesTheSpecVector) {
  auto v = SpecVector();
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->size(), 21504u);
  EXPECT_EQ(ToHex(Sha256(*v)), "f7e790f532bc07bb4321203e29c1457f8696460d613c398ff07da1ecc34f9f88");
}

TEST(VmaTest, DecodesTheSpecVector) {
  auto v = SpecVector();
  ASSERT_TRUE(v.ok());
  VmaReader r(MemoryReader(*v), "spec.vma");
  Decoded d = DecodeAll(r, 1 << 20);
  ASSERT_TRUE(d.end.ok()) << d.end.ToString();
  const VmaHeader& h = r.header();
  EXPECT_EQ(h.ctime, 1700000000);
  EXPECT_EQ(h.header_size, 12800u);
  EXPECT_EQ(h.blob_buffer_size, 48u);
  ASSERT_EQ(h.configs.size(), 1u);
  EXPECT_EQ(h.configs[0].name, "qemu-server.conf");
  EXPECT_EQ(std::string(h.configs[0].data.begin(), h.configs[0].data.end()), "memory: 512\n");
  ASSERT_EQ(h.devices.size(), 1u);
  EXPECT_EQ(h.devices[0].name, "drive-scsi0");
  EXPECT_EQ(h.devices[0].size, 69632u);
  ASSERT_EQ(d.images[0].size(), 69632u);
  EXPECT_EQ(ToHex(Sha256(d.images[0])),
            "455fb1ca4559c4deeaf889c83064388a0d8cb3c301e98cecd7fc93b5af951aaa");
  EXPECT_EQ(r.extent_count(), 1u);
  EXPECT_EQ(r.bytes_read(), 21504u);
}

TEST(VmaTest, HeaderMd5MismatchIsCorruption) {
  auto v = SpecVector();
  ASSERT_TRUE(v.ok());
  (*v)[12288 + 5] ^= 1;  // inside the blob buffer
  VmaReader r(MemoryReader(*v), "bad.vma");
  auto h = r.ReadHeader();
  ASSERT_FALSE(h.ok());
  EXPECT_TRUE(h.status().IsCorruption());
  EXPECT_NE(h.status().ToString().find("MD5"), std::string::npos) << h.status().ToString();
}

TEST(VmaTest, ExtentMd5MismatchIsCorruption) {
  auto v = SpecVector();
  ASSERT_TRUE(v.ok());
  (*v)[12800 + 40] ^= 0x80;  // a blockinfo mask bit
  VmaReader r(MemoryReader(*v), "bad.vma");
  Decoded d = DecodeAll(r, 1 << 20);
  ASSERT_FALSE(d.end.ok());
  EXPECT_NE(d.end.ToString().find("extent MD5 mismatch"), std::string::npos) << d.end.ToString();
  ASSERT_TRUE(r.damage().has_value());
  EXPECT_FALSE(r.damage()->truncated);
  EXPECT_EQ(r.damage()->intact_bytes, 12800u);
}

TEST(VmaTest, MissingClustersAreReported) {
  VmaWriteOptions o;
  // Two-cluster device; only cluster 1 present.
  auto v = EncodeVma({}, {{1, "drive-virtio0", 2 * kVmaClusterSize}}, {{1, 1, 0xffff, Filled(7)}},
                     o);
  ASSERT_TRUE(v.ok());
  VmaReader r(MemoryReader(*v), "gap.vma");
  Decoded d = DecodeAll(r, 1 << 20);
  ASSERT_FALSE(d.end.ok());
  EXPECT_NE(d.end.ToString().find("missing 1 clusters of device 1"), std::string::npos)
      << d.end.ToString();
  auto gaps = r.MissingClusters(1);
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_EQ(gaps[0], std::make_pair(0u, 0u));
}

TEST(VmaTest, DuplicateClusterIsCorruption) {
  VmaWriteOptions o;
  auto v = EncodeVma({}, {{1, "drive-scsi0", kVmaClusterSize}},
                     {{1, 0, 0, {}}, {1, 0, 0xffff, Filled(1)}}, o);
  ASSERT_TRUE(v.ok());
  VmaReader r(MemoryReader(*v), "dup.vma");
  Decoded d = DecodeAll(r, 1 << 20);
  EXPECT_NE(d.end.ToString().find("duplicate cluster 0 of device 1"), std::string::npos)
      << d.end.ToString();
}

TEST(VmaTest, InterleavedDevicesAndManyExtents) {
  VmaWriteOptions o;
  o.clusters_per_extent = 3;
  std::vector<VmaClusterInput> in;
  for (uint32_t c = 0; c < 5; ++c) {
    in.push_back({2, 4 - c, 0xffff, Filled(static_cast<uint8_t>(0x20 + c))});
    in.push_back({1, c, static_cast<uint16_t>(c % 2 ? 0 : 0x8001), Filled(0x10)});
  }
  auto v = EncodeVma({}, {{1, "drive-scsi0", 5 * kVmaClusterSize - 100},
                          {2, "drive-scsi1", 5 * kVmaClusterSize}},
                     in, o);
  ASSERT_TRUE(v.ok());
  VmaReader r(MemoryReader(*v), "two.vma");
  Decoded d = DecodeAll(r, 1 << 20);
  ASSERT_TRUE(d.end.ok()) << d.end.ToString();
  EXPECT_EQ(r.extent_count(), 4u);
  EXPECT_EQ(d.images[1][4 * kVmaClusterSize], 0x20);
  EXPECT_EQ(d.images[1][0], 0x24);
  // Device 1, cluster 0: blocks 0 and 15 stored, the rest zero.
  EXPECT_EQ(d.images[0][0], 0x10);
  EXPECT_EQ(d.images[0][4096], 0);
  EXPECT_EQ(d.images[0][15 * 4096], 0x10);
  EXPECT_EQ(d.images[0][kVmaClusterSize], 0);
}

TEST(VmaTest, TruncationSaysHowFarTheArchiveIsIntact) {
  VmaWriteOptions o;
  auto v = EncodeVma({}, {{1, "drive-scsi0", 3 * kVmaClusterSize}},
                     {{1, 0, 0xffff, Filled(1)}, {1, 1, 0xffff, Filled(2)},
                      {1, 2, 0xffff, Filled(3)}},
                     o);
  ASSERT_TRUE(v.ok());
  const size_t full = v->size();
  v->resize(full - 1000);
  VmaReader r(MemoryReader(*v), "cut.vma");
  Decoded d = DecodeAll(r, 1 << 20);
  ASSERT_FALSE(d.end.ok());
  ASSERT_TRUE(r.damage().has_value());
  EXPECT_TRUE(r.damage()->truncated);
  EXPECT_EQ(r.damage()->intact_bytes, full - kVmaClusterSize);
  EXPECT_EQ(r.damage()->last_cluster, 1u);
  EXPECT_NE(d.end.ToString().find("intact up to byte " + std::to_string(full - kVmaClusterSize) +
                                  " / cluster 1 of device 1"),
            std::string::npos)
      << d.end.ToString();
}

TEST(VmaTest, NotAVma) {
  std::vector<uint8_t> junk(20000, 'x');
  VmaReader r(MemoryReader(junk), "junk");
  auto h = r.ReadHeader();
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().ToString().find("not a VMA archive"), std::string::npos);
}

// The real sample: gunzipped on the fly (streaming, like the importer).
TEST(VmaTest, RealTruncatedProxmoxSample) {
  gzFile gz = gzopen(test::Fixture("vma/test.vma.gz").c_str(), "rb");
  ASSERT_NE(gz, nullptr);
  VmaReader r(
      [gz](std::span<uint8_t> buf) -> Result<size_t> {
        int n = gzread(gz, buf.data(), static_cast<unsigned>(buf.size()));
        if (n < 0) return Status::IoError("gzread failed");
        return static_cast<size_t>(n);
      },
      "test.vma");
  Decoded d = DecodeAll(r, 1507328);
  gzclose(gz);
  const VmaHeader& h = r.header();
  EXPECT_EQ(h.version, 1u);
  EXPECT_EQ(ToHex(std::span<const uint8_t>(h.uuid)), "04fc12eb0fed43229aaaf4e412f68096");
  ASSERT_EQ(h.configs.size(), 1u);
  EXPECT_EQ(h.configs[0].name, "qemu-server.conf");
  EXPECT_EQ(h.configs[0].data.size(), 417u);
  EXPECT_EQ(ToHex(Sha256(h.configs[0].data)),
            "383cc8e9ab35d6a56b9a83b502263942253c807216c83eccae89a23ef040f950");
  ASSERT_EQ(h.devices.size(), 1u);
  EXPECT_EQ(h.devices[0].id, 1);
  EXPECT_EQ(h.devices[0].name, "drive-scsi0");
  EXPECT_EQ(h.devices[0].size, 10737418240u);

  // Cut at the end of the second extent: the archive ends cleanly but most clusters of the
  // 10 GiB device never came.
  ASSERT_FALSE(d.end.ok());
  ASSERT_TRUE(r.damage().has_value());
  EXPECT_TRUE(r.damage()->truncated);
  EXPECT_EQ(r.damage()->intact_bytes, 538112u);
  EXPECT_EQ(r.extent_count(), 2u);
  EXPECT_NE(d.end.ToString().find("ends after 538112 bytes missing 163724 clusters of device 1 "
                                  "(drive-scsi0), first gap clusters 23-31; intact up to byte "
                                  "538112 / cluster "),
            std::string::npos)
      << d.end.ToString();
  EXPECT_EQ(d.map.size(), 163840u - 163724u);
  std::erase_if(d.map, [](const auto& e) { return std::get<0>(e) > 22; });
  std::sort(d.map.begin(), d.map.end());

  std::vector<std::tuple<uint32_t, uint16_t, uint64_t>> want = {{0, 65535, 13312}};
  for (uint32_t c = 1; c <= 15; ++c) want.emplace_back(c, 0, 78848);
  for (uint32_t c = 16; c <= 22; ++c) want.emplace_back(c, 65535, 79360 + (c - 16) * 65536ull);
  EXPECT_EQ(d.map, want);

  const auto& img = d.images[0];
  ASSERT_EQ(img.size(), 1507328u);
  EXPECT_EQ(ToHex(Sha256(std::span<const uint8_t>(img.data(), 65536))),
            "cf4adcf1933a8c9a0a3ff5588e1400e6beea8a32212b3a35ba08c7b08e4e6b1f");
  EXPECT_TRUE(std::all_of(img.begin() + 65536, img.begin() + 1048576, [](uint8_t b) { return !b; }));
  EXPECT_EQ(ToHex(Sha256(std::span<const uint8_t>(img.data() + 1048576, 1507328 - 1048576))),
            "8c989a3aa590795fa919ccb7d1f28651c85f8a0d9ba00ab22cdd9fb760fa7955");
}

}  // namespace
}  // namespace pbskit
