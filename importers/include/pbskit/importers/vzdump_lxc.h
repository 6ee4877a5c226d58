// Import of Proxmox VE vzdump container archives (`vzdump-lxc-<vmid>-<stamp>.tar[.zst|.gz|.lzo]`)
// as the pxar archive proxmox-backup-client would have written for the same container
// (PXAR-VZDUMP.md §4.2, §4.3, §5.3; docs/formats/vzdump-lxc.md).
//
// Two phases, because GNU tar lists a directory's entries in readdir order while pxar needs them
// sorted by name and contiguous:
//   1. LxcTarArchive::Read streams the tar once through libarchive (none/gzip/zstd/lzop). The
//      entry tree (names and metadata, no file contents) is kept in memory; file contents go to an
//      anonymous spool file (only the data segments of sparse files). `./etc/vzdump/pct.conf` and
//      `pct.fw` before the `./` member are taken out as the container config. Every refusal
//      (bad paths, unknown compression, truncation, unreadable file) happens here, before
//      anything is written anywhere.
//   2. LxcTarArchive::Encode walks the tree in pxar order and feeds a pxar::Encoder, reading file
//      contents back from the spool; catalog events go to a PxarCreateObserver.
// Memory: proportional to the number of entries (about 150 bytes + name per entry, plus any
// xattrs/ACLs), never to file sizes. Disk: the spool holds the file contents once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pbskit/formats/pxar/encoder.h"
#include "pbskit/formats/status.h"
#include "pbskit/importers/pxar_fs.h"
#include "pbskit/importers/vzdump_import.h"

namespace pbskit {

// vzdump's default exclude patterns (`stdexcludes`), as `.pxarexclude-cli` lists them.
inline constexpr const char* kVzdumpStdExcludes = "/tmp/?*\n/var/tmp/?*\n/var/run/?*.pid\n";

struct LxcTarOptions {
  // Import a truncated or damaged archive as far as it is intact instead of refusing it.
  bool salvage = false;
  // Directory for the spool file; empty: $TMPDIR, else /var/tmp.
  std::string temp_dir;
  // Content of a `.pxarexclude-cli` file appended as the last child of the root (what
  // proxmox-backup-client writes when exclude patterns are active); nullopt: none.
  std::optional<std::string> pxarexclude_cli;
  // Called now and then with (file bytes read, file size) while reading.
  std::function<void(uint64_t, uint64_t)> progress;
  // Refuse archives with more entries than this (memory bound for the entry tree).
  uint64_t entries_max = 64ull * 1024 * 1024;
};

struct LxcTarStats {
  VzdumpCompression compression = VzdumpCompression::kNone;
  uint64_t file_bytes = 0;     // bytes of the (compressed) file read
  uint64_t tar_bytes = 0;      // decompressed tar bytes read
  uint64_t entries = 0;        // entries of the container tree, root excluded
  uint64_t files = 0;          // regular files (hardlinks not counted)
  uint64_t hardlinks = 0;
  uint64_t data_bytes = 0;     // sum of regular file sizes
  uint64_t spooled_bytes = 0;  // bytes held in the spool file
  // mtime of the pct.conf member: vzdump writes that file when the backup starts.
  std::optional<int64_t> config_mtime;
  std::vector<std::string> warnings;  // dropped ACL entries, implicit directories, ...
  // Salvage only: what was wrong, and one line per entry that is incomplete.
  std::string damage;
  std::vector<std::string> gaps;
};

class LxcTarArchive {
 public:
  // Reads the whole archive at `path` (phase 1). Errors, each naming the file and, where it
  // applies, the member: NotFound / PermissionDenied / IoError for the file or the spool;
  // Unsupported "unknown compression ..." for compressions vzdump does not write (xz, bzip2,
  // ...) and for lzop without decompressor; InvalidArgument for a member with an absolute path
  // or a `..` component, a hard link to a missing or non-file entry, a file that is not a tar
  // archive, too many entries; Corruption for a truncated or damaged archive ("... intact up to
  // byte N (member M)") unless options.salvage. Not thread safe; the object owns the spool.
  static Result<std::unique_ptr<LxcTarArchive>> Read(const std::string& path,
                                                     const LxcTarOptions& options);
  ~LxcTarArchive();
  LxcTarArchive(const LxcTarArchive&) = delete;
  LxcTarArchive& operator=(const LxcTarArchive&) = delete;

  // `./etc/vzdump/pct.conf` (empty string when the archive had none) and `./etc/vzdump/pct.fw`
  // (nullopt when absent: vzdump packs it, and PVE uploads fw.conf.blob, only when the
  // container has a firewall file, possibly empty).
  const std::string& pct_conf() const;
  const std::optional<std::string>& pct_fw() const;
  const LxcTarStats& stats() const;
  // True when pct.conf says `unprivileged: 1` (PVE then runs the backup client with
  // --skip-lost-and-found, which adds "lost+found" to `.pxarexclude-cli`).
  bool unprivileged() const;
  // Replaces LxcTarOptions::pxarexclude_cli for later Encode calls.
  void set_pxarexclude_cli(std::optional<std::string> content);

  // Writes the container tree as a v1 pxar archive to `archive` (phase 2) and finishes it.
  // `observer` (may be null) gets the catalog events in archive order. May be called more than
  // once. Errors: sink and observer errors unchanged; IoError reading the spool.
  Status Encode(pxar::PxarSink* archive, importers::PxarCreateObserver* observer);

  struct Impl;

 private:
  explicit LxcTarArchive(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct VzdumpLxcImportOptions {
  // ns, auth_id, salvage, time_zone, backup_id, backup_time (progress is not used here).
  VzdumpImportOptions common;
  std::string temp_dir;  // spool directory (LxcTarOptions::temp_dir)
  // The exclude patterns the original backup ran with, for `.pxarexclude-cli` (§1.9): vzdump's
  // `exclude-path` entries, then its standard excludes unless turned off; "lost+found" is
  // added for unprivileged containers.
  std::vector<std::string> exclude_paths;
  bool stdexcludes = true;
  // Progress: phase "read" (file bytes of the file size), then "encode" (pxar bytes of about
  // the archive size).
  std::function<void(const char* phase, uint64_t done, uint64_t total)> progress;
};

struct VzdumpLxcImportResult {
  // dir, ns, compression, file_bytes, archive_bytes (tar bytes), chunks_new/_reused,
  // stored_bytes, archives, damage, gaps; image_bytes = size of root.pxar.
  VzdumpImportResult common;
  LxcTarStats tar;
  std::vector<std::string> warnings;
};

// Imports one vzdump container archive as a new snapshot ct/<vmid>/<time> of `store` in
// options.common.ns: pct.conf.blob, fw.conf.blob (when the tar has pct.fw), root.pxar.didx,
// catalog.pcat1.didx, then the `.notes` side file as notes (plus the salvage report), the
// `.log` side file as client.log.blob and `.protected` as protection. The backup time comes
// from the file name (local time of options.common.time_zone), else from the pct.conf member's
// mtime. With sync-level filesystem a background thread runs syncfs on the store during the
// encode (plain archives), so the final syncfs of the snapshot has little left to write.
// Errors: everything LxcTarArchive::Read refuses (before any snapshot exists);
// InvalidArgument for a VM archive name or a name without VMID and no backup_id; the
// SnapshotWriter's errors; IoError for side files. On any error no snapshot is left behind.
Result<VzdumpLxcImportResult> ImportVzdumpLxc(std::shared_ptr<DataStore> store,
                                              const std::string& path,
                                              const VzdumpLxcImportOptions& options);

// Parses one ACL qualifier the way the importer does: a decimal id, or a user/group name of a
// Debian base system (root, daemon, bin, sys, adm, ..., nogroup) which is what a PVE host
// resolves container-internal ids to. nullopt for an unknown name. Pure.
std::optional<uint32_t> LxcAclQualifier(const std::string& name, bool group);

}  // namespace pbskit
