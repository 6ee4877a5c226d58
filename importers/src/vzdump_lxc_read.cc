// Container tar import, phase 1: stream the tar once into an entry tree + a spool of file data.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "pbskit/datastore/fs.h"
#include "vzdump_lxc_internal.h"

namespace pbskit {
namespace {

constexpr size_t kMaxConfigSize = 1 << 20;  // pct.conf / pct.fw
constexpr size_t kMaxGapLines = 100;

struct FileInput {
  int fd = -1;
  uint64_t* counter = nullptr;
  uint64_t size = 0;
  int error = 0;
  const std::function<void(uint64_t, uint64_t)>* progress = nullptr;
  uint64_t last_progress = 0;
  uint8_t buf[1 << 16];

  static la_ssize_t Read(archive*, void* self, const void** out) {
    auto* in = static_cast<FileInput*>(self);
    for (;;) {
      ssize_t n = read(in->fd, in->buf, sizeof in->buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        in->error = errno;
        return -1;
      }
      *in->counter += static_cast<uint64_t>(n);
      if (*in->progress && *in->counter - in->last_progress >= (4u << 20)) {
        in->last_progress = *in->counter;
        (*in->progress)(*in->counter, in->size);
      }
      *out = in->buf;
      return n;
    }
  }
  // Plain tar files: skipping file contents is a seek.
  static la_int64_t Skip(archive*, void* self, la_int64_t request) {
    auto* in = static_cast<FileInput*>(self);
    off_t cur = lseek(in->fd, 0, SEEK_CUR);
    if (cur < 0 || request <= 0) return 0;
    uint64_t left = in->size > static_cast<uint64_t>(cur) ? in->size - static_cast<uint64_t>(cur) : 0;
    la_int64_t n = std::min<la_int64_t>(request, static_cast<la_int64_t>(left));
    if (lseek(in->fd, n, SEEK_CUR) < 0) return 0;
    *in->counter += static_cast<uint64_t>(n);
    return n;
  }
};

std::string Quoted(const std::string& s) { return "'" + s + "'"; }

// Normalizes a member path to "a/b/c" ("" for the root). InvalidArgument for absolute paths and
// ".." components.
Result<std::string> NormalizeMemberPath(const std::string& raw, const std::string& what) {
  if (!raw.empty() && raw[0] == '/')
    return Status::InvalidArgument(what + " " + Quoted(raw) +
                                   " has an absolute path; refusing to import it");
  std::string out;
  size_t pos = 0;
  while (pos <= raw.size()) {
    size_t end = raw.find('/', pos);
    if (end == std::string::npos) end = raw.size();
    std::string comp = raw.substr(pos, end - pos);
    pos = end + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..")
      return Status::InvalidArgument(what + " " + Quoted(raw) +
                                     " contains a '..' component; refusing to import it");
    if (!out.empty()) out += '/';
    out += comp;
  }
  return out;
}

const char* ArchiveError(archive* a) {
  const char* e = archive_error_string(a);
  return e ? e : "unknown libarchive error";
}

class Reader {
 public:
  Reader(LxcTarArchive::Impl* impl, const LxcTarOptions& opts) : d_(impl), opts_(opts) {}
  Status Run(const std::string& path);

 private:
  Status Member(archive* a, archive_entry* e);
  Status ReadConfig(archive* a, const std::string& name, std::string* out);
  Status ReadData(archive* a, LxcNode* node);
  Result<uint32_t> Directory(const std::string& path);
  Status Attributes(archive_entry* e, const std::string& shown, LxcNode* node);
  Status Finalize();
  void Warn(const std::string& w) { d_->stats.warnings.push_back(w); }
  Status Damage(archive* a, const std::string& what);

  LxcTarArchive::Impl* d_;
  const LxcTarOptions& opts_;
  std::unique_ptr<LxcSpoolWriter> spool_;
  std::unordered_map<std::string, uint32_t> dirs_;  // directory path -> node
  bool root_seen_ = false;
  uint64_t members_ = 0;
  std::string last_member_;
  uint64_t last_end_ = 0;  // tar offset after the last complete member
  std::string current_;    // member being read
  Status damage_;
  std::string gap_;  // salvage: the incomplete member
  bool direct_ = false;  // uncompressed regular file: contents are read from it in phase 2
  uint64_t source_size_ = 0;
  archive_entry* entry_ = nullptr;
};

Status Reader::Damage(archive* a, const std::string& what) {
  std::string where = last_member_.empty()
                          ? "no member is complete"
                          : "intact up to byte " + std::to_string(last_end_) + " (last complete member " +
                                Quoted(last_member_) + ")";
  damage_ = Status::Corruption("tar archive " + Quoted(d_->path) + " is damaged or truncated" +
                               (current_.empty() ? "" : " in member " + Quoted(current_)) + ": " +
                               what + "; " + where);
  (void)a;
  return damage_;
}

Result<uint32_t> Reader::Directory(const std::string& path) {
  if (path.empty()) return 0u;
  auto it = dirs_.find(path);
  if (it != dirs_.end()) return it->second;
  size_t slash = path.rfind('/');
  PBSKIT_ASSIGN_OR_RETURN(uint32_t parent,
                          Directory(slash == std::string::npos ? "" : path.substr(0, slash)));
  LxcNode n;
  n.name = slash == std::string::npos ? path : path.substr(slash + 1);
  n.stat.mode = pxar::kModeIfdir | 0755;
  n.parent = parent;
  uint32_t idx = static_cast<uint32_t>(d_->nodes.size());
  d_->nodes.push_back(std::move(n));
  d_->nodes[parent].children.push_back(idx);
  dirs_[path] = idx;
  return idx;
}

Status Reader::ReadConfig(archive* a, const std::string& name, std::string* out) {
  const void* buf;
  size_t size;
  la_int64_t off;
  out->clear();
  for (;;) {
    int r = archive_read_data_block(a, &buf, &size, &off);
    if (r == ARCHIVE_EOF) return Status::OK();
    if (r < ARCHIVE_WARN) return Damage(a, ArchiveError(a));
    if (static_cast<uint64_t>(off) != out->size() || out->size() + size > kMaxConfigSize)
      return Status::InvalidArgument("container config " + Quoted(name) + " in " +
                                     Quoted(d_->path) + " is sparse or larger than 1 MiB");
    out->append(static_cast<const char*>(buf), size);
  }
}

Status Reader::Attributes(archive_entry* e, const std::string& shown, LxcNode* node) {
  // As proxmox-backup-client: xattrs, fcaps and ACLs only for regular files and directories.
  if (!node->stat.is_regular_file() && !node->stat.is_dir()) return Status::OK();
  pxar::Metadata extra;
  std::vector<pxar::XAttr> xattrs;
  archive_entry_xattr_reset(e);
  const char* name;
  const void* value;
  size_t size;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    std::string n = name ? name : "";
    std::string v(static_cast<const char*>(value), size);
    if (n == "security.capability") {
      extra.fcaps = std::move(v);
    } else if (n.rfind("user.", 0) == 0 || n.rfind("trusted.", 0) == 0 || n == "security.NTACL") {
      if (n.size() <= 255) xattrs.push_back({std::move(n), std::move(v)});
    }
  }
  // libarchive hands them out last-read first; the tar (and flistxattr) order is the reverse.
  extra.xattrs.assign(xattrs.rbegin(), xattrs.rend());

  std::optional<uint64_t> group_obj, mask;
  std::optional<uint64_t> d_user, d_group, d_other, d_mask;
  const int types = ARCHIVE_ENTRY_ACL_TYPE_ACCESS | ARCHIVE_ENTRY_ACL_TYPE_DEFAULT;
  if (archive_entry_acl_reset(e, types) > 0) {
    int type, perm, tag, id;
    const char* qname;
    while (archive_entry_acl_next(e, types, &type, &perm, &tag, &id, &qname) == ARCHIVE_OK) {
      const bool def = type == ARCHIVE_ENTRY_ACL_TYPE_DEFAULT;
      const uint64_t p = static_cast<uint64_t>(perm) & 7;
      if (tag == ARCHIVE_ENTRY_ACL_USER || tag == ARCHIVE_ENTRY_ACL_GROUP) {
        const bool grp = tag == ARCHIVE_ENTRY_ACL_GROUP;
        std::optional<uint32_t> qid;
        if (id >= 0) qid = static_cast<uint32_t>(id);
        else if (qname) qid = LxcAclQualifier(qname, grp);
        if (!qid) {
          Warn("ACL entry for unknown " + std::string(grp ? "group " : "user ") +
               Quoted(qname ? qname : "?") + " on " + Quoted(shown) + " dropped");
          continue;
        }
        auto& list = def ? (grp ? extra.acl.default_groups : extra.acl.default_users)
                         : (grp ? extra.acl.groups : extra.acl.users);
        list.push_back({*qid, p});
      } else if (def) {
        if (tag == ARCHIVE_ENTRY_ACL_USER_OBJ) d_user = p;
        if (tag == ARCHIVE_ENTRY_ACL_GROUP_OBJ) d_group = p;
        if (tag == ARCHIVE_ENTRY_ACL_OTHER) d_other = p;
        if (tag == ARCHIVE_ENTRY_ACL_MASK) d_mask = p;
      } else {
        if (tag == ARCHIVE_ENTRY_ACL_GROUP_OBJ) group_obj = p;
        if (tag == ARCHIVE_ENTRY_ACL_MASK) mask = p;
      }
    }
  }
  if (mask) {
    // The file's group permission bits are the mask; libarchive folded the owning group's
    // ACL permissions into the mode, which proxmox-backup-client stores as ACL_GROUP_OBJ.
    extra.acl.group_obj = group_obj.value_or((node->stat.mode >> 3) & 7);
    node->stat.mode = (node->stat.mode & ~uint64_t{070}) | (*mask << 3);
  }
  if (node->stat.is_dir() && (d_user || d_group || d_other || d_mask))
    extra.acl.default_acl = pxar::AclDefault{d_user.value_or(pxar::kAclNoMask),
                                             d_group.value_or(pxar::kAclNoMask),
                                             d_other.value_or(pxar::kAclNoMask),
                                             d_mask.value_or(pxar::kAclNoMask)};
  if (!node->stat.is_dir()) {
    extra.acl.default_users.clear();
    extra.acl.default_groups.clear();
  }
  std::sort(extra.acl.users.begin(), extra.acl.users.end());
  std::sort(extra.acl.groups.begin(), extra.acl.groups.end());
  std::sort(extra.acl.default_users.begin(), extra.acl.default_users.end());
  std::sort(extra.acl.default_groups.begin(), extra.acl.default_groups.end());
  if (extra.xattrs.empty() && extra.acl.empty() && !extra.fcaps) {
    node->extra = kLxcNone;
    return Status::OK();
  }
  if (node->extra != kLxcNone) {
    d_->extras[node->extra] = std::move(extra);
  } else {
    node->extra = static_cast<uint32_t>(d_->extras.size());
    d_->extras.push_back(std::move(extra));
  }
  return Status::OK();
}

Status Reader::ReadData(archive* a, LxcNode* node) {
  // An uncompressed tar file is its own spool: remember where the contents are and seek past
  // them. Only for plain members that lie wholly inside the file (else the normal path finds
  // the truncation), not for sparse members (their map sits in the data area).
  if (direct_ && archive_entry_sparse_count(entry_) == 0 && node->size > 0) {
    uint64_t start = static_cast<uint64_t>(archive_filter_bytes(a, 0));
    if (start + node->size <= source_size_) {
      if (archive_read_data_skip(a) != ARCHIVE_OK) return Damage(a, ArchiveError(a));
      node->spool = start;
      node->in_source = true;
      return Status::OK();
    }
  }
  node->spool = spool_->position();
  std::vector<LxcSegment> segs;
  const void* buf;
  size_t size;
  la_int64_t off;
  uint64_t stored = 0;
  for (;;) {
    int r = archive_read_data_block(a, &buf, &size, &off);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      Status st = Damage(a, ArchiveError(a));
      uint64_t have = segs.empty() ? 0 : segs.back().offset + segs.back().length;
      if (have < node->size)
        gap_ = current_ + ": bytes " + std::to_string(have) + "-" + std::to_string(node->size - 1) +
               " missing (zeros)";
      if (!opts_.salvage) return st;
      break;
    }
    if (size == 0) continue;
    uint64_t o = static_cast<uint64_t>(off);
    if (o + size > node->size)
      return Status::Corruption("tar member " + Quoted(current_) + " in " + Quoted(d_->path) +
                                " has data beyond its size " + std::to_string(node->size));
    PBSKIT_RETURN_IF_ERROR(spool_->Append(buf, size));
    stored += size;
    if (!segs.empty() && segs.back().offset + segs.back().length == o) {
      segs.back().length += size;
    } else {
      segs.push_back({o, size});
    }
  }
  d_->stats.spooled_bytes += stored;
  const bool dense = node->size == 0 || (segs.size() == 1 && segs[0].offset == 0 &&
                                         segs[0].length == node->size);
  if (!dense) {
    node->sparse = static_cast<uint32_t>(d_->sparse.size());
    d_->sparse.push_back(std::move(segs));
  }
  return damage_.ok() ? Status::OK() : damage_;
}

Status Reader::Member(archive* a, archive_entry* e) {
  const char* raw = archive_entry_pathname(e);
  if (raw == nullptr) return Damage(a, "member without a path name");
  current_ = raw;
  PBSKIT_ASSIGN_OR_RETURN(std::string path, NormalizeMemberPath(current_, "tar member"));
  const char* hardlink = archive_entry_hardlink(e);

  if (!root_seen_ && (path == "etc/vzdump/pct.conf" || path == "etc/vzdump/pct.fw")) {
    std::string text;
    PBSKIT_RETURN_IF_ERROR(ReadConfig(a, path, &text));
    // vzdump packs pct.fw only when the container has a firewall file, and then PVE's PBS
    // backup uploads fw.conf.blob, even for an empty file.
    if (path == "etc/vzdump/pct.conf") {
      d_->pct_conf = std::move(text);
      if (archive_entry_mtime_is_set(e)) d_->stats.config_mtime = archive_entry_mtime(e);
    } else {
      d_->pct_fw = std::move(text);
    }
    return Status::OK();
  }
  if (path == ".pxarexclude-cli") {  // proxmox-backup-client skips it in the root as well
    Warn("skipped " + Quoted(current_) + " (proxmox-backup-client writes its own)");
    return Status::OK();
  }
  if (++d_->stats.entries > opts_.entries_max)
    return Status::InvalidArgument("tar archive " + Quoted(d_->path) + " has more than " +
                                   std::to_string(opts_.entries_max) + " entries");

  pxar::Stat st;
  st.mode = archive_entry_mode(e);
  la_int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
  if (uid < 0 || uid > 0xffffffffLL || gid < 0 || gid > 0xffffffffLL)
    return Status::InvalidArgument("tar member " + Quoted(current_) + " has an owner id out of range");
  st.uid = static_cast<uint32_t>(uid);
  st.gid = static_cast<uint32_t>(gid);
  if (archive_entry_mtime_is_set(e)) {
    int64_t secs = archive_entry_mtime(e);
    int64_t nanos = archive_entry_mtime_nsec(e);
    // For times before 1970 with a fraction libarchive gives the fraction of the magnitude
    // ("-5.25" as -5 and 250000000); pxar wants floored seconds and positive nanoseconds.
    if (secs < 0 && nanos > 0) {
      secs -= 1;
      nanos = 1000000000 - nanos;
    }
    st.mtime_secs = secs;
    st.mtime_nanos = static_cast<uint32_t>(nanos);
  }

  if (path.empty()) {  // "./": the container root
    root_seen_ = true;
    LxcNode& root = d_->nodes[0];
    if (!st.is_dir())
      return Status::InvalidArgument("tar member " + Quoted(current_) + " of " + Quoted(d_->path) +
                                     " is the root but not a directory");
    root.stat = st;
    root.explicit_dir = true;
    PBSKIT_RETURN_IF_ERROR(Attributes(e, current_, &root));
    last_member_ = current_;
    return Status::OK();
  }
  if (!root_seen_) {
    root_seen_ = true;
    Warn("the archive has no './' member before " + Quoted(current_) +
         "; the container root gets mode 0755, owner 0:0 and mtime 0");
  }

  size_t slash = path.rfind('/');
  std::string parent_path = slash == std::string::npos ? "" : path.substr(0, slash);
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  PBSKIT_ASSIGN_OR_RETURN(uint32_t parent, Directory(parent_path));
  if (!d_->nodes[parent].explicit_dir && parent != 0) {
    d_->nodes[parent].explicit_dir = true;  // warn once
    Warn("directory " + Quoted(parent_path) +
         " has no member of its own; it gets mode 0755, owner 0:0 and mtime 0");
  }

  uint32_t idx;
  if (st.is_dir() && !hardlink) {
    auto it = dirs_.find(path);
    if (it != dirs_.end()) {  // listed again (a mount point): the later member wins
      idx = it->second;
      --d_->stats.entries;
    } else {
      PBSKIT_ASSIGN_OR_RETURN(idx, Directory(path));
    }
    d_->nodes[idx].stat = st;
    d_->nodes[idx].explicit_dir = true;
  } else {
    LxcNode n;
    n.name = name;
    n.stat = st;
    n.parent = parent;
    idx = static_cast<uint32_t>(d_->nodes.size());
    d_->nodes.push_back(std::move(n));
    d_->nodes[parent].children.push_back(idx);
  }
  LxcNode& node = d_->nodes[idx];
  if (hardlink) {
    PBSKIT_ASSIGN_OR_RETURN(node.target,
                            NormalizeMemberPath(hardlink, "hard link target of " + Quoted(current_)));
    node.link = 0;  // resolved in Finalize
    node.stat.mode = pxar::kModeIfreg | (node.stat.mode & 07777);
    ++d_->stats.hardlinks;
  } else if (st.is_regular_file()) {
    la_int64_t size = archive_entry_size(e);
    node.size = size > 0 ? static_cast<uint64_t>(size) : 0;
    ++d_->stats.files;
    d_->stats.data_bytes += node.size;
    PBSKIT_RETURN_IF_ERROR(Attributes(e, current_, &node));
    Status rs = ReadData(a, &d_->nodes[idx]);
    if (!rs.ok()) return rs;
  } else if (st.is_symlink()) {
    const char* t = archive_entry_symlink(e);
    node.target = t ? t : "";
  } else if (st.is_device()) {
    node.rdev = archive_entry_rdev(e);
  } else if (st.is_dir()) {
    PBSKIT_RETURN_IF_ERROR(Attributes(e, current_, &node));
  } else if (!st.is_fifo() && !st.is_socket()) {
    return Status::InvalidArgument("tar member " + Quoted(current_) + " of " + Quoted(d_->path) +
                                   " has an unknown file type (mode " +
                                   std::to_string(st.mode) + ")");
  }
  return Status::OK();
}

}  // namespace

Status Reader::Finalize() {
  auto& nodes = d_->nodes;
  // Name order, and of two members with the same name the later one stays.
  for (auto& n : nodes) {
    if (n.children.size() < 2) continue;
    std::stable_sort(n.children.begin(), n.children.end(), [&](uint32_t x, uint32_t y) {
      return nodes[x].name < nodes[y].name;
    });
    std::vector<uint32_t> kept;
    kept.reserve(n.children.size());
    for (size_t i = 0; i < n.children.size();) {
      size_t j = i + 1;
      uint32_t last = n.children[i];
      while (j < n.children.size() && nodes[n.children[j]].name == nodes[last].name) {
        nodes[std::min(last, n.children[j])].dropped = true;
        last = std::max(last, n.children[j]);
        ++j;
      }
      kept.push_back(last);
      i = j;
    }
    n.children = std::move(kept);
  }
  // Hard links point at an earlier member by path; tar order, so targets are resolved first.
  auto lookup = [&](const std::string& path) -> uint32_t {
    uint32_t cur = 0;
    size_t pos = 0;
    while (pos < path.size()) {
      size_t end = path.find('/', pos);
      if (end == std::string::npos) end = path.size();
      std::string comp = path.substr(pos, end - pos);
      pos = end + 1;
      const auto& ch = nodes[cur].children;
      auto it = std::lower_bound(ch.begin(), ch.end(), comp, [&](uint32_t x, const std::string& v) {
        return nodes[x].name < v;
      });
      if (it == ch.end() || nodes[*it].name != comp) return kLxcNone;
      cur = *it;
    }
    return cur;
  };
  for (uint32_t i = 0; i < nodes.size(); ++i) {
    LxcNode& n = nodes[i];
    if (n.link == kLxcNone || n.dropped) continue;
    uint32_t t = lookup(n.target);
    const std::string shown = d_->PathOf(i);
    if (t == kLxcNone || t == i)
      return Status::InvalidArgument("hard link " + Quoted(shown) + " in " + Quoted(d_->path) +
                                     " points to " + Quoted(n.target) +
                                     ", which is not an earlier file of the archive");
    if (nodes[t].link != kLxcNone) t = nodes[t].link;
    if (!nodes[t].stat.is_regular_file())
      return Status::InvalidArgument("hard link " + Quoted(shown) + " in " + Quoted(d_->path) +
                                     " points to " + Quoted(n.target) + ", which is not a file");
    n.link = t;
    n.target.clear();
    nodes[t].has_links = true;
  }
  return Status::OK();
}

Status Reader::Run(const std::string& path) {
  d_->path = path;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "cannot open vzdump archive " + Quoted(path));
  struct FdGuard {
    int fd;
    ~FdGuard() { close(fd); }
  } guard{fd};
  struct stat st {};
  if (fstat(fd, &st) != 0) return Status::FromErrno(errno, "stat " + Quoted(path));
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode))
    return Status::InvalidArgument(Quoted(path) + " is not a file");
  uint8_t magic[9] = {};
  ssize_t mn = pread(fd, magic, sizeof magic, 0);
  if (mn < 0) return Status::FromErrno(errno, "read " + Quoted(path));
  static const uint8_t kLzop[] = {0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0a};
  const bool lzop = mn == 9 && std::memcmp(magic, kLzop, 9) == 0;

  // The spool: an anonymous file that disappears with the descriptor.
  std::string dir = opts_.temp_dir;
  if (dir.empty()) {
    const char* t = getenv("TMPDIR");
    dir = t && *t ? t : "/var/tmp";
  }
  int sfd = open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (sfd < 0) {
    std::string tmpl = dir + "/pbskit-lxc-spool-XXXXXX";
    sfd = mkostemp(tmpl.data(), O_CLOEXEC);
    if (sfd < 0) return Status::FromErrno(errno, "cannot create a spool file in " + Quoted(dir));
    unlink(tmpl.c_str());
  }
  d_->spool_fd = sfd;
  spool_ = std::make_unique<LxcSpoolWriter>(sfd, dir);

  FileInput in;
  in.fd = fd;
  in.counter = &d_->stats.file_bytes;
  in.size = static_cast<uint64_t>(st.st_size);
  in.progress = &opts_.progress;
  std::unique_ptr<archive, int (*)(archive*)> a(archive_read_new(), archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_set_callback_data(a.get(), &in);
  archive_read_set_read_callback(a.get(), &FileInput::Read);
  if (S_ISREG(st.st_mode)) archive_read_set_skip_callback(a.get(), &FileInput::Skip);
  if (archive_read_open1(a.get()) != ARCHIVE_OK) {
    if (in.error) return Status::FromErrno(in.error, "read " + Quoted(path));
    if (lzop)
      return Status::Unsupported("cannot decompress lzo archive " + Quoted(path) + ": " +
                                 ArchiveError(a.get()) +
                                 " (lzop decompression needs libarchive with liblzo2 or the lzop "
                                 "program)");
    return Status::InvalidArgument(Quoted(path) + " is not a tar archive: " + ArchiveError(a.get()));
  }
  int code = archive_filter_code(a.get(), 0);
  switch (code) {
    case ARCHIVE_FILTER_NONE: d_->stats.compression = VzdumpCompression::kNone; break;
    case ARCHIVE_FILTER_GZIP: d_->stats.compression = VzdumpCompression::kGzip; break;
    case ARCHIVE_FILTER_ZSTD: d_->stats.compression = VzdumpCompression::kZstd; break;
    case ARCHIVE_FILTER_LZOP: d_->stats.compression = VzdumpCompression::kLzo; break;
    default:
      return Status::Unsupported("unknown compression '" +
                                 std::string(archive_filter_name(a.get(), 0)) + "' of " +
                                 Quoted(path) + " (vzdump writes none, gzip, lzo or zstd)");
  }

  if (code == ARCHIVE_FILTER_NONE && S_ISREG(st.st_mode)) {
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dfd >= 0) {
      d_->source_fd = dfd;
      direct_ = true;
      source_size_ = static_cast<uint64_t>(st.st_size);
    }
  }
  for (;;) {
    current_.clear();
    archive_entry* e = nullptr;
    int r = archive_read_next_header(a.get(), &e);
    if (in.error) return Status::FromErrno(in.error, "read " + Quoted(path));
    if (r == ARCHIVE_EOF) {
      // A tar ends with zero blocks; without them the file was cut at a member boundary.
      if (archive_filter_bytes(a.get(), 0) < archive_read_header_position(a.get()) + 512)
        (void)Damage(a.get(), "the end-of-archive marker is missing");
      break;
    }
    if (r < ARCHIVE_WARN) {
      if (members_ == 0 && !damage_.ok()) break;
      if (members_ == 0)
        return Status::InvalidArgument(Quoted(path) + " is not a tar archive: " +
                                       ArchiveError(a.get()));
      (void)Damage(a.get(), ArchiveError(a.get()));
      break;
    }
    if (r == ARCHIVE_WARN) Warn(std::string("libarchive: ") + ArchiveError(a.get()));
    ++members_;
    entry_ = e;
    Status ms = Member(a.get(), e);
    if (in.error) return Status::FromErrno(in.error, "read " + Quoted(path));
    if (!ms.ok()) {
      if (damage_.ok()) return ms;
      break;  // damage: refused below, or salvaged up to here
    }
    last_member_ = current_;
    last_end_ = static_cast<uint64_t>(archive_filter_bytes(a.get(), 0));
  }
  d_->stats.tar_bytes = static_cast<uint64_t>(archive_filter_bytes(a.get(), 0));
  if (!damage_.ok()) {
    if (!opts_.salvage)
      return damage_.WithContext("refusing to import " + Quoted(BaseName(path)) +
                                 " (use --salvage to import what is intact)");
    d_->stats.damage = damage_.message();
    if (!gap_.empty()) d_->stats.gaps.push_back(gap_);
    d_->stats.gaps.push_back("every member after " +
                             (current_.empty() ? Quoted(last_member_) : Quoted(current_)) +
                             " is missing");
    if (d_->stats.gaps.size() > kMaxGapLines) d_->stats.gaps.resize(kMaxGapLines);
  }
  if (!root_seen_)
    return Status::InvalidArgument("tar archive " + Quoted(path) +
                                   " holds no container file system (no './' member)");
  PBSKIT_RETURN_IF_ERROR(spool_->Flush());
  if (opts_.progress) opts_.progress(d_->stats.file_bytes, in.size);
  return Finalize();
}

Result<std::unique_ptr<LxcTarArchive>> LxcTarArchive::Read(const std::string& path,
                                                           const LxcTarOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->nodes.emplace_back();
  impl->nodes[0].stat.mode = pxar::kModeIfdir | 0755;
  impl->pxarexclude_cli = options.pxarexclude_cli;
  std::unique_ptr<LxcTarArchive> out(new LxcTarArchive(std::move(impl)));
  Reader reader(out->impl_.get(), options);
  PBSKIT_RETURN_IF_ERROR(reader.Run(path));
  return out;
}

}  // namespace pbskit
