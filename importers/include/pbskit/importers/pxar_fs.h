// pxar <-> file system: encode a directory tree the way `pxar create` / proxmox-backup-client
// record it, and extract an archive into a directory restoring modes, owners, times, xattrs,
// ACLs, file capabilities, device nodes, FIFOs, sockets, symlinks and hardlinks.
//
// What gets recorded (same rules as PBS, see docs/formats/pxar.md):
//   * ENTRY from fstatat(AT_SYMLINK_NOFOLLOW): full st_mode, uid, gid, mtime (ns); flags from
//     FS_IOC_GETFLAGS (chattr) mapped to pxar flags.
//   * Regular files and directories only (PBS opens everything else with O_PATH, where the
//     xattr calls fail): xattrs in flistxattr order limited to user.*, trusted.* and
//     security.NTACL; security.capability as FCAPS; system.posix_acl_* decoded into ACL items;
//     quota project id on ext4/xfs/zfs/fuse when non-zero.
//   * What the file system supports decides like PBS's Flags::from_magic: tmpfs records no
//     xattrs and ACLs, btrfs no quota ids, fuse xattrs only, vfat nothing.
//   * Children sorted by raw name bytes; hardlinks by (st_dev, st_ino) for files with
//     st_nlink > 1, the first occurrence stored as the file; `.pxarexclude-cli` in the root is
//     skipped; mount points of virtual file systems (proc, sysfs, ...) become empty dirs.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/formats/pxar/decoder.h"
#include "pbskit/formats/pxar/encoder.h"
#include "pbskit/formats/status.h"

namespace pbskit::importers {

// Which metadata is recorded / restored (PBS feature flags that matter here).
struct PxarFeatures {
  bool xattrs = true;
  bool acls = true;
  bool fcaps = true;
  bool quota_projid = true;
  bool chattr = true;
  bool device_nodes = true;  // extract: create device nodes
  bool fifos = true;         // extract: create FIFOs
  bool sockets = true;       // extract: create sockets
};

// Hooks for the backup writer: catalog entries in archive order and payload chunk boundary
// hints (split archives). Every hook may fail; the walk stops with that Status.
class PxarCreateObserver {
 public:
  virtual ~PxarCreateObserver() = default;
  virtual Status StartDirectory(std::string_view /*name*/) { return Status::OK(); }
  virtual Status EndDirectory() { return Status::OK(); }
  virtual Status AddFile(std::string_view /*name*/, uint64_t /*size*/, int64_t /*mtime*/) {
    return Status::OK();
  }
  virtual Status AddHardlink(std::string_view /*name*/) { return Status::OK(); }
  virtual Status AddSymlink(std::string_view /*name*/) { return Status::OK(); }
  virtual Status AddBlockDevice(std::string_view /*name*/) { return Status::OK(); }
  virtual Status AddCharDevice(std::string_view /*name*/) { return Status::OK(); }
  virtual Status AddFifo(std::string_view /*name*/) { return Status::OK(); }
  virtual Status AddSocket(std::string_view /*name*/) { return Status::OK(); }
  // Split archives: called before each (non-hardlink) regular file with the payload offset
  // its PAYLOAD header will get (PBS's suggested chunk boundary).
  virtual void SuggestPayloadBoundary(uint64_t /*payload_offset*/) {}
};

struct PxarCreateOptions {
  PxarFeatures features;
  PxarCreateObserver* observer = nullptr;  // borrowed, may be null
  // Abort with InvalidArgument when the directory listings held in memory along the current
  // path exceed this many entries (PBS --entries-max).
  uint64_t entries_max = 1024 * 1024;
  // Warnings (vanished files, files that changed size while read, unreadable entries) as PBS
  // words them; when null they are only collected in PxarCreateStats::warnings.
  std::function<void(const std::string&)> warn;
};

struct PxarCreateStats {
  uint64_t entries = 0;  // excluding the root
  uint64_t files = 0;
  uint64_t file_bytes = 0;
  uint64_t hardlinks = 0;
  std::vector<std::string> warnings;
};

// Encodes the tree below `source_dir` (its own metadata becomes the root entry) into
// `archive` (+ `payload` for a split v2 archive; null for v1) and finishes the archive.
// `prelude` (split only) is written as PRELUDE. Not thread safe; sinks borrowed.
// Errors: NotFound / PermissionDenied / IoError for the source (with the path),
// InvalidArgument for a virtual file system root or too many entries, sink and observer
// errors unchanged.
Result<PxarCreateStats> CreatePxarArchive(const std::string& source_dir, pxar::PxarSink* archive,
                                          pxar::PxarSink* payload,
                                          const PxarCreateOptions& options,
                                          const std::string* prelude = nullptr);

// Reads the pxar metadata of one open file descriptor as PBS records it (`fd` opened
// O_RDONLY for files/dirs, O_PATH otherwise; `fs_magic` from fstatfs of its file system).
// IoError when a required call fails for another reason than "not supported".
Result<pxar::Metadata> ReadPxarMetadata(int fd, const struct stat& st, int64_t fs_magic,
                                        const PxarFeatures& features);

// Which features PBS enables for a file system type (statfs f_type).
PxarFeatures FeaturesForFsMagic(int64_t fs_magic, const PxarFeatures& requested);

struct PxarExtractOptions {
  PxarFeatures features;
  // chown entries to the archived uid/gid; default: when running as root.
  bool restore_owner;
  // Glob patterns (fnmatch, '*' also matches '/') on the path relative to the archive root;
  // an entry is extracted when it or one of its parent directories matches. Empty: all.
  std::vector<std::string> patterns;
  // Replace existing non-directory files instead of failing.
  bool overwrite = false;
  std::function<void(const std::string& path)> on_entry;  // called per extracted entry
  std::function<void(const std::string&)> warn;
  PxarExtractOptions();
};

struct PxarExtractStats {
  uint64_t entries = 0;
  uint64_t files = 0;
  uint64_t file_bytes = 0;
  std::vector<std::string> warnings;
};

// Extracts everything `decoder` yields below `target_dir` (created if missing; an existing
// directory is reused). The decoder must be fresh and constructed with
// DecoderOptions::report_directory_end = true (InvalidArgument otherwise is not detectable,
// directories then keep the time of extraction). Nothing is ever created outside
// `target_dir`: directories are opened with O_NOFOLLOW and hardlink targets are resolved
// component by component. Errors: decoder errors unchanged (Corruption with offsets),
// AlreadyExists for an existing file without `overwrite`, IoError / PermissionDenied naming
// the path for file system failures. Metadata that the target file system cannot hold
// (EOPNOTSUPP for xattrs/ACLs) is reported as a warning, like PBS.
Result<PxarExtractStats> ExtractPxarArchive(pxar::Decoder* decoder, const std::string& target_dir,
                                            const PxarExtractOptions& options);

}  // namespace pbskit::importers
