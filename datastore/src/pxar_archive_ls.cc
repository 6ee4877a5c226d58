// Directory listings of pxar archives in a snapshot: the catalog when there is one, the pxar
// metadata otherwise.
#include <algorithm>

#include "pbskit/datastore/pxar_archive.h"
#include "pbskit/formats/pxar/listing.h"

namespace pbskit {
namespace {

std::string JoinPath(const std::vector<std::string>& parts, size_t n) {
  std::string p;
  for (size_t i = 0; i < n; ++i) p += "/" + parts[i];
  return p.empty() ? "/" : p;
}

Status NoSuchEntry(const std::string& path, const std::string& archive) {
  return Status::NotFound("no such file or directory '" + path + "' in " + archive);
}

PxarListEntry FromCatalog(const CatalogEntry& c, const std::string& parent) {
  PxarListEntry e;
  e.type = static_cast<char>(c.type);
  e.name = c.name;
  e.path = (parent == "/" ? "" : parent) + "/" + c.name;
  if (c.type == CatalogEntryType::kFile) {
    e.size = c.size;
    e.mtime = c.mtime;
  }
  return e;
}

// nullopt when the catalog does not cover the archive (fall back to the pxar metadata).
Result<std::optional<PxarListing>> ListFromCatalog(std::shared_ptr<DataStore> store,
                                                   const BackupNamespace& ns, const BackupDir& dir,
                                                   const std::string& archive,
                                                   const std::vector<std::string>& parts,
                                                   const CryptConfig* crypt) {
  PBSKIT_ASSIGN_OR_RETURN(CatalogReader catalog, LoadSnapshotCatalog(store, ns, dir, crypt));
  PBSKIT_ASSIGN_OR_RETURN(std::vector<CatalogEntry> level,
                          catalog.ReadDirectory(catalog.root_offset()));
  const CatalogEntry* root = nullptr;
  for (const CatalogEntry& e : level)
    if (e.name == archive && e.type == CatalogEntryType::kDirectory) root = &e;
  if (!root) return std::optional<PxarListing>();
  PxarListing out;
  out.archive = archive;
  out.from_catalog = true;
  uint64_t block = root->offset;
  for (size_t i = 0; i < parts.size(); ++i) {
    PBSKIT_ASSIGN_OR_RETURN(level, catalog.ReadDirectory(block));
    const CatalogEntry* hit = nullptr;
    for (const CatalogEntry& e : level)
      if (e.name == parts[i]) hit = &e;
    if (!hit) return NoSuchEntry(JoinPath(parts, i + 1), archive);
    if (hit->type != CatalogEntryType::kDirectory) {
      if (i + 1 != parts.size())
        return Status::InvalidArgument("'" + JoinPath(parts, i + 1) + "' in " + archive +
                                       " is not a directory");
      out.is_directory = false;
      out.entries.push_back(FromCatalog(*hit, JoinPath(parts, i)));
      return std::optional<PxarListing>(std::move(out));
    }
    block = hit->offset;
  }
  PBSKIT_ASSIGN_OR_RETURN(level, catalog.ReadDirectory(block));
  const std::string here = JoinPath(parts, parts.size());
  for (const CatalogEntry& e : level) out.entries.push_back(FromCatalog(e, here));
  return std::optional<PxarListing>(std::move(out));
}

PxarListEntry FromPxar(const pxar::Entry& e) {
  PxarListEntry out;
  out.type = pxar::EntryKindLetter(e.kind, e.metadata);
  out.path = e.path;
  out.name = e.path.substr(e.path.rfind('/') + 1);
  if (e.kind == pxar::EntryKind::kFile) {
    out.size = e.file_size;
    out.mtime = e.metadata.stat.mtime_secs;
  }
  return out;
}

Result<PxarListing> ListFromPxar(std::shared_ptr<DataStore> store, const BackupNamespace& ns,
                                 const BackupDir& dir, std::string_view name,
                                 const std::vector<std::string>& parts, const CryptConfig* crypt,
                                 bool check_manifest_key) {
  // Only the metadata stream is needed: the payload of a split archive is never read.
  PxarOpenOptions opts;
  opts.decoder.report_directory_end = true;
  opts.metadata_only = true;
  opts.check_manifest_key = check_manifest_key;
  PBSKIT_ASSIGN_OR_RETURN(auto archive, StorePxarArchive::Open(store, ns, dir, name, crypt, opts));
  const std::string target = JoinPath(parts, parts.size());
  PxarListing out;
  out.archive = archive->names().archive;
  PBSKIT_ASSIGN_OR_RETURN(std::optional<pxar::Entry> found, archive->Find(target));
  if (!found) return NoSuchEntry(target, out.archive);
  if (found->kind != pxar::EntryKind::kDirectory) {
    out.is_directory = false;
    out.entries.push_back(FromPxar(*found));
    out.kind_debug = pxar::RustEntryKindDebug(*found, archive->decoder()->position());
    return out;
  }
  pxar::Decoder* dec = archive->decoder();
  pxar::Entry e;
  for (;;) {
    PBSKIT_ASSIGN_OR_RETURN(bool more, dec->Next(&e));
    if (!more) break;
    if (e.kind == pxar::EntryKind::kDirectoryEnd) {
      if (e.path == target) break;  // nothing of the directory is left
      continue;
    }
    std::string_view parent(e.path);
    parent = parent.substr(0, parent.rfind('/'));
    if ((parent.empty() ? std::string_view("/") : parent) == target)
      out.entries.push_back(FromPxar(e));
  }
  return out;
}

}  // namespace

std::vector<std::string> SplitArchivePath(std::string_view path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = std::min(path.find('/', pos), path.size());
    std::string_view c = path.substr(pos, slash - pos);
    if (!c.empty() && c != ".") out.emplace_back(c);
    pos = slash + 1;
  }
  return out;
}

Result<CatalogReader> LoadSnapshotCatalog(std::shared_ptr<DataStore> store,
                                          const BackupNamespace& ns, const BackupDir& dir,
                                          const CryptConfig* crypt, bool check_manifest_key) {
  PBSKIT_ASSIGN_OR_RETURN(auto reader, ArchiveReader::Open(store, ns, dir, kCatalogName, crypt,
                                                           check_manifest_key));
  std::vector<uint8_t> data;
  PBSKIT_RETURN_IF_ERROR(reader->ReadAll([&data](std::span<const uint8_t> d) {
    data.insert(data.end(), d.begin(), d.end());
    return Status::OK();
  }));
  return CatalogReader::Open(data, kCatalogName);
}

Result<PxarListing> ListPxarArchiveMetadata(std::shared_ptr<DataStore> store,
                                            const BackupNamespace& ns, const BackupDir& dir,
                                            std::string_view name, std::string_view path,
                                            const CryptConfig* crypt, bool check_manifest_key) {
  return ListFromPxar(store, ns, dir, name, SplitArchivePath(path), crypt, check_manifest_key);
}

Result<PxarListing> ListPxarArchive(std::shared_ptr<DataStore> store, const BackupNamespace& ns,
                                    const BackupDir& dir, std::string_view name,
                                    std::string_view path, const CryptConfig* crypt) {
  const std::vector<std::string> parts = SplitArchivePath(path);
  PBSKIT_ASSIGN_OR_RETURN(Manifest manifest, store->LoadManifest(ns, dir));
  PBSKIT_ASSIGN_OR_RETURN(PxarArchiveNames names, ResolvePxarArchiveNames(manifest, name));
  if (manifest.Lookup(kCatalogName)) {
    PBSKIT_ASSIGN_OR_RETURN(auto listing,
                            ListFromCatalog(store, ns, dir, names.archive, parts, crypt));
    if (listing) return std::move(*listing);
  }
  return ListFromPxar(store, ns, dir, name, parts, crypt, true);
}

}  // namespace pbskit
