// Container tar import, phase 2: the entry tree in pxar order into a pxar encoder.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <unordered_map>

#include "vzdump_lxc_internal.h"

namespace pbskit {
namespace {

using importers::PxarCreateObserver;
using pxar::Encoder;
using pxar::LinkOffset;

class Writer {
 public:
  Writer(const LxcTarArchive::Impl& d, Encoder* enc, PxarCreateObserver* obs)
      : d_(d), enc_(enc), obs_(obs) {}

  Status Directory(uint32_t dir, const std::string& path);
  Status ExcludeFile();

 private:
  pxar::Metadata MetadataOf(const LxcNode& n) const {
    pxar::Metadata m;
    if (n.extra != kLxcNone) m = d_.extras[n.extra];
    m.stat = n.stat;
    return m;
  }
  Status Child(uint32_t idx, const std::string& path);
  Status File(const LxcNode& entry, const LxcNode& data, uint32_t data_idx,
              const std::string& path);
  Status CopySpool(uint64_t offset, uint64_t length, int fd);
  Status Zeros(uint64_t length);

  const LxcTarArchive::Impl& d_;
  Encoder* enc_;
  PxarCreateObserver* obs_;
  // Data node of a hard link group -> path and offset of its first entry in archive order.
  std::unordered_map<uint32_t, std::pair<std::string, LinkOffset>> links_;
  std::vector<uint8_t> buf_ = std::vector<uint8_t>(256 << 10);
};

Status Writer::CopySpool(uint64_t offset, uint64_t length, int fd) {
  while (length > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(length, buf_.size()));
    ssize_t got = pread(fd, buf_.data(), n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    const char* what = fd == d_.spool_fd ? "the spool file" : "the tar file";
    if (got < 0) return Status::FromErrno(errno, std::string("read ") + what);
    if (got == 0)
      return Status::IoError(std::string(what) + " ends early at byte " + std::to_string(offset));
    PBSKIT_RETURN_IF_ERROR(enc_->WriteFileData({buf_.data(), static_cast<size_t>(got)}));
    offset += static_cast<uint64_t>(got);
    length -= static_cast<uint64_t>(got);
  }
  return Status::OK();
}

Status Writer::Zeros(uint64_t length) {
  static const std::vector<uint8_t> kZeros(1 << 16, 0);
  while (length > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(length, kZeros.size()));
    PBSKIT_RETURN_IF_ERROR(enc_->WriteFileData({kZeros.data(), n}));
    length -= n;
  }
  return Status::OK();
}

Status Writer::File(const LxcNode& entry, const LxcNode& data, uint32_t data_idx,
                    const std::string& path) {
  if (data.has_links) {
    auto it = links_.find(data_idx);
    if (it != links_.end()) {
      if (obs_) PBSKIT_RETURN_IF_ERROR(obs_->AddHardlink(entry.name));
      return enc_->AddHardlink(entry.name, it->second.first, it->second.second);
    }
  }
  if (obs_) PBSKIT_RETURN_IF_ERROR(obs_->AddFile(entry.name, data.size, data.stat.mtime_secs));
  PBSKIT_ASSIGN_OR_RETURN(LinkOffset off, enc_->BeginFile(MetadataOf(data), entry.name, data.size));
  if (data.sparse == kLxcNone) {
    // A salvaged, truncated file has fewer bytes in the spool: its map says so (sparse).
    PBSKIT_RETURN_IF_ERROR(
        CopySpool(data.spool, data.size, data.in_source ? d_.source_fd : d_.spool_fd));
  } else {
    uint64_t pos = 0, spool = data.spool;
    for (const LxcSegment& s : d_.sparse[data.sparse]) {
      PBSKIT_RETURN_IF_ERROR(Zeros(s.offset - pos));
      PBSKIT_RETURN_IF_ERROR(CopySpool(spool, s.length, d_.spool_fd));
      spool += s.length;
      pos = s.offset + s.length;
    }
    PBSKIT_RETURN_IF_ERROR(Zeros(data.size - pos));
  }
  PBSKIT_RETURN_IF_ERROR(enc_->EndFile());
  if (data.has_links) links_[data_idx] = {path, off};
  return Status::OK();
}

Status Writer::Child(uint32_t idx, const std::string& path) {
  const LxcNode& n = d_.nodes[idx];
  if (n.link != kLxcNone) return File(n, d_.nodes[n.link], n.link, path);
  const pxar::Stat& st = n.stat;
  if (st.is_regular_file()) return File(n, n, idx, path);
  if (st.is_dir()) {
    if (obs_) PBSKIT_RETURN_IF_ERROR(obs_->StartDirectory(n.name));
    PBSKIT_RETURN_IF_ERROR(enc_->CreateDirectory(n.name, MetadataOf(n)));
    PBSKIT_RETURN_IF_ERROR(Directory(idx, path));
    PBSKIT_RETURN_IF_ERROR(enc_->FinishDirectory());
    if (obs_) PBSKIT_RETURN_IF_ERROR(obs_->EndDirectory());
    return Status::OK();
  }
  if (st.is_symlink()) {
    if (obs_) PBSKIT_RETURN_IF_ERROR(obs_->AddSymlink(n.name));
    return enc_->AddSymlink(MetadataOf(n), n.name, n.target);
  }
  if (st.is_device()) {
    if (obs_) {
      PBSKIT_RETURN_IF_ERROR(st.file_type() == pxar::kModeIfblk ? obs_->AddBlockDevice(n.name)
                                                                 : obs_->AddCharDevice(n.name));
    }
    return enc_->AddDevice(MetadataOf(n), n.name, pxar::Device::FromDevT(n.rdev));
  }
  if (st.is_fifo()) {
    if (obs_) PBSKIT_RETURN_IF_ERROR(obs_->AddFifo(n.name));
    return enc_->AddFifo(MetadataOf(n), n.name);
  }
  if (obs_) PBSKIT_RETURN_IF_ERROR(obs_->AddSocket(n.name));
  return enc_->AddSocket(MetadataOf(n), n.name);
}

Status Writer::Directory(uint32_t dir, const std::string& path) {
  for (uint32_t c : d_.nodes[dir].children) {
    std::string child_path = path.empty() ? d_.nodes[c].name : path + "/" + d_.nodes[c].name;
    Status st = Child(c, child_path);
    if (!st.ok()) return st.WithContext("error at '" + child_path + "'");
  }
  return Status::OK();
}

// What proxmox-backup-client appends to the root when exclude patterns are active.
Status Writer::ExcludeFile() {
  const std::string& text = *d_.pxarexclude_cli;
  pxar::Metadata m;
  m.stat.mode = pxar::kModeIfreg | 0600;
  if (obs_) PBSKIT_RETURN_IF_ERROR(obs_->AddFile(".pxarexclude-cli", text.size(), 0));
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  return enc_->AddFile(m, ".pxarexclude-cli", bytes).status();
}

}  // namespace

Status LxcTarArchive::Encode(pxar::PxarSink* archive, importers::PxarCreateObserver* observer) {
  const Impl& d = *impl_;
  pxar::Metadata root;
  if (d.nodes[0].extra != kLxcNone) root = d.extras[d.nodes[0].extra];
  root.stat = d.nodes[0].stat;
  PBSKIT_ASSIGN_OR_RETURN(std::unique_ptr<Encoder> enc, Encoder::Create(archive, nullptr, root));
  Writer w(d, enc.get(), observer);
  PBSKIT_RETURN_IF_ERROR(w.Directory(0, ""));
  if (d.pxarexclude_cli) PBSKIT_RETURN_IF_ERROR(w.ExcludeFile());
  return enc->Finish();
}

}  // namespace pbskit
