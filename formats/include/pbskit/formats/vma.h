// VMA, the Proxmox VE vzdump VM archive (docs/formats/vma.md, PXAR-VZDUMP.md §3): a header with
// config blobs and a device table, then extents of up to 59 clusters of 64 KiB each, in any order.
// Pure streaming decoder: bytes come from a caller-supplied read callback, one extent header and
// one cluster are held at a time, nothing is buffered per image. Also a small encoder (tests,
// testdata generator).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pbskit/formats/status.h"

namespace pbskit {

inline constexpr std::array<uint8_t, 4> kVmaMagic = {'V', 'M', 'A', 0};
inline constexpr std::array<uint8_t, 4> kVmaExtentMagic = {'V', 'M', 'A', 'E'};
inline constexpr uint32_t kVmaBlockSize = 4096;
inline constexpr uint32_t kVmaClusterSize = 65536;
inline constexpr uint32_t kVmaBlocksPerCluster = 16;
inline constexpr uint32_t kVmaExtentHeaderSize = 512;
inline constexpr uint32_t kVmaBlockInfoPerExtent = 59;
inline constexpr uint32_t kVmaFixedHeaderSize = 12288;
inline constexpr uint32_t kVmaMaxDevices = 256;
inline constexpr uint32_t kVmaMaxConfigs = 256;

struct VmaConfig {
  std::string name;           // e.g. "qemu-server.conf", "qemu-server.fw"
  std::vector<uint8_t> data;  // blob bytes as stored
};

struct VmaDevice {
  uint8_t id = 0;  // 1..255
  std::string name;  // e.g. "drive-scsi0"
  uint64_t size = 0;  // bytes
  uint64_t cluster_count() const { return (size + kVmaClusterSize - 1) / kVmaClusterSize; }
};

struct VmaHeader {
  uint32_t version = 0;
  std::array<uint8_t, 16> uuid{};
  int64_t ctime = 0;
  uint32_t blob_buffer_offset = 0;
  uint32_t blob_buffer_size = 0;
  uint32_t header_size = 0;
  std::vector<VmaConfig> configs;  // in slot order
  std::vector<VmaDevice> devices;  // ascending id
  // The device with `id`, or nullptr.
  const VmaDevice* FindDevice(uint8_t id) const;
};

// Parses and checks a complete header (`bytes` holds exactly header_size bytes, or more; only
// the first header_size are used). Corruption naming `name` for: wrong magic, version != 1, bad
// blob buffer bounds, header_size below 12288 or above bytes.size(), an MD5 mismatch, a config
// or device name pointer that does not resolve to a NUL-terminated blob, a device name used twice.
Result<VmaHeader> ParseVmaHeader(std::span<const uint8_t> bytes, const std::string& name);

// One decoded cluster.
struct VmaCluster {
  uint8_t dev_id = 0;
  uint32_t cluster = 0;  // cluster number within the device
  uint16_t mask = 0;     // bit j set: block j was stored; clear: block j is zero
  uint64_t file_offset = 0;  // archive offset of the cluster's first stored block (or where it
                             // would be: mask 0)
  std::span<const uint8_t> data;  // kVmaClusterSize bytes (zeros for clear blocks); valid until
                                  // the next call to Next()
};

// Where a damaged or truncated archive stops being usable.
struct VmaDamage {
  bool truncated = false;    // the data ended early (otherwise: corrupt bytes)
  uint64_t intact_bytes = 0;  // archive bytes up to the end of the last good cluster
  std::optional<uint8_t> last_dev;  // last good cluster, if any
  std::optional<uint32_t> last_cluster;
  std::string reason;
};

// Streaming VMA decoder. Not thread safe; one archive per object.
class VmaReader {
 public:
  // Reads up to buf.size() bytes; fewer only at the end of the data, 0 at the end. Errors are
  // passed through unchanged (IoError for read failures, Corruption for decompression damage).
  using ReadFn = std::function<Result<size_t>(std::span<uint8_t>)>;

  // `name` is used in messages. `read` is owned.
  VmaReader(ReadFn read, std::string name);

  // Reads and checks the header (see ParseVmaHeader); must be called first and once. Truncated
  // input gives Corruption "... truncated ..." with damage() set.
  Result<const VmaHeader*> ReadHeader();

  // Returns the next cluster, or nullopt at the clean end of the archive (EOF exactly at an
  // extent boundary). Corruption for a bad extent (magic, reserved field, uuid, MD5, block count
  // not matching the masks, unknown device, cluster beyond the device, a cluster seen twice) and
  // for truncation inside an extent; damage() then says how far the archive is intact. Read
  // errors are passed through. After an error the reader is unusable.
  Result<std::optional<VmaCluster>> Next();

  // After Next() returned nullopt: OK when every cluster of every device was seen, otherwise
  // Corruption "... ends after B bytes missing N clusters of device ..." naming the first gap
  // and how far the archive is intact; damage() is set then (truncated = true, as an archive
  // cut at an extent boundary looks exactly like this).
  Status CheckComplete();
  // Runs of missing clusters [first, last] of a device (requires a known id).
  std::vector<std::pair<uint32_t, uint32_t>> MissingClusters(uint8_t dev_id) const;

  const VmaHeader& header() const { return header_; }
  const std::optional<VmaDamage>& damage() const { return damage_; }
  uint64_t bytes_read() const { return offset_; }
  // Archive bytes up to the end of the last complete cluster (or extent header / header).
  uint64_t intact_bytes() const { return intact_; }
  uint64_t extent_count() const { return extents_; }

 private:
  Status ReadExact(uint8_t* dst, size_t n, size_t* got);
  Status Damage(bool truncated, std::string reason);
  Status ReadExtentHeader(bool* eof);

  ReadFn read_;
  std::string name_;
  VmaHeader header_;
  bool header_read_ = false;
  bool failed_ = false;
  uint64_t offset_ = 0;
  uint64_t extents_ = 0;
  std::optional<VmaDamage> damage_;
  uint64_t intact_ = 0;
  std::optional<uint8_t> last_dev_;
  std::optional<uint32_t> last_cluster_;
  // Current extent.
  std::array<uint64_t, kVmaBlockInfoPerExtent> blockinfo_{};
  size_t next_info_ = kVmaBlockInfoPerExtent;
  uint64_t extent_offset_ = 0;
  std::vector<uint8_t> cluster_;
  std::vector<uint8_t> block_;
  std::vector<std::vector<bool>> seen_;  // by device id
};

// Encoder input: one cluster with its full contents; only blocks whose mask bit is set are
// stored.
struct VmaClusterInput {
  uint8_t dev_id = 0;
  uint32_t cluster = 0;
  uint16_t mask = 0;
  std::vector<uint8_t> data;  // kVmaClusterSize bytes, or empty when mask == 0
};

struct VmaWriteOptions {
  std::array<uint8_t, 16> uuid{};
  int64_t ctime = 0;
  uint32_t clusters_per_extent = 58;  // what the PVE writer uses; 1..59
};

// Encodes a complete VMA the way the PVE writer lays it out (blob buffer: config names and data
// in order, then device names; header_size = 12288 + used blob bytes rounded up to 512; extents
// of `clusters_per_extent` entries; a diskless archive gets one empty extent). Devices get ids
// 1, 2, ... in the given order. InvalidArgument for bad input (cluster of an unknown device,
// wrong data size, too many devices/configs, a blob over 65535 bytes).
Result<std::vector<uint8_t>> EncodeVma(const std::vector<VmaConfig>& configs,
                                       const std::vector<VmaDevice>& devices,
                                       const std::vector<VmaClusterInput>& clusters,
                                       const VmaWriteOptions& options);

}  // namespace pbskit
