// The entry tree shared by the two phases of the container tar import (private to importers/).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pbskit/formats/pxar/format.h"
#include "pbskit/importers/vzdump_lxc.h"

namespace pbskit {

inline constexpr uint32_t kLxcNone = 0xffffffffu;

// A data segment of a sparse file: `length` bytes at file offset `offset`, stored in the spool
// right after the previous segment of the same file.
struct LxcSegment {
  uint64_t offset = 0;
  uint64_t length = 0;
};

// One entry of the container tree. Kept small: metadata beyond the ENTRY item (xattrs, ACLs,
// fcaps) lives in Impl::extras, sparse maps in Impl::sparse.
struct LxcNode {
  std::string name;  // raw bytes; empty for the root
  pxar::Stat stat;
  uint32_t parent = kLxcNone;
  uint32_t extra = kLxcNone;    // index into Impl::extras
  uint32_t sparse = kLxcNone;   // index into Impl::sparse (regular files with holes)
  uint32_t link = kLxcNone;     // hard link member: node holding the data (resolved)
  bool explicit_dir = false;    // a directory member was seen (not only implied by a path)
  bool has_links = false;       // regular file that hard link members point to
  bool dropped = false;         // replaced by a later member of the same name
  bool in_source = false;       // `spool` is an offset in the (uncompressed) tar file itself
  uint64_t size = 0;            // regular file: size in bytes
  uint64_t spool = 0;           // regular file: offset of its data in the spool
  uint64_t rdev = 0;            // devices
  std::string target;           // symlink target; hard link member: target path (unresolved)
  std::vector<uint32_t> children;  // directories; sorted by name after Read
};

struct LxcTarArchive::Impl {
  std::vector<LxcNode> nodes;  // nodes[0] is the root
  std::vector<pxar::Metadata> extras;  // stat unused; xattrs, acl, fcaps
  std::vector<std::vector<LxcSegment>> sparse;
  std::string pct_conf;
  std::optional<std::string> pct_fw;
  LxcTarStats stats;
  std::optional<std::string> pxarexclude_cli;
  int spool_fd = -1;
  int source_fd = -1;  // the tar file, kept open when contents are read from it directly
  std::string path;  // the archive (for messages)

  // Path of node `i` relative to the root (no leading "./" or "/").
  std::string PathOf(uint32_t i) const;
};

}  // namespace pbskit
