// The file browser of a snapshot (PBS src/api2/admin/datastore.rs `catalog` and
// `pxar_file_download`): directory listings through the snapshot's catalog or an archive's
// metadata, single files, and directories as zip or tar.zst made while they are sent.
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "api.h"
#include "datastore_access.h"
#include "pbskit/datastore/pxar_archive.h"
#include "pbskit/datastore/pxar_export.h"
#include "pbskit/formats/catalog.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/pxar/listing.h"

namespace pbskit::server {
namespace {

constexpr size_t kPieceSize = 1 << 20;

// PBS answers every failure of these endpoints with 400, except the privilege check (403).
Status BadRequest(const Status& st) {
  if (st.ok() || st.code() == Code::kPermissionDenied) return st;
  return Status::InvalidArgument(st.message());
}

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Length of the longest prefix of s[i..] that can start a valid UTF-8 sequence (1 for a byte
// that cannot), and whether the whole sequence is there and valid (Unicode's "maximal subpart").
size_t Utf8Sequence(std::string_view s, size_t i, bool* valid) {
  // Lead bytes: how many continuation bytes follow and the range allowed for the first one
  // (excluding overlong forms, surrogates and code points above U+10FFFF).
  struct Lead {
    unsigned char from, to;
    size_t need;
    unsigned char lo, hi;
  };
  static constexpr Lead kLeads[] = {{0xc2, 0xdf, 1, 0x80, 0xbf}, {0xe0, 0xe0, 2, 0xa0, 0xbf},
                                    {0xe1, 0xec, 2, 0x80, 0xbf}, {0xed, 0xed, 2, 0x80, 0x9f},
                                    {0xee, 0xef, 2, 0x80, 0xbf}, {0xf0, 0xf0, 3, 0x90, 0xbf},
                                    {0xf1, 0xf3, 3, 0x80, 0xbf}, {0xf4, 0xf4, 3, 0x80, 0x8f}};
  const auto c = static_cast<unsigned char>(s[i]);
  *valid = c < 0x80;
  const Lead* lead = nullptr;
  for (const Lead& l : kLeads)
    if (c >= l.from && c <= l.to) lead = &l;
  if (!lead) return 1;
  size_t k = 1;
  for (; k <= lead->need && i + k < s.size(); ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < (k == 1 ? lead->lo : 0x80) || b > (k == 1 ? lead->hi : 0xbf)) break;
  }
  *valid = k == lead->need + 1;
  return k;
}

// Rust's String::from_utf8_lossy: each maximal invalid subpart becomes U+FFFD.
std::string Utf8Lossy(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    bool valid = false;
    const size_t n = Utf8Sequence(s, i, &valid);
    if (valid)
      out.append(s.substr(i, n));
    else
      out.append("\xef\xbf\xbd");
    i += n;
  }
  return out;
}

// std::str::from_utf8 with Rust's Utf8Error text.
Status CheckUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    bool valid = false;
    const size_t n = Utf8Sequence(s, i, &valid);
    if (!valid) {
      if (i + n == s.size() && static_cast<unsigned char>(s[i]) >= 0xc2 &&
          static_cast<unsigned char>(s[i]) <= 0xf4)
        return Status::InvalidArgument("incomplete utf-8 byte sequence from index " +
                                       std::to_string(i));
      return Status::InvalidArgument("invalid utf-8 sequence of " + std::to_string(n) +
                                     " bytes from index " + std::to_string(i));
    }
    i += n;
  }
  return Status::OK();
}

// PBS's BackupArchiveName parsing: a name with its server extension stays, a user name gets it
// by its type ("root.pxar" -> "root.pxar.didx").
Result<std::string> ParseBackupArchiveName(const std::string& name) {
  // Rust's Path::extension: none for ".." or a name whose only dot is its first character.
  const size_t dot = name.rfind('.');
  const std::string ext =
      dot != std::string::npos && dot > 0 && name != ".." ? name.substr(dot + 1) : std::string();
  if (ext == "didx" || ext == "fidx" || ext == "blob") return name;
  if (ext == "pxar" || ext == "mpxar" || ext == "ppxar" || ext == "pcat1") return name + ".didx";
  if (ext == "img") return name + ".fidx";
  if (ext == "conf" || ext == "json" || ext == "key" || ext == "log") return name + ".blob";
  return Status::InvalidArgument("failed to parse archive type for '" + name + "'");
}

// PBS's read_backup_index: a missing manifest is "not found" in PBS's words.
Result<Manifest> LoadSnapshotManifest(const GroupTarget& g, const BackupDir& dir) {
  auto m = g.store->LoadManifest(g.ns, dir);
  if (!m.ok() && m.status().IsNotFound())
    return Status::InvalidArgument("manifest not found for snapshot '" + dir.ToString() + "'");
  if (!m.ok()) return BadRequest(m.status());
  return m;
}

Status RefuseEncrypted(const Manifest& manifest, const std::string& name) {
  const FileInfo* f = manifest.Lookup(name);
  if (f && f->crypt_mode == CryptMode::kEncrypt)
    return Status::InvalidArgument("cannot decode '" + name + "' - is encrypted");
  return Status::OK();
}

Result<PxarArchiveNames> ResolveArchive(const Manifest& manifest, const std::string& name) {
  auto names = ResolvePxarArchiveNames(manifest, name);
  if (!names.ok() && names.status().IsNotFound())
    return Status::InvalidArgument("archive not found in manifest");
  if (!names.ok()) return BadRequest(names.status());
  return names;
}

// pxar's Accessor::lookup reading `path` as a Rust Path: ".." anywhere is refused, empty and
// "." components vanish, and a path without any component is the root unless it is empty.
// Returns the archive path to find ("/etc/hosts"), or nullopt when nothing can match.
Result<std::optional<std::string>> LookupTarget(std::string_view path) {
  const std::vector<std::string> parts = SplitArchivePath(path);
  for (const std::string& p : parts)
    if (p == "..") return Status::InvalidArgument("cannot enter parent directory in archive");
  if (parts.empty()) {
    if (path.empty()) return std::optional<std::string>();
    return std::optional<std::string>("/");
  }
  std::string target;
  for (const std::string& p : parts) target += "/" + p;
  return std::optional<std::string>(std::move(target));
}

// ArchiveEntry (pbs-datastore catalog.rs): the path base64-encoded, its last component as text.
boost::json::object ArchiveEntryJson(std::string_view filepath, char type,
                                     std::optional<uint64_t> size, std::optional<int64_t> mtime) {
  boost::json::object o;
  o["filepath"] = Base64Encode(Bytes(filepath));
  o["text"] = Utf8Lossy(filepath.substr(filepath.rfind('/') + 1));
  o["type"] = std::string(1, type);
  o["leaf"] = type != 'd';
  if (type == 'f') {
    if (size) o["size"] = *size;
    if (mtime) o["mtime"] = *mtime;
  }
  return o;
}

ParamDef ArchiveNameParam() {
  ParamDef d{"archive-name", ParamType::kString, true, 1, 255, nullptr};
  d.check = [](const std::string& s) {
    return IsSafeId(s) ? Status::OK()
                       : Status::InvalidArgument("value does not match the regex pattern");
  };
  return d;
}

// PBS's decode_path: "root" and "/" are the root, anything else is base64.
Result<std::string> DecodePath(const std::string& filepath) {
  if (filepath == "root" || filepath == "/") return std::string("/");
  auto decoded = Base64DecodeIndifferentPad(filepath);
  if (!decoded.ok())
    return Status::InvalidArgument("base64 decoding of path failed - " +
                                   decoded.status().message());
  return std::string(decoded->begin(), decoded->end());
}

// The catalog, listed the way PBS's CatalogReader::list_dir_contents does.
Result<boost::json::array> ListThroughCatalog(const GroupTarget& g, const BackupDir& dir,
                                              const std::string& filepath) {
  // PBS opens the index file before it looks at the manifest entry.
  const std::string file = g.store->SnapshotPath(g.ns, dir) + "/" + kCatalogName;
  struct stat st;
  if (::stat(file.c_str(), &st) != 0) {
    const int err = errno;
    const std::string quoted = pxar::RustDebugQuote(file);
    return Status::InvalidArgument("unable to read dynamic index '" + quoted +
                                   "' - Unable to open dynamic index " + quoted + " - " +
                                   std::strerror(err) + " (os error " + std::to_string(err) + ")");
  }
  auto catalog = LoadSnapshotCatalog(g.store, g.ns, dir, nullptr, false);
  if (!catalog.ok()) return BadRequest(catalog.status());
  PBSKIT_ASSIGN_OR_RETURN(const std::string path, DecodePath(filepath));
  auto entries = catalog->ListDirContents(path);
  if (!entries.ok()) return BadRequest(entries.status());
  std::string prefix = path.substr(!path.empty() && path[0] == '/' ? 1 : 0);
  boost::json::array out;
  for (const CatalogEntry& e : *entries) {
    const bool file = e.type == CatalogEntryType::kFile;
    out.push_back(ArchiveEntryJson(prefix + "/" + e.name, static_cast<char>(e.type),
                                   file ? std::optional<uint64_t>(e.size) : std::nullopt,
                                   file ? std::optional<int64_t>(e.mtime) : std::nullopt));
  }
  return out;
}

// One archive's metadata, listed the way PBS's pxar_metadata_catalog_lookup does.
Result<boost::json::array> ListThroughArchive(const GroupTarget& g, const BackupDir& dir,
                                              const Manifest& manifest, const std::string& name,
                                              const std::string& filepath) {
  PBSKIT_ASSIGN_OR_RETURN(PxarArchiveNames names, ResolveArchive(manifest, name));
  PBSKIT_ASSIGN_OR_RETURN(const std::string path, DecodePath(filepath));
  const std::string not_found =
      "lookup failed - error opening '" + pxar::RustDebugQuote(path) + "'";
  auto target = LookupTarget(path);
  if (!target.ok()) return Status::InvalidArgument("lookup failed - " + target.status().message());
  if (!*target) return Status::InvalidArgument(not_found);
  auto listing =
      ListPxarArchiveMetadata(g.store, g.ns, dir, names.archive, **target, nullptr, false);
  if (!listing.ok()) {
    if (listing.status().IsNotFound()) return Status::InvalidArgument(not_found);
    if (listing.status().message() == "enter_directory() on a non-directory")
      return Status::InvalidArgument("lookup failed - " + listing.status().message());
    return BadRequest(listing.status());
  }
  if (!listing->is_directory)
    return Status::InvalidArgument("expected directory entry, got entry kind '" +
                                   listing->kind_debug + "'");
  boost::json::array out;
  for (const PxarListEntry& e : listing->entries)
    out.push_back(ArchiveEntryJson(e.path, e.type, e.size, e.mtime));
  return out;
}

Result<ApiResult> Catalog(ApiCall& call) {
  PBSKIT_ASSIGN_OR_RETURN(GroupTarget g,
                          ResolveGroup(call, kPrivDatastoreRead, kPrivDatastoreBackup));
  const BackupDir dir{g.group, call.Int("backup-time")};
  const bool by_archive = call.Has("archive-name");
  std::string file_name = kCatalogName;
  if (by_archive) {
    PBSKIT_ASSIGN_OR_RETURN(file_name, ParseBackupArchiveName(call.Str("archive-name")));
  }
  PBSKIT_ASSIGN_OR_RETURN(Manifest manifest, LoadSnapshotManifest(g, dir));
  PBSKIT_RETURN_IF_ERROR(RefuseEncrypted(manifest, file_name));
  Result<boost::json::array> out =
      by_archive ? ListThroughArchive(g, dir, manifest, file_name, call.Str("filepath"))
                 : ListThroughCatalog(g, dir, call.Str("filepath"));
  if (!out.ok()) return out.status();
  return ApiResult::Of(std::move(out).value());
}

HttpResponse Octets() {
  HttpResponse r;
  r.content_type = "application/octet-stream";
  return r;
}

// The content of the file `archive`'s decoder has just returned, sent as it is read.
ApiResult StreamFile(std::unique_ptr<StorePxarArchive> archive, uint64_t size) {
  struct Source {
    std::unique_ptr<StorePxarArchive> archive;
    uint64_t left = 0;
    std::vector<uint8_t> buf = std::vector<uint8_t>(256 * 1024);
  };
  auto src = std::make_shared<Source>();
  src->archive = std::move(archive);
  src->left = size;
  HttpResponse r = Octets();
  r.body_stream_size = size;
  r.body_stream = [src](std::string* piece) -> Result<bool> {
    piece->clear();
    while (piece->size() < kPieceSize && src->left > 0) {
      PBSKIT_ASSIGN_OR_RETURN(size_t n, src->archive->decoder()->ReadContent(src->buf));
      if (n == 0) return Status::Corruption("file content ends early");
      piece->append(reinterpret_cast<const char*>(src->buf.data()), n);
      src->left -= std::min<uint64_t>(n, src->left);
    }
    return src->left > 0;
  };
  ApiResult res;
  res.raw = std::move(r);
  return res;
}

// The directory `dir` (just returned by `archive`'s decoder) as zip or tar.zst, made while it
// is sent (chunked: the size is not known before the end).
Result<ApiResult> StreamDirectory(std::unique_ptr<StorePxarArchive> archive, const pxar::Entry& dir,
                                  bool tar) {
  struct Source {
    std::unique_ptr<StorePxarArchive> archive;
    std::unique_ptr<PxarExportStream> stream;
  };
  auto src = std::make_shared<Source>();
  src->archive = std::move(archive);
  PxarExportOptions o;
  o.format = tar ? PxarExportFormat::kTarZstd : PxarExportFormat::kZip;
  StorePxarArchive* a = src->archive.get();
  o.reopen = [a] { return a->Reopen(); };
  auto stream = PxarExportStream::Open(a->decoder(), &dir, std::move(o));
  if (!stream.ok()) return BadRequest(stream.status());
  src->stream = std::move(stream).value();
  HttpResponse r = Octets();
  r.body_stream_chunked = true;
  r.body_stream = [src](std::string* piece) { return src->stream->Next(piece); };
  ApiResult res;
  res.raw = std::move(r);
  return res;
}

Result<ApiResult> PxarFileDownload(ApiCall& call) {
  PBSKIT_ASSIGN_OR_RETURN(GroupTarget g,
                          ResolveGroup(call, kPrivDatastoreRead, kPrivDatastoreBackup));
  const BackupDir dir{g.group, call.Int("backup-time")};
  auto decoded = Base64DecodeIndifferentPad(call.Str("filepath"));
  if (!decoded.ok()) return decoded.status();
  const std::string full(decoded->begin(), decoded->end());
  // "/<archive>/<path>", or with archive-name the whole decoded path inside that archive.
  std::string pxar_name, file_path;
  if (call.Has("archive-name")) {
    pxar_name = call.Str("archive-name");
    file_path = full;
  } else {
    const std::string rest = full.substr(!full.empty() && full[0] == '/' ? 1 : 0);
    const size_t slash = rest.find('/');
    pxar_name = rest.substr(0, slash);
    file_path = slash == std::string::npos ? "/" : rest.substr(slash + 1);
  }
  PBSKIT_RETURN_IF_ERROR(CheckUtf8(pxar_name));
  PBSKIT_ASSIGN_OR_RETURN(std::string archive_name, ParseBackupArchiveName(pxar_name));
  PBSKIT_ASSIGN_OR_RETURN(Manifest manifest, LoadSnapshotManifest(g, dir));
  PBSKIT_RETURN_IF_ERROR(RefuseEncrypted(manifest, archive_name));
  PBSKIT_ASSIGN_OR_RETURN(PxarArchiveNames names, ResolveArchive(manifest, archive_name));
  PxarOpenOptions opts;
  opts.decoder.report_directory_end = true;
  opts.check_manifest_key = false;
  auto opened = StorePxarArchive::Open(g.store, g.ns, dir, names.archive, nullptr, opts);
  if (!opened.ok()) return BadRequest(opened.status());
  std::unique_ptr<StorePxarArchive> archive = std::move(opened).value();

  const std::string not_found = "error opening '" + pxar::RustDebugQuote(file_path) + "'";
  PBSKIT_ASSIGN_OR_RETURN(std::optional<std::string> target, LookupTarget(file_path));
  if (!target) return Status::InvalidArgument(not_found);
  auto found = archive->Find(*target);
  if (!found.ok()) return BadRequest(found.status());
  if (!*found) return Status::InvalidArgument(not_found);
  const pxar::Entry& e = **found;
  switch (e.kind) {
    case pxar::EntryKind::kFile:
      return StreamFile(std::move(archive), e.file_size);
    case pxar::EntryKind::kHardlink: {
      // The target is earlier in the archive: find it from the start.
      auto again = archive->Reopen();
      if (!again.ok()) return BadRequest(again.status());
      std::string link = e.link_target;
      while (!link.empty() && link[0] == '/') link.erase(0, 1);
      auto real = (*again)->Find("/" + link);
      if (!real.ok()) return BadRequest(real.status());
      if (!*real || (*real)->kind != pxar::EntryKind::kFile)
        return Status::InvalidArgument("hardlink target '" + link + "' is not a regular file");
      return StreamFile(std::move(again).value(), (*real)->file_size);
    }
    case pxar::EntryKind::kDirectory:
      return StreamDirectory(std::move(archive), e, call.Bool("tar"));
    default:
      return Status::InvalidArgument("cannot download file of type " +
                                     pxar::RustEntryKindDebug(e, archive->decoder()->position()));
  }
}

}  // namespace

void AddFileBrowseRoutes(std::vector<Route>* routes) {
  ParamDef filepath{"filepath", ParamType::kString, false};
  routes->push_back(
      DatastoreRoute("GET", "catalog", SnapshotParams({filepath, ArchiveNameParam()}), Catalog));
  routes->push_back(DatastoreRoute(
      "GET", "pxar-file-download",
      SnapshotParams({filepath, {"tar", ParamType::kBoolean, true}, ArchiveNameParam()}),
      PxarFileDownload));
}

}  // namespace pbskit::server
