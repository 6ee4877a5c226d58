// Media catalog v1.1 encoder/validator (see docs/formats/tape.md).
#include "pbskit/formats/tape/media_catalog.h"

#include <cstring>

#include "pbskit/formats/names.h"

namespace pbskit::tape {
namespace {

// Fixed struct sizes (#[repr(C)] with natural alignment of u64).
constexpr size_t kLabelEntrySize = 32;
constexpr size_t kChunkArchiveStartSize = 32;
constexpr size_t kChunkArchiveEndSize = 24;
constexpr size_t kSnapshotEntrySize = 32;

void PutLe(std::vector<uint8_t>* out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out->push_back(static_cast<uint8_t>(v >> (8 * i)));
}
uint64_t GetLe(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}
void PutBytes(std::vector<uint8_t>* out, const void* p, size_t n) {
  if (n == 0) return;
  size_t at = out->size();
  out->resize(at + n);
  std::memcpy(out->data() + at, p, n);
}
void PutZeros(std::vector<uint8_t>* out, size_t n) { out->insert(out->end(), n, 0); }

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<uint8_t>(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xe  ? 3
                 : (c >> 3) == 0x1e ? 4
                                    : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<uint8_t>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

uint64_t NextFileNumber(const std::optional<std::pair<Uuid, uint64_t>>& last) {
  return last ? last->second + 1 : 0;
}

// Sequential reader over the catalog bytes.
struct Cursor {
  std::span<const uint8_t> data;
  size_t pos = 0;
  Result<const uint8_t*> Take(size_t n, const char* what) {
    if (data.size() - pos < n) {
      return Status::Corruption(std::string("truncated media catalog: ") + what + " at offset " +
                                std::to_string(pos) + " needs " + std::to_string(n) + " bytes, " +
                                std::to_string(data.size() - pos) + " left");
    }
    const uint8_t* p = data.data() + pos;
    pos += n;
    return p;
  }
};

Status CheckMagic(const uint8_t* m) {
  if (std::memcmp(m, kMediaCatalogMagic10.data(), 8) == 0) {
    return Status::Corruption("old catalog format (v1.0) is no longer supported");
  }
  if (std::memcmp(m, kMediaCatalogMagic11.data(), 8) != 0) {
    return Status::Corruption("wrong magic number");
  }
  return Status::OK();
}

Status AsCorruption(const Status& s) { return s.ok() ? s : Status::Corruption(s.message()); }

}  // namespace

Status CheckTapeSnapshotName(std::string_view name) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("invalid snapshot name '" + std::string(name) + "' - " + why);
  };
  size_t slashes = 0;
  size_t split = std::string_view::npos;
  for (size_t i = name.size(); i-- > 0;) {
    if (name[i] == '/' && ++slashes == 3) {
      split = i;
      break;
    }
  }
  std::string_view snap = name;
  if (split != std::string_view::npos) {
    std::string_view ns = name.substr(0, split);
    snap = name.substr(split + 1);
    if (ns.empty()) return BackupDir::Parse(snap).status();  // PBS: empty path = root
    std::vector<std::string> comps;
    size_t start = 0;
    std::vector<std::string_view> parts;
    while (true) {
      size_t e = ns.find('/', start);
      parts.push_back(ns.substr(start, e == std::string_view::npos ? ns.npos : e - start));
      if (e == std::string_view::npos) break;
      start = e + 1;
    }
    if (parts.size() % 2 != 0) return bad("namespace prefix is not a list of ns/<name> pairs");
    for (size_t i = 0; i < parts.size(); i += 2) {
      if (parts[i] != "ns") return bad("namespace prefix component is not 'ns'");
      comps.emplace_back(parts[i + 1]);
    }
    auto parsed = BackupNamespace::FromComponents(comps);
    if (!parsed.ok()) return bad(parsed.status().message());
  }
  auto dir = BackupDir::Parse(snap);
  if (!dir.ok()) return bad(dir.status().message());
  return Status::OK();
}

// ---------------------------------------------------------------- builder

MediaCatalogBuilder::MediaCatalogBuilder(const Uuid& media_uuid) : media_uuid_(media_uuid) {
  PutBytes(&pending_, kMediaCatalogMagic11.data(), 8);
}

Result<MediaCatalogBuilder> MediaCatalogBuilder::Open(const Uuid& media_uuid,
                                                      std::span<const uint8_t> existing) {
  PBSKIT_ASSIGN_OR_RETURN(auto content, ParseMediaCatalog(existing, media_uuid, std::nullopt));
  if (content.archive_open) {
    return Status::InvalidArgument(
        "media catalog ends inside a chunk archive - cannot append (rebuild the catalog)");
  }
  MediaCatalogBuilder b(media_uuid);
  if (content.found_magic) b.pending_.clear();
  for (const auto& e : content.entries) {
    if (e.type == MediaCatalogEntry::Type::kLabel || e.type == MediaCatalogEntry::Type::kSnapshot ||
        e.type == MediaCatalogEntry::Type::kChunkArchiveEnd) {
      b.last_ = std::make_pair(e.uuid, e.file_number);
    }
  }
  return b;
}

Status MediaCatalogBuilder::RegisterLabel(const Uuid& uuid, uint64_t seq_nr, uint64_t file_number) {
  if (file_number >= 2) {
    return Status::InvalidArgument("register label failed: got wrong file number (" +
                                   std::to_string(file_number) + " >= 2)");
  }
  if (file_number == 0 && uuid != media_uuid_) {
    return Status::InvalidArgument("register label failed: uuid does not match");
  }
  if (current_) return Status::InvalidArgument("register label failed: inside chunk archive");
  uint64_t expected = NextFileNumber(last_);
  if (file_number != expected) {
    return Status::InvalidArgument("register label failed: got unexpected file number (" +
                                   std::to_string(file_number) + " < " + std::to_string(expected) +
                                   ")");
  }
  if (file_number == 0 && seq_nr != 0) {
    return Status::InvalidArgument("register_label failed - seq_nr should be 0");
  }
  if (record_) {
    pending_.push_back('L');
    PutLe(&pending_, file_number, 8);
    PutBytes(&pending_, uuid.data(), 16);
    PutLe(&pending_, seq_nr, 8);
  }
  last_ = std::make_pair(uuid, file_number);
  return Status::OK();
}

Status MediaCatalogBuilder::StartChunkArchive(const Uuid& content_uuid, uint64_t file_number,
                                              std::string_view store) {
  if (current_) return Status::InvalidArgument("start_chunk_archive failed: already started");
  if (file_number < 2) {
    return Status::InvalidArgument("start_chunk_archive failed: got wrong file number (" +
                                   std::to_string(file_number) + " < 2)");
  }
  uint64_t min = NextFileNumber(last_);
  if (file_number < min) {
    return Status::InvalidArgument("start_chunk_archive: got unexpected file number (" +
                                   std::to_string(file_number) + " < " + std::to_string(min) + ")");
  }
  if (store.size() > 255) {
    return Status::InvalidArgument("start_chunk_archive failed: store name too long");
  }
  if (!IsValidUtf8(store)) {
    return Status::InvalidArgument("start_chunk_archive failed: store name is not valid UTF-8");
  }
  if (record_) {
    pending_.push_back('A');
    PutLe(&pending_, file_number, 8);
    PutBytes(&pending_, content_uuid.data(), 16);
    pending_.push_back(static_cast<uint8_t>(store.size()));
    PutZeros(&pending_, 7);
    PutBytes(&pending_, store.data(), store.size());
  }
  current_ = OpenArchive{content_uuid, file_number, std::string(store)};
  return Status::OK();
}

Status MediaCatalogBuilder::RegisterChunk(const Digest& digest) {
  if (!current_) return Status::InvalidArgument("register_chunk failed: no archive started");
  if (record_) {
    pending_.push_back('C');
    PutBytes(&pending_, digest.data(), 32);
  }
  return Status::OK();
}

Status MediaCatalogBuilder::EndChunkArchive(const Uuid& content_uuid, uint64_t file_number) {
  if (!current_) return Status::InvalidArgument("end_chunk archive failed: not started");
  if (content_uuid != current_->uuid) {
    return Status::InvalidArgument("end_chunk_archive failed: got unexpected uuid");
  }
  if (file_number != current_->file_number) {
    return Status::InvalidArgument("end_chunk_archive failed: got unexpected file number (" +
                                   std::to_string(file_number) +
                                   " != " + std::to_string(current_->file_number) + ")");
  }
  if (record_) {
    pending_.push_back('E');
    PutLe(&pending_, file_number, 8);
    PutBytes(&pending_, content_uuid.data(), 16);
  }
  current_.reset();
  last_ = std::make_pair(content_uuid, file_number);
  return Status::OK();
}

Status MediaCatalogBuilder::RegisterSnapshot(const Uuid& content_uuid, uint64_t file_number,
                                             std::string_view store, std::string_view snapshot) {
  PBSKIT_RETURN_IF_ERROR(CheckTapeSnapshotName(snapshot));
  if (current_) {
    return Status::InvalidArgument("register_snapshot failed: inside chunk_archive");
  }
  if (file_number < 2) {
    return Status::InvalidArgument("register_snapshot failed: got wrong file number (" +
                                   std::to_string(file_number) + " < 2)");
  }
  uint64_t min = NextFileNumber(last_);
  if (file_number < min) {
    return Status::InvalidArgument("register_snapshot failed: got unexpected file number (" +
                                   std::to_string(file_number) + " < " + std::to_string(min) + ")");
  }
  if (store.size() > 255 || snapshot.size() > 65535) {
    return Status::InvalidArgument("register_snapshot failed: store or snapshot name too long");
  }
  if (!IsValidUtf8(store)) {
    return Status::InvalidArgument("register_snapshot failed: store name is not valid UTF-8");
  }
  if (record_) {
    pending_.push_back('S');
    PutLe(&pending_, file_number, 8);
    PutBytes(&pending_, content_uuid.data(), 16);
    pending_.push_back(static_cast<uint8_t>(store.size()));
    pending_.push_back(0);
    PutLe(&pending_, snapshot.size(), 2);
    PutZeros(&pending_, 4);
    PutBytes(&pending_, store.data(), store.size());
    pending_.push_back(':');
    PutBytes(&pending_, snapshot.data(), snapshot.size());
  }
  last_ = std::make_pair(content_uuid, file_number);
  return Status::OK();
}

// ---------------------------------------------------------------- loader

Result<MediaCatalogContent> ParseMediaCatalog(std::span<const uint8_t> bytes,
                                              const Uuid& media_uuid,
                                              const std::optional<MediaSetLabel>& media_set) {
  MediaCatalogContent out;
  if (bytes.empty()) return out;
  Cursor cur{bytes};
  PBSKIT_ASSIGN_OR_RETURN(const uint8_t* magic, cur.Take(8, "magic"));
  PBSKIT_RETURN_IF_ERROR(CheckMagic(magic));
  out.found_magic = true;

  MediaCatalogBuilder b(media_uuid);
  b.record_ = false;
  while (cur.pos < bytes.size()) {
    size_t entry_pos = cur.pos;
    MediaCatalogEntry e;
    PBSKIT_ASSIGN_OR_RETURN(const uint8_t* t, cur.Take(1, "entry type"));
    Status st;
    switch (*t) {
      case 'C': {
        e.type = MediaCatalogEntry::Type::kChunk;
        if (!b.current_) return Status::Corruption("register_chunk failed: no archive started");
        PBSKIT_ASSIGN_OR_RETURN(const uint8_t* p, cur.Take(32, "chunk entry"));
        std::memcpy(e.digest.data(), p, 32);
        e.file_number = b.current_->file_number;
        e.store = b.current_->store;
        out.content[e.store].chunk_index[e.digest] = e.file_number;
        break;
      }
      case 'A': {
        e.type = MediaCatalogEntry::Type::kChunkArchiveStart;
        PBSKIT_ASSIGN_OR_RETURN(const uint8_t* p,
                                cur.Take(kChunkArchiveStartSize, "chunk archive start entry"));
        e.file_number = GetLe(p, 8);
        std::memcpy(e.uuid.data(), p + 8, 16);
        size_t len = p[24];
        PBSKIT_ASSIGN_OR_RETURN(const uint8_t* s, cur.Take(len, "store name"));
        e.store.assign(reinterpret_cast<const char*>(s), len);
        st = b.StartChunkArchive(e.uuid, e.file_number, e.store);
        if (st.ok()) out.content[e.store];
        break;
      }
      case 'E': {
        e.type = MediaCatalogEntry::Type::kChunkArchiveEnd;
        PBSKIT_ASSIGN_OR_RETURN(const uint8_t* p,
                                cur.Take(kChunkArchiveEndSize, "chunk archive end entry"));
        e.file_number = GetLe(p, 8);
        std::memcpy(e.uuid.data(), p + 8, 16);
        if (b.current_) e.store = b.current_->store;
        st = b.EndChunkArchive(e.uuid, e.file_number);
        break;
      }
      case 'S': {
        e.type = MediaCatalogEntry::Type::kSnapshot;
        PBSKIT_ASSIGN_OR_RETURN(const uint8_t* p, cur.Take(kSnapshotEntrySize, "snapshot entry"));
        e.file_number = GetLe(p, 8);
        std::memcpy(e.uuid.data(), p + 8, 16);
        size_t store_len = p[24];
        size_t name_len = GetLe(p + 26, 2);
        PBSKIT_ASSIGN_OR_RETURN(const uint8_t* s, cur.Take(store_len + 1, "snapshot store name"));
        if (s[store_len] != ':') {
          return Status::Corruption("parse-error: missing separator in SnapshotEntry");
        }
        e.store.assign(reinterpret_cast<const char*>(s), store_len);
        PBSKIT_ASSIGN_OR_RETURN(const uint8_t* n, cur.Take(name_len, "snapshot name"));
        e.snapshot.assign(reinterpret_cast<const char*>(n), name_len);
        st = b.RegisterSnapshot(e.uuid, e.file_number, e.store, e.snapshot);
        if (st.ok()) out.content[e.store].snapshot_index[e.snapshot] = e.file_number;
        break;
      }
      case 'L': {
        e.type = MediaCatalogEntry::Type::kLabel;
        PBSKIT_ASSIGN_OR_RETURN(const uint8_t* p, cur.Take(kLabelEntrySize, "label entry"));
        e.file_number = GetLe(p, 8);
        std::memcpy(e.uuid.data(), p + 8, 16);
        e.seq_nr = GetLe(p + 24, 8);
        st = b.RegisterLabel(e.uuid, e.seq_nr, e.file_number);
        if (st.ok() && e.file_number == 1) {
          if (media_set && media_set->uuid != e.uuid) {
            return Status::Corruption("got unexpected media set uuid");
          }
          if (media_set && media_set->seq_nr != e.seq_nr) {
            return Status::Corruption("got unexpected media set sequence number");
          }
          out.media_set_uuid = e.uuid;
          out.media_set_seq_nr = e.seq_nr;
        }
        break;
      }
      default:
        return Status::Corruption("unknown entry type '" + std::to_string(*t) + "' at offset " +
                                  std::to_string(entry_pos));
    }
    PBSKIT_RETURN_IF_ERROR(AsCorruption(st));
    out.entries.push_back(std::move(e));
  }
  out.archive_open = b.current_.has_value();
  return out;
}

Result<MediaCatalogHeader> ParseMediaCatalogHeader(std::span<const uint8_t> bytes) {
  MediaCatalogHeader h;
  if (bytes.empty()) return h;
  Cursor cur{bytes};
  PBSKIT_ASSIGN_OR_RETURN(const uint8_t* magic, cur.Take(8, "magic"));
  PBSKIT_RETURN_IF_ERROR(CheckMagic(magic));
  h.found_magic = true;
  for (int i = 0; i < 2; ++i) {
    if (cur.pos == bytes.size()) break;
    PBSKIT_ASSIGN_OR_RETURN(const uint8_t* t, cur.Take(1, "entry type"));
    if (*t != 'L') return Status::Corruption("got unexpected entry type");
    PBSKIT_ASSIGN_OR_RETURN(const uint8_t* p, cur.Take(kLabelEntrySize, "label entry"));
    Uuid u;
    std::memcpy(u.data(), p + 8, 16);
    (i == 0 ? h.media_uuid : h.media_set_uuid) = u;
  }
  return h;
}

}  // namespace pbskit::tape
