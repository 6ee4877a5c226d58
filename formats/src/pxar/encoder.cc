// pxar encoder (see encoder.h). Item layout and goodbye tables follow the pxar crate exactly.
#include "pbskit/formats/pxar/encoder.h"

#include <cstring>

#include "pxar/le.h"

namespace pbskit::pxar {

Result<std::unique_ptr<Encoder>> Encoder::Create(PxarSink* archive, PxarSink* payload,
                                                 const Metadata& root,
                                                 const std::string* prelude) {
  if (archive == nullptr) return Status::InvalidArgument("pxar encoder: no archive output");
  if (!root.stat.is_dir())
    return Status::InvalidArgument("pxar encoder: root metadata must be a directory");
  if (prelude != nullptr && payload == nullptr)
    return Status::InvalidArgument("pxar encoder: a prelude needs a split (v2) archive");
  std::unique_ptr<Encoder> enc(new Encoder(archive, payload));
  if (payload != nullptr) {
    PBSKIT_RETURN_IF_ERROR(enc->WriteHeader(payload, kPayloadStartMarker, 0,
                                            &enc->payload_position_));
    LeBuf v;
    v.U64(2);
    PBSKIT_RETURN_IF_ERROR(enc->WriteItem(kFormatVersion, v.span()));
    if (prelude != nullptr) {
      PBSKIT_RETURN_IF_ERROR(enc->WriteItem(
          kPrelude, {reinterpret_cast<const uint8_t*>(prelude->data()), prelude->size()}));
    }
  }
  enc->stack_.push_back(DirState{});  // root: entry offset 0, as the pxar crate records it
  PBSKIT_RETURN_IF_ERROR(enc->EncodeMetadata(root));
  return enc;
}

Status Encoder::Check() const {
  if (failed_) return Status::Aborted("pxar encoder: an earlier write failed");
  if (finished_) return Status::InvalidArgument("pxar encoder: archive already finished");
  if (file_open_) return Status::InvalidArgument("pxar encoder: a file is still open");
  return Status::OK();
}

Status Encoder::Fail(Status st) {
  if (!st.ok()) failed_ = true;
  return st;
}

Status Encoder::WriteArchive(std::span<const uint8_t> data) {
  Status st = archive_->Write(data);
  if (!st.ok()) return Fail(st);
  position_ += data.size();
  return Status::OK();
}

Status Encoder::WriteHeader(PxarSink* sink, uint64_t htype, uint64_t content_size,
                            uint64_t* pos) {
  LeBuf h;
  h.U64(htype);
  h.U64(content_size + kHeaderSize);
  Status st = sink->Write(h.span());
  if (!st.ok()) return Fail(st);
  *pos += kHeaderSize;
  return Status::OK();
}

Status Encoder::WriteItem(uint64_t htype, std::span<const uint8_t> content) {
  LeBuf h;
  h.U64(htype);
  h.U64(content.size() + kHeaderSize);
  h.Bytes(content.data(), content.size());
  return WriteArchive(h.span());
}

Status Encoder::EncodeMetadata(const Metadata& m) {
  LeBuf e;
  e.U64(kEntry);
  e.U64(kHeaderSize + 40);
  e.U64(m.stat.mode);
  e.U64(m.stat.flags);
  e.U32(m.stat.uid);
  e.U32(m.stat.gid);
  e.U64(static_cast<uint64_t>(m.stat.mtime_secs));
  e.U32(m.stat.mtime_nanos);
  e.U32(0);
  for (const XAttr& x : m.xattrs) {
    if (x.name.empty() || x.name.find('\0') != std::string::npos)
      return Status::InvalidArgument("pxar encoder: bad xattr name");
    if (x.name.size() + 1 + x.value.size() > kMaxXattrLen)
      return Status::InvalidArgument("pxar encoder: xattr '" + x.name + "' too large");
    e.U64(kXattr);
    e.U64(kHeaderSize + x.name.size() + 1 + x.value.size());
    e.Bytes(x.name.data(), x.name.size());
    e.U8(0);
    e.Bytes(x.value.data(), x.value.size());
  }
  auto pair_items = [&e](uint64_t htype, const std::vector<AclEntry>& v) {
    for (const AclEntry& a : v) {
      e.U64(htype);
      e.U64(kHeaderSize + 16);
      e.U64(a.id);
      e.U64(a.permissions);
    }
  };
  pair_items(kAclUser, m.acl.users);
  pair_items(kAclGroup, m.acl.groups);
  if (m.acl.group_obj) {
    e.U64(kAclGroupObj);
    e.U64(kHeaderSize + 8);
    e.U64(*m.acl.group_obj);
  }
  if (m.acl.default_acl) {
    e.U64(kAclDefault);
    e.U64(kHeaderSize + 32);
    e.U64(m.acl.default_acl->user_obj_permissions);
    e.U64(m.acl.default_acl->group_obj_permissions);
    e.U64(m.acl.default_acl->other_permissions);
    e.U64(m.acl.default_acl->mask_permissions);
  }
  pair_items(kAclDefaultUser, m.acl.default_users);
  pair_items(kAclDefaultGroup, m.acl.default_groups);
  if (m.fcaps) {
    if (m.fcaps->size() > kMaxXattrLen)
      return Status::InvalidArgument("pxar encoder: file capabilities too large");
    e.U64(kFcaps);
    e.U64(kHeaderSize + m.fcaps->size());
    e.Bytes(m.fcaps->data(), m.fcaps->size());
  }
  if (m.quota_project_id) {
    e.U64(kQuotaProjid);
    e.U64(kHeaderSize + 8);
    e.U64(*m.quota_project_id);
  }
  return WriteArchive(e.span());
}

Status Encoder::EncodeFilename(std::string_view name) {
  Status st = ValidateFilename(name);
  if (!st.ok()) return st.WithContext("pxar encoder");
  LeBuf f;
  f.U64(kFilename);
  f.U64(kHeaderSize + name.size() + 1);
  f.Bytes(name.data(), name.size());
  f.U8(0);
  return WriteArchive(f.span());
}

Result<LinkOffset> Encoder::AddEntry(const Metadata* metadata, std::string_view name,
                                     uint64_t htype, std::span<const uint8_t> content,
                                     bool has_item) {
  PBSKIT_RETURN_IF_ERROR(Check());
  PBSKIT_RETURN_IF_ERROR(ValidateFilename(name).WithContext("pxar encoder"));
  uint64_t file_offset = position_;
  PBSKIT_RETURN_IF_ERROR(EncodeFilename(name));
  if (metadata != nullptr) PBSKIT_RETURN_IF_ERROR(EncodeMetadata(*metadata));
  if (has_item) PBSKIT_RETURN_IF_ERROR(WriteItem(htype, content));
  stack_.back().items.push_back(
      GoodbyeItem{HashFilename(name), file_offset, position_ - file_offset});
  return LinkOffset{file_offset};
}

Result<LinkOffset> Encoder::BeginFile(const Metadata& metadata, std::string_view name,
                                      uint64_t size) {
  PBSKIT_RETURN_IF_ERROR(Check());
  if (!metadata.stat.is_regular_file())
    return Status::InvalidArgument("pxar encoder: file metadata must be a regular file");
  PBSKIT_RETURN_IF_ERROR(ValidateFilename(name).WithContext("pxar encoder"));
  uint64_t file_offset = position_;
  PBSKIT_RETURN_IF_ERROR(EncodeFilename(name));
  PBSKIT_RETURN_IF_ERROR(EncodeMetadata(metadata));
  if (payload_ != nullptr) {
    uint64_t payload_offset = payload_position_;
    PBSKIT_RETURN_IF_ERROR(WriteHeader(payload_, kPayload, size, &payload_position_));
    LeBuf r;
    r.U64(payload_offset);
    r.U64(size);
    PBSKIT_RETURN_IF_ERROR(WriteItem(kPayloadRef, r.span()));
  } else {
    PBSKIT_RETURN_IF_ERROR(WriteHeader(archive_, kPayload, size, &position_));
  }
  // Goodbye size = metadata + file size, also for v2 where the data is elsewhere (as in pxar).
  file_item_ = GoodbyeItem{HashFilename(name), file_offset, position_ - file_offset + size};
  file_open_ = true;
  file_remaining_ = size;
  return LinkOffset{file_offset};
}

Status Encoder::WriteFileData(std::span<const uint8_t> data) {
  if (failed_) return Status::Aborted("pxar encoder: an earlier write failed");
  if (!file_open_) return Status::InvalidArgument("pxar encoder: no file open");
  if (data.size() > file_remaining_)
    return Status::InvalidArgument("pxar encoder: attempted to write more than the file size");
  if (payload_ != nullptr) {
    Status st = payload_->Write(data);
    if (!st.ok()) return Fail(st);
    payload_position_ += data.size();
  } else {
    PBSKIT_RETURN_IF_ERROR(WriteArchive(data));
  }
  file_remaining_ -= data.size();
  return Status::OK();
}

Status Encoder::EndFile() {
  if (!file_open_) return Status::InvalidArgument("pxar encoder: no file open");
  if (file_remaining_ != 0) {
    failed_ = true;
    return Status::InvalidArgument("pxar encoder: incomplete file (" +
                                   std::to_string(file_remaining_) + " bytes missing)");
  }
  file_open_ = false;
  stack_.back().items.push_back(file_item_);
  return Status::OK();
}

Result<LinkOffset> Encoder::AddFile(const Metadata& metadata, std::string_view name,
                                    std::span<const uint8_t> content) {
  PBSKIT_ASSIGN_OR_RETURN(LinkOffset off, BeginFile(metadata, name, content.size()));
  PBSKIT_RETURN_IF_ERROR(WriteFileData(content));
  PBSKIT_RETURN_IF_ERROR(EndFile());
  return off;
}

Result<LinkOffset> Encoder::AddPayloadRef(const Metadata& metadata, std::string_view name,
                                          uint64_t size, uint64_t payload_offset) {
  if (payload_ == nullptr)
    return Status::InvalidArgument("pxar encoder: payload references need a split archive");
  if (!metadata.stat.is_regular_file())
    return Status::InvalidArgument("pxar encoder: file metadata must be a regular file");
  if (payload_offset < payload_position_)
    return Status::InvalidArgument("pxar encoder: payload offset " +
                                   std::to_string(payload_offset) +
                                   " smaller than current position " +
                                   std::to_string(payload_position_));
  LeBuf r;
  r.U64(payload_offset);
  r.U64(size);
  return AddEntry(&metadata, name, kPayloadRef, r.span(), true);
}

Status Encoder::Advance(uint64_t size) {
  if (payload_ == nullptr)
    return Status::InvalidArgument("pxar encoder: Advance needs a split archive");
  payload_position_ += size;
  return Status::OK();
}

Status Encoder::AddSymlink(const Metadata& metadata, std::string_view name,
                           std::string_view target) {
  if (!metadata.stat.is_symlink())
    return Status::InvalidArgument("pxar encoder: symlink metadata must be a symlink");
  if (target.size() > kMaxPathLen)
    return Status::InvalidArgument("pxar encoder: symlink target too long");
  std::string data(target);
  data.push_back('\0');
  return AddEntry(&metadata, name, kSymlink,
                  {reinterpret_cast<const uint8_t*>(data.data()), data.size()}, true)
      .status();
}

Status Encoder::AddHardlink(std::string_view name, std::string_view target_path,
                            LinkOffset target) {
  PBSKIT_RETURN_IF_ERROR(Check());
  if (position_ <= target.raw)
    return Status::InvalidArgument(
        "pxar encoder: invalid hardlink offset, can only point to prior files");
  if (target_path.empty() || target_path.size() > kMaxPathLen ||
      target_path.find('\0') != std::string_view::npos)
    return Status::InvalidArgument("pxar encoder: bad hardlink target path");
  LeBuf h;
  h.U64(position_ - target.raw);
  h.Bytes(target_path.data(), target_path.size());
  h.U8(0);
  return AddEntry(nullptr, name, kHardlink, h.span(), true).status();
}

Status Encoder::AddDevice(const Metadata& metadata, std::string_view name,
                          const Device& device) {
  if (!metadata.stat.is_device())
    return Status::InvalidArgument("pxar encoder: device metadata must be a device");
  LeBuf d;
  d.U64(device.major);
  d.U64(device.minor);
  return AddEntry(&metadata, name, kDevice, d.span(), true).status();
}

Status Encoder::AddFifo(const Metadata& metadata, std::string_view name) {
  if (!metadata.stat.is_fifo())
    return Status::InvalidArgument("pxar encoder: fifo metadata must be a fifo");
  return AddEntry(&metadata, name, 0, {}, false).status();
}

Status Encoder::AddSocket(const Metadata& metadata, std::string_view name) {
  if (!metadata.stat.is_socket())
    return Status::InvalidArgument("pxar encoder: socket metadata must be a socket");
  return AddEntry(&metadata, name, 0, {}, false).status();
}

Status Encoder::CreateDirectory(std::string_view name, const Metadata& metadata) {
  PBSKIT_RETURN_IF_ERROR(Check());
  if (!metadata.stat.is_dir())
    return Status::InvalidArgument("pxar encoder: directory metadata must be a directory");
  PBSKIT_RETURN_IF_ERROR(ValidateFilename(name).WithContext("pxar encoder"));
  DirState d;
  d.file_offset = position_;
  d.name_hash = HashFilename(name);
  PBSKIT_RETURN_IF_ERROR(EncodeFilename(name));
  d.entry_offset = position_;
  PBSKIT_RETURN_IF_ERROR(EncodeMetadata(metadata));
  stack_.push_back(std::move(d));
  return Status::OK();
}

Status Encoder::WriteGoodbye() {
  DirState& d = stack_.back();
  uint64_t goodbye_offset = position_;
  std::vector<GoodbyeItem> table = BuildGoodbyeTable(std::move(d.items));
  d.items.clear();
  uint64_t full_size = kHeaderSize + kGoodbyeItemSize * (table.size() + 1);
  LeBuf g;
  g.U64(kGoodbye);
  g.U64(full_size);
  for (const GoodbyeItem& it : table) {
    g.U64(it.hash);
    g.U64(goodbye_offset - it.offset);
    g.U64(it.size);
  }
  g.U64(kGoodbyeTailMarker);
  g.U64(goodbye_offset - d.entry_offset);
  g.U64(full_size);
  return WriteArchive(g.span());
}

Status Encoder::FinishDirectory() {
  PBSKIT_RETURN_IF_ERROR(Check());
  if (stack_.size() < 2)
    return Status::InvalidArgument("pxar encoder: no open subdirectory (use Finish)");
  PBSKIT_RETURN_IF_ERROR(WriteGoodbye());
  DirState done = std::move(stack_.back());
  stack_.pop_back();
  stack_.back().items.push_back(
      GoodbyeItem{done.name_hash, done.file_offset, position_ - done.file_offset});
  return Status::OK();
}

Status Encoder::Finish() {
  PBSKIT_RETURN_IF_ERROR(Check());
  if (stack_.size() != 1)
    return Status::InvalidArgument("pxar encoder: " + std::to_string(stack_.size() - 1) +
                                   " subdirectories still open");
  PBSKIT_RETURN_IF_ERROR(WriteGoodbye());
  stack_.pop_back();
  if (payload_ != nullptr) {
    uint64_t dummy = 0;
    PBSKIT_RETURN_IF_ERROR(WriteHeader(payload_, kPayloadTailMarker, 0, &dummy));
  }
  finished_ = true;
  return Status::OK();
}

}  // namespace pbskit::pxar
