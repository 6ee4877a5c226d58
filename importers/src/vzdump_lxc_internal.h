// The entry tree shared by the two phases of the container tar import (private to importers/).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
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

// Appends file contents to the spool file. The pwrite calls run on a thread of their own (one
// started with the first full buffer), so decompressing and parsing the tar overlaps with the
// copy into the page cache; at most kBuffers buffers of kBufferSize wait for it (flat memory).
// Not thread safe (one producer); the fd is borrowed.
class LxcSpoolWriter {
 public:
  LxcSpoolWriter(int fd, std::string dir);
  ~LxcSpoolWriter();  // stops the thread; buffers not yet written are dropped
  LxcSpoolWriter(const LxcSpoolWriter&) = delete;
  LxcSpoolWriter& operator=(const LxcSpoolWriter&) = delete;

  // Spool offset of the next appended byte.
  uint64_t position() const { return handed_ + cur_.size(); }
  // Copies `n` bytes. IoError (naming the spool directory) when an earlier write failed.
  Status Append(const void* data, size_t n);
  // Waits until every appended byte is in the file; the first write error, if any.
  Status Flush();

 private:
  static constexpr size_t kBufferSize = 256 << 10;
  static constexpr size_t kBuffers = 8;
  Status HandOff();  // queues cur_ for the writer thread
  void Loop();
  Status Write(uint64_t at, const std::vector<uint8_t>& buf);

  int fd_;
  std::string dir_;
  std::vector<uint8_t> cur_;
  uint64_t handed_ = 0;  // bytes queued (or written) before cur_
  std::mutex mu_;        // guards the fields below
  std::condition_variable cv_;
  std::deque<std::pair<uint64_t, std::vector<uint8_t>>> full_;
  std::vector<std::vector<uint8_t>> free_;
  bool busy_ = false, stop_ = false;
  Status error_;
  std::thread thread_;
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
