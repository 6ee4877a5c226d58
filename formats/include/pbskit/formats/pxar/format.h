// pxar archive format: item type constants, entry metadata and the hashing / goodbye-table
// helpers shared by the encoder and the decoder (PXAR-VZDUMP.md §1, docs/formats/pxar.md).
//
// Everything here is a pure value type or a pure function: no I/O, thread safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/formats/status.h"

namespace pbskit::pxar {

// Item types: SipHash-2-4 (kHashKey0, kHashKey1) of "__PROXMOX_FORMAT_<NAME>__" strings.
inline constexpr uint64_t kFormatVersion = 0x730f6c75df16a40dULL;
inline constexpr uint64_t kEntry = 0xd5956474e588acefULL;
inline constexpr uint64_t kEntryV1 = 0x11da850a1c1cceffULL;  // legacy, decode only
inline constexpr uint64_t kPrelude = 0xe309d79d9f7b771bULL;
inline constexpr uint64_t kFilename = 0x16701121063917b3ULL;
inline constexpr uint64_t kSymlink = 0x27f971e7dbf5dc5fULL;
inline constexpr uint64_t kDevice = 0x9fc9e906586d5ce9ULL;
inline constexpr uint64_t kXattr = 0x0dab0229b57dcd03ULL;
inline constexpr uint64_t kAclUser = 0x2ce8540a457d55b8ULL;
inline constexpr uint64_t kAclGroup = 0x136e3eceb04c03abULL;
inline constexpr uint64_t kAclGroupObj = 0x10868031e9582876ULL;
inline constexpr uint64_t kAclDefault = 0xbbbb13415a6896f5ULL;
inline constexpr uint64_t kAclDefaultUser = 0xc89357b40532cd1fULL;
inline constexpr uint64_t kAclDefaultGroup = 0xf90a8a5816038ffeULL;
inline constexpr uint64_t kFcaps = 0x2da9dd9db5f7fb67ULL;
inline constexpr uint64_t kQuotaProjid = 0xe07540e82f7d1cbbULL;
inline constexpr uint64_t kHardlink = 0x51269c8422bd7275ULL;
inline constexpr uint64_t kPayload = 0x28147a1b0b7c1a25ULL;
inline constexpr uint64_t kPayloadRef = 0x419d3d6bc4ba977eULL;
inline constexpr uint64_t kGoodbye = 0x2fec4fa642d5731dULL;
inline constexpr uint64_t kGoodbyeTailMarker = 0xef5eed5b753e1555ULL;
inline constexpr uint64_t kPayloadStartMarker = 0x834c68c2194a4ed2ULL;
inline constexpr uint64_t kPayloadTailMarker = 0x6c72b78b984c81b5ULL;

// First 16 bytes of SHA1("PROXMOX ARCHIVE FORMAT") as two u64 keys.
inline constexpr uint64_t kHashKey0 = 0x83ac3f1cfbb450dbULL;
inline constexpr uint64_t kHashKey1 = 0xaa4f1b6879369fbdULL;

inline constexpr size_t kHeaderSize = 16;
inline constexpr size_t kGoodbyeItemSize = 24;
inline constexpr size_t kMaxPathLen = 4096;        // FILENAME / SYMLINK / HARDLINK path
inline constexpr size_t kMaxXattrLen = 255 + 65536;  // XATTR and FCAPS content

// File type bits of Stat::mode (fixed values, independent of the host's libc).
inline constexpr uint64_t kModeIfmt = 0170000;
inline constexpr uint64_t kModeIfsock = 0140000;
inline constexpr uint64_t kModeIflnk = 0120000;
inline constexpr uint64_t kModeIfreg = 0100000;
inline constexpr uint64_t kModeIfblk = 0060000;
inline constexpr uint64_t kModeIfdir = 0040000;
inline constexpr uint64_t kModeIfchr = 0020000;
inline constexpr uint64_t kModeIfifo = 0010000;

// ACL permission value meaning "not set" (ACL_DEFAULT components).
inline constexpr uint64_t kAclNoMask = ~0ULL;

// Entry flags (Stat::flags), chattr / FAT attributes as PBS maps them.
inline constexpr uint64_t kFlagHidden = 0x2000;
inline constexpr uint64_t kFlagSystem = 0x4000;
inline constexpr uint64_t kFlagArchive = 0x8000;
inline constexpr uint64_t kFlagAppend = 0x10000;
inline constexpr uint64_t kFlagNoatime = 0x20000;
inline constexpr uint64_t kFlagCompr = 0x40000;
inline constexpr uint64_t kFlagNocow = 0x80000;
inline constexpr uint64_t kFlagNodump = 0x100000;
inline constexpr uint64_t kFlagDirsync = 0x200000;
inline constexpr uint64_t kFlagImmutable = 0x400000;
inline constexpr uint64_t kFlagSync = 0x800000;
inline constexpr uint64_t kFlagNocomp = 0x1000000;
inline constexpr uint64_t kFlagProjinherit = 0x2000000;

// Human-readable name of an item type ("ENTRY", "GOODBYE", ... or "UNKNOWN").
const char* ItemTypeName(uint64_t htype);

// The ENTRY item (v2 layout). mtime is split like statx: secs floored, 0 <= nanos < 1e9.
struct Stat {
  uint64_t mode = 0;  // full st_mode incl. type bits
  uint64_t flags = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_secs = 0;
  uint32_t mtime_nanos = 0;

  uint64_t file_type() const { return mode & kModeIfmt; }
  bool is_dir() const { return file_type() == kModeIfdir; }
  bool is_regular_file() const { return file_type() == kModeIfreg; }
  bool is_symlink() const { return file_type() == kModeIflnk; }
  bool is_fifo() const { return file_type() == kModeIfifo; }
  bool is_socket() const { return file_type() == kModeIfsock; }
  bool is_device() const {
    return file_type() == kModeIfchr || file_type() == kModeIfblk;
  }
  bool operator==(const Stat&) const = default;
};

struct XAttr {
  std::string name;   // without NUL; non-empty, no NUL inside
  std::string value;  // arbitrary bytes
  bool operator==(const XAttr&) const = default;
};

// ACL_USER / ACL_GROUP / ACL_DEFAULT_USER / ACL_DEFAULT_GROUP: (uid or gid, permissions).
struct AclEntry {
  uint64_t id = 0;
  uint64_t permissions = 0;
  auto operator<=>(const AclEntry&) const = default;
};

struct AclDefault {
  uint64_t user_obj_permissions = kAclNoMask;
  uint64_t group_obj_permissions = kAclNoMask;
  uint64_t other_permissions = kAclNoMask;
  uint64_t mask_permissions = kAclNoMask;
  bool operator==(const AclDefault&) const = default;
};

struct Acl {
  std::vector<AclEntry> users;
  std::vector<AclEntry> groups;
  std::optional<uint64_t> group_obj;  // permissions of the owning group when a mask exists
  std::optional<AclDefault> default_acl;
  std::vector<AclEntry> default_users;
  std::vector<AclEntry> default_groups;
  bool empty() const {
    return users.empty() && groups.empty() && !group_obj && !default_acl &&
           default_users.empty() && default_groups.empty();
  }
  bool operator==(const Acl&) const = default;
};

// Everything the ENTRY item and its attribute items carry.
struct Metadata {
  Stat stat;
  std::vector<XAttr> xattrs;  // archive order
  Acl acl;
  std::optional<std::string> fcaps;  // raw security.capability value
  std::optional<uint64_t> quota_project_id;
  bool operator==(const Metadata&) const = default;
};

struct Device {
  uint64_t major = 0;
  uint64_t minor = 0;
  // glibc's gnu_dev_makedev / gnu_dev_major / gnu_dev_minor split.
  static Device FromDevT(uint64_t dev);
  uint64_t ToDevT() const;
  bool operator==(const Device&) const = default;
};

struct GoodbyeItem {
  uint64_t hash = 0;
  uint64_t offset = 0;  // distance from the GOODBYE header back to the child's FILENAME
  uint64_t size = 0;    // bytes from the child's FILENAME to its end
  bool operator==(const GoodbyeItem&) const = default;
};

// SipHash-2-4 with the given keys (standard algorithm). Pure.
uint64_t SipHash24(uint64_t k0, uint64_t k1, const void* data, size_t len);
// Goodbye-table hash of a file name (bytes without NUL), keys kHashKey0/kHashKey1.
uint64_t HashFilename(std::string_view name);

// Binary-search-tree array layout of the goodbye table: returns `dest` with dest[src] = the
// array position of the src-th smallest item (casync/pxar permutation; n = 5 -> sorted items
// 0..4 land at positions [3,1,4,0,2] read as array content). Pure.
std::vector<size_t> BinaryTreeArrayPositions(size_t n);

// Orders items the way PBS does (ascending hash) and returns them in BST array order, tail
// record excluded. Ties keep their input order (PBS leaves them unspecified).
std::vector<GoodbyeItem> BuildGoodbyeTable(std::vector<GoodbyeItem> items);

// OK if `name` may be a FILENAME: non-empty, no '/', no NUL, not "." or "..", <= kMaxPathLen.
// InvalidArgument naming the problem otherwise.
Status ValidateFilename(std::string_view name);

// statx-style split of a nanosecond timestamp and back (handles times before 1970).
void SplitNanos(int64_t ns, int64_t* secs, uint32_t* nanos);

}  // namespace pbskit::pxar
