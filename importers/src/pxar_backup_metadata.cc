// Metadata change-detection mode: encode the tree into a split archive, reusing the payload
// chunks of the previous snapshot for files whose metadata did not change (what
// proxmox-backup-client's look-ahead cache does; see pxar_backup.h for the rules).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "pbskit/datastore/archive_reader.h"
#include "pbskit/formats/dynamic_index.h"
#include "pbskit/formats/pxar/decoder.h"
#include "pbskit/formats/pxar/encoder.h"
#include "pxar_backup_internal.h"

namespace pbskit::importers {
namespace {

constexpr double kChunkPaddingThreshold = 0.1;  // PBS's CHUNK_PADDING_THRESHOLD
constexpr size_t kMaxCachedEntries = 512;
constexpr uint64_t kHeaderSize = 16;

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

struct PrevFile {
  pxar::Metadata metadata;
  uint64_t size = 0;
  uint64_t payload_offset = 0;
};

// The previous snapshot's metadata archive (files by path) and payload index.
struct Reference {
  std::unordered_map<std::string, PrevFile> files;  // "/dir/name" as the decoder names them
  std::optional<DynamicIndex> payload_index;
};

Result<std::optional<Reference>> LoadReference(SnapshotWriter* writer, PxarSnapshotSink* sink,
                                               const PxarBackupOptions& options) {
  auto say = [&](const std::string& s) {
    if (options.info) options.info(s);
  };
  if (!writer->previous()) return std::optional<Reference>();
  const auto& o = writer->options();
  auto store = writer->store();
  auto manifest = store->LoadManifest(o.ns, *writer->previous());
  if (!manifest.ok()) return manifest.status().WithContext("previous manifest");
  const FileInfo* meta_info = nullptr;
  const FileInfo* payload_info = nullptr;
  for (const auto& f : manifest->files) {
    if (f.filename == sink->archive_name()) meta_info = &f;
    if (f.filename == sink->payload_name()) payload_info = &f;
  }
  if (!meta_info) {
    say("No previous metadata index, continue without reference");
    return std::optional<Reference>();
  }
  if (!payload_info) {
    say("No previous payload index found in manifest, continue without reference");
    return std::optional<Reference>();
  }
  if (payload_info->crypt_mode != o.crypt_mode || meta_info->crypt_mode != o.crypt_mode) {
    say("Crypt mode mismatch, continue without reference");
    return std::optional<Reference>();
  }
  const CryptConfig* crypt = o.crypt_mode == CryptMode::kEncrypt ? o.crypt : nullptr;
  PBSKIT_ASSIGN_OR_RETURN(auto reader, ArchiveReader::Open(store, o.ns, *writer->previous(),
                                                           meta_info->filename, crypt));
  std::vector<uint8_t> meta;
  PBSKIT_RETURN_IF_ERROR(reader->ReadAll([&](std::span<const uint8_t> d) {
    meta.insert(meta.end(), d.begin(), d.end());
    return Status::OK();
  }));
  Reference ref;
  pxar::SpanSource src(meta);
  pxar::DecoderOptions dopts;
  dopts.name = "previous " + meta_info->filename;
  pxar::Decoder dec(&src, nullptr, dopts);
  pxar::Entry e;
  for (;;) {
    PBSKIT_ASSIGN_OR_RETURN(bool more, dec.Next(&e));
    if (!more) break;
    if (e.kind == pxar::EntryKind::kFile && e.payload_offset)
      ref.files[e.path] = PrevFile{e.metadata, e.file_size, *e.payload_offset};
  }
  PBSKIT_ASSIGN_OR_RETURN(DynamicIndex idx,
                          store->OpenDynamicIndex(o.ns, *writer->previous(), payload_info->filename));
  ref.payload_index = std::move(idx);
  say("Using previous index as metadata reference for '" + sink->archive_name() + "'");
  return std::optional<Reference>(std::move(ref));
}

bool IsVirtualFs(int64_t magic) {
  static const int64_t kMagics[] = {0x42494e4d, 0x63677270, 0x0027e0eb, 0x62656570, 0x64626720,
                                    0x00001cd1, static_cast<int64_t>(0xde5e81e4), 0x65735543,
                                    static_cast<int64_t>(0x958458f6), 0x19800202, 0x6e667364,
                                    0x00009fa0, 0x6165676C, 0x67596969, 0x73636673,
                                    static_cast<int64_t>(0xf97cff8c), 0x43415d53, 0x62656572};
  return std::find(std::begin(kMagics), std::end(kMagics), magic) != std::end(kMagics);
}

class MetadataArchiver {
 public:
  MetadataArchiver(pxar::Encoder* enc, PxarSnapshotSink* sink, const PxarBackupOptions& opts,
                   Reference* ref, PxarBackupResult* result)
      : enc_(enc), sink_(sink), opts_(opts), ref_(ref), result_(result) {}

  Status Walk(int dirfd, bool is_root);
  // Encodes what is still cached and injects the held-back chunk.
  Status Finish() { return Flush(false); }

  int64_t fs_magic_ = 0;
  PxarFeatures features_;
  dev_t current_dev_ = 0;

 private:
  enum class Kind { kFile, kHardlink, kDir, kDirEnd, kSymlink, kDevice, kFifo, kSocket };
  struct Record {
    Kind kind = Kind::kFile;
    std::string name;
    std::string path;  // relative to the root
    pxar::Metadata metadata;
    Fd fd;
    uint64_t size = 0;
    bool reuse = false;
    uint64_t range_offset = 0;  // reusable file: PAYLOAD header offset - range start
    std::pair<dev_t, ino_t> key{};
    bool multi_link = false;
    std::string target;  // symlink
    pxar::Device device;
    bool skip_contents = false;  // directory on a virtual file system
  };
  struct Chunk {
    size_t index;
    uint64_t size;
  };

  void Warn(const std::string& msg) {
    result_->create.warnings.push_back(msg);
    if (opts_.create.warn) opts_.create.warn(msg);
  }
  bool Caching() const { return has_range_; }
  Status Put(Record r) {
    if (Caching()) {
      cache_.push_back(std::move(r));
      return Status::OK();
    }
    return Emit(r, std::nullopt);
  }
  Status AddEntry(int dirfd, const std::string& name, const struct stat& st);
  Status AddRegular(Record r, const struct stat& st);
  Status Emit(Record& r, std::optional<uint64_t> base);
  Status EncodeFileData(Record& r);
  Status Flush(bool keep_last_chunk);
  Status Inject(const std::vector<Chunk>& chunks);
  Status InjectHeld();

  pxar::Encoder* enc_;
  PxarSnapshotSink* sink_;
  const PxarBackupOptions& opts_;
  Reference* ref_;  // null: encode everything
  PxarBackupResult* result_;
  std::string path_;
  uint64_t entry_counter_ = 0;
  std::set<std::pair<dev_t, ino_t>> seen_links_;
  std::map<std::pair<dev_t, ino_t>, std::pair<std::string, pxar::LinkOffset>> links_;
  std::vector<uint8_t> buf_ = std::vector<uint8_t>(4 << 20);  // the client's copy buffer

  // Look-ahead cache: entries after the first reusable file, and the previous payload range
  // [range_start_, range_end_) their reusable files cover.
  std::vector<Record> cache_;
  bool has_range_ = false;
  uint64_t range_start_ = 0, range_end_ = 0;
  std::optional<uint64_t> last_reusable_offset_;
  std::optional<Chunk> held_;  // last chunk of the previous run, not yet injected
  uint64_t held_used_ = 0;     // bytes of it the previous run used
};

Status MetadataArchiver::Walk(int dirfd, bool is_root) {
  int dup_fd = dup(dirfd);
  if (dup_fd < 0) return Status::FromErrno(errno, "dup");
  DIR* dir = fdopendir(dup_fd);
  if (!dir) {
    close(dup_fd);
    return Status::FromErrno(errno, "opendir \"" + path_ + "\"");
  }
  std::unique_ptr<DIR, int (*)(DIR*)> guard(dir, closedir);
  uint64_t counter_at_start = entry_counter_;
  std::vector<std::pair<std::string, struct stat>> children;
  errno = 0;
  while (struct dirent* de = readdir(dir)) {
    std::string name = de->d_name;
    if (name == "." || name == ".." || (is_root && name == ".pxarexclude-cli")) continue;
    std::string full = path_.empty() ? name : path_ + "/" + name;
    struct stat st;
    if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) {
        Warn("warning: file vanished while reading directory: \"" + full + "\"");
        errno = 0;
        continue;
      }
      return Status::FromErrno(errno, "stat failed on \"" + full + "\"");
    }
    ++result_->create.entries;
    if (++entry_counter_ > opts_.create.entries_max)
      return Status::InvalidArgument("exceeded allowed number of file entries (> " +
                                     std::to_string(opts_.create.entries_max) + ")");
    children.emplace_back(std::move(name), st);
    errno = 0;
  }
  if (errno != 0) return Status::FromErrno(errno, "readdir \"" + path_ + "\"");
  std::sort(children.begin(), children.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string old_path = path_;
  for (const auto& [name, st] : children) {
    path_ = old_path.empty() ? name : old_path + "/" + name;
    Status s = AddEntry(dirfd, name, st);
    if (!s.ok()) return s.WithContext("error at \"" + path_ + "\"");
  }
  path_ = old_path;
  entry_counter_ = counter_at_start;
  return Status::OK();
}

Status MetadataArchiver::AddEntry(int dirfd, const std::string& name, const struct stat& st) {
  mode_t type = st.st_mode & S_IFMT;
  int flags = (type == S_IFREG || type == S_IFDIR) ? O_RDONLY : (O_PATH | O_RDONLY);
  flags |= O_NOFOLLOW | O_CLOEXEC | O_NOCTTY;
  int raw = openat(dirfd, name.c_str(), flags | O_NOATIME);
  if (raw < 0 && errno == EPERM) raw = openat(dirfd, name.c_str(), flags);
  if (raw < 0) {
    if (errno == ENOENT) {
      Warn("warning: file vanished while reading: \"" + path_ + "\"");
      return Status::OK();
    }
    return Status::FromErrno(errno, "open");
  }
  Record r;
  r.fd = Fd(raw);
  r.name = name;
  r.path = path_;
  PBSKIT_ASSIGN_OR_RETURN(r.metadata, ReadPxarMetadata(raw, st, fs_magic_, features_));
  if (cache_.size() >= kMaxCachedEntries) PBSKIT_RETURN_IF_ERROR(Flush(true));
  switch (type) {
    case S_IFREG:
      return AddRegular(std::move(r), st);
    case S_IFDIR: {
      int64_t old_magic = fs_magic_;
      PxarFeatures old_features = features_;
      dev_t old_dev = current_dev_;
      if (st.st_dev != current_dev_) {
        struct statfs sfs;
        if (fstatfs(raw, &sfs) != 0) return Status::FromErrno(errno, "statfs");
        fs_magic_ = static_cast<int64_t>(sfs.f_type);
        features_ = FeaturesForFsMagic(fs_magic_, opts_.create.features);
        current_dev_ = st.st_dev;
        r.skip_contents = IsVirtualFs(fs_magic_);
      }
      int dfd = dup(raw);
      if (dfd < 0) return Status::FromErrno(errno, "dup");
      Fd dir_fd(dfd);
      bool skip = r.skip_contents;
      r.kind = Kind::kDir;
      r.fd = Fd();
      PBSKIT_RETURN_IF_ERROR(Put(std::move(r)));
      Status s = Status::OK();
      if (skip)
        Warn("skipping mount point: \"" + path_ + "\"");
      else
        s = Walk(dir_fd.get(), false);
      fs_magic_ = old_magic;
      features_ = old_features;
      current_dev_ = old_dev;
      PBSKIT_RETURN_IF_ERROR(s);
      Record end;
      end.kind = Kind::kDirEnd;
      return Put(std::move(end));
    }
    case S_IFLNK: {
      r.kind = Kind::kSymlink;
      r.target.assign(4097, '\0');
      ssize_t n = readlinkat(raw, "", r.target.data(), r.target.size());
      if (n < 0) return Status::FromErrno(errno, "readlink");
      r.target.resize(static_cast<size_t>(n));
      r.fd = Fd();
      return Put(std::move(r));
    }
    case S_IFBLK:
    case S_IFCHR:
      r.kind = Kind::kDevice;
      r.device = pxar::Device::FromDevT(st.st_rdev);
      r.fd = Fd();
      return Put(std::move(r));
    case S_IFIFO:
      r.kind = Kind::kFifo;
      r.fd = Fd();
      return Put(std::move(r));
    case S_IFSOCK:
      r.kind = Kind::kSocket;
      r.fd = Fd();
      return Put(std::move(r));
    default:
      return Status::InvalidArgument("encountered unknown file type");
  }
}

Status MetadataArchiver::AddRegular(Record r, const struct stat& st) {
  r.kind = Kind::kFile;
  r.size = static_cast<uint64_t>(st.st_size);
  r.key = {st.st_dev, st.st_ino};
  r.multi_link = st.st_nlink > 1;
  if (r.multi_link) {
    if (seen_links_.count(r.key)) {
      r.kind = Kind::kHardlink;
      r.fd = Fd();
      ++result_->create.hardlinks;
      return Put(std::move(r));
    }
    seen_links_.insert(r.key);
  }
  // Reusable: same metadata and size at the same path, payload strictly after the last reused.
  const PrevFile* prev = nullptr;
  if (ref_) {
    auto it = ref_->files.find("/" + r.path);
    if (it != ref_->files.end() && it->second.metadata == r.metadata &&
        it->second.size == r.size &&
        it->second.payload_offset + kHeaderSize + r.size <= ref_->payload_index->size() &&
        (!last_reusable_offset_ || it->second.payload_offset > *last_reusable_offset_))
      prev = &it->second;
  }
  if (!prev) {
    PBSKIT_RETURN_IF_ERROR(Flush(false));
    return Emit(r, std::nullopt);
  }
  last_reusable_offset_ = prev->payload_offset;
  const uint64_t start = prev->payload_offset, end = start + kHeaderSize + r.size;
  if (has_range_ && range_end_ != start) PBSKIT_RETURN_IF_ERROR(Flush(true));  // a hole
  if (!has_range_) {
    has_range_ = true;
    range_start_ = start;
  }
  range_end_ = end;
  r.reuse = true;
  r.range_offset = start - range_start_;
  cache_.push_back(std::move(r));
  return Status::OK();
}

Status MetadataArchiver::EncodeFileData(Record& r) {
  sink_->SuggestPayloadBoundary(enc_->payload_position());
  PBSKIT_ASSIGN_OR_RETURN(pxar::LinkOffset off, enc_->BeginFile(r.metadata, r.name, r.size));
  uint64_t remaining = r.size;
  while (remaining > 0) {
    ssize_t got = read(r.fd.get(), buf_.data(), buf_.size());
    if (got < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "read");
    }
    if (got == 0) break;
    uint64_t n = std::min<uint64_t>(static_cast<uint64_t>(got), remaining);
    if (static_cast<uint64_t>(got) > remaining)
      Warn("warning: file size increased while reading: \"" + r.path +
           "\", file will be truncated!");
    PBSKIT_RETURN_IF_ERROR(enc_->WriteFileData({buf_.data(), static_cast<size_t>(n)}));
    remaining -= n;
  }
  if (remaining > 0) {
    Warn("warning: file size shrunk while reading: \"" + r.path +
         "\", file will be padded with zeros!");
    std::fill(buf_.begin(), buf_.end(), 0);
    while (remaining > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(remaining, buf_.size()));
      PBSKIT_RETURN_IF_ERROR(enc_->WriteFileData({buf_.data(), n}));
      remaining -= n;
    }
  }
  PBSKIT_RETURN_IF_ERROR(enc_->EndFile());
  if (r.multi_link) links_[r.key] = {r.path, off};
  ++result_->create.files;
  result_->create.file_bytes += r.size;
  return Status::OK();
}

Status MetadataArchiver::Emit(Record& r, std::optional<uint64_t> base) {
  switch (r.kind) {
    case Kind::kFile: {
      if (!(r.reuse && base)) return EncodeFileData(r);
      PBSKIT_ASSIGN_OR_RETURN(pxar::LinkOffset off,
                              enc_->AddPayloadRef(r.metadata, r.name, r.size,
                                                  *base + r.range_offset));
      if (r.multi_link) links_[r.key] = {r.path, off};
      ++result_->create.files;
      result_->create.file_bytes += r.size;
      ++result_->reused_files;
      result_->reused_payload_bytes += r.size;
      return Status::OK();
    }
    case Kind::kHardlink: {
      auto it = links_.find(r.key);
      if (it == links_.end())
        return Status::Aborted("hardlink target of \"" + r.path + "\" was not encoded");
      return enc_->AddHardlink(r.name, it->second.first, it->second.second);
    }
    case Kind::kDir:
      return enc_->CreateDirectory(r.name, r.metadata);
    case Kind::kDirEnd:
      return enc_->FinishDirectory();
    case Kind::kSymlink:
      return enc_->AddSymlink(r.metadata, r.name, r.target);
    case Kind::kDevice:
      return enc_->AddDevice(r.metadata, r.name, r.device);
    case Kind::kFifo:
      return enc_->AddFifo(r.metadata, r.name);
    case Kind::kSocket:
      return enc_->AddSocket(r.metadata, r.name);
  }
  return Status::OK();
}

Status MetadataArchiver::Inject(const std::vector<Chunk>& chunks) {
  for (const Chunk& c : chunks) {
    PBSKIT_RETURN_IF_ERROR(sink_->InjectPayloadChunk(ref_->payload_index->entry(c.index).digest,
                                                     c.size));
    PBSKIT_RETURN_IF_ERROR(enc_->Advance(c.size));
    ++result_->injected_chunks;
    result_->injected_size += c.size;
  }
  return Status::OK();
}

Status MetadataArchiver::InjectHeld() {
  if (!held_) return Status::OK();
  Chunk c = *held_;
  held_.reset();
  return Inject({c});
}

Status MetadataArchiver::Flush(bool keep_last_chunk) {
  std::vector<Record> records = std::move(cache_);
  cache_.clear();
  if (!has_range_) {
    PBSKIT_RETURN_IF_ERROR(InjectHeld());
    for (Record& r : records) PBSKIT_RETURN_IF_ERROR(Emit(r, std::nullopt));
    return Status::OK();
  }
  has_range_ = false;
  const DynamicIndex& idx = *ref_->payload_index;
  const size_t first = idx.FindChunk(range_start_), last = idx.FindChunk(range_end_ - 1);
  std::vector<Chunk> chunks;
  for (size_t i = first; i <= last; ++i) {
    auto [s, e] = idx.chunk_range(i);
    chunks.push_back(Chunk{i, e - s});
  }
  const uint64_t start_padding = range_start_ - idx.chunk_range(first).first;
  const uint64_t end_padding = idx.chunk_range(last).second - range_end_;
  uint64_t padding = start_padding + end_padding;
  const uint64_t total = (range_end_ - range_start_) + padding;
  const bool shares_held = held_ && held_->index == first;
  if (shares_held) padding -= std::min(padding, held_used_);
  if (static_cast<double>(padding) / static_cast<double>(total) > kChunkPaddingThreshold) {
    PBSKIT_RETURN_IF_ERROR(InjectHeld());  // re-encode the run from the files
    for (Record& r : records) PBSKIT_RETURN_IF_ERROR(Emit(r, std::nullopt));
    return Status::OK();
  }
  if (shares_held)
    held_.reset();  // injected below as the run's first chunk
  else
    PBSKIT_RETURN_IF_ERROR(InjectHeld());
  const uint64_t base = enc_->payload_position() + start_padding;
  for (Record& r : records) PBSKIT_RETURN_IF_ERROR(Emit(r, base));
  if (keep_last_chunk) {
    held_ = chunks.back();
    held_used_ = chunks.back().size - end_padding - (chunks.size() == 1 ? start_padding : 0);
    chunks.pop_back();
  }
  return Inject(chunks);
}

}  // namespace

Status BackupDirectoryMetadataMode(SnapshotWriter* writer, PxarSnapshotSink* sink,
                                   const std::string& source_dir,
                                   const PxarBackupOptions& options, PxarBackupResult* result) {
  int fd = open(source_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    Status st = Status::FromErrno(errno, "unable to open directory '" + source_dir + "'");
    if (errno == ENOENT) return Status::NotFound(st.message());
    if (errno == EACCES) return Status::PermissionDenied(st.message());
    return st;
  }
  Fd guard(fd);
  struct statfs sfs;
  if (fstatfs(fd, &sfs) != 0) return Status::FromErrno(errno, "statfs '" + source_dir + "'");
  int64_t magic = static_cast<int64_t>(sfs.f_type);
  if (IsVirtualFs(magic)) return Status::InvalidArgument("refusing to backup a virtual file system");
  struct stat st;
  if (fstat(fd, &st) != 0) return Status::FromErrno(errno, "stat '" + source_dir + "'");
  PxarFeatures features = FeaturesForFsMagic(magic, options.create.features);
  auto meta = ReadPxarMetadata(fd, st, magic, features);
  if (!meta.ok()) return meta.status().WithContext("failed to get metadata for source directory");

  PBSKIT_ASSIGN_OR_RETURN(std::optional<Reference> ref, LoadReference(writer, sink, options));
  PBSKIT_ASSIGN_OR_RETURN(std::unique_ptr<pxar::Encoder> enc,
                          pxar::Encoder::Create(sink->archive(), sink->payload(), *meta));
  MetadataArchiver a(enc.get(), sink, options, ref ? &*ref : nullptr, result);
  a.fs_magic_ = magic;
  a.features_ = features;
  a.current_dev_ = st.st_dev;
  PBSKIT_RETURN_IF_ERROR(a.Walk(fd, true));
  PBSKIT_RETURN_IF_ERROR(a.Finish());
  PBSKIT_RETURN_IF_ERROR(enc->Finish());
  if (ref && options.info) {
    const uint64_t files = result->create.files + result->create.hardlinks;
    options.info("Change detection summary:");
    options.info(" - " + std::to_string(files) + " total files (" +
                 std::to_string(result->create.hardlinks) + " hardlinks)");
    options.info(" - " + std::to_string(result->reused_files) +
                 " unchanged, reusable files with " +
                 std::to_string(result->reused_payload_bytes) + " bytes of data");
    options.info(" - " + std::to_string(result->create.files - result->reused_files) +
                 " changed or non-reusable files");
  }
  return Status::OK();
}

}  // namespace pbskit::importers
