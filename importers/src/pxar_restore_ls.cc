// Directory listings of pxar archives in a snapshot: the catalog when there is one, the pxar
// metadata otherwise.
#include "pbskit/formats/catalog.h"
#include "pbskit/importers/pxar_restore.h"

namespace pbskit::importers {
namespace {

// "/a/b/" -> {"a", "b"}
std::vector<std::string> SplitPath(std::string_view path) {
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
  PBSKIT_ASSIGN_OR_RETURN(auto reader,
                          ArchiveReader::Open(store, ns, dir, "catalog.pcat1.didx", crypt));
  std::vector<uint8_t> data;
  PBSKIT_RETURN_IF_ERROR(reader->ReadAll([&data](std::span<const uint8_t> d) {
    data.insert(data.end(), d.begin(), d.end());
    return Status::OK();
  }));
  PBSKIT_ASSIGN_OR_RETURN(CatalogReader catalog, CatalogReader::Open(data, "catalog.pcat1.didx"));
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
                                 const std::vector<std::string>& parts, const CryptConfig* crypt) {
  PBSKIT_ASSIGN_OR_RETURN(Manifest manifest, store->LoadManifest(ns, dir));
  PBSKIT_ASSIGN_OR_RETURN(PxarArchiveNames names, ResolvePxarArchiveNames(manifest, name));
  // Only the metadata stream is needed: the payload of a split archive is never read.
  PBSKIT_ASSIGN_OR_RETURN(auto reader, ArchiveReader::Open(store, ns, dir, names.archive, crypt));
  DidxPxarSource src(store->chunk_store(), *reader->dynamic_index(), reader->file_info().crypt_mode,
                     crypt, names.archive);
  pxar::DecoderOptions opts;
  opts.name = names.archive;
  opts.report_directory_end = true;
  pxar::Decoder dec(&src, nullptr, opts);
  const std::string target = JoinPath(parts, parts.size());
  PxarListing out;
  out.archive = names.archive;
  bool found = false;
  pxar::Entry e;
  for (;;) {
    PBSKIT_ASSIGN_OR_RETURN(bool more, dec.Next(&e));
    if (!more) break;
    if (e.kind == pxar::EntryKind::kVersion || e.kind == pxar::EntryKind::kPrelude) continue;
    if (e.kind == pxar::EntryKind::kDirectoryEnd) {
      if (found && e.path == target) break;  // nothing of the directory is left
      continue;
    }
    if (e.path == target) {
      found = true;
      if (e.kind != pxar::EntryKind::kDirectory) {
        out.is_directory = false;
        out.entries.push_back(FromPxar(e));
        break;
      }
      continue;
    }
    if (found) {
      std::string_view parent(e.path);
      parent = parent.substr(0, parent.rfind('/'));
      if ((parent.empty() ? std::string_view("/") : parent) == target)
        out.entries.push_back(FromPxar(e));
    }
  }
  if (!found) return NoSuchEntry(target, names.archive);
  return out;
}

}  // namespace

Result<PxarListing> ListPxarArchive(std::shared_ptr<DataStore> store, const BackupNamespace& ns,
                                    const BackupDir& dir, std::string_view name,
                                    std::string_view path, const CryptConfig* crypt) {
  const std::vector<std::string> parts = SplitPath(path);
  PBSKIT_ASSIGN_OR_RETURN(Manifest manifest, store->LoadManifest(ns, dir));
  PBSKIT_ASSIGN_OR_RETURN(PxarArchiveNames names, ResolvePxarArchiveNames(manifest, name));
  if (manifest.Lookup("catalog.pcat1.didx")) {
    PBSKIT_ASSIGN_OR_RETURN(auto listing,
                            ListFromCatalog(store, ns, dir, names.archive, parts, crypt));
    if (listing) return std::move(*listing);
  }
  return ListFromPxar(store, ns, dir, name, parts, crypt);
}

}  // namespace pbskit::importers
