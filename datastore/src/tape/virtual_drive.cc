// The PBS `virtual` tape drive over a directory (see virtual_drive.h, docs/formats/tape.md).
#include "pbskit/datastore/tape/virtual_drive.h"

#include <fcntl.h>
#include <time.h>

#include <algorithm>
#include <boost/json.hpp>

#include "pbskit/formats/json.h"

namespace pbskit::tape {
namespace {

const char* kEmptyDrive = "drive is empty (no tape loaded).";

Status CheckTapeLabel(const std::string& label) {
  if (label.empty() || label.find('/') != std::string::npos || label.find('\0') != label.npos ||
      label == "." || label == "..") {
    return Status::InvalidArgument("invalid tape label '" + label + "'");
  }
  return Status::OK();
}

class VirtualFileReader : public TapeBlockReader {
 public:
  VirtualFileReader() : end_of_stream_(true) {}
  VirtualFileReader(Filesystem* fs, ScopedFd fd, uint64_t size, std::string path)
      : fs_(fs), fd_(std::move(fd)), size_(size), path_(std::move(path)) {}

  Result<BlockReadOutcome> ReadBlock(std::span<uint8_t> buffer) override {
    if (end_of_stream_) return BlockReadOutcome{BlockReadKind::kEndOfStream, 0};
    if (got_eof_) return Status::IoError("detected read after EOF in " + path_);
    if (offset_ >= size_) {
      got_eof_ = true;
      return BlockReadOutcome{BlockReadKind::kEndOfFile, 0};
    }
    if (size_ - offset_ < kBlockSize) {
      return Status::IoError("got wrong block size: short block of " +
                             std::to_string(size_ - offset_) + " bytes at offset " +
                             std::to_string(offset_) + " in " + path_);
    }
    size_t n = std::min(buffer.size(), kBlockSize);
    PBSKIT_ASSIGN_OR_RETURN(size_t got, fs_->PRead(fd_.get(), buffer.data(), n, offset_));
    if (got != n) {
      return Status::IoError("short read at offset " + std::to_string(offset_) + " in " + path_);
    }
    offset_ += kBlockSize;
    return BlockReadOutcome{BlockReadKind::kData, n};
  }

 private:
  bool end_of_stream_ = false;
  Filesystem* fs_ = nullptr;
  ScopedFd fd_;
  uint64_t size_ = 0;
  std::string path_;
  uint64_t offset_ = 0;
  bool got_eof_ = false;
};

class VirtualFileWriter : public TapeBlockWriter {
 public:
  VirtualFileWriter(Filesystem* fs, ScopedFd fd, uint64_t max_blocks, std::string path)
      : fs_(fs), fd_(std::move(fd)), max_blocks_(max_blocks), path_(std::move(path)) {}

  Result<bool> WriteBlock(std::span<const uint8_t> block) override {
    if (block.size() != kBlockSize) {
      return Status::InvalidArgument("tape block write with wrong block size (" +
                                     std::to_string(block.size()) + ")");
    }
    if (blocks_ >= max_blocks_ + 2) {
      return Status::IoError("no space left on device (virtual tape " + path_ + " is full)");
    }
    PBSKIT_RETURN_IF_ERROR(
        fs_->PWriteAll(fd_.get(), block.data(), block.size(), blocks_ * kBlockSize));
    ++blocks_;
    return blocks_ > max_blocks_;
  }

  Status WriteFilemark() override {
    if (filemark_)
      return Status::InvalidArgument("detected multiple EOF writes (filemark already written)");
    filemark_ = true;
    return fs_->Fsync(fd_.get());
  }

 private:
  Filesystem* fs_;
  ScopedFd fd_;
  uint64_t max_blocks_;
  std::string path_;
  uint64_t blocks_ = 0;
  bool filemark_ = false;
};

}  // namespace

Result<std::unique_ptr<VirtualTapeDrive>> VirtualTapeDrive::Open(Filesystem* fs,
                                                                 const std::string& path,
                                                                 uint64_t max_size,
                                                                 int lock_timeout_ms) {
  PBSKIT_ASSIGN_OR_RETURN(bool exists, PathExists(fs, path));
  if (!exists) return Status::NotFound("virtual tape drive directory " + path + " does not exist");
  std::string lock_path = JoinPath(path, ".drive.lck");
  PBSKIT_ASSIGN_OR_RETURN(int fd, fs->Open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  ScopedFd lock(fs, fd);
  int waited = 0;
  for (;;) {
    Status st = fs->Flock(lock.get(), LockMode::kExclusive, /*nonblock=*/true);
    if (st.ok()) break;
    if (waited >= lock_timeout_ms) {
      return Status::Busy("unable to lock virtual tape drive " + path + " - " + st.message());
    }
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, nullptr);
    waited += 50;
  }
  return std::unique_ptr<VirtualTapeDrive>(
      new VirtualTapeDrive(fs, path, max_size, std::move(lock)));
}

VirtualTapeDrive::~VirtualTapeDrive() = default;

std::string VirtualTapeDrive::StatusPath() const { return JoinPath(path_, "drive-status.json"); }
std::string VirtualTapeDrive::IndexPath(const std::string& tape) const {
  return JoinPath(path_, "tape-" + tape + ".json");
}
std::string VirtualTapeDrive::TapeFilePath(const std::string& tape, uint64_t n) const {
  return JoinPath(path_, "tapefile-" + std::to_string(n) + "-" + tape + ".json");
}

Status VirtualTapeDrive::StoreStatus(const std::optional<VirtualDriveCurrentTape>& current) {
  boost::json::object o;
  if (current) {
    boost::json::object t;
    t["name"] = current->name;
    t["pos"] = current->pos;
    o["current_tape"] = std::move(t);
  } else {
    o["current_tape"] = nullptr;
  }
  return WriteFileAtomic(fs_, StatusPath(), ToSerdePretty(o), SyncLevel::kFile);
}

Result<std::optional<VirtualDriveCurrentTape>> VirtualTapeDrive::CurrentTape() {
  auto text = ReadWholeFileText(fs_, StatusPath());
  if (!text.ok() && text.status().code() == Code::kNotFound) {
    return std::optional<VirtualDriveCurrentTape>();
  }
  if (!text.ok()) return text.status();
  boost::system::error_code ec;
  auto v = boost::json::parse(*text, ec);
  auto bad = Status::Corruption("unable to parse " + StatusPath() +
                                " - expected {\"current_tape\": {\"name\", \"pos\"} or null}");
  if (ec || !v.is_object()) return bad;
  auto* cur = v.as_object().if_contains("current_tape");
  if (cur == nullptr || cur->is_null()) return std::optional<VirtualDriveCurrentTape>();
  if (!cur->is_object()) return bad;
  auto* name = cur->as_object().if_contains("name");
  auto* pos = cur->as_object().if_contains("pos");
  if (name == nullptr || !name->is_string() || pos == nullptr ||
      !(pos->is_uint64() || (pos->is_int64() && pos->as_int64() >= 0))) {
    return bad;
  }
  VirtualDriveCurrentTape t;
  t.name = std::string(name->as_string());
  t.pos = pos->is_uint64() ? pos->as_uint64() : static_cast<uint64_t>(pos->as_int64());
  return std::optional<VirtualDriveCurrentTape>(t);
}

Result<VirtualDriveCurrentTape> VirtualTapeDrive::Loaded() {
  PBSKIT_ASSIGN_OR_RETURN(auto cur, CurrentTape());
  if (!cur) return Status::InvalidArgument(kEmptyDrive);
  return *cur;
}

Result<uint64_t> VirtualTapeDrive::LoadIndex(const std::string& tape) {
  PBSKIT_ASSIGN_OR_RETURN(std::string text, ReadWholeFileText(fs_, IndexPath(tape)));
  if (text.empty()) return uint64_t{0};
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  if (!ec && v.is_object()) {
    auto* files = v.as_object().if_contains("files");
    if (files != nullptr && files->is_uint64()) return files->as_uint64();
    if (files != nullptr && files->is_int64() && files->as_int64() >= 0) {
      return static_cast<uint64_t>(files->as_int64());
    }
  }
  return Status::Corruption("unable to parse tape index " + IndexPath(tape) +
                            " - expected {\"files\": <count>}");
}

Status VirtualTapeDrive::StoreIndex(const std::string& tape, uint64_t files) {
  boost::json::object o;
  o["files"] = files;
  return WriteFileAtomic(fs_, IndexPath(tape), ToSerdePretty(o), SyncLevel::kFile);
}

Result<std::vector<std::string>> VirtualTapeDrive::OnlineMediaLabelTexts() {
  std::vector<DirEntry> entries;
  PBSKIT_RETURN_IF_ERROR(fs_->ReadDir(path_, &entries));
  std::vector<std::string> out;
  for (const auto& e : entries) {
    const std::string& n = e.name;
    if (n.size() > 10 && n.rfind("tape-", 0) == 0 && n.compare(n.size() - 5, 5, ".json") == 0) {
      out.push_back(n.substr(5, n.size() - 10));
    }
  }
  return out;
}

Status VirtualTapeDrive::LoadMedia(const std::string& label) {
  PBSKIT_RETURN_IF_ERROR(CheckTapeLabel(label));
  PBSKIT_ASSIGN_OR_RETURN(bool exists, PathExists(fs_, IndexPath(label)));
  if (!exists) PBSKIT_RETURN_IF_ERROR(StoreIndex(label, 0));
  return StoreStatus(VirtualDriveCurrentTape{label, 0});
}

Status VirtualTapeDrive::LoadMediaFromSlot(uint64_t slot) {
  if (slot < 1) return Status::InvalidArgument("invalid slot ID " + std::to_string(slot));
  PBSKIT_ASSIGN_OR_RETURN(auto tapes, OnlineMediaLabelTexts());
  if (slot > tapes.size()) {
    return Status::InvalidArgument("slot " + std::to_string(slot) + " is empty");
  }
  return LoadMedia(tapes[slot - 1]);
}

Status VirtualTapeDrive::UnloadMedia() { return StoreStatus(std::nullopt); }

Result<uint64_t> VirtualTapeDrive::TapeFiles() {
  PBSKIT_ASSIGN_OR_RETURN(auto cur, Loaded());
  return LoadIndex(cur.name);
}

Status VirtualTapeDrive::Rewind() {
  PBSKIT_ASSIGN_OR_RETURN(auto cur, Loaded());
  cur.pos = 0;
  return StoreStatus(cur);
}

Result<uint64_t> VirtualTapeDrive::CurrentFileNumber() {
  PBSKIT_ASSIGN_OR_RETURN(auto cur, Loaded());
  return cur.pos;
}

Status VirtualTapeDrive::MoveToEom() {
  PBSKIT_ASSIGN_OR_RETURN(auto cur, Loaded());
  PBSKIT_ASSIGN_OR_RETURN(cur.pos, LoadIndex(cur.name));
  return StoreStatus(cur);
}

Status VirtualTapeDrive::MoveToFile(uint64_t k) {
  PBSKIT_ASSIGN_OR_RETURN(auto cur, Loaded());
  PBSKIT_ASSIGN_OR_RETURN(uint64_t files, LoadIndex(cur.name));
  if (k > files) return Status::InvalidArgument("invalid file nr");
  cur.pos = k;
  return StoreStatus(cur);
}

Status VirtualTapeDrive::MoveToLastFile() {
  PBSKIT_ASSIGN_OR_RETURN(auto cur, Loaded());
  PBSKIT_ASSIGN_OR_RETURN(uint64_t files, LoadIndex(cur.name));
  if (files == 0) {
    return Status::InvalidArgument("move_to_last_file failed - media contains no data");
  }
  cur.pos = files - 1;
  return StoreStatus(cur);
}

Result<uint64_t> VirtualTapeDrive::TruncateTape(const std::string& tape, uint64_t pos) {
  std::vector<DirEntry> entries;
  PBSKIT_RETURN_IF_ERROR(fs_->ReadDir(path_, &entries));
  const std::string suffix = "-" + tape + ".json";
  uint64_t used = 0;
  for (const auto& e : entries) {
    const std::string& n = e.name;
    if (n.rfind("tapefile-", 0) != 0 || n.size() <= 9 + suffix.size() ||
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    std::string num = n.substr(9, n.size() - 9 - suffix.size());
    if (num.empty() || !std::all_of(num.begin(), num.end(), ::isdigit)) continue;
    uint64_t k = std::stoull(num);
    std::string full = JoinPath(path_, n);
    if (k >= pos) {
      PBSKIT_RETURN_IF_ERROR(fs_->Unlink(full));
    } else {
      PBSKIT_ASSIGN_OR_RETURN(auto st, fs_->Stat(full));
      used += static_cast<uint64_t>(st.st_size);
    }
  }
  return used;
}

Status VirtualTapeDrive::FormatMedia() {
  PBSKIT_ASSIGN_OR_RETURN(auto cur, Loaded());
  PBSKIT_RETURN_IF_ERROR(TruncateTape(cur.name, 0).status());
  PBSKIT_RETURN_IF_ERROR(StoreIndex(cur.name, 0));
  cur.pos = 0;
  return StoreStatus(cur);
}

Result<std::unique_ptr<TapeBlockReader>> VirtualTapeDrive::ReadNextFile() {
  PBSKIT_ASSIGN_OR_RETURN(auto cur, Loaded());
  PBSKIT_ASSIGN_OR_RETURN(uint64_t files, LoadIndex(cur.name));
  if (cur.pos >= files) return std::unique_ptr<TapeBlockReader>(new VirtualFileReader());
  std::string file = TapeFilePath(cur.name, cur.pos);
  PBSKIT_ASSIGN_OR_RETURN(int fd, fs_->Open(file, O_RDONLY | O_CLOEXEC));
  ScopedFd sfd(fs_, fd);
  PBSKIT_ASSIGN_OR_RETURN(auto st, fs_->FStat(sfd.get()));
  cur.pos += 1;
  PBSKIT_RETURN_IF_ERROR(StoreStatus(cur));
  return std::unique_ptr<TapeBlockReader>(
      new VirtualFileReader(fs_, std::move(sfd), static_cast<uint64_t>(st.st_size), file));
}

Result<std::unique_ptr<TapeBlockWriter>> VirtualTapeDrive::WriteFile() {
  PBSKIT_ASSIGN_OR_RETURN(auto cur, Loaded());
  PBSKIT_ASSIGN_OR_RETURN(uint64_t used, TruncateTape(cur.name, cur.pos));
  uint64_t files = cur.pos + 1;
  PBSKIT_RETURN_IF_ERROR(StoreIndex(cur.name, files));
  std::string file = TapeFilePath(cur.name, cur.pos);
  cur.pos = files;
  PBSKIT_RETURN_IF_ERROR(StoreStatus(cur));
  PBSKIT_ASSIGN_OR_RETURN(int fd, fs_->Open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  uint64_t free_space = used < max_size_ ? max_size_ - used : 0;
  uint64_t max_blocks = std::max<uint64_t>(2, free_space / kBlockSize);
  return std::unique_ptr<TapeBlockWriter>(
      new VirtualFileWriter(fs_, ScopedFd(fs_, fd), max_blocks, file));
}

Status VirtualTapeDrive::WriteMediaLabel(const MediaLabel& label) {
  PBSKIT_RETURN_IF_ERROR(FormatMedia());
  PBSKIT_ASSIGN_OR_RETURN(auto dev, WriteFile());
  return WriteMediaLabelFile(dev.get(), label, label.ctime);
}

Status VirtualTapeDrive::WriteMediaSetLabel(const MediaSetLabel& set) {
  if (set.encryption_key_fingerprint) {
    return Status::Unsupported("encryption is not implemented - internal error");
  }
  PBSKIT_ASSIGN_OR_RETURN(auto cur, Loaded());
  PBSKIT_ASSIGN_OR_RETURN(uint64_t files, LoadIndex(cur.name));
  if (files == 0) return Status::InvalidArgument("media is empty (no label).");
  PBSKIT_RETURN_IF_ERROR(MoveToFile(1));
  PBSKIT_ASSIGN_OR_RETURN(auto dev, WriteFile());
  return WriteMediaSetLabelFile(dev.get(), set, set.ctime);
}

Result<VirtualTapeLabels> VirtualTapeDrive::ReadLabel() {
  PBSKIT_RETURN_IF_ERROR(Rewind());
  VirtualTapeLabels out;
  {
    PBSKIT_ASSIGN_OR_RETURN(auto dev, ReadNextFile());
    BlockedReader r;
    PBSKIT_ASSIGN_OR_RETURN(auto kind, BlockedReader::Open(dev.get(), &r));
    if (kind == BlockedReader::OpenKind::kEndOfStream) return out;  // empty tape
    if (kind == BlockedReader::OpenKind::kEndOfFile) {
      return Status::Corruption("got unexpected filemark at BOT");
    }
    PBSKIT_ASSIGN_OR_RETURN(auto label, ReadMediaLabelFile(&r));
    out.label = std::move(label);
  }
  PBSKIT_ASSIGN_OR_RETURN(auto dev, ReadNextFile());
  BlockedReader r;
  PBSKIT_ASSIGN_OR_RETURN(auto kind, BlockedReader::Open(dev.get(), &r));
  if (kind == BlockedReader::OpenKind::kEndOfStream) return out;
  if (kind == BlockedReader::OpenKind::kEndOfFile) {
    return Status::Corruption("got unexpected filemark after label");
  }
  PBSKIT_ASSIGN_OR_RETURN(auto set, ReadMediaSetLabelFile(&r));
  out.media_set = std::move(set);
  return out;
}

}  // namespace pbskit::tape
