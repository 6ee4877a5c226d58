// pxar -> tar (pax) / tar.zst / zip with libarchive, produced piece by piece.
#include "pbskit/datastore/pxar_export.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

namespace pbskit {
namespace {

using pxar::Entry;
using pxar::EntryKind;

constexpr size_t kPieceSize = 1 << 20;

struct ArchiveCloser {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
struct EntryFreer {
  void operator()(struct archive_entry* e) const { archive_entry_free(e); }
};
using EntryPtr = std::unique_ptr<struct archive_entry, EntryFreer>;

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

// Owner, permissions and mtime (every format); xattrs, fcaps and ACLs (tar only).
void SetMetadata(struct archive_entry* ae, const pxar::Metadata& m, bool tar) {
  archive_entry_set_mode(ae, static_cast<mode_t>(m.stat.mode));
  archive_entry_set_uid(ae, m.stat.uid);
  archive_entry_set_gid(ae, m.stat.gid);
  archive_entry_set_mtime(ae, m.stat.mtime_secs, m.stat.mtime_nanos);
  if (!tar) return;
  for (const pxar::XAttr& x : m.xattrs)
    archive_entry_xattr_add_entry(ae, x.name.c_str(), x.value.data(), x.value.size());
  if (m.fcaps)
    archive_entry_xattr_add_entry(ae, "security.capability", m.fcaps->data(), m.fcaps->size());
  if (!m.stat.is_symlink()) AddAcls(ae, m);
}

la_ssize_t WriteToState(struct archive*, void* client, const void* buf, size_t n);

}  // namespace

struct PxarExportStream::State {
  enum class Phase { kEntries, kContent, kDone, kFailed };

  pxar::Decoder* dec = nullptr;
  PxarExportOptions opts;
  PxarExportStats stats;
  bool tar = true;
  std::unique_ptr<struct archive, ArchiveCloser> a;
  std::string out;  // bytes libarchive produced and Next has not handed out yet
  Phase phase = Phase::kEntries;
  Status error;
  bool skip_root = false;  // whole archive: the root directory is not a member
  std::string top;         // exported directory ("/" = everything)
  size_t strip = 1;        // bytes cut from an archive path to make the member name
  // Current file content: from `dec`, or from a reopened archive for a hardlink's target.
  pxar::Decoder* content = nullptr;
  std::unique_ptr<StorePxarArchive> link_source;
  std::string content_name;
  uint64_t content_size = 0, content_done = 0;
  std::vector<uint8_t> buf = std::vector<uint8_t>(256 * 1024);
  // tar: hardlink target outside the exported directory -> the member holding its copy.
  std::map<std::string, std::string> outside_links;

  // libarchive may still write (a trailer) while it is freed: free it while `out` lives.
  ~State() { a.reset(); }

  Status Fail(const std::string& what) {
    const char* msg = archive_error_string(a.get());
    return Status::IoError(std::string(tar ? "tar: " : "zip: ") + what +
                           (msg ? std::string(": ") + msg : std::string()));
  }
  bool InTop(const std::string& path) const {
    return top == "/" || path == top ||
           (path.size() > top.size() && path[top.size()] == '/' &&
            path.compare(0, top.size(), top) == 0);
  }
  std::string MemberName(const std::string& path) const { return path.substr(strip); }
  void Warn(const std::string& w) {
    stats.warnings.push_back(w);
    if (opts.warn) opts.warn(w);
  }

  Status Setup();
  Status Step();
  Status Finish();
  Status WriteHeader(struct archive_entry* ae, const std::string& name);
  Status WriteEntry(const Entry& e);
  Status WriteHardlink(const Entry& e);
  Status StartContent(pxar::Decoder* from, const std::string& name, uint64_t size);
  Status OpenLinkTarget(const std::string& target, Entry* found);
  Status CopyContent();
};

namespace {

la_ssize_t WriteToState(struct archive*, void* client, const void* buf, size_t n) {
  static_cast<PxarExportStream::State*>(client)->out.append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

}  // namespace

Status PxarExportStream::State::Setup() {
  a.reset(archive_write_new());
  if (!a) return Status::IoError(std::string(tar ? "tar" : "zip") + ": out of memory");
  if (tar) {
    if (archive_write_set_format_pax(a.get()) != ARCHIVE_OK) return Fail("pax format");
    if (opts.format == PxarExportFormat::kTarZstd &&
        archive_write_add_filter_zstd(a.get()) != ARCHIVE_OK)
      return Status::Unsupported("tar: zstd compression is not available: " +
                                 std::string(archive_error_string(a.get())));
  } else {
    if (archive_write_set_format_zip(a.get()) != ARCHIVE_OK) return Fail("zip format");
    if (archive_write_zip_set_compression_deflate(a.get()) != ARCHIVE_OK)
      return Fail("deflate compression");
  }
  // A stream, not a device: the last block is not padded (trailing zeros after a zstd frame or
  // a zip's end record would be garbage to readers).
  archive_write_set_bytes_in_last_block(a.get(), 1);
  if (archive_write_open2(a.get(), this, nullptr, WriteToState, nullptr, nullptr) != ARCHIVE_OK)
    return Fail("cannot open output");
  return Status::OK();
}

Status PxarExportStream::State::WriteHeader(struct archive_entry* ae, const std::string& name) {
  if (archive_write_header(a.get(), ae) < ARCHIVE_WARN)
    return Fail("cannot write header of " + name);
  ++stats.entries;
  return Status::OK();
}

Status PxarExportStream::State::StartContent(pxar::Decoder* from, const std::string& name,
                                             uint64_t size) {
  content = from;
  content_name = name;
  content_size = size;
  content_done = 0;
  phase = Phase::kContent;
  return Status::OK();
}

Status PxarExportStream::State::CopyContent() {
  PBSKIT_ASSIGN_OR_RETURN(size_t n, content->ReadContent(buf));
  if (n == 0) {
    if (content_done != content_size)
      return Status::Corruption(content_name + ": read " + std::to_string(content_done) +
                                " bytes of a file of " + std::to_string(content_size) + " bytes");
    ++stats.files;
    stats.file_bytes += content_done;
    link_source.reset();
    phase = Phase::kEntries;
    return Status::OK();
  }
  la_ssize_t w = archive_write_data(a.get(), buf.data(), n);
  if (w < 0 || static_cast<size_t>(w) != n) return Fail("cannot write data of " + content_name);
  content_done += n;
  return Status::OK();
}

// Finds the regular file `target` (archive path without leading '/') in a reopened archive and
// leaves that archive's decoder at its content.
Status PxarExportStream::State::OpenLinkTarget(const std::string& target, Entry* found) {
  if (!opts.reopen)
    return Status::Unsupported("hardlink target '" + target +
                               "' has to be copied, but the archive cannot be reopened");
  PBSKIT_ASSIGN_OR_RETURN(link_source, opts.reopen());
  PBSKIT_ASSIGN_OR_RETURN(std::optional<Entry> e, link_source->Find("/" + target));
  if (!e || e->kind != EntryKind::kFile)
    return Status::Corruption("hardlink target '" + target + "' is not a regular file");
  *found = std::move(*e);
  return Status::OK();
}

Status PxarExportStream::State::WriteHardlink(const Entry& e) {
  const std::string name = MemberName(e.path);
  std::string target = e.link_target;
  while (!target.empty() && target.front() == '/') target.erase(0, 1);
  const std::string target_path = "/" + target;
  ++stats.hardlinks;
  EntryPtr ae(archive_entry_new());
  archive_entry_copy_pathname(ae.get(), name.c_str());
  if (tar) {
    std::string link_to;
    if (InTop(target_path) && target_path != top) {
      link_to = MemberName(target_path);
    } else if (auto it = outside_links.find(target); it != outside_links.end()) {
      link_to = it->second;
    }
    if (!link_to.empty()) {
      // pxar stores no metadata of its own for a hardlink; the target member carries it.
      archive_entry_set_filetype(ae.get(), AE_IFREG);
      archive_entry_copy_hardlink(ae.get(), link_to.c_str());
      archive_entry_set_size(ae.get(), 0);
      return WriteHeader(ae.get(), name);
    }
  }
  // The content has to be written here: zip has no hardlinks; a tar link would point outside.
  Entry real;
  PBSKIT_RETURN_IF_ERROR(OpenLinkTarget(target, &real));
  SetMetadata(ae.get(), real.metadata, tar);
  archive_entry_set_size(ae.get(), static_cast<la_int64_t>(real.file_size));
  PBSKIT_RETURN_IF_ERROR(WriteHeader(ae.get(), name));
  if (tar) outside_links.emplace(target, name);
  return StartContent(link_source->decoder(), e.path, real.file_size);
}

Status PxarExportStream::State::WriteEntry(const Entry& e) {
  std::string name = MemberName(e.path);
  if (e.kind == EntryKind::kHardlink) return WriteHardlink(e);
  const bool zip_skips = !tar && (e.kind == EntryKind::kDevice || e.kind == EntryKind::kFifo);
  if (e.kind == EntryKind::kSocket || zip_skips) {
    Warn(name + ": " +
         (e.kind == EntryKind::kSocket ? "socket"
          : e.kind == EntryKind::kFifo ? "fifo"
                                       : "device node") +
         " ignored (" + (tar ? "tar" : "zip") + " cannot store it)");
    return Status::OK();
  }
  if (!tar && e.kind == EntryKind::kDirectory) name += "/";
  EntryPtr ae(archive_entry_new());
  archive_entry_copy_pathname(ae.get(), name.c_str());
  SetMetadata(ae.get(), e.metadata, tar);
  if (e.kind == EntryKind::kFile)
    archive_entry_set_size(ae.get(), static_cast<la_int64_t>(e.file_size));
  if (e.kind == EntryKind::kSymlink) archive_entry_copy_symlink(ae.get(), e.link_target.c_str());
  if (e.kind == EntryKind::kDevice)
    archive_entry_set_rdev(ae.get(), makedev(e.device.major, e.device.minor));
  PBSKIT_RETURN_IF_ERROR(WriteHeader(ae.get(), name));
  if (e.kind == EntryKind::kFile) return StartContent(dec, e.path, e.file_size);
  return Status::OK();
}

Status PxarExportStream::State::Finish() {
  if (archive_write_close(a.get()) != ARCHIVE_OK) return Fail("cannot finish the archive");
  phase = Phase::kDone;
  return Status::OK();
}

Status PxarExportStream::State::Step() {
  if (phase == Phase::kContent) return CopyContent();
  Entry e;
  PBSKIT_ASSIGN_OR_RETURN(bool more, dec->Next(&e));
  if (!more) return Finish();
  if (e.kind == EntryKind::kVersion || e.kind == EntryKind::kPrelude) return Status::OK();
  if (e.kind == EntryKind::kDirectoryEnd) return e.path == top ? Finish() : Status::OK();
  if (skip_root) {
    if (e.kind != EntryKind::kDirectory)
      return Status::Corruption("pxar archive does not start with a directory entry!");
    skip_root = false;
    return Status::OK();
  }
  // Entries come depth first: the first one outside the directory ends its subtree.
  if (!InTop(e.path)) return Finish();
  return WriteEntry(e);
}

PxarExportStream::PxarExportStream(std::unique_ptr<State> state) : s_(std::move(state)) {}
PxarExportStream::~PxarExportStream() = default;

Result<std::unique_ptr<PxarExportStream>> PxarExportStream::Open(pxar::Decoder* decoder,
                                                                 const pxar::Entry* top,
                                                                 PxarExportOptions options) {
  auto s = std::make_unique<State>();
  s->dec = decoder;
  s->opts = std::move(options);
  s->tar = s->opts.format != PxarExportFormat::kZip;
  if (top && top->kind != EntryKind::kDirectory)
    return Status::InvalidArgument("'" + top->path + "' is not a directory");
  s->skip_root = top == nullptr;
  s->top = top ? top->path : "/";
  if (s->top != "/") {
    // Members start at the directory's own name: cut its parent's path and the slash.
    s->strip = s->top.rfind('/') + 1;
  }
  PBSKIT_RETURN_IF_ERROR(s->Setup());
  if (s->top != "/") PBSKIT_RETURN_IF_ERROR(s->WriteEntry(*top));
  return std::unique_ptr<PxarExportStream>(new PxarExportStream(std::move(s)));
}

Result<bool> PxarExportStream::Next(std::string* piece) {
  State& s = *s_;
  if (s.phase == State::Phase::kFailed) return s.error;
  while (s.out.size() < kPieceSize && s.phase != State::Phase::kDone) {
    Status st = s.Step();
    if (!st.ok()) {
      s.phase = State::Phase::kFailed;
      s.error = st;
      return st;
    }
  }
  piece->swap(s.out);
  s.out.clear();
  return s.phase != State::Phase::kDone;
}

const PxarExportStats& PxarExportStream::stats() const { return s_->stats; }

Result<PxarExportStats> ExportPxar(pxar::Decoder* decoder, int fd,
                                   const PxarExportOptions& options) {
  PBSKIT_ASSIGN_OR_RETURN(auto stream, PxarExportStream::Open(decoder, nullptr, options));
  std::string piece;
  for (bool more = true; more;) {
    PBSKIT_ASSIGN_OR_RETURN(more, stream->Next(&piece));
    size_t done = 0;
    while (done < piece.size()) {
      ssize_t n = ::write(fd, piece.data() + done, piece.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::FromErrno(errno, "write");
      done += static_cast<size_t>(n);
    }
  }
  return stream->stats();
}

}  // namespace pbskit
