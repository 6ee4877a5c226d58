// Converting a pxar archive to a tar stream (libarchive, POSIX pax format) for users leaving
// the format: directories, files, symlinks, hardlinks, device nodes and FIFOs with numeric
// owners, permissions, nanosecond mtimes, xattrs, file capabilities and POSIX ACLs.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "pbskit/formats/pxar/decoder.h"
#include "pbskit/formats/status.h"

namespace pbskit::importers {

struct PxarTarOptions {
  bool zstd = false;  // compress the tar stream with zstd
  // Entries tar cannot hold (sockets) are skipped with a warning.
  std::function<void(const std::string&)> warn;
};

struct PxarTarStats {
  uint64_t entries = 0;  // tar members written (the archive root is not one)
  uint64_t files = 0;
  uint64_t file_bytes = 0;
  uint64_t hardlinks = 0;
  std::vector<std::string> warnings;
};

// Writes every entry `decoder` yields (fresh decoder; directory ends need not be reported) as
// a pax tar to `fd` (borrowed, not closed). Member names are the archive paths without the
// leading '/' ("etc/hosts"); hardlinks name their target the same way and carry no metadata of
// their own (pxar stores none). Not thread safe. Errors: decoder errors unchanged (a bad chunk
// is reported as the source reports it); IoError "tar: <libarchive message>" when writing
// fails; Unsupported when the libarchive build lacks zstd.
Result<PxarTarStats> ExportPxarAsTar(pxar::Decoder* decoder, int fd, const PxarTarOptions& options);

}  // namespace pbskit::importers
