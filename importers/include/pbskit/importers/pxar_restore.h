// Reading pxar archives stored in a datastore: the pxar stream of a `.pxar.didx` (or of the split
// pair `.mpxar.didx` + `.ppxar.didx`) served chunk by chunk to the pxar decoder with every chunk
// checked, PBS's include/exclude path patterns, and a restore into a directory with the rules
// of `proxmox-backup-client restore` (PBS's pxar extractor).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/datastore/archive_reader.h"
#include "pbskit/datastore/datastore.h"
#include "pbskit/formats/crypt_config.h"
#include "pbskit/formats/dynamic_index.h"
#include "pbskit/formats/manifest.h"
#include "pbskit/formats/pxar/decoder.h"
#include "pbskit/formats/status.h"
#include "pbskit/importers/pxar_fs.h"

namespace pbskit::importers {

// Sequential pxar input over a dynamic index: bytes are served from the decoded chunks in
// stream order; each chunk is loaded from the chunk store and checked (blob CRC, crypt mode,
// decryption, digest, length: DecodeAndCheckChunk) when the first byte of it is needed. Skip
// moves past whole chunks without loading them. The store, index and key are borrowed and must
// outlive the source. Not thread safe.
class DidxPxarSource : public pxar::PxarSource {
 public:
  DidxPxarSource(const ChunkStore& chunks, const DynamicIndex& index, CryptMode crypt_mode,
                 const CryptConfig* crypt, std::string name);

  // Errors: NotFound "<name>: chunk <hex>: missing in chunk store (<path>)", Corruption from
  // the chunk checks ("chunk <hex>: ..."), InvalidArgument for an encrypted chunk without key,
  // IoError for read errors (each prefixed with the archive name).
  Result<size_t> Read(std::span<uint8_t> buf) override;
  // Corruption "<name>: unexpected end of archive" when n goes past the stream end.
  Status Skip(uint64_t n) override;

  uint64_t position() const { return pos_; }
  uint64_t size() const { return index_.size(); }
  uint64_t chunks_loaded() const { return chunks_loaded_; }

 private:
  Status Load(size_t i);

  const ChunkStore& chunks_;
  const DynamicIndex& index_;
  CryptMode crypt_mode_;
  const CryptConfig* crypt_;
  std::string name_;
  uint64_t pos_ = 0;
  size_t loaded_ = SIZE_MAX;  // index of the chunk in data_
  uint64_t loaded_start_ = 0;
  std::vector<uint8_t> raw_, data_;
  uint64_t chunks_loaded_ = 0;
};

// Server names of the pxar archive(s) a user's archive name stands for, as PBS's
// get_pxar_archive_names resolves them: a name the manifest lists is used as given, and an
// `.mpxar`/`.ppxar` name becomes the split pair; a `.pxar` name the manifest lacks falls back
// to the split pair `<base>.mpxar.didx` + `<base>.ppxar.didx`.
struct PxarArchiveNames {
  std::string archive;                 // "root.pxar.didx" or "root.mpxar.didx"
  std::optional<std::string> payload;  // "root.ppxar.didx" for a split archive
};
// `name` may carry .didx or not. NotFound "archive not found in manifest" when nothing fits;
// InvalidArgument when the name is not a pxar archive name (.pxar/.mpxar/.ppxar).
Result<PxarArchiveNames> ResolvePxarArchiveNames(const Manifest& manifest, std::string_view name);

// True for server or user names of pxar archives (".pxar", ".mpxar", ".ppxar", with or without
// ".didx").
bool IsPxarArchiveName(std::string_view name);

// A pxar archive of a snapshot opened for sequential decoding: the manifest and index checks of
// ArchiveReader::Open for each stream, then one decoder over DidxPxarSource inputs.
class StorePxarArchive {
 public:
  // `crypt` is borrowed (may be null). Errors as ResolvePxarArchiveNames and
  // ArchiveReader::Open.
  static Result<std::unique_ptr<StorePxarArchive>> Open(std::shared_ptr<DataStore> store,
                                                        const BackupNamespace& ns,
                                                        const BackupDir& dir, std::string_view name,
                                                        const CryptConfig* crypt,
                                                        const pxar::DecoderOptions& options);

  pxar::Decoder* decoder() { return decoder_.get(); }
  const PxarArchiveNames& names() const { return names_; }
  const Manifest& manifest() const { return archive_reader_->manifest(); }
  // Stream bytes (metadata + payload) and chunks read so far.
  uint64_t total_size() const;
  uint64_t chunks_loaded() const;

 private:
  StorePxarArchive() = default;
  std::shared_ptr<DataStore> store_;
  PxarArchiveNames names_;
  std::unique_ptr<ArchiveReader> archive_reader_, payload_reader_;
  std::unique_ptr<DidxPxarSource> archive_src_, payload_src_;
  std::unique_ptr<pxar::Decoder> decoder_;
};

// PBS's path match list (pathpatterns crate with PatternFlag::PATH_NAME, as
// `proxmox-backup-client restore --pattern` builds it): git wildmatch globs where `*` and `?`
// stop at '/', `**` spans directories, `[...]` classes (with `^` negation and [:name:] classes)
// and `\` escapes. A leading `!` makes an exclude pattern, trailing '/' restricts it to
// directories. A pattern matches a path when it matches the whole path or any suffix starting
// after a '/'. The last matching pattern decides. Immutable after Add; thread safe to read.
class PxarMatchList {
 public:
  // Adds one pattern (include unless it starts with '!'). InvalidArgument "invalid pattern
  // '<p>': <reason>" (trailing backslash, unclosed character class, malformed named class, NUL).
  Status Add(std::string_view pattern);
  bool empty() const { return entries_.empty(); }
  // Include (true), exclude (false) or no pattern matched (nullopt). `path` is the archive path
  // ("/etc/hosts"), `mode` the entry's st_mode (0 for hardlinks: only untyped patterns match).
  std::optional<bool> Matches(std::string_view path, uint64_t mode) const;

  struct Component;  // parsed glob element (private to the implementation)
  struct Entry;

 private:
  std::vector<std::shared_ptr<const Entry>> entries_;
};

struct PxarRestoreOptions {
  PxarFeatures features;    // xattrs, acls, fcaps, quota ids, chattr, devices, fifos, sockets
  bool owner = true;        // chown (PBS WITH_OWNER; off with --ignore-ownership)
  bool permissions = true;  // chmod (PBS WITH_PERMISSIONS; off with --ignore-permissions)
  const PxarMatchList* match_list = nullptr;  // borrowed; null or empty = restore everything
  bool allow_existing_dirs = false;
  bool overwrite_files = false;
  bool overwrite_symlinks = false;
  bool overwrite_hardlinks = false;
  // Where to write the PRELUDE of a v2 archive (empty: not written).
  std::string prelude_target;
  std::function<void(const std::string& path)> on_entry;  // each restored entry's archive path
  std::function<void(const std::string&)> warn;
};

struct PxarRestoreStats {
  uint64_t entries = 0;  // restored entries (directories included, root excluded)
  uint64_t files = 0;
  uint64_t file_bytes = 0;
  std::vector<std::string> warnings;
};

// Restores what `decoder` yields into `target` (created with missing parents, mode 0700; the
// archive root's metadata is applied to it at the end), the way PBS's extract_archive does:
//   * with a match list, an entry is restored when the last matching pattern includes it; an
//     entry no pattern matches inherits its directory's decision (default: restore everything
//     without patterns, nothing with patterns);
//   * a directory is created at once when its parent is selected and no pattern excludes it,
//     else only when something inside it is restored; its metadata is applied when left;
//   * directories are made with their archived permissions; an existing one is an error
//     unless allow_existing_dirs; existing files/symlinks/hardlinks only with the overwrite
//     options;
//   * metadata in PBS order: owner, xattrs, fcaps, ACLs, quota project id, mode, mtime (atime
//     untouched), chattr flags.
// Nothing is created outside `target`: directories are opened with O_NOFOLLOW and hardlink
// targets are resolved component by component. A hardlink whose target was not restored
// because of the match list is skipped with a warning.
// The decoder must be fresh and built with report_directory_end = true (InvalidArgument
// otherwise, detected at the first directory end missing). Errors: decoder errors unchanged;
// AlreadyExists / PermissionDenied / IoError naming the archive path for file system failures;
// Corruption for archives whose structure the restore cannot follow.
Result<PxarRestoreStats> RestorePxar(pxar::Decoder* decoder, const std::string& target,
                                     const PxarRestoreOptions& options);

// One entry of a directory listing of a pxar archive in a snapshot.
struct PxarListEntry {
  char type = 'f';               // catalog letter: d f l h b c p s
  std::string name;              // file name (raw bytes)
  std::string path;              // archive path: "/etc/hosts"
  std::optional<uint64_t> size;  // regular files
  std::optional<int64_t> mtime;  // regular files (epoch seconds)
};

struct PxarListing {
  std::string archive;  // server name the listing is of ("root.pxar.didx", "root.mpxar.didx")
  bool from_catalog = false;
  // The directory's children in archive order, or the entry itself when `path` names a
  // non-directory.
  std::vector<PxarListEntry> entries;
  bool is_directory = true;
};

// Lists `path` ("/" or "" = the archive root; "etc/nginx" or "/etc/nginx") of the pxar archive
// `name` (resolved like ResolvePxarArchiveNames) of a snapshot: through catalog.pcat1.didx when
// the snapshot has one that contains the archive (what the catalog shell's `ls` reads), else by
// decoding the archive's metadata (the .mpxar of a split archive; a unified archive is decoded
// with file contents skipped chunk-wise). Every chunk read is checked. `crypt` borrowed (may be
// null). Errors: NotFound "no such file or directory '<path>' in <archive>", archive and chunk
// errors as StorePxarArchive::Open / DidxPxarSource, Corruption for a damaged catalog.
Result<PxarListing> ListPxarArchive(std::shared_ptr<DataStore> store, const BackupNamespace& ns,
                                    const BackupDir& dir, std::string_view name,
                                    std::string_view path, const CryptConfig* crypt);

}  // namespace pbskit::importers
