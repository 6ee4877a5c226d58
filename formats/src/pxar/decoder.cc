// Streaming pxar decoder (see decoder.h).
#include "pbskit/formats/pxar/decoder.h"

#include <algorithm>
#include <cstring>

#include "pxar/le.h"

namespace pbskit::pxar {

Status PxarSource::Skip(uint64_t n) {
  uint8_t buf[65536];
  while (n > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(n, sizeof(buf)));
    PBSKIT_ASSIGN_OR_RETURN(size_t got, Read({buf, want}));
    if (got == 0) return Status::Corruption("unexpected end of stream while skipping");
    n -= got;
  }
  return Status::OK();
}

Result<size_t> SpanSource::Read(std::span<uint8_t> buf) {
  size_t n = std::min(buf.size(), data_.size() - pos_);
  if (n > 0) std::memcpy(buf.data(), data_.data() + pos_, n);
  pos_ += n;
  return n;
}

Status SpanSource::Skip(uint64_t n) {
  if (n > data_.size() - pos_)
    return Status::Corruption("unexpected end of stream while skipping");
  pos_ += static_cast<size_t>(n);
  return Status::OK();
}

char EntryKindLetter(EntryKind kind, const Metadata& metadata) {
  switch (kind) {
    case EntryKind::kVersion: return 'v';
    case EntryKind::kPrelude: return 'P';
    case EntryKind::kDirectory: return 'd';
    case EntryKind::kFile: return 'f';
    case EntryKind::kSymlink: return 'l';
    case EntryKind::kHardlink: return 'h';
    case EntryKind::kDevice: return metadata.stat.file_type() == kModeIfblk ? 'b' : 'c';
    case EntryKind::kFifo: return 'p';
    case EntryKind::kSocket: return 's';
    case EntryKind::kDirectoryEnd: return 'e';
  }
  return '?';
}

Decoder::Decoder(PxarSource* archive, PxarSource* payload, DecoderOptions options)
    : archive_(archive), payload_(payload), opts_(std::move(options)) {}

Status Decoder::Corrupt(uint64_t at, const std::string& what) {
  return Status::Corruption(opts_.name + ": offset " + std::to_string(at) + ": " + what);
}

Status Decoder::ReadExact(uint8_t* buf, size_t n, uint64_t item_offset) {
  size_t done = 0;
  while (done < n) {
    PBSKIT_ASSIGN_OR_RETURN(size_t got, archive_->Read({buf + done, n - done}));
    if (got == 0)
      return Corrupt(item_offset, "unexpected end of archive (truncated at " +
                                      std::to_string(pos_ + done) + ")");
    done += got;
  }
  pos_ += n;
  return Status::OK();
}

Status Decoder::SkipArchive(uint64_t n, uint64_t item_offset) {
  Status st = archive_->Skip(n);
  if (st.IsCorruption())
    return Corrupt(item_offset, "unexpected end of archive inside item data");
  PBSKIT_RETURN_IF_ERROR(st);
  pos_ += n;
  return Status::OK();
}

// Reads a 16-byte header. *eof only when the stream ends exactly at a header boundary.
Status Decoder::ReadHeader(uint64_t* htype, uint64_t* full_size, bool* eof) {
  uint8_t h[kHeaderSize];
  size_t done = 0;
  while (done < kHeaderSize) {
    PBSKIT_ASSIGN_OR_RETURN(size_t got, archive_->Read({h + done, kHeaderSize - done}));
    if (got == 0) {
      if (done == 0 && eof != nullptr) {
        *eof = true;
        return Status::OK();
      }
      return Corrupt(pos_, done == 0 ? "unexpected end of archive"
                                     : "unexpected end of archive inside an item header");
    }
    done += got;
  }
  if (eof != nullptr) *eof = false;
  *htype = GetLe64(h);
  *full_size = GetLe64(h + 8);
  pos_ += kHeaderSize;
  return CheckSize(*htype, *full_size);
}

// The per-type size rules of the pxar crate, plus exact sizes for fixed structs.
Status Decoder::CheckSize(uint64_t htype, uint64_t full_size) {
  uint64_t at = pos_ - kHeaderSize;
  if (full_size < kHeaderSize)
    return Corrupt(at, std::string("invalid ") + ItemTypeName(htype) + " header: size " +
                           std::to_string(full_size) + " smaller than the header");
  uint64_t c = full_size - kHeaderSize;
  auto exact = [&](uint64_t want) -> Status {
    if (c != want)
      return Corrupt(at, std::string("bad ") + ItemTypeName(htype) + " size " +
                             std::to_string(c) + " (expected " + std::to_string(want) + ")");
    return Status::OK();
  };
  auto at_most = [&](uint64_t max) -> Status {
    if (c > max)
      return Corrupt(at, std::string("invalid content size (") + std::to_string(c) + " > " +
                             std::to_string(max) + ") of " + ItemTypeName(htype) + " item");
    return Status::OK();
  };
  switch (htype) {
    case kFormatVersion: return exact(8);
    case kEntry: return exact(40);
    case kEntryV1: return exact(32);
    case kFilename:
    case kSymlink: return at_most(kMaxPathLen + 1);
    case kHardlink: return at_most(kMaxPathLen + 1 + 8);
    case kDevice: return exact(16);
    case kXattr:
    case kFcaps: return at_most(kMaxXattrLen);
    case kAclUser:
    case kAclGroup:
    case kAclDefaultUser:
    case kAclDefaultGroup: return exact(16);
    case kAclGroupObj: return exact(8);
    case kAclDefault: return exact(32);
    case kQuotaProjid: return exact(8);
    case kPayloadRef: return exact(16);
    case kPrelude: return at_most(opts_.max_prelude);
    case kPayload:
    case kGoodbye: return Status::OK();
    default:
      return Corrupt(at, "unknown item type 0x" + [&] {
        char b[17];
        snprintf(b, sizeof(b), "%016llx", static_cast<unsigned long long>(htype));
        return std::string(b);
      }());
  }
}

Status Decoder::ReadContentBytes(uint64_t htype, uint64_t full_size, std::string* out) {
  (void)htype;
  uint64_t at = pos_ - kHeaderSize;
  out->resize(static_cast<size_t>(full_size - kHeaderSize));
  return ReadExact(reinterpret_cast<uint8_t*>(out->data()), out->size(), at);
}

Status Decoder::FinishPendingFile() {
  if (!in_file_) return Status::OK();
  in_file_ = false;
  if (!file_split_ && file_remaining_ > 0) {
    uint64_t n = file_remaining_;
    file_remaining_ = 0;
    return SkipArchive(n, pos_);
  }
  return Status::OK();
}

Status Decoder::FinishChild(uint64_t start, const std::string& name, uint64_t size,
                            uint64_t alt) {
  if (!opts_.validate_goodbye || dirs_.empty()) return Status::OK();
  dirs_.back().children.push_back(Child{HashFilename(name), start, size, alt});
  return Status::OK();
}

namespace {

std::string ToStr(uint64_t v) { return std::to_string(v); }

bool BstOrdered(const std::vector<uint64_t>& h) {
  // Iterative in-order walk of the implicit tree; hashes must not decrease.
  std::vector<size_t> stack;
  size_t i = 0;
  bool have_prev = false;
  uint64_t prev = 0;
  while (i < h.size() || !stack.empty()) {
    while (i < h.size()) {
      stack.push_back(i);
      i = 2 * i + 1;
    }
    size_t n = stack.back();
    stack.pop_back();
    if (have_prev && h[n] < prev) return false;
    prev = h[n];
    have_prev = true;
    i = 2 * n + 2;
  }
  return true;
}

}  // namespace

Status Decoder::ReadGoodbye(uint64_t full_size) {
  uint64_t g = pos_ - kHeaderSize;
  Dir& d = dirs_.back();
  uint64_t c = full_size - kHeaderSize;
  if (c < kGoodbyeItemSize || c % kGoodbyeItemSize != 0)
    return Corrupt(g, "goodbye table size " + ToStr(full_size) +
                          " is not 16 + a positive multiple of 24");
  uint64_t records = c / kGoodbyeItemSize - 1;
  if (!opts_.validate_goodbye) return SkipArchive(c, g);
  size_t n = d.children.size();
  if (records != n)
    return Corrupt(g, "goodbye table has " + ToStr(records) + " records, directory has " +
                          ToStr(n) + " entries");
  std::vector<uint8_t> table(static_cast<size_t>(c));
  PBSKIT_RETURN_IF_ERROR(ReadExact(table.data(), table.size(), g));
  const uint8_t* tail = table.data() + n * kGoodbyeItemSize;
  if (GetLe64(tail) != kGoodbyeTailMarker)
    return Corrupt(g, "goodbye table tail marker missing");
  uint64_t tail_off = GetLe64(tail + 8);
  bool root = dirs_.size() == 1;
  if (tail_off != g - d.entry_offset && !(root && tail_off == g))
    return Corrupt(g, "goodbye tail offset " + ToStr(tail_off) + " does not point to the "
                      "directory entry (expected " + ToStr(g - d.entry_offset) + ")");
  if (GetLe64(tail + 16) != full_size)
    return Corrupt(g, "goodbye tail size " + ToStr(GetLe64(tail + 16)) +
                          " differs from the table size " + ToStr(full_size));
  std::vector<bool> seen(n, false);
  std::vector<uint64_t> hashes(n);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* r = table.data() + i * kGoodbyeItemSize;
    uint64_t hash = GetLe64(r), off = GetLe64(r + 8), size = GetLe64(r + 16);
    hashes[i] = hash;
    if (off > g) return Corrupt(g, "goodbye record " + ToStr(i) + " points before the archive");
    uint64_t start = g - off;
    auto it = std::lower_bound(d.children.begin(), d.children.end(), start,
                               [](const Child& ch, uint64_t s) { return ch.start < s; });
    if (it == d.children.end() || it->start != start)
      return Corrupt(g, "goodbye record " + ToStr(i) + " points to offset " + ToStr(start) +
                            ", which is not an entry of this directory");
    size_t idx = static_cast<size_t>(it - d.children.begin());
    if (seen[idx]) return Corrupt(g, "goodbye table lists the entry at " + ToStr(start) + " twice");
    seen[idx] = true;
    if (it->hash != hash)
      return Corrupt(g, "goodbye record " + ToStr(i) + " hash does not match the file name at " +
                            ToStr(start));
    if (size != it->size && size != it->alt_size)
      return Corrupt(g, "goodbye record " + ToStr(i) + " size " + ToStr(size) +
                            " does not match the entry at " + ToStr(start) + " (" +
                            ToStr(it->size) + ")");
  }
  if (!BstOrdered(hashes)) return Corrupt(g, "goodbye table is not in binary search tree order");
  return Status::OK();
}

Result<bool> Decoder::Next(Entry* entry) {
  if (state_ == State::kFailed) return error_;
  if (state_ == State::kEnd) return false;
  bool produced = false;
  Status st = FinishPendingFile();
  while (st.ok() && !produced && state_ != State::kEnd) st = Step(entry, &produced);
  if (!st.ok()) {
    state_ = State::kFailed;
    error_ = st;
    return st;
  }
  return produced;
}

Status Decoder::Step(Entry* entry, bool* produced) {
  uint64_t htype = 0, full = 0, at = 0;
  if (have_peek_) {
    htype = peek_type_;
    full = peek_size_;
    at = peek_offset_;
    have_peek_ = false;
  } else {
    at = pos_;
    bool eof = false;
    PBSKIT_RETURN_IF_ERROR(ReadHeader(&htype, &full, &eof));
    if (eof) {
      return Corrupt(at, state_ == State::kBegin ? "empty archive"
                                                 : "unexpected end of archive");
    }
  }
  *entry = Entry{};
  if (state_ == State::kBegin && htype == kFormatVersion) {
    uint8_t v[8];
    PBSKIT_RETURN_IF_ERROR(ReadExact(v, 8, at));
    uint64_t version = GetLe64(v);
    if (version != 1 && version != 2) return Corrupt(at, "unknown format version " + ToStr(version));
    version_ = version;
    entry->kind = EntryKind::kVersion;
    entry->format_version = version;
    entry->offset = at;
    state_ = State::kAfterVersion;
    *produced = true;
    return Status::OK();
  }
  if (state_ == State::kAfterVersion && htype == kPrelude) {
    PBSKIT_RETURN_IF_ERROR(ReadContentBytes(htype, full, &entry->prelude));
    entry->kind = EntryKind::kPrelude;
    entry->offset = at;
    state_ = State::kInDirectory;  // the root ENTRY must follow; see dirs_.empty() below
    *produced = true;
    return Status::OK();
  }
  if (dirs_.empty()) {
    // The root directory's ENTRY.
    if (htype != kEntry && htype != kEntryV1)
      return Corrupt(at, std::string("expected pxar entry of type 'Entry', got ") +
                             ItemTypeName(htype));
    PBSKIT_ASSIGN_OR_RETURN(bool is_dir, ReadEntry(htype, full, entry));
    if (!is_dir) return Corrupt(at, "the archive root is not a directory");
    dirs_.push_back(Dir{0, at, 0, 0, {}});
    path_.clear();
    entry->path = "/";
    entry->offset = at;
    state_ = State::kInDirectory;
    *produced = true;
    return Status::OK();
  }
  if (htype == kGoodbye) {
    PBSKIT_RETURN_IF_ERROR(ReadGoodbye(full));
    if (opts_.report_directory_end) {
      entry->kind = EntryKind::kDirectoryEnd;
      entry->path = path_.empty() ? "/" : path_;
      entry->offset = at;
      *produced = true;
    }
    Dir done = std::move(dirs_.back());
    dirs_.pop_back();
    path_.resize(done.path_len);
    if (!dirs_.empty() && opts_.validate_goodbye) {
      uint64_t size = pos_ - done.start;
      dirs_.back().children.push_back(Child{done.hash, done.start, size, size});
    }
    if (dirs_.empty()) {
      uint8_t extra;
      PBSKIT_ASSIGN_OR_RETURN(size_t got, archive_->Read({&extra, 1}));
      if (got != 0) return Corrupt(pos_, "trailing data after the root goodbye table");
      state_ = State::kEnd;
      return Status::OK();
    }
    return Status::OK();
  }
  if (htype != kFilename)
    return Corrupt(at, std::string("expected FILENAME or GOODBYE item, got ") +
                           ItemTypeName(htype));
  std::string name;
  PBSKIT_RETURN_IF_ERROR(ReadContentBytes(htype, full, &name));
  if (name.empty() || name.back() != '\0')
    return Corrupt(at, "file name without terminating NUL");
  name.pop_back();
  Status vs = ValidateFilename(name);
  if (!vs.ok()) return Corrupt(at, vs.message());
  uint64_t start = at;
  uint64_t item_at = pos_;
  PBSKIT_RETURN_IF_ERROR(ReadHeader(&htype, &full, nullptr));
  std::string child_path = path_ + "/" + name;
  if (htype == kHardlink) {
    if (full - kHeaderSize <= 8) return Corrupt(item_at, "hardlink item too small");
    std::string data;
    PBSKIT_RETURN_IF_ERROR(ReadContentBytes(htype, full, &data));
    uint64_t off = GetLe64(reinterpret_cast<const uint8_t*>(data.data()));
    std::string target = data.substr(8);
    if (target.back() != '\0') return Corrupt(item_at, "hardlink target without terminating NUL");
    target.pop_back();
    if (target.empty() || target.find('\0') != std::string::npos)
      return Corrupt(item_at, "hardlink target is empty or contains NUL");
    if (off == 0 || off > start)
      return Corrupt(item_at, "hardlink offset " + ToStr(off) + " does not point to an earlier entry");
    entry->kind = EntryKind::kHardlink;
    entry->path = child_path;
    entry->link_target = std::move(target);
    entry->hardlink_offset = off;
    entry->offset = start;
    PBSKIT_RETURN_IF_ERROR(FinishChild(start, name, pos_ - start, pos_ - start));
    *produced = true;
    return Status::OK();
  }
  if (htype != kEntry && htype != kEntryV1)
    return Corrupt(item_at, std::string("expected ENTRY or HARDLINK after FILENAME, got ") +
                                ItemTypeName(htype));
  size_t parent_len = path_.size();
  entry->path = child_path;
  entry->offset = start;
  PBSKIT_ASSIGN_OR_RETURN(bool is_dir, ReadEntry(htype, full, entry));
  if (is_dir) {
    dirs_.push_back(Dir{parent_len, item_at, start, HashFilename(name), {}});
    path_ = child_path;
  } else {
    uint64_t end = pos_;
    uint64_t size = end - start, alt = size;
    if (entry->kind == EntryKind::kFile) {
      if (entry->payload_offset) size += entry->file_size;  // v2: metadata + file size
      else size += entry->file_size, alt = size;             // v1: data inline
    } else if (entry->kind == EntryKind::kFifo || entry->kind == EntryKind::kSocket) {
      size = alt = peek_offset_ - start;
    }
    PBSKIT_RETURN_IF_ERROR(FinishChild(start, name, size, alt));
  }
  *produced = true;
  return Status::OK();
}

}  // namespace pbskit::pxar
