// Converting a pxar archive (or one directory of it) to a tar, tar.zst or zip stream with
// libarchive: for users leaving the format (`pbskit export`) and for the directory downloads of
// the server's pxar-file-download endpoint (PBS's create_tar / create_zip).
//
// tar is the POSIX pax format: directories, files, symlinks, hardlinks, device nodes and FIFOs
// with numeric owners, permissions, nanosecond mtimes, xattrs, file capabilities and POSIX
// ACLs; sockets are skipped (tar cannot hold them). zip (deflate, zip64 when needed, Unix
// permissions and mtimes) holds directories, files and symlinks like PBS's zip encoder; a
// hardlink becomes a regular file with its target's content; devices, FIFOs and sockets are
// skipped as PBS skips them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pbskit/datastore/pxar_archive.h"
#include "pbskit/formats/pxar/decoder.h"
#include "pbskit/formats/status.h"

namespace pbskit {

enum class PxarExportFormat { kTar, kTarZstd, kZip };

struct PxarExportOptions {
  PxarExportFormat format = PxarExportFormat::kTar;
  // Opens the archive again from its start. Needed for hardlinks whose content has to be
  // written (every hardlink of a zip; in a tar a hardlink whose target lies outside the
  // exported directory, written as a file once and linked to that copy afterwards). Without
  // it such a hardlink fails the export with Unsupported.
  std::function<Result<std::unique_ptr<StorePxarArchive>>()> reopen;
  // Entries the format cannot hold are skipped with a warning.
  std::function<void(const std::string&)> warn;
};

struct PxarExportStats {
  uint64_t entries = 0;  // members written (the archive root is not one)
  uint64_t files = 0;
  uint64_t file_bytes = 0;
  uint64_t hardlinks = 0;
  std::vector<std::string> warnings;
};

// The archive produced piece by piece (flat memory: about one piece plus libarchive's buffers),
// so a server can send it while it is being made. Not thread safe.
class PxarExportStream {
 public:
  // `decoder` is borrowed and must outlive the stream. `top` null: the whole archive from a
  // fresh decoder; the root is not a member and members are the archive paths without the
  // leading '/' ("etc/hosts"). `top` non-null: a directory entry `decoder` has just returned
  // (e.g. by StorePxarArchive::Find); its subtree is exported with member names starting at
  // the directory's own name ("/srv/www" gives "www/", "www/index.html"), as PBS names them;
  // the archive root as `top` is the whole archive. InvalidArgument when `top` is not a
  // directory; Unsupported when libarchive lacks zstd; IoError for libarchive setup failures.
  static Result<std::unique_ptr<PxarExportStream>> Open(pxar::Decoder* decoder,
                                                        const pxar::Entry* top,
                                                        PxarExportOptions options);
  ~PxarExportStream();

  // Replaces *piece with the next bytes of the archive (about 1 MiB at a time) and returns
  // true while more follow; false with the final bytes once the archive is complete. Errors:
  // decoder errors unchanged (a bad chunk as the source reports it); IoError "tar: ..." /
  // "zip: ..." when libarchive fails; Corruption when a file's content is shorter than its
  // size or a hardlink's target is not a file; Unsupported as described for `reopen`. After an
  // error the stream stays failed.
  Result<bool> Next(std::string* piece);
  const PxarExportStats& stats() const;

  struct State;  // private to the implementation

 private:
  explicit PxarExportStream(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

// Writes the whole archive `decoder` yields (fresh decoder; directory ends need not be
// reported) in `options.format` to `fd` (borrowed, not closed). Errors as PxarExportStream,
// IoError "write: ..." when writing to `fd` fails.
Result<PxarExportStats> ExportPxar(pxar::Decoder* decoder, int fd,
                                   const PxarExportOptions& options);

}  // namespace pbskit
