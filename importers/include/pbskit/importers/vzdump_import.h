// Import of Proxmox VE vzdump VM archives (`vzdump-qemu-<vmid>-<stamp>.vma[.zst|.gz|.lzo]`) into a
// datastore as the snapshot PVE would have written to a PBS storage (PXAR-VZDUMP.md §4.1, §5.1,
// §5.2, §5.4): `qemu-server.conf.blob`, `fw.conf.blob` when present, one `<device>.img.fidx` per
// disk (4 MiB chunks), the `.notes` side file as snapshot notes, the `.log` side file as
// `client.log.blob`, the `.protected` side file as protection.
//
// Streaming: the file is decompressed on the fly and clusters are assembled into 4 MiB chunks as
// they arrive (VMA clusters come in any order); a chunk is stored once all its clusters were
// seen, so memory holds only the chunks still being assembled, never an image.
// Container archives (`vzdump-lxc-*.tar*`) are not handled here.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/formats/names.h"
#include "pbskit/formats/status.h"

namespace pbskit {

enum class VzdumpCompression { kNone, kZstd, kGzip, kLzo };
// "none", "zstd", "gzip", "lzo".
const char* VzdumpCompressionName(VzdumpCompression c);

// The parts of a vzdump archive file name.
struct VzdumpFileName {
  std::string type;   // "qemu", "lxc" or "openvz"
  std::string vmid;   // [1-9][0-9]{2,8}
  std::string stamp;  // "YYYY_MM_DD-hh_mm_ss"
  std::string format;  // "vma", "tar" or "tgz"
  std::optional<VzdumpCompression> compression;  // from the extension
  std::string log_name;  // "<basename without extensions>.log"
};

// Parses a base name like "vzdump-qemu-100-2024_01_31-12_00_00.vma.zst". InvalidArgument
// naming the file when it does not follow the vzdump pattern.
Result<VzdumpFileName> ParseVzdumpFileName(const std::string& base_name);

// Converts a vzdump stamp (local time of the PVE node that wrote it) to epoch seconds.
// `time_zone` is a TZ name ("Europe/Vienna", "UTC"); empty = this machine's local zone.
// InvalidArgument for a malformed stamp.
Result<int64_t> VzdumpStampToEpoch(const std::string& stamp, const std::string& time_zone);

// Opens `path` as a byte stream of the decompressed archive; the compression is detected from
// the magic bytes (zstd, gzip, lzop, else none) and stored in *detected. `*compressed_bytes`
// (optional, must outlive the stream) counts the file bytes consumed. NotFound / IoError for
// the file; Unsupported "lzo ..." when lzop decompression is not available. Reads from the
// stream give Corruption for damaged or truncated compressed data.
Result<std::unique_ptr<ByteSource>> OpenVzdumpStream(const std::string& path,
                                                     VzdumpCompression* detected,
                                                     uint64_t* compressed_bytes);

struct VzdumpImportOptions {
  BackupNamespace ns;
  std::string auth_id = "root@pam";  // owner of a new group
  bool salvage = false;       // import damaged/truncated archives, missing clusters as zeros
  std::string time_zone;      // of the node that wrote the file; empty = local
  std::optional<std::string> backup_id;  // overrides the VMID of the file name
  std::optional<int64_t> backup_time;    // overrides the time of the file name
  // Called now and then with (file bytes read, file size).
  std::function<void(uint64_t, uint64_t)> progress;
};

struct VzdumpImportResult {
  BackupNamespace ns;
  BackupDir dir;
  VzdumpCompression compression = VzdumpCompression::kNone;
  uint64_t file_bytes = 0;     // compressed bytes read
  uint64_t archive_bytes = 0;  // decompressed VMA bytes read
  uint64_t image_bytes = 0;    // sum of the device sizes
  uint64_t chunks_new = 0;     // chunk files written
  uint64_t chunks_reused = 0;  // chunks already in the store (or seen earlier in this import)
  uint64_t stored_bytes = 0;   // encoded bytes of the chunks written
  std::vector<std::string> archives;  // manifest file names, in order
  std::vector<std::string> gaps;      // salvage: "drive-scsi0: clusters 23-31 missing (zeros)"
  std::string damage;                 // salvage: what was wrong with the archive
};

// Imports one vzdump VM archive as a new snapshot vm/<vmid>/<time> of `store` in options.ns.
// Requires: the namespace exists. Errors: InvalidArgument for a file name that is not a vzdump
// VM archive (unless backup_id and backup_time are given) or a container archive; Corruption
// when the archive is damaged or truncated and !salvage (nothing is left behind: the snapshot
// is removed); the SnapshotWriter's errors (AlreadyExists for an existing snapshot,
// "backup timestamp is older than last backup.", Busy, PermissionDenied for another owner);
// IoError for read/write failures. Not thread safe per store group (group lock).
Result<VzdumpImportResult> ImportVzdump(std::shared_ptr<DataStore> store, const std::string& path,
                                        const VzdumpImportOptions& options);

}  // namespace pbskit
