// Reading pxar metadata from the file system the way PBS's pxar create does.
#include <errno.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "pbskit/importers/pxar_fs.h"
#include "pxar_fs_internal.h"

namespace pbskit::importers {

using pxar::AclEntry;
using pxar::Metadata;

namespace {

constexpr int64_t kExt4Magic = 0xEF53;
constexpr int64_t kXfsMagic = 0x58465342;
constexpr int64_t kZfsMagic = 0x2FC12FC1;
constexpr int64_t kBtrfsMagic = 0x9123683E;
constexpr int64_t kTmpfsMagic = 0x01021994;
constexpr int64_t kFuseMagic = 0x65735546;
constexpr int64_t kMsdosMagic = 0x4d44;

bool Unsupported(int err) {
  return err == ENOTTY || err == ENOSYS || err == EBADF || err == EOPNOTSUPP || err == EINVAL;
}

bool IsValidXattrName(const std::string& n) {
  return n.rfind("user.", 0) == 0 || n.rfind("trusted.", 0) == 0 || n == "security.NTACL";
}

// Reads an xattr value; ENODATA -> nullopt-like (returns false with OK status).
Status GetXattr(int fd, const std::string& name, std::string* value, bool* present) {
  *present = false;
  for (int attempt = 0; attempt < 4; ++attempt) {
    ssize_t n = fgetxattr(fd, name.c_str(), nullptr, 0);
    if (n < 0) {
      if (errno == ENODATA || errno == EOPNOTSUPP || errno == EBADF) return Status::OK();
      return Status::FromErrno(errno, "error reading extended attribute '" + name + "'");
    }
    value->resize(static_cast<size_t>(n));
    ssize_t got = fgetxattr(fd, name.c_str(), value->data(), value->size());
    if (got < 0 && errno == ERANGE) continue;
    if (got < 0) {
      if (errno == ENODATA) return Status::OK();
      return Status::FromErrno(errno, "error reading extended attribute '" + name + "'");
    }
    value->resize(static_cast<size_t>(got));
    *present = true;
    return Status::OK();
  }
  return Status::IoError("extended attribute '" + name + "' keeps changing size");
}

}  // namespace

PxarFeatures FeaturesForFsMagic(int64_t magic, const PxarFeatures& req) {
  PxarFeatures f = req;
  switch (magic) {
    case kExt4Magic:
    case kXfsMagic:
    case kZfsMagic:
      break;
    case kBtrfsMagic:
      f.quota_projid = false;
      break;
    case kTmpfsMagic:
      f.xattrs = false;
      f.fcaps = false;
      f.quota_projid = false;
      break;
    case kFuseMagic:
      f.acls = false;
      f.fcaps = false;
      f.quota_projid = false;
      break;
    case kMsdosMagic:
      f.xattrs = f.acls = f.fcaps = f.quota_projid = false;
      break;
    default:
      f.quota_projid = false;
  }
  return f;
}

bool QuotaFs(int64_t magic) {
  return magic == kExt4Magic || magic == kXfsMagic || magic == kFuseMagic || magic == kZfsMagic;
}

// Parses a system.posix_acl_* value (version 2, entries {tag u16, perm u16, id u32}).
Status ParseAclXattr(const std::string& v, bool is_default, pxar::Acl* acl) {
  if (v.size() < 4 || (v.size() - 4) % 8 != 0) return Status::IoError("malformed ACL xattr");
  auto u16 = [&](size_t at) {
    return static_cast<uint16_t>(static_cast<uint8_t>(v[at]) | static_cast<uint8_t>(v[at + 1]) << 8);
  };
  auto u32 = [&](size_t at) {
    uint32_t r = 0;
    for (int i = 3; i >= 0; --i) r = (r << 8) | static_cast<uint8_t>(v[at + i]);
    return r;
  };
  if (u32(0) != 2) return Status::IoError("unsupported ACL xattr version");
  std::vector<AclEntry> users, groups;
  std::optional<uint64_t> user_obj, group_obj, other, mask;
  for (size_t at = 4; at < v.size(); at += 8) {
    uint16_t tag = u16(at);
    uint64_t perm = u16(at + 2);
    uint32_t id = u32(at + 4);
    switch (tag) {
      case kAclTagUserObj: user_obj = perm; break;
      case kAclTagUser: users.push_back({id, perm}); break;
      case kAclTagGroupObj: group_obj = perm; break;
      case kAclTagGroup: groups.push_back({id, perm}); break;
      case kAclTagMask: mask = perm; break;
      case kAclTagOther: other = perm; break;
      default: return Status::IoError("Unexpected ACL tag encountered!");
    }
  }
  std::sort(users.begin(), users.end());
  std::sort(groups.begin(), groups.end());
  if (!is_default) {
    acl->users = std::move(users);
    acl->groups = std::move(groups);
    acl->group_obj = (group_obj && mask) ? group_obj : std::nullopt;
  } else {
    if (user_obj || group_obj || other || mask) {
      acl->default_acl = pxar::AclDefault{user_obj.value_or(pxar::kAclNoMask),
                                          group_obj.value_or(pxar::kAclNoMask),
                                          other.value_or(pxar::kAclNoMask),
                                          mask.value_or(pxar::kAclNoMask)};
    } else {
      acl->default_acl.reset();
    }
    acl->default_users = std::move(users);
    acl->default_groups = std::move(groups);
  }
  return Status::OK();
}

namespace {

Status ReadAcls(int fd, Metadata* m) {
  if (m->stat.is_symlink()) return Status::OK();
  std::string v;
  bool present = false;
  PBSKIT_RETURN_IF_ERROR(GetXattr(fd, "system.posix_acl_access", &v, &present));
  m->acl.users.clear();
  m->acl.groups.clear();
  m->acl.group_obj.reset();
  if (present) PBSKIT_RETURN_IF_ERROR(ParseAclXattr(v, false, &m->acl));
  if (m->stat.is_dir()) {
    PBSKIT_RETURN_IF_ERROR(GetXattr(fd, "system.posix_acl_default", &v, &present));
    m->acl.default_acl.reset();
    m->acl.default_users.clear();
    m->acl.default_groups.clear();
    if (present) PBSKIT_RETURN_IF_ERROR(ParseAclXattr(v, true, &m->acl));
  }
  return Status::OK();
}

Status ReadXattrs(int fd, const PxarFeatures& f, Metadata* m) {
  if (!f.xattrs) return Status::OK();
  std::string names;
  for (;;) {
    ssize_t n = flistxattr(fd, nullptr, 0);
    if (n < 0) {
      if (errno == EOPNOTSUPP || errno == EBADF) return Status::OK();
      if (errno == E2BIG) return Status::IoError("Argument list too long (try --skip-e2big-xattr)");
      return Status::FromErrno(errno, "failed to read xattrs");
    }
    names.resize(static_cast<size_t>(n));
    ssize_t got = flistxattr(fd, names.data(), names.size());
    if (got < 0 && errno == ERANGE) continue;
    if (got < 0) return Status::FromErrno(errno, "failed to read xattrs");
    names.resize(static_cast<size_t>(got));
    break;
  }
  size_t pos = 0;
  while (pos < names.size()) {
    size_t end = names.find('\0', pos);
    if (end == std::string::npos) end = names.size();
    std::string name = names.substr(pos, end - pos);
    pos = end + 1;
    if (name.empty()) continue;
    std::string value;
    bool present = false;
    if (name == "security.capability") {
      if (!f.fcaps) continue;
      PBSKIT_RETURN_IF_ERROR(GetXattr(fd, name, &value, &present));
      if (present) m->fcaps = std::move(value);
      continue;
    }
    if (name == "system.posix_acl_access" || name == "system.posix_acl_default") {
      if (f.acls) PBSKIT_RETURN_IF_ERROR(ReadAcls(fd, m));
      continue;
    }
    if (!IsValidXattrName(name)) continue;
    PBSKIT_RETURN_IF_ERROR(GetXattr(fd, name, &value, &present));
    if (present) m->xattrs.push_back(pxar::XAttr{name, std::move(value)});
  }
  return Status::OK();
}

}  // namespace

uint64_t ChattrToPxarFlags(long attr) {
  uint64_t flags = 0;
  for (const auto& [pxar_flag, fs_flag] : kChattrMap)
    if (attr & fs_flag) flags |= pxar_flag;
  return flags;
}

long PxarFlagsToChattr(uint64_t flags) {
  long attr = 0;
  for (const auto& [pxar_flag, fs_flag] : kChattrMap)
    if (flags & pxar_flag) attr |= fs_flag;
  return attr;
}

Result<Metadata> ReadPxarMetadata(int fd, const struct stat& st, int64_t fs_magic,
                                  const PxarFeatures& features) {
  Metadata m;
  m.stat.mode = st.st_mode;
  m.stat.uid = st.st_uid;
  m.stat.gid = st.st_gid;
  m.stat.mtime_secs = st.st_mtim.tv_sec;
  m.stat.mtime_nanos = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  PBSKIT_RETURN_IF_ERROR(ReadXattrs(fd, features, &m));
  if (features.chattr) {
    int attr = 0;
    if (ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0) {
      m.stat.flags |= ChattrToPxarFlags(attr);
    } else if (!Unsupported(errno)) {
      return Status::FromErrno(errno, "failed to read file attributes");
    }
  }
  if (features.quota_projid && (m.stat.is_dir() || m.stat.is_regular_file()) &&
      QuotaFs(fs_magic)) {
    struct fsxattr fsx;
    std::memset(&fsx, 0, sizeof(fsx));
    if (ioctl(fd, FS_IOC_FSGETXATTR, &fsx) == 0) {
      if (fsx.fsx_projid != 0) m.quota_project_id = fsx.fsx_projid;
    } else if (!Unsupported(errno)) {
      return Status::FromErrno(errno, "error while reading quota project id");
    }
  }
  return m;
}

}  // namespace pbskit::importers
