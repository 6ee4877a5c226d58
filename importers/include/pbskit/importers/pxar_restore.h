// Restoring pxar archives: PBS's include/exclude path patterns and a restore into a directory
// with the rules of `proxmox-backup-client restore` (PBS's pxar extractor). Reading an archive
// from a datastore (StorePxarArchive, DidxPxarSource, listings) is in
// pbskit/datastore/pxar_archive.h.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/datastore/pxar_archive.h"
#include "pbskit/formats/pxar/decoder.h"
#include "pbskit/formats/status.h"
#include "pbskit/importers/pxar_fs.h"

namespace pbskit::importers {

// PBS's path match list (pathpatterns crate with PatternFlag::PATH_NAME, as
// `proxmox-backup-client restore --pattern` builds it): git wildmatch globs where `*` and `?`
// stop at '/', `**` spans directories, `[...]` classes (with `^` negation and [:name:] classes)
// and `\` escapes. A leading `!` makes an exclude pattern, trailing '/' restricts it to
// directories. A pattern matches a path when it matches the whole path or any suffix starting
// after a '/'. The last matching pattern decides. Immutable after Add; thread safe to read.
class PxarMatchList {
 public:
  // Adds one pattern (include unless it starts with '!'). InvalidArgument "invalid pattern
  // '<p>': <reason>" (trailing backslash, unclosed character class, malformed named class, NUL).
  Status Add(std::string_view pattern);
  bool empty() const { return entries_.empty(); }
  // Include (true), exclude (false) or no pattern matched (nullopt). `path` is the archive path
  // ("/etc/hosts"), `mode` the entry's st_mode (0 for hardlinks: only untyped patterns match).
  std::optional<bool> Matches(std::string_view path, uint64_t mode) const;

  struct Component;  // parsed glob element (private to the implementation)
  struct Entry;

 private:
  std::vector<std::shared_ptr<const Entry>> entries_;
};

struct PxarRestoreOptions {
  PxarFeatures features;    // xattrs, acls, fcaps, quota ids, chattr, devices, fifos, sockets
  bool owner = true;        // chown (PBS WITH_OWNER; off with --ignore-ownership)
  bool permissions = true;  // chmod (PBS WITH_PERMISSIONS; off with --ignore-permissions)
  const PxarMatchList* match_list = nullptr;  // borrowed; null or empty = restore everything
  bool allow_existing_dirs = false;
  bool overwrite_files = false;
  bool overwrite_symlinks = false;
  bool overwrite_hardlinks = false;
  // Where to write the PRELUDE of a v2 archive (empty: not written).
  std::string prelude_target;
  std::function<void(const std::string& path)> on_entry;  // each restored entry's archive path
  std::function<void(const std::string&)> warn;
};

struct PxarRestoreStats {
  uint64_t entries = 0;  // restored entries (directories included, root excluded)
  uint64_t files = 0;
  uint64_t file_bytes = 0;
  std::vector<std::string> warnings;
};

// Restores what `decoder` yields into `target` (created with missing parents, mode 0700; the
// archive root's metadata is applied to it at the end), the way PBS's extract_archive does:
//   * with a match list, an entry is restored when the last matching pattern includes it; an
//     entry no pattern matches inherits its directory's decision (default: restore everything
//     without patterns, nothing with patterns);
//   * a directory is created at once when its parent is selected and no pattern excludes it,
//     else only when something inside it is restored; its metadata is applied when left;
//   * directories are made with their archived permissions; an existing one is an error
//     unless allow_existing_dirs; existing files/symlinks/hardlinks only with the overwrite
//     options;
//   * metadata in PBS order: owner, xattrs, fcaps, ACLs, quota project id, mode, mtime (atime
//     untouched), chattr flags.
// Nothing is created outside `target`: directories are opened with O_NOFOLLOW and hardlink
// targets are resolved component by component. A hardlink whose target was not restored
// because of the match list is skipped with a warning.
// The decoder must be fresh and built with report_directory_end = true (InvalidArgument
// otherwise, detected at the first directory end missing). Errors: decoder errors unchanged;
// AlreadyExists / PermissionDenied / IoError naming the archive path for file system failures;
// Corruption for archives whose structure the restore cannot follow.
Result<PxarRestoreStats> RestorePxar(pxar::Decoder* decoder, const std::string& target,
                                     const PxarRestoreOptions& options);

}  // namespace pbskit::importers
