// pxar decoder: ENTRY items with their attributes, and file contents (see decoder.h).
#include <algorithm>
#include <cstring>

#include "pbskit/formats/pxar/decoder.h"
#include "pxar/le.h"

namespace pbskit::pxar {

namespace {

std::string Str(uint64_t v) { return std::to_string(v); }

const char* ModeKindName(uint64_t mode) {
  switch (mode & kModeIfmt) {
    case kModeIfreg: return "regular file";
    case kModeIfdir: return "directory";
    case kModeIflnk: return "symlink";
    case kModeIfchr: return "character device";
    case kModeIfblk: return "block device";
    case kModeIfifo: return "fifo";
    case kModeIfsock: return "socket";
    default: return "unknown";
  }
}

}  // namespace

Result<bool> Decoder::ReadEntry(uint64_t htype, uint64_t full_size, Entry* entry) {
  (void)full_size;
  uint64_t at = pos_ - kHeaderSize;
  Stat& st = entry->metadata.stat;
  if (htype == kEntry) {
    uint8_t b[40];
    PBSKIT_RETURN_IF_ERROR(ReadExact(b, sizeof(b), at));
    st.mode = GetLe64(b);
    st.flags = GetLe64(b + 8);
    st.uid = GetLe32(b + 16);
    st.gid = GetLe32(b + 20);
    st.mtime_secs = static_cast<int64_t>(GetLe64(b + 24));
    st.mtime_nanos = GetLe32(b + 32);
    if (st.mtime_nanos >= 1000000000u) return Corrupt(at, "entry mtime nanoseconds out of range");
  } else {
    uint8_t b[32];
    PBSKIT_RETURN_IF_ERROR(ReadExact(b, sizeof(b), at));
    st.mode = GetLe64(b);
    st.flags = GetLe64(b + 8);
    st.uid = GetLe32(b + 16);
    st.gid = GetLe32(b + 20);
    uint64_t ns = GetLe64(b + 24);
    st.mtime_secs = static_cast<int64_t>(ns / 1000000000ULL);
    st.mtime_nanos = static_cast<uint32_t>(ns % 1000000000ULL);
  }
  Metadata& m = entry->metadata;
  for (;;) {
    uint64_t t = 0, full = 0, item = pos_;
    bool eof = false;
    PBSKIT_RETURN_IF_ERROR(ReadHeader(&t, &full, &eof));
    if (eof) return Corrupt(item, "unexpected end of archive inside an entry");
    uint64_t c = full - kHeaderSize;
    auto need = [&](bool ok, const char* kind) -> Status {
      if (!ok)
        return Corrupt(item, std::string(ItemTypeName(t)) + " item in an entry whose mode " +
                                 "is not a " + kind);
      return Status::OK();
    };
    switch (t) {
      case kXattr: {
        std::string data;
        PBSKIT_RETURN_IF_ERROR(ReadContentBytes(t, full, &data));
        size_t nul = data.find('\0');
        if (nul == std::string::npos) return Corrupt(item, "missing value separator in xattr");
        if (nul == 0) return Corrupt(item, "xattr with an empty name");
        m.xattrs.push_back(XAttr{data.substr(0, nul), data.substr(nul + 1)});
        break;
      }
      case kAclUser:
      case kAclGroup:
      case kAclDefaultUser:
      case kAclDefaultGroup: {
        uint8_t b[16];
        PBSKIT_RETURN_IF_ERROR(ReadExact(b, 16, item));
        AclEntry a{GetLe64(b), GetLe64(b + 8)};
        (t == kAclUser ? m.acl.users
         : t == kAclGroup ? m.acl.groups
         : t == kAclDefaultUser ? m.acl.default_users
                                : m.acl.default_groups)
            .push_back(a);
        break;
      }
      case kAclGroupObj: {
        if (m.acl.group_obj) return Corrupt(item, "multiple acl group object entries detected");
        uint8_t b[8];
        PBSKIT_RETURN_IF_ERROR(ReadExact(b, 8, item));
        m.acl.group_obj = GetLe64(b);
        break;
      }
      case kAclDefault: {
        if (m.acl.default_acl) return Corrupt(item, "multiple acl default entries detected");
        uint8_t b[32];
        PBSKIT_RETURN_IF_ERROR(ReadExact(b, 32, item));
        m.acl.default_acl =
            AclDefault{GetLe64(b), GetLe64(b + 8), GetLe64(b + 16), GetLe64(b + 24)};
        break;
      }
      case kFcaps: {
        if (m.fcaps) return Corrupt(item, "multiple file capability entries detected");
        std::string data;
        PBSKIT_RETURN_IF_ERROR(ReadContentBytes(t, full, &data));
        m.fcaps = std::move(data);
        break;
      }
      case kQuotaProjid: {
        if (m.quota_project_id)
          return Corrupt(item, "multiple quota project id entries detected");
        uint8_t b[8];
        PBSKIT_RETURN_IF_ERROR(ReadExact(b, 8, item));
        m.quota_project_id = GetLe64(b);
        break;
      }
      case kSymlink: {
        PBSKIT_RETURN_IF_ERROR(need(st.is_symlink(), "symlink"));
        std::string data;
        PBSKIT_RETURN_IF_ERROR(ReadContentBytes(t, full, &data));
        if (data.empty() || data.back() != '\0')
          return Corrupt(item, "symlink target without terminating NUL");
        data.pop_back();
        entry->kind = EntryKind::kSymlink;
        entry->link_target = std::move(data);
        return false;
      }
      case kDevice: {
        PBSKIT_RETURN_IF_ERROR(need(st.is_device(), "device"));
        uint8_t b[16];
        PBSKIT_RETURN_IF_ERROR(ReadExact(b, 16, item));
        entry->kind = EntryKind::kDevice;
        entry->device = Device{GetLe64(b), GetLe64(b + 8)};
        return false;
      }
      case kPayload: {
        PBSKIT_RETURN_IF_ERROR(need(st.is_regular_file(), "regular file"));
        entry->kind = EntryKind::kFile;
        entry->file_size = c;
        in_file_ = true;
        file_split_ = false;
        file_remaining_ = c;
        file_size_ = c;
        file_read_ = 0;
        return false;
      }
      case kPayloadRef: {
        PBSKIT_RETURN_IF_ERROR(need(st.is_regular_file(), "regular file"));
        uint8_t b[16];
        PBSKIT_RETURN_IF_ERROR(ReadExact(b, 16, item));
        uint64_t off = GetLe64(b), size = GetLe64(b + 8);
        if (off < payload_min_next_)
          return Corrupt(item, "payload offset " + Str(off) +
                                   " smaller than the end of the previous payload (" +
                                   Str(payload_min_next_) + ")");
        if (size > UINT64_MAX - kHeaderSize - off)
          return Corrupt(item, "payload reference size " + Str(size) + " overflows");
        payload_min_next_ = off + kHeaderSize + size;
        entry->kind = EntryKind::kFile;
        entry->file_size = size;
        entry->payload_offset = off;
        in_file_ = true;
        file_split_ = true;
        file_ref_offset_ = off;
        file_size_ = size;
        file_read_ = 0;
        file_header_checked_ = false;
        return false;
      }
      case kFilename:
      case kGoodbye:
        have_peek_ = true;
        peek_type_ = t;
        peek_size_ = full;
        peek_offset_ = item;
        if (st.is_dir()) {
          entry->kind = EntryKind::kDirectory;
          return true;
        }
        if (st.is_fifo()) {
          entry->kind = EntryKind::kFifo;
          return false;
        }
        if (st.is_socket()) {
          entry->kind = EntryKind::kSocket;
          return false;
        }
        return Corrupt(item, std::string("entry with mode ") + ModeKindName(st.mode) +
                                 " has no content item before " + ItemTypeName(t));
      default:
        return Corrupt(item, std::string("unexpected ") + ItemTypeName(t) +
                                 " item inside an entry");
    }
  }
}

Result<size_t> Decoder::ReadContent(std::span<uint8_t> buf) {
  if (state_ == State::kFailed) return error_;
  if (!in_file_) return Status::InvalidArgument(opts_.name + ": no file content to read");
  if (!file_split_) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), file_remaining_));
    if (n == 0) return size_t{0};
    Status st = ReadExact(buf.data(), n, pos_);
    if (!st.ok()) {
      state_ = State::kFailed;
      error_ = st;
      return st;
    }
    file_remaining_ -= n;
    return n;
  }
  if (payload_ == nullptr)
    return Status::Unsupported(opts_.name + ": split archive without payload input");
  const std::string pname = opts_.name + " payload";
  auto fail = [&](Status st) -> Status {
    state_ = State::kFailed;
    error_ = st;
    return st;
  };
  auto read_exact = [&](uint8_t* p, size_t n) -> Status {
    size_t done = 0;
    while (done < n) {
      PBSKIT_ASSIGN_OR_RETURN(size_t got, payload_->Read({p + done, n - done}));
      if (got == 0)
        return Status::Corruption(pname + ": offset " + Str(payload_pos_ + done) +
                                  ": unexpected end of payload stream");
      done += got;
    }
    payload_pos_ += n;
    return Status::OK();
  };
  if (!file_header_checked_) {
    uint8_t h[kHeaderSize];
    if (!payload_started_) {
      Status st = read_exact(h, kHeaderSize);
      if (!st.ok()) return fail(st);
      if (GetLe64(h) != kPayloadStartMarker || GetLe64(h + 8) != kHeaderSize)
        return fail(Status::Corruption(pname + ": offset 0: missing PAYLOAD_START_MARKER"));
      payload_started_ = true;
    }
    if (file_ref_offset_ < payload_pos_)
      return fail(Status::Corruption(pname + ": offset " + Str(file_ref_offset_) +
                                     ": payload reference behind the stream position " +
                                     Str(payload_pos_)));
    Status st = payload_->Skip(file_ref_offset_ - payload_pos_);
    if (!st.ok()) return fail(st);
    payload_pos_ = file_ref_offset_;
    st = read_exact(h, kHeaderSize);
    if (!st.ok()) return fail(st);
    if (GetLe64(h) != kPayload || GetLe64(h + 8) != file_size_ + kHeaderSize)
      return fail(Status::Corruption(pname + ": offset " + Str(file_ref_offset_) +
                                     ": expected PAYLOAD item of " + Str(file_size_) +
                                     " bytes, got " + ItemTypeName(GetLe64(h)) +
                                     " of size " + Str(GetLe64(h + 8))));
    file_header_checked_ = true;
  }
  size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), file_size_ - file_read_));
  if (n == 0) return size_t{0};
  Status st = read_exact(buf.data(), n);
  if (!st.ok()) return fail(st);
  file_read_ += n;
  return n;
}

}  // namespace pbskit::pxar
