// Media catalog re-indexer (see catalog_reindex.h).
#include "pbskit/datastore/tape/catalog_reindex.h"

#include <fcntl.h>

#include <algorithm>
#include <map>
#include <sstream>

#include "pbskit/formats/tape/archives.h"

namespace pbskit::tape {
namespace {

void Log(const TapeLog& log, const std::string& line) {
  if (log) log(line);
}

bool IsCatalogMagic(const Magic& m) {
  return m == kCatalogArchiveMagic10 || m == kCatalogArchiveMagic11;
}

constexpr size_t kCommitThreshold = 1024 * 1024;

// Appends catalog bytes to <uuid>.tmp.
class TmpCatalog {
 public:
  static Result<TmpCatalog> Create(const TapeStatusDir& state, const Uuid& media) {
    PBSKIT_RETURN_IF_ERROR(state.Init());
    std::string path = state.TmpPath(media);
    PBSKIT_ASSIGN_OR_RETURN(int fd,
                            state.fs()->Open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
    return TmpCatalog(state, media, ScopedFd(state.fs(), fd));
  }
  Status Append(MediaCatalogBuilder* b) {
    const auto& p = b->pending();
    PBSKIT_RETURN_IF_ERROR(state_->fs()->PWriteAll(fd_.get(), p.data(), p.size(), size_));
    size_ += p.size();
    b->ClearPending();
    return Status::OK();
  }
  Status Finish() {
    PBSKIT_RETURN_IF_ERROR(state_->fs()->Fsync(fd_.get()));
    PBSKIT_RETURN_IF_ERROR(fd_.Close());
    PBSKIT_RETURN_IF_ERROR(
        state_->fs()->Rename(state_->TmpPath(media_), state_->CatalogPath(media_)));
    auto st = state_->fs()->Unlink(state_->IndexPath(media_));
    if (!st.ok() && st.code() != Code::kNotFound) return st;
    return state_->fs()->FsyncDir(state_->dir());
  }
  void Abort() {
    fd_.Reset();
    (void)state_->fs()->Unlink(state_->TmpPath(media_));
  }

 private:
  TmpCatalog(const TapeStatusDir& state, const Uuid& media, ScopedFd fd)
      : state_(&state), media_(media), fd_(std::move(fd)) {}
  const TapeStatusDir* state_;
  Uuid media_;
  ScopedFd fd_;
  uint64_t size_ = 0;
};

// Opens the next tape file. Returns nullopt at end of data; *empty for a lone filemark.
struct NextFile {
  std::unique_ptr<TapeBlockReader> device;
  BlockedReader reader;
  BlockedReader::OpenKind kind = BlockedReader::OpenKind::kEndOfStream;
};
Result<NextFile> OpenNext(VirtualTapeDrive* drive) {
  NextFile f;
  PBSKIT_ASSIGN_OR_RETURN(f.device, drive->ReadNextFile());
  PBSKIT_ASSIGN_OR_RETURN(f.kind, BlockedReader::Open(f.device.get(), &f.reader));
  return f;
}

std::string FileCtx(uint64_t n) { return "tape file " + std::to_string(n); }

}  // namespace

// ---------------------------------------------------------------- fast path

Status FastCatalogRestore(VirtualTapeDrive* drive, const TapeStatusDir& state, const MediaId& id,
                          const std::set<Uuid>& members, const std::set<Uuid>& overwrite,
                          const TapeLog& log, std::set<Uuid>* restored) {
  const Uuid& set_uuid = id.media_set_label->uuid;
  bool moved = false;
  for (;;) {
    PBSKIT_ASSIGN_OR_RETURN(uint64_t cur, drive->CurrentFileNumber());
    PBSKIT_ASSIGN_OR_RETURN(auto f, OpenNext(drive));
    if (f.kind == BlockedReader::OpenKind::kEndOfFile) {
      Log(log, "skip unexpected filemark at pos " + std::to_string(cur));
      continue;
    }
    if (f.kind == BlockedReader::OpenKind::kEndOfStream) break;
    MediaContentHeader h;
    std::string json;
    Status st = ReadAnyContentHeader(&f.reader, &h, &json);
    if (!st.ok()) return st.WithContext(FileCtx(cur));
    if (IsCatalogMagic(h.content_magic)) {
      auto ch = CatalogArchiveHeader::FromJson(json);
      if (!ch.ok()) return ch.status().WithContext(FileCtx(cur));
      std::string name = UuidToString(ch->uuid);
      if (ch->media_set_uuid != set_uuid) {
        Log(log, "skipping unrelated catalog at pos " + std::to_string(cur));
        continue;
      }
      if (members.count(ch->uuid) == 0) {
        Log(log, "skipping catalog '" + name + "' - not inventoried");
        continue;
      }
      PBSKIT_ASSIGN_OR_RETURN(bool exists, state.CatalogExists(ch->uuid));
      if (ch->uuid != id.label.uuid && exists && overwrite.count(ch->uuid) == 0) {
        Log(log, "catalog for media '" + name + "' already exists");
        continue;
      }
      auto bytes = f.reader.ReadToEnd();
      if (!bytes.ok()) return bytes.status().WithContext(FileCtx(cur) + " (catalog archive)");
      PBSKIT_ASSIGN_OR_RETURN(bool incomplete, f.reader.IsIncomplete());
      if (incomplete) {
        Log(log,
            "skipping incomplete catalog archive for '" + name + "' at pos " + std::to_string(cur));
        continue;
      }
      auto hdr = ParseMediaCatalogHeader(*bytes);
      bool good = hdr.ok() && hdr->found_magic && hdr->media_uuid == ch->uuid &&
                  hdr->media_set_uuid == ch->media_set_uuid;
      std::string why =
          hdr.ok() ? "media or media-set uuid does not match" : hdr.status().message();
      if (good) {
        MediaSetLabel want;
        want.uuid = ch->media_set_uuid;
        want.seq_nr = ch->seq_nr;
        auto parsed = ParseMediaCatalog(*bytes, ch->uuid, want);
        if (!parsed.ok()) {
          good = false;
          why = parsed.status().message();
        }
      }
      if (!good) {
        Log(log, "catalog archive for '" + name + "' at pos " + std::to_string(cur) +
                     " is damaged (" + why + ") - skipped");
        continue;
      }
      PBSKIT_RETURN_IF_ERROR(state.WriteCatalog(ch->uuid, *bytes));
      Log(log, "restored catalog for media '" + name + "' from pos " + std::to_string(cur));
      restored->insert(ch->uuid);
      continue;
    }
    if (moved) break;
    moved = true;
    Log(log, "searching for catalog at EOT (moving to EOT)");
    PBSKIT_RETURN_IF_ERROR(drive->MoveToLastFile());
    PBSKIT_ASSIGN_OR_RETURN(uint64_t now, drive->CurrentFileNumber());
    if (now < cur + 1) break;
  }
  return Status::OK();
}

// ---------------------------------------------------------------- full scan

Status ScanMediaCatalog(VirtualTapeDrive* drive, const TapeStatusDir& state, const MediaId& id,
                        bool verbose, const TapeLog& log, TapeReindexResult* result) {
  PBSKIT_ASSIGN_OR_RETURN(auto labels, drive->ReadLabel());
  if (!labels.label || labels.label->uuid != id.label.uuid) {
    return Status::InvalidArgument("media changed while scanning - label uuid does not match");
  }
  PBSKIT_ASSIGN_OR_RETURN(auto b, NewMediaCatalog(id));
  PBSKIT_ASSIGN_OR_RETURN(auto tmp, TmpCatalog::Create(state, id.label.uuid));
  auto body = [&]() -> Status {
    PBSKIT_RETURN_IF_ERROR(tmp.Append(&b));
    for (;;) {
      PBSKIT_ASSIGN_OR_RETURN(uint64_t cur, drive->CurrentFileNumber());
      auto next = OpenNext(drive);
      if (!next.ok()) return next.status().WithContext(FileCtx(cur));
      NextFile& f = *next;
      if (f.kind == BlockedReader::OpenKind::kEndOfFile) {
        Log(log, "skip unexpected filemark at pos " + std::to_string(cur));
        continue;
      }
      if (f.kind == BlockedReader::OpenKind::kEndOfStream) {
        Log(log, "detected EOT after " + std::to_string(cur) + " files");
        break;
      }
      result->files = cur + 1;
      MediaContentHeader h;
      std::string json;
      PBSKIT_RETURN_IF_ERROR(ReadAnyContentHeader(&f.reader, &h, &json).WithContext(FileCtx(cur)));
      const Magic& m = h.content_magic;
      if (m == kMediaLabelMagic || m == kMediaSetLabelMagic) {
        return Status::Corruption(FileCtx(cur) + ": unexpected content magic (label)");
      }
      if (m == kSnapshotArchiveMagic10) {
        return Status::Corruption(FileCtx(cur) + ": unexpected snapshot archive version (v1.0)");
      }
      if (m == kChunkArchiveMagic10) {
        return Status::Corruption(FileCtx(cur) + ": unexpected chunk archive version (v1.0)");
      }
      if (IsCatalogMagic(m)) {
        Log(log, "skip catalog '" + UuidToString(h.uuid) + "'");
        PBSKIT_RETURN_IF_ERROR(f.reader.SkipData().status().WithContext(FileCtx(cur)));
        continue;
      }
      if (m == kSnapshotArchiveMagic11 || m == kSnapshotArchiveMagic12) {
        auto sh = SnapshotArchiveHeader::FromJson(json);
        if (!sh.ok()) return sh.status().WithContext(FileCtx(cur));
        PBSKIT_RETURN_IF_ERROR(f.reader.SkipData().status().WithContext(FileCtx(cur)));
        PBSKIT_ASSIGN_OR_RETURN(bool end, f.reader.HasEndMarker());
        bool incomplete = end && *f.reader.IsIncomplete();
        if (!end || incomplete) {
          result->notes.push_back(FileCtx(cur) + ": snapshot archive " + sh->store + ":" +
                                  sh->snapshot + (end ? " is incomplete" : " has no end marker") +
                                  " (not registered)");
          Log(log, result->notes.back());
          continue;
        }
        Log(log,
            "File " + std::to_string(cur) + ": snapshot archive " + sh->store + ":" + sh->snapshot);
        PBSKIT_RETURN_IF_ERROR(b.RegisterSnapshot(h.uuid, cur, sh->store, sh->snapshot));
        ++result->snapshots;
        if (b.pending().size() > kCommitThreshold) PBSKIT_RETURN_IF_ERROR(tmp.Append(&b));
        continue;
      }
      if (m == kChunkArchiveMagic11) {
        auto store = ParseChunkArchiveHeader(json);
        if (!store.ok()) return store.status().WithContext(FileCtx(cur));
        Log(log, "File " + std::to_string(cur) + ": chunk archive for datastore '" + *store + "'");
        ChunkArchiveDecoder dec(&f.reader);
        std::vector<Digest> chunks;
        Digest d;
        std::vector<uint8_t> raw;
        bool registered = true;
        for (;;) {
          auto more = dec.Next(&d, &raw);
          if (!more.ok()) {
            auto end = f.reader.HasEndMarker();
            if (end.ok() && *end && *f.reader.IsIncomplete()) break;
            if (end.ok() && !*end) {
              result->notes.push_back(FileCtx(cur) + ": chunk archive " + UuidToString(h.uuid) +
                                      ": missing stream end marker (not registered)");
              Log(log, "missing stream end marker");
              registered = false;
              break;
            }
            return more.status().WithContext(FileCtx(cur) + " (chunk archive " +
                                             UuidToString(h.uuid) + ")");
          }
          if (!*more) break;
          if (verbose) Log(log, "Found chunk: " + ToHex(d));
          chunks.push_back(d);
        }
        if (!registered) continue;
        PBSKIT_RETURN_IF_ERROR(b.StartChunkArchive(h.uuid, cur, *store));
        for (const auto& c : chunks) PBSKIT_RETURN_IF_ERROR(b.RegisterChunk(c));
        PBSKIT_RETURN_IF_ERROR(b.EndChunkArchive(h.uuid, cur));
        ++result->chunk_archives;
        result->chunks += chunks.size();
        if (b.pending().size() > kCommitThreshold) PBSKIT_RETURN_IF_ERROR(tmp.Append(&b));
        continue;
      }
      return Status::Corruption(FileCtx(cur) + ": unknown content magic");
    }
    PBSKIT_RETURN_IF_ERROR(tmp.Append(&b));
    return tmp.Finish();
  };
  Status st = body();
  if (!st.ok()) tmp.Abort();
  return st;
}

// ---------------------------------------------------------------- whole drive

bool ReindexReport::ok() const {
  if (!missing.empty()) return false;
  for (const auto& t : tapes) {
    if (t.damaged) return false;
  }
  return true;
}

std::string ReindexReport::ToText() const {
  std::ostringstream o;
  for (const auto& t : tapes) {
    o << "media '" << t.label_text << "' (" << UuidToString(t.media) << ")";
    if (t.media_set) o << " set " << UuidToString(*t.media_set) << " seq " << t.seq_nr;
    o << ": ";
    if (t.damaged) {
      o << "DAMAGED - " << t.error << "\n";
    } else {
      o << "catalog " << (t.method == "kept" ? "kept" : "rebuilt (" + t.method + ")");
      if (t.method == "scan" || t.method == "fallback-scan") {
        o << ", " << t.files << " files, " << t.snapshots << " snapshots, " << t.chunk_archives
          << " chunk archives, " << t.chunks << " chunks";
      }
      if (t.method == "fallback-scan") o << " (fast path: " << t.error << ")";
      o << "\n";
    }
    for (const auto& n : t.notes) o << "  note: " << n << "\n";
  }
  for (const auto& m : missing) {
    o << "MISSING media set " << UuidToString(m.media_set) << " seq " << m.seq_nr;
    if (m.label_text) o << " (media '" << *m.label_text << "')";
    o << " is not in the drive\n";
  }
  size_t damaged = std::count_if(tapes.begin(), tapes.end(), [](auto& t) { return t.damaged; });
  o << (ok() ? "TASK OK" : "TASK ERROR") << ": " << tapes.size() << " tapes, " << damaged
    << " damaged, " << missing.size() << " missing\n";
  return o.str();
}

boost::json::value ReindexReport::ToJson() const {
  boost::json::array ts;
  for (const auto& t : tapes) {
    boost::json::object o;
    o["label-text"] = t.label_text;
    o["uuid"] = UuidToString(t.media);
    if (t.media_set) {
      o["media-set-uuid"] = UuidToString(*t.media_set);
      o["seq-nr"] = t.seq_nr;
    }
    o["method"] = t.method;
    o["damaged"] = t.damaged;
    if (!t.error.empty()) o["error"] = t.error;
    o["files"] = t.files;
    o["snapshots"] = t.snapshots;
    o["chunk-archives"] = t.chunk_archives;
    o["chunks"] = t.chunks;
    boost::json::array notes;
    for (const auto& n : t.notes) notes.push_back(boost::json::value(n));
    o["notes"] = notes;
    ts.push_back(std::move(o));
  }
  boost::json::array ms;
  for (const auto& m : missing) {
    boost::json::object o;
    o["media-set-uuid"] = UuidToString(m.media_set);
    o["seq-nr"] = m.seq_nr;
    if (m.label_text) o["label-text"] = *m.label_text;
    ms.push_back(std::move(o));
  }
  boost::json::object out;
  out["tapes"] = ts;
  out["missing"] = ms;
  out["ok"] = ok();
  return out;
}

Result<ReindexReport> ReindexDrive(VirtualTapeDrive* drive, const TapeStatusDir& state,
                                   const ReindexOptions& opts) {
  PBSKIT_RETURN_IF_ERROR(state.Init());
  ReindexReport report;
  PBSKIT_ASSIGN_OR_RETURN(auto labels, drive->OnlineMediaLabelTexts());
  std::sort(labels.begin(), labels.end());

  struct Tape {
    MediaId id;
    size_t result;
    bool todo = false;
  };
  std::vector<Tape> tapes;
  // 1. labels + inventory.
  for (const auto& label : labels) {
    TapeReindexResult r;
    r.label_text = label;
    Log(opts.log, "loading media '" + label + "'");
    PBSKIT_RETURN_IF_ERROR(drive->LoadMedia(label));
    auto l = InventorizeLoadedTape(drive, opts.drive_name, state);
    if (!l.ok()) {
      r.damaged = true;
      r.error = "unable to read labels - " + l.status().message();
      report.tapes.push_back(std::move(r));
      continue;
    }
    if (!l->label) {
      r.method = "empty";
      report.tapes.push_back(std::move(r));
      continue;
    }
    MediaId id{*l->label, l->media_set};
    r.media = id.label.uuid;
    if (!id.media_set_label || id.media_set_label->IsUnassigned()) {
      r.method = "no-media-set";
      PBSKIT_ASSIGN_OR_RETURN(auto b, NewMediaCatalog(id));
      PBSKIT_RETURN_IF_ERROR(state.WriteCatalog(id.label.uuid, b.pending()));
      report.tapes.push_back(std::move(r));
      continue;
    }
    r.media_set = id.media_set_label->uuid;
    r.seq_nr = id.media_set_label->seq_nr;
    PBSKIT_ASSIGN_OR_RETURN(bool exists, state.CatalogExists(id.label.uuid));
    Tape t{id, report.tapes.size(), opts.force || !exists};
    if (!t.todo) {
      r.method = "kept";
      Log(opts.log, "media catalog of '" + label + "' exists (use --force to rebuild)");
    }
    report.tapes.push_back(std::move(r));
    tapes.push_back(std::move(t));
  }
  PBSKIT_ASSIGN_OR_RETURN(auto inv, Inventory::Load(state.fs(), state.dir()));
  std::set<Uuid> todo;
  for (const auto& t : tapes) {
    if (t.todo) todo.insert(t.id.label.uuid);
  }
  // 2. fast path.
  std::set<Uuid> restored;
  std::map<Uuid, std::string> fast_error;
  if (!opts.scan) {
    for (auto& t : tapes) {
      if (todo.empty()) break;
      PBSKIT_ASSIGN_OR_RETURN(auto members, inv.MediaSetMembers(t.id.media_set_label->uuid));
      std::set<Uuid> member_set;
      for (const auto& m : members) {
        if (m) member_set.insert(*m);
      }
      // Nothing on this tape can help unless it or a set member still needs a catalog.
      bool useful = false;
      for (const auto& m : member_set) useful = useful || (todo.count(m) && !restored.count(m));
      if (!useful) continue;
      Log(opts.log, "fast catalog restore from media '" + t.id.label.label_text + "'");
      PBSKIT_RETURN_IF_ERROR(drive->LoadMedia(t.id.label.label_text));
      auto l = drive->ReadLabel();
      Status st = l.status();
      std::set<Uuid> got;
      if (l.ok()) {
        std::set<Uuid> overwrite;
        for (const auto& m : todo) {
          if (!restored.count(m)) overwrite.insert(m);
        }
        st = FastCatalogRestore(drive, state, t.id, member_set, overwrite, opts.log, &got);
      }
      for (const auto& u : got) {
        if (todo.count(u)) restored.insert(u);
      }
      if (!st.ok()) {
        fast_error[t.id.label.uuid] = st.message();
        Log(opts.log, "fast catalog restore on '" + t.id.label.label_text +
                          "' failed: " + st.message() + " - falling back to full scan");
      }
    }
  }
  // 3. full scan for the rest.
  for (auto& t : tapes) {
    if (!t.todo) continue;
    TapeReindexResult& r = report.tapes[t.result];
    if (restored.count(t.id.label.uuid)) {
      r.method = "fast";
      auto c = state.LoadCatalog(t.id);
      if (c.ok()) {
        for (const auto& [store, content] : c->content) {
          r.snapshots += content.snapshot_index.size();
          r.chunks += content.chunk_index.size();
        }
        for (const auto& e : c->entries) {
          if (e.type == MediaCatalogEntry::Type::kChunkArchiveStart) ++r.chunk_archives;
        }
      }
      continue;
    }
    auto fe = fast_error.find(t.id.label.uuid);
    r.method = fe != fast_error.end() ? "fallback-scan" : "scan";
    if (fe != fast_error.end()) r.error = fe->second;
    Log(opts.log, "scanning media '" + t.id.label.label_text + "'");
    PBSKIT_RETURN_IF_ERROR(drive->LoadMedia(t.id.label.label_text));
    Status st = ScanMediaCatalog(drive, state, t.id, opts.verbose, opts.log, &r);
    if (!st.ok()) {
      r.damaged = true;
      r.error = st.message();
      Log(opts.log, "media '" + t.id.label.label_text + "' is damaged: " + st.message());
    }
  }
  // 4. missing members of the media sets seen.
  std::map<Uuid, std::set<uint64_t>> present;
  std::map<Uuid, uint64_t> max_seq;
  for (const auto& t : tapes) {
    const auto& s = *t.id.media_set_label;
    present[s.uuid].insert(s.seq_nr);
    max_seq[s.uuid] = std::max(max_seq[s.uuid], s.seq_nr);
  }
  for (const auto& [set, seqs] : present) {
    auto members = inv.MediaSetMembers(set);
    uint64_t top = max_seq[set];
    if (members.ok() && !members->empty()) top = std::max<uint64_t>(top, members->size() - 1);
    for (uint64_t s = 0; s <= top; ++s) {
      if (seqs.count(s)) continue;
      MissingMedia m{set, s, std::nullopt};
      if (members.ok() && s < members->size() && (*members)[s]) {
        if (const auto* e = inv.Find(*(*members)[s])) m.label_text = e->id.label.label_text;
      }
      report.missing.push_back(std::move(m));
    }
  }
  PBSKIT_RETURN_IF_ERROR(drive->UnloadMedia());
  return report;
}

}  // namespace pbskit::tape
