// Catalog v1 codec (FORMATS.md §6).
#include "pbskit/formats/catalog.h"

#include <algorithm>
#include <cstdio>

#include "pbskit/formats/fixed_index.h"  // LoadLe64 / StoreLe64

namespace pbskit {
namespace {

constexpr size_t kMaxNameLen = 4096;  // names must be shorter (PBS's reader buffer)
constexpr int kMaxDepth = 4096;

bool ValidType(uint8_t t) {
  switch (t) {
    case 'd':
    case 'f':
    case 'l':
    case 'h':
    case 'b':
    case 'c':
    case 'p':
    case 's':
      return true;
    default:
      return false;
  }
}

}  // namespace

void AppendQuotedPath(std::string_view s, std::string* out) {
  out->push_back('"');
  size_t i = 0;
  char buf[16];
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out->append("\\\"");
          break;
        case '\\':
          out->append("\\\\");
          break;
        case '\t':
          out->append("\\t");
          break;
        case '\r':
          out->append("\\r");
          break;
        case '\n':
          out->append("\\n");
          break;
        case '\0':
          out->append("\\0");
          break;
        default:
          if (c < 0x20 || c == 0x7f) {
            std::snprintf(buf, sizeof buf, "\\u{%x}", c);
            out->append(buf);
          } else {
            out->push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    // Validate one UTF-8 sequence.
    size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
    bool valid = len != 0 && i + len <= s.size();
    for (size_t k = 1; valid && k < len; ++k) {
      valid = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    }
    if (valid && len >= 3) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      if (c == 0xe0 && c1 < 0xa0) valid = false;   // overlong
      if (c == 0xed && c1 >= 0xa0) valid = false;  // surrogate
      if (c == 0xf0 && c1 < 0x90) valid = false;   // overlong
      if (c == 0xf4 && c1 >= 0x90) valid = false;  // > U+10FFFF
    }
    if (!valid) {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out->append(buf);
      ++i;
      continue;
    }
    out->append(s.substr(i, len));
    i += len;
  }
  out->push_back('"');
}

void AppendVarU64(uint64_t v, std::vector<uint8_t>* out) {
  while (v >= 128) {
    out->push_back(static_cast<uint8_t>(0x80 | (v & 0x7f)));
    v >>= 7;
  }
  out->push_back(static_cast<uint8_t>(v));
}

void AppendVarI64(int64_t v, std::vector<uint8_t>* out) {
  if (v >= 0) {
    AppendVarU64(static_cast<uint64_t>(v), out);
    return;
  }
  // Magnitude (2^63 for INT64_MIN), every group flagged, then a 0x00 end marker.
  uint64_t d = static_cast<uint64_t>(-(v + 1)) + 1;
  while (d >= 128) {
    out->push_back(static_cast<uint8_t>(0x80 | (d & 0x7f)));
    d >>= 7;
  }
  out->push_back(static_cast<uint8_t>(0x80 | d));
  out->push_back(0);
}

Result<uint64_t> ReadVarU64(std::span<const uint8_t> data, size_t* pos, std::string_view what) {
  uint64_t v = 0;
  for (int i = 0; i < 10; ++i) {
    if (*pos >= data.size()) {
      return Status::Corruption(std::string(what) + ": truncated variable-length integer");
    }
    const uint8_t t = data[(*pos)++];
    const uint64_t bits = t & 0x7f;
    const int shift = i * 7;
    if (shift == 63 && bits > 1) {
      return Status::Corruption(std::string(what) + ": variable-length integer exceeds 64 bits");
    }
    v |= bits << shift;
    if (t < 128) return v;
  }
  return Status::Corruption(std::string(what) + ": variable-length integer longer than 10 bytes");
}

Result<int64_t> ReadVarI64(std::span<const uint8_t> data, size_t* pos, std::string_view what) {
  uint64_t v = 0;
  for (int i = 0; i < 11; ++i) {
    if (*pos >= data.size()) {
      return Status::Corruption(std::string(what) + ": truncated variable-length integer");
    }
    const uint8_t t = data[(*pos)++];
    if (t == 0) {
      if (v == 0) return int64_t{0};
      if (v > (uint64_t{1} << 63)) {
        return Status::Corruption(std::string(what) + ": negative integer out of i64 range");
      }
      return -static_cast<int64_t>(v - 1) - 1;
    }
    const uint64_t bits = t & 0x7f;
    const int shift = i * 7;
    if (shift >= 64 || (shift == 63 && bits > 1)) {
      return Status::Corruption(std::string(what) + ": variable-length integer exceeds 64 bits");
    }
    v |= bits << shift;
    if (t < 128) {
      if (v > static_cast<uint64_t>(INT64_MAX)) {
        return Status::Corruption(std::string(what) + ": integer out of i64 range");
      }
      return static_cast<int64_t>(v);
    }
  }
  return Status::Corruption(std::string(what) + ": variable-length integer without end marker");
}

// ---- writer ----

CatalogWriter::CatalogWriter() {
  out_.assign(kCatalogMagic.begin(), kCatalogMagic.end());
  stack_.push_back(Dir{});  // the root directory (its entries are the archives)
}

namespace {
Status CheckName(std::string_view name) {
  if (name.empty()) return Status::InvalidArgument("catalog: empty entry name");
  if (name.find('/') != std::string_view::npos) {
    return Status::InvalidArgument("catalog: entry name '" + std::string(name) + "' contains '/'");
  }
  if (name.size() >= kMaxNameLen) {
    return Status::InvalidArgument("catalog: entry name of " + std::to_string(name.size()) +
                                   " bytes is too long (limit 4095)");
  }
  return Status::OK();
}
}  // namespace

Status CatalogWriter::StartDirectory(std::string_view name) {
  if (finished_) return Status::InvalidArgument("catalog: already finished");
  PBSKIT_RETURN_IF_ERROR(CheckName(name));
  stack_.push_back(Dir{std::string(name), {}});
  return Status::OK();
}

uint64_t CatalogWriter::WriteBlock(const std::vector<CatalogEntry>& entries) {
  const uint64_t start = out_.size();
  std::vector<uint8_t> table;
  AppendVarU64(entries.size(), &table);
  for (const CatalogEntry& e : entries) {
    table.push_back(static_cast<uint8_t>(e.type));
    AppendVarU64(e.name.size(), &table);
    table.insert(table.end(), e.name.begin(), e.name.end());
    if (e.type == CatalogEntryType::kDirectory) {
      AppendVarU64(start - e.offset, &table);
    } else if (e.type == CatalogEntryType::kFile) {
      AppendVarU64(e.size, &table);
      AppendVarI64(e.mtime, &table);
    }
  }
  AppendVarU64(table.size(), &out_);
  out_.insert(out_.end(), table.begin(), table.end());
  return start;
}

Status CatalogWriter::EndDirectory() {
  if (finished_) return Status::InvalidArgument("catalog: already finished");
  if (stack_.size() <= 1) return Status::InvalidArgument("catalog: end of directory at level 0");
  Dir dir = std::move(stack_.back());
  stack_.pop_back();
  const uint64_t start = WriteBlock(dir.entries);
  CatalogEntry e{CatalogEntryType::kDirectory, std::move(dir.name), start, 0, 0};
  stack_.back().entries.push_back(std::move(e));
  return Status::OK();
}

Status CatalogWriter::AddEntry(CatalogEntryType type, std::string_view name, uint64_t size,
                               int64_t mtime) {
  if (finished_) return Status::InvalidArgument("catalog: already finished");
  PBSKIT_RETURN_IF_ERROR(CheckName(name));
  stack_.back().entries.push_back(CatalogEntry{type, std::string(name), 0, size, mtime});
  return Status::OK();
}

Status CatalogWriter::AddFile(std::string_view name, uint64_t size, int64_t mtime) {
  return AddEntry(CatalogEntryType::kFile, name, size, mtime);
}
Status CatalogWriter::AddSymlink(std::string_view name) {
  return AddEntry(CatalogEntryType::kSymlink, name, 0, 0);
}
Status CatalogWriter::AddHardlink(std::string_view name) {
  return AddEntry(CatalogEntryType::kHardlink, name, 0, 0);
}
Status CatalogWriter::AddBlockDevice(std::string_view name) {
  return AddEntry(CatalogEntryType::kBlockDevice, name, 0, 0);
}
Status CatalogWriter::AddCharDevice(std::string_view name) {
  return AddEntry(CatalogEntryType::kCharDevice, name, 0, 0);
}
Status CatalogWriter::AddFifo(std::string_view name) {
  return AddEntry(CatalogEntryType::kFifo, name, 0, 0);
}
Status CatalogWriter::AddSocket(std::string_view name) {
  return AddEntry(CatalogEntryType::kSocket, name, 0, 0);
}

Result<std::vector<uint8_t>> CatalogWriter::Finish() {
  if (finished_) return Status::InvalidArgument("catalog: already finished");
  if (stack_.size() != 1) {
    return Status::InvalidArgument("catalog: unable to finish at level " +
                                   std::to_string(stack_.size() - 1));
  }
  const uint64_t root = WriteBlock(stack_.back().entries);
  uint8_t le[8];
  StoreLe64(le, root);
  out_.insert(out_.end(), le, le + 8);
  finished_ = true;
  return std::move(out_);
}

// ---- reader ----

Result<CatalogReader> CatalogReader::Open(std::span<const uint8_t> data, const std::string& name) {
  if (data.size() < kCatalogMagic.size() + 8) {
    return Status::Corruption(name + ": catalog too short (" + std::to_string(data.size()) +
                              " bytes)");
  }
  if (!std::equal(kCatalogMagic.begin(), kCatalogMagic.end(), data.begin())) {
    return Status::Corruption(name + ": got unexpected magic number for catalog");
  }
  CatalogReader r;
  r.root_ = LoadLe64(data.data() + data.size() - 8);
  if (r.root_ < kCatalogMagic.size() || r.root_ >= data.size() - 8) {
    return Status::Corruption(name + ": catalog root offset " + std::to_string(r.root_) +
                              " outside the directory blocks");
  }
  r.data_.assign(data.begin(), data.end());
  r.name_ = name;
  return r;
}

Result<std::vector<CatalogEntry>> CatalogReader::ReadDirectory(uint64_t offset) const {
  const std::string where = name_ + ": catalog block at " + std::to_string(offset);
  const size_t blocks_end = data_.size() - 8;
  if (offset < kCatalogMagic.size() || offset >= blocks_end) {
    return Status::Corruption(where + ": offset outside the directory blocks");
  }
  std::span<const uint8_t> all(data_.data(), blocks_end);
  size_t pos = offset;
  PBSKIT_ASSIGN_OR_RETURN(uint64_t len, ReadVarU64(all, &pos, where));
  if (len < 1)
    return Status::Corruption(where + ": got small directory size " + std::to_string(len));
  if (len > blocks_end - pos) return Status::Corruption(where + ": block runs past the end");
  std::span<const uint8_t> block = all.subspan(pos, len);
  size_t p = 0;
  PBSKIT_ASSIGN_OR_RETURN(uint64_t count, ReadVarU64(block, &p, where));
  if (count > block.size()) return Status::Corruption(where + ": entry count too large");
  std::vector<CatalogEntry> entries;
  entries.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    if (p >= block.size()) return Status::Corruption(where + ": entry table truncated");
    const uint8_t t = block[p++];
    if (!ValidType(t)) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "0x%02x", t);
      return Status::Corruption(where + ": invalid catalog entry type " + buf);
    }
    PBSKIT_ASSIGN_OR_RETURN(uint64_t name_len, ReadVarU64(block, &p, where));
    if (name_len >= kMaxNameLen) {
      return Status::Corruption(where + ": directory entry name too long (" +
                                std::to_string(name_len) + " >= 4096)");
    }
    if (name_len > block.size() - p) return Status::Corruption(where + ": name truncated");
    CatalogEntry e{static_cast<CatalogEntryType>(t),
                   std::string(reinterpret_cast<const char*>(block.data() + p), name_len), 0, 0, 0};
    p += name_len;
    if (e.type == CatalogEntryType::kDirectory) {
      PBSKIT_ASSIGN_OR_RETURN(uint64_t rel, ReadVarU64(block, &p, where));
      if (rel == 0 || rel > offset - kCatalogMagic.size()) {
        return Status::Corruption(where + ": got wrong directory offset " + std::to_string(rel));
      }
      e.offset = offset - rel;
    } else if (e.type == CatalogEntryType::kFile) {
      PBSKIT_ASSIGN_OR_RETURN(e.size, ReadVarU64(block, &p, where));
      PBSKIT_ASSIGN_OR_RETURN(e.mtime, ReadVarI64(block, &p, where));
    }
    entries.push_back(std::move(e));
  }
  if (p != block.size()) {
    return Status::Corruption(where + ": unable to parse whole catalog data block");
  }
  return entries;
}

Status CatalogReader::WalkBlock(
    uint64_t offset, const std::string& prefix, int depth,
    const std::function<Status(const std::string&, const CatalogEntry&)>& fn) const {
  if (depth > kMaxDepth) {
    return Status::Corruption(name_ + ": catalog directories nested deeper than 4096 levels");
  }
  PBSKIT_ASSIGN_OR_RETURN(std::vector<CatalogEntry> entries, ReadDirectory(offset));
  for (const CatalogEntry& e : entries) {
    std::string path = prefix.empty() ? e.name : prefix + "/" + e.name;
    PBSKIT_RETURN_IF_ERROR(fn(path, e));
    if (e.type == CatalogEntryType::kDirectory) {
      PBSKIT_RETURN_IF_ERROR(WalkBlock(e.offset, path, depth + 1, fn));
    }
  }
  return Status::OK();
}

Status CatalogReader::Walk(
    const std::function<Status(const std::string& path, const CatalogEntry&)>& fn) const {
  return WalkBlock(root_, "", 0, fn);
}

Result<std::vector<CatalogEntry>> CatalogReader::ListDirectory(std::string_view path) const {
  uint64_t block = root_;
  std::string walked;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    const std::string_view component = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (component.empty()) continue;
    PBSKIT_ASSIGN_OR_RETURN(std::vector<CatalogEntry> entries, ReadDirectory(block));
    auto it = std::find_if(entries.begin(), entries.end(),
                           [&](const CatalogEntry& e) { return e.name == component; });
    if (!walked.empty()) walked.push_back('/');
    walked.append(component);
    if (it == entries.end()) {
      return Status::NotFound(name_ + ": no entry '" + walked + "' in the catalog");
    }
    if (it->type != CatalogEntryType::kDirectory) {
      return Status::InvalidArgument(name_ + ": '" + walked + "' is not a directory");
    }
    block = it->offset;
  }
  return ReadDirectory(block);
}

Result<std::vector<CatalogEntry>> CatalogReader::ListDirContents(std::string_view path) const {
  uint64_t block = root_;
  if (path != "/") {
    std::string_view rest = path;
    if (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
    bool is_dir = true;
    size_t pos = 0;
    for (;;) {
      const size_t slash = std::min(rest.find('/', pos), rest.size());
      const std::string_view component = rest.substr(pos, slash - pos);
      if (!is_dir) return Status::InvalidArgument("parent is not a directory - internal error");
      PBSKIT_ASSIGN_OR_RETURN(std::vector<CatalogEntry> entries, ReadDirectory(block));
      auto it = std::find_if(entries.begin(), entries.end(),
                             [&](const CatalogEntry& e) { return e.name == component; });
      if (it == entries.end()) {
        std::string msg = "path ";
        AppendQuotedPath(path, &msg);
        return Status::NotFound(msg + " not found in catalog");
      }
      is_dir = it->type == CatalogEntryType::kDirectory;
      block = it->offset;
      if (slash == rest.size()) break;
      pos = slash + 1;
    }
    if (!is_dir) return Status::InvalidArgument("parent is not a directory - internal error");
  }
  return ReadDirectory(block);
}

Result<std::string> CatalogReader::List() const {
  std::string out;
  PBSKIT_RETURN_IF_ERROR(Walk([&out](const std::string& path, const CatalogEntry& e) {
    out.push_back(static_cast<char>(e.type));
    out.push_back(' ');
    AppendQuotedPath(path, &out);
    if (e.type == CatalogEntryType::kFile) {
      out.push_back(' ');
      out.append(std::to_string(e.size));
      out.push_back(' ');
      out.append(std::to_string(e.mtime));
    }
    out.push_back('\n');
    return Status::OK();
  }));
  return out;
}

}  // namespace pbskit
