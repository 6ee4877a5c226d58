// pxar -> pax tar with libarchive.
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <memory>

#include "pbskit/importers/pxar_export.h"

namespace pbskit::importers {
namespace {

using pxar::Entry;
using pxar::EntryKind;

struct ArchiveCloser {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
struct EntryFreer {
  void operator()(struct archive_entry* e) const { archive_entry_free(e); }
};

int AclPerm(uint64_t p) {
  int out = 0;
  if (p & 4) out |= ARCHIVE_ENTRY_ACL_READ;
  if (p & 2) out |= ARCHIVE_ENTRY_ACL_WRITE;
  if (p & 1) out |= ARCHIVE_ENTRY_ACL_EXECUTE;
  return out;
}

// POSIX ACLs of a pxar entry as libarchive entries (same rules as restoring them).
void AddAcls(struct archive_entry* ae, const pxar::Metadata& m) {
  const pxar::Acl& a = m.acl;
  const uint64_t mode = m.stat.mode;
  const int kAccess = ARCHIVE_ENTRY_ACL_TYPE_ACCESS, kDefault = ARCHIVE_ENTRY_ACL_TYPE_DEFAULT;
  if (!a.users.empty() || !a.groups.empty() || a.group_obj) {
    archive_entry_acl_add_entry(ae, kAccess, AclPerm(mode >> 6), ARCHIVE_ENTRY_ACL_USER_OBJ, -1,
                                nullptr);
    archive_entry_acl_add_entry(ae, kAccess, AclPerm(a.group_obj ? *a.group_obj : mode >> 3),
                                ARCHIVE_ENTRY_ACL_GROUP_OBJ, -1, nullptr);
    archive_entry_acl_add_entry(ae, kAccess, AclPerm(mode), ARCHIVE_ENTRY_ACL_OTHER, -1, nullptr);
    archive_entry_acl_add_entry(ae, kAccess, AclPerm(mode >> 3), ARCHIVE_ENTRY_ACL_MASK, -1,
                                nullptr);
    for (const auto& u : a.users)
      archive_entry_acl_add_entry(ae, kAccess, AclPerm(u.permissions), ARCHIVE_ENTRY_ACL_USER,
                                  static_cast<int>(u.id), nullptr);
    for (const auto& g : a.groups)
      archive_entry_acl_add_entry(ae, kAccess, AclPerm(g.permissions), ARCHIVE_ENTRY_ACL_GROUP,
                                  static_cast<int>(g.id), nullptr);
  }
  if (a.default_acl) {
    const pxar::AclDefault& d = *a.default_acl;
    auto obj = [&](uint64_t perm, int tag) {
      if (perm != pxar::kAclNoMask)
        archive_entry_acl_add_entry(ae, kDefault, AclPerm(perm), tag, -1, nullptr);
    };
    obj(d.user_obj_permissions, ARCHIVE_ENTRY_ACL_USER_OBJ);
    obj(d.group_obj_permissions, ARCHIVE_ENTRY_ACL_GROUP_OBJ);
    obj(d.other_permissions, ARCHIVE_ENTRY_ACL_OTHER);
    obj(d.mask_permissions, ARCHIVE_ENTRY_ACL_MASK);
    for (const auto& u : a.default_users)
      archive_entry_acl_add_entry(ae, kDefault, AclPerm(u.permissions), ARCHIVE_ENTRY_ACL_USER,
                                  static_cast<int>(u.id), nullptr);
    for (const auto& g : a.default_groups)
      archive_entry_acl_add_entry(ae, kDefault, AclPerm(g.permissions), ARCHIVE_ENTRY_ACL_GROUP,
                                  static_cast<int>(g.id), nullptr);
  }
}

class TarWriter {
 public:
  TarWriter(pxar::Decoder* dec, const PxarTarOptions& opts, PxarTarStats* stats)
      : dec_(dec), opts_(opts), stats_(stats) {}
  Status Run(int fd);

 private:
  Status Fail(const std::string& what) {
    const char* msg = archive_error_string(a_.get());
    return Status::IoError("tar: " + what + (msg ? std::string(": ") + msg : std::string()));
  }
  Status Write(const Entry& e);

  pxar::Decoder* dec_;
  const PxarTarOptions& opts_;
  PxarTarStats* stats_;
  std::unique_ptr<struct archive, ArchiveCloser> a_;
  std::vector<uint8_t> buf_ = std::vector<uint8_t>(1 << 20);
};

Status TarWriter::Write(const Entry& e) {
  const std::string name = e.path.substr(1);
  const pxar::Metadata& m = e.metadata;
  if (e.kind == EntryKind::kSocket) {
    std::string w = name + ": socket ignored (tar cannot store sockets)";
    stats_->warnings.push_back(w);
    if (opts_.warn) opts_.warn(w);
    return Status::OK();
  }
  std::unique_ptr<struct archive_entry, EntryFreer> ae(archive_entry_new());
  archive_entry_copy_pathname(ae.get(), name.c_str());
  if (e.kind == EntryKind::kHardlink) {
    archive_entry_set_filetype(ae.get(), AE_IFREG);
    archive_entry_copy_hardlink(ae.get(), e.link_target.c_str());
    archive_entry_set_size(ae.get(), 0);
    ++stats_->hardlinks;
  } else {
    archive_entry_set_mode(ae.get(), static_cast<mode_t>(m.stat.mode));
    archive_entry_set_uid(ae.get(), m.stat.uid);
    archive_entry_set_gid(ae.get(), m.stat.gid);
    archive_entry_set_mtime(ae.get(), m.stat.mtime_secs, m.stat.mtime_nanos);
    for (const pxar::XAttr& x : m.xattrs)
      archive_entry_xattr_add_entry(ae.get(), x.name.c_str(), x.value.data(), x.value.size());
    if (m.fcaps)
      archive_entry_xattr_add_entry(ae.get(), "security.capability", m.fcaps->data(),
                                    m.fcaps->size());
    if (!m.stat.is_symlink()) AddAcls(ae.get(), m);
    if (e.kind == EntryKind::kFile)
      archive_entry_set_size(ae.get(), static_cast<la_int64_t>(e.file_size));
    if (e.kind == EntryKind::kSymlink) archive_entry_copy_symlink(ae.get(), e.link_target.c_str());
    if (e.kind == EntryKind::kDevice)
      archive_entry_set_rdev(ae.get(), makedev(e.device.major, e.device.minor));
  }
  if (archive_write_header(a_.get(), ae.get()) < ARCHIVE_WARN)
    return Fail("cannot write header of " + name);
  ++stats_->entries;
  if (e.kind != EntryKind::kFile) return Status::OK();
  uint64_t total = 0;
  for (;;) {
    PBSKIT_ASSIGN_OR_RETURN(size_t n, dec_->ReadContent(buf_));
    if (n == 0) break;
    la_ssize_t w = archive_write_data(a_.get(), buf_.data(), n);
    if (w < 0 || static_cast<size_t>(w) != n) return Fail("cannot write data of " + name);
    total += n;
  }
  if (total != e.file_size)
    return Status::Corruption(e.path + ": read " + std::to_string(total) + " bytes of a file of " +
                              std::to_string(e.file_size) + " bytes");
  ++stats_->files;
  stats_->file_bytes += total;
  return Status::OK();
}

Status TarWriter::Run(int fd) {
  a_.reset(archive_write_new());
  if (!a_) return Status::IoError("tar: out of memory");
  if (archive_write_set_format_pax(a_.get()) != ARCHIVE_OK) return Fail("pax format");
  if (opts_.zstd && archive_write_add_filter_zstd(a_.get()) != ARCHIVE_OK)
    return Status::Unsupported("tar: zstd compression is not available: " +
                               std::string(archive_error_string(a_.get())));
  if (archive_write_open_fd(a_.get(), fd) != ARCHIVE_OK) return Fail("cannot open output");
  Entry e;
  bool root = true;
  for (;;) {
    PBSKIT_ASSIGN_OR_RETURN(bool more, dec_->Next(&e));
    if (!more) break;
    if (e.kind == EntryKind::kVersion || e.kind == EntryKind::kPrelude ||
        e.kind == EntryKind::kDirectoryEnd)
      continue;
    if (root) {
      if (e.kind != EntryKind::kDirectory)
        return Status::Corruption("pxar archive does not start with a directory entry!");
      root = false;
      continue;
    }
    PBSKIT_RETURN_IF_ERROR(Write(e));
  }
  if (archive_write_close(a_.get()) != ARCHIVE_OK) return Fail("cannot finish the archive");
  return Status::OK();
}

}  // namespace

Result<PxarTarStats> ExportPxarAsTar(pxar::Decoder* decoder, int fd,
                                     const PxarTarOptions& options) {
  PxarTarStats stats;
  TarWriter w(decoder, options, &stats);
  PBSKIT_RETURN_IF_ERROR(w.Run(fd));
  return stats;
}

}  // namespace pbskit::importers
