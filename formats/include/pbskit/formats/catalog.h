// Catalog v1 (`catalog.pcat1.didx` stream, FORMATS.md §6): directory blocks with child
// blocks written before their parent, the root block last, then the root offset.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/formats/status.h"

namespace pbskit {

inline constexpr std::array<uint8_t, 8> kCatalogMagic = {0x91, 0xfd, 0x60, 0xf9,
                                                         0xc4, 0x67, 0x58, 0xd5};

// Catalog variable-length integers. Encoders append to *out. Decoders read at *pos, advance
// it and fail with Corruption (naming `what`) on truncation or overlong encodings.
void AppendVarU64(uint64_t v, std::vector<uint8_t>* out);
void AppendVarI64(int64_t v, std::vector<uint8_t>* out);
Result<uint64_t> ReadVarU64(std::span<const uint8_t> data, size_t* pos, std::string_view what);
Result<int64_t> ReadVarI64(std::span<const uint8_t> data, size_t* pos, std::string_view what);

enum class CatalogEntryType : char {
  kDirectory = 'd',
  kFile = 'f',
  kSymlink = 'l',
  kHardlink = 'h',
  kBlockDevice = 'b',
  kCharDevice = 'c',
  kFifo = 'p',
  kSocket = 's',
};

struct CatalogEntry {
  CatalogEntryType type;
  std::string name;     // raw bytes, no '/'
  uint64_t offset = 0;  // directories: absolute offset of the child block
  uint64_t size = 0;    // files
  int64_t mtime = 0;    // files (epoch seconds)
};

// Writes a catalog stream in memory. Usage: StartDirectory("root.pxar.didx"), Add* entries,
// nested Start/EndDirectory, EndDirectory, ..., Finish. Not thread safe.
class CatalogWriter {
 public:
  CatalogWriter();
  // Opens a sub-directory of the current one. InvalidArgument for an empty name, a name
  // containing '/' or longer than 4095 bytes, or after Finish.
  Status StartDirectory(std::string_view name);
  // Closes the current directory (writes its block). InvalidArgument at the root level.
  Status EndDirectory();
  Status AddFile(std::string_view name, uint64_t size, int64_t mtime);
  Status AddSymlink(std::string_view name);
  Status AddHardlink(std::string_view name);
  Status AddBlockDevice(std::string_view name);
  Status AddCharDevice(std::string_view name);
  Status AddFifo(std::string_view name);
  Status AddSocket(std::string_view name);
  // Writes the root block and the root offset; returns the whole stream. InvalidArgument when
  // directories are still open or Finish was already called.
  Result<std::vector<uint8_t>> Finish();

 private:
  struct Dir {
    std::string name;
    std::vector<CatalogEntry> entries;
  };
  Status AddEntry(CatalogEntryType type, std::string_view name, uint64_t size, int64_t mtime);
  uint64_t WriteBlock(const std::vector<CatalogEntry>& entries);
  std::vector<Dir> stack_;
  std::vector<uint8_t> out_;
  bool finished_ = false;
};

// Reads a catalog stream held in memory (the reader keeps a copy). Thread safe after Open.
// Appends `path` quoted like Rust's Debug output for paths (as PBS prints catalog entries):
// `"` and `\` escaped, \t \r \n \0, other control characters as \u{hex}, bytes that are not
// valid UTF-8 as \xNN, everything else verbatim.
void AppendQuotedPath(std::string_view path, std::string* out);

class CatalogReader {
 public:
  // Checks the magic, the minimum size and the root offset. Corruption (naming `name`)
  // otherwise.
  static Result<CatalogReader> Open(std::span<const uint8_t> data, const std::string& name);
  // Offset of the root block.
  uint64_t root_offset() const { return root_; }
  // Decodes the block at `offset`. Corruption for any malformed byte.
  Result<std::vector<CatalogEntry>> ReadDirectory(uint64_t offset) const;
  // Depth-first walk (entries in stored order, a directory before its contents); `fn` gets
  // the path relative to the catalog root ("root.pxar.didx/etc/hosts") and the entry.
  // Corruption for malformed blocks or directory cycles/depth over 4096.
  Status Walk(const std::function<Status(const std::string& path, const CatalogEntry&)>& fn) const;
  // Entries of the directory at `path` ("" or "/" = the root with one entry per archive,
  // "root.pxar.didx/etc"; a leading '/' and empty components are ignored). NotFound naming the
  // missing component, InvalidArgument when a component is not a directory, Corruption for
  // malformed blocks.
  Result<std::vector<CatalogEntry>> ListDirectory(std::string_view path) const;
  // PBS's CatalogReader::list_dir_contents lookup (what the catalog API serves): `path` "/" is
  // the root (one directory per archive); otherwise one leading '/' is dropped and the rest is
  // split at every '/' with empty components kept, each looked up in turn (the first entry of
  // a name wins). Returns the entries of the directory found. NotFound `path "<path>" not
  // found in catalog` (the path quoted as by AppendQuotedPath), InvalidArgument "parent is not
  // a directory - internal error" when a component or the target is not a directory,
  // Corruption for malformed blocks.
  Result<std::vector<CatalogEntry>> ListDirContents(std::string_view path) const;
  // The listing PBS's catalog dump prints, one line per entry:
  //   d "path"  |  f "path" SIZE MTIME  |  l/h/b/c/p/s "path"
  Result<std::string> List() const;

 private:
  CatalogReader() = default;
  Status WalkBlock(uint64_t offset, const std::string& prefix, int depth,
                   const std::function<Status(const std::string&, const CatalogEntry&)>& fn) const;
  std::vector<uint8_t> data_;
  std::string name_;
  uint64_t root_ = 0;
};

}  // namespace pbskit
