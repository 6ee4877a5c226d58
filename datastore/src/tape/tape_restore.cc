// Catalog-driven restore of a media set (see tape_restore.h).
#include "pbskit/datastore/tape/tape_restore.h"

#include <fcntl.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/dynamic_index.h"
#include "pbskit/formats/fixed_index.h"
#include "pbskit/formats/manifest.h"
#include "pbskit/formats/tape/archives.h"

namespace pbskit::tape {
namespace {

void Log(const TapeLog& log, const std::string& line) {
  if (log) log(line);
}

struct Member {
  MediaId id;
  bool online = false;
  bool catalog_ok = false;
  std::string catalog_error;
  MediaCatalogContent content;
};

struct Location {
  size_t member;
  uint64_t file;
};

struct Wanted {
  std::string store, snapshot;
  Location loc{};
  Uuid content_uuid{};
  std::string tmp;  // extraction directory
  bool extracted = false;
  bool exists = false;
  std::vector<Digest> chunks;
  size_t result;  // index into report.snapshots
};

std::string Where(const Member& m, uint64_t file) {
  return "media '" + m.id.label.label_text + "' file " + std::to_string(file);
}

Status CheckRestoredName(const std::string& name) {
  if (name == kManifestBlobName || name == kClientLogBlobName) return Status::OK();
  return CheckArchiveName(name);
}

// Extracts the snapshot archive at the current tape file into `dir`.
Status ExtractSnapshot(VirtualTapeDrive* drive, const Wanted& w, Filesystem* fs,
                       const std::string& dir) {
  PBSKIT_ASSIGN_OR_RETURN(auto dev, drive->ReadNextFile());
  BlockedReader reader;
  PBSKIT_ASSIGN_OR_RETURN(auto kind, BlockedReader::Open(dev.get(), &reader));
  if (kind != BlockedReader::OpenKind::kStream) {
    return Status::Corruption("expected a snapshot archive, found an empty file / end of data");
  }
  MediaContentHeader h;
  std::string json;
  PBSKIT_RETURN_IF_ERROR(ReadAnyContentHeader(&reader, &h, &json));
  if (h.content_magic != kSnapshotArchiveMagic11 && h.content_magic != kSnapshotArchiveMagic12) {
    return Status::Corruption(std::string("expected a snapshot archive, found ") +
                              ContentMagicName(h.content_magic));
  }
  if (h.uuid != w.content_uuid) {
    return Status::Corruption("content uuid " + UuidToString(h.uuid) +
                              " does not match the catalog (" + UuidToString(w.content_uuid) + ")");
  }
  PBSKIT_ASSIGN_OR_RETURN(auto sh, SnapshotArchiveHeader::FromJson(json));
  if (sh.snapshot != w.snapshot || sh.store != w.store) {
    return Status::Corruption("archive holds " + sh.store + ":" + sh.snapshot);
  }
  PBSKIT_RETURN_IF_ERROR(MkdirAll(fs, dir, 0700));
  std::vector<uint8_t> buf(kBlockSize);
  bool manifest = false;
  PBSKIT_RETURN_IF_ERROR(ReadSnapshotArchive(
      &reader,
      [&](const std::string& name, const pxar::Stat&, uint64_t,
          const std::function<Result<size_t>(std::span<uint8_t>)>& read) -> Status {
        Status ok_name = CheckRestoredName(name);
        if (!ok_name.ok()) return Status::Corruption("bad file name in snapshot archive: " + name);
        if (name == kManifestBlobName) manifest = true;
        PBSKIT_ASSIGN_OR_RETURN(
            int fd, fs->Open(JoinPath(dir, name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        ScopedFd sfd(fs, fd);
        uint64_t off = 0;
        for (;;) {
          PBSKIT_ASSIGN_OR_RETURN(size_t n, read(buf));
          if (n == 0) break;
          PBSKIT_RETURN_IF_ERROR(fs->PWriteAll(fd, buf.data(), n, off));
          off += n;
        }
        return sfd.Close();
      }));
  PBSKIT_RETURN_IF_ERROR(reader.SkipData().status());
  PBSKIT_ASSIGN_OR_RETURN(bool end, reader.HasEndMarker());
  if (!end) return Status::Corruption("snapshot archive has no end marker (aborted stream)");
  if (*reader.IsIncomplete()) return Status::Corruption("snapshot archive is incomplete");
  if (!manifest) return Status::Corruption("snapshot archive has no index.json.blob");
  return Status::OK();
}

// Digests referenced by the index files of an extracted snapshot.
Status CollectChunks(Filesystem* fs, Wanted* w) {
  PBSKIT_ASSIGN_OR_RETURN(auto raw, ReadWholeFile(fs, JoinPath(w->tmp, kManifestBlobName)));
  PBSKIT_ASSIGN_OR_RETURN(auto manifest, Manifest::FromBlob(raw, kManifestBlobName));
  std::set<Digest> seen;
  for (const auto& f : manifest.files) {
    PBSKIT_ASSIGN_OR_RETURN(auto type, ArchiveTypeOf(f.filename));
    if (type == ArchiveType::kBlob) continue;
    PBSKIT_ASSIGN_OR_RETURN(auto bytes, ReadWholeFile(fs, JoinPath(w->tmp, f.filename)));
    std::vector<Digest> ds;
    if (type == ArchiveType::kFixedIndex) {
      PBSKIT_ASSIGN_OR_RETURN(auto idx, FixedIndex::Parse(bytes, f.filename));
      ds = idx.digests();
    } else {
      PBSKIT_ASSIGN_OR_RETURN(auto idx, DynamicIndex::Parse(bytes, f.filename));
      for (const auto& e : idx.entries()) ds.push_back(e.digest);
    }
    for (const auto& d : ds) {
      if (seen.insert(d).second) w->chunks.push_back(d);
    }
  }
  return Status::OK();
}

// Moves an extracted snapshot into the datastore (manifest last, verify_state dropped).
Status CommitSnapshot(DataStore* store, const Wanted& w, const std::string& owner,
                      Filesystem* tmpfs) {
  PBSKIT_ASSIGN_OR_RETURN(auto parsed, ParseSnapshotOrGroupPath(w.snapshot));
  auto& [ns, group, time] = parsed;
  BackupDir dir{group, *time};
  BackupNamespace cur;
  for (const auto& c : ns.components()) {
    PBSKIT_ASSIGN_OR_RETURN(cur, cur.Child(c));
    auto st = store->CreateNamespace(cur);
    if (!st.ok() && st.code() != Code::kAlreadyExists) return st;
  }
  PBSKIT_ASSIGN_OR_RETURN(auto locked, store->CreateLockedGroup(ns, group, owner));
  std::string path = store->SnapshotPath(ns, dir);
  PBSKIT_ASSIGN_OR_RETURN(bool exists, PathExists(store->fs(), path));
  if (exists) return Status::AlreadyExists("snapshot directory " + path + " already exists");
  PBSKIT_RETURN_IF_ERROR(MkdirAll(store->fs(), path, 0755));
  auto lock = store->LockSnapshot(ns, dir);
  if (!lock.ok()) return lock.status();
  std::vector<DirEntry> entries;
  PBSKIT_RETURN_IF_ERROR(tmpfs->ReadDir(w.tmp, &entries));
  for (const auto& e : entries) {
    if (e.name == kManifestBlobName) continue;
    PBSKIT_ASSIGN_OR_RETURN(auto bytes, ReadWholeFile(tmpfs, JoinPath(w.tmp, e.name)));
    PBSKIT_RETURN_IF_ERROR(
        WriteFileAtomic(store->fs(), JoinPath(path, e.name), bytes, store->sync_level()));
  }
  PBSKIT_ASSIGN_OR_RETURN(auto manifest, ReadWholeFile(tmpfs, JoinPath(w.tmp, kManifestBlobName)));
  PBSKIT_RETURN_IF_ERROR(WriteFileAtomic(store->fs(), JoinPath(path, kManifestBlobName), manifest,
                                         store->sync_level()));
  lock->reset();
  return store->UpdateManifestUnprotected(ns, dir, [](boost::json::object& u) {
    u.erase("verify_state");
    return Status::OK();
  });
}

}  // namespace

bool TapeRestoreReport::ok() const {
  for (const auto& s : snapshots) {
    if (s.status != "restored" && s.status != "exists") return false;
  }
  return true;
}

std::string TapeRestoreReport::ToText() const {
  std::ostringstream o;
  for (const auto& s : snapshots) {
    o << s.status << ": " << s.store << ":" << s.snapshot;
    if (!s.reason.empty()) o << " - " << s.reason;
    o << "\n";
  }
  for (const auto& d : damaged) o << "damaged: " << d << "\n";
  for (const auto& m : missing_media) o << "missing media: " << m << "\n";
  size_t restored = std::count_if(snapshots.begin(), snapshots.end(),
                                  [](auto& s) { return s.status == "restored"; });
  size_t incomplete = std::count_if(snapshots.begin(), snapshots.end(), [](auto& s) {
    return s.status == "incomplete" || s.status == "not-found";
  });
  o << (ok() ? "TASK OK" : "TASK ERROR") << ": " << restored << " snapshots restored, "
    << incomplete << " incomplete, " << chunks_restored << " chunks restored (" << chunks_present
    << " already present), " << files_read << " tape files read from " << media_read.size()
    << " media\n";
  return o.str();
}

boost::json::value TapeRestoreReport::ToJson() const {
  boost::json::array snaps;
  for (const auto& s : snapshots) {
    boost::json::object o;
    o["store"] = s.store;
    o["snapshot"] = s.snapshot;
    o["status"] = s.status;
    if (!s.reason.empty()) o["reason"] = s.reason;
    snaps.push_back(std::move(o));
  }
  auto strings = [](const std::vector<std::string>& v) {
    boost::json::array a;
    for (const auto& s : v) a.push_back(boost::json::value(s));
    return a;
  };
  boost::json::object out;
  out["snapshots"] = snaps;
  out["damaged"] = strings(damaged);
  out["missing-media"] = strings(missing_media);
  out["media-read"] = strings(media_read);
  out["files-read"] = files_read;
  out["chunks-restored"] = chunks_restored;
  out["chunks-present"] = chunks_present;
  out["ok"] = ok();
  return out;
}

Result<TapeRestoreReport> RestoreMediaSet(VirtualTapeDrive* drive, const TapeStatusDir& state,
                                          std::shared_ptr<DataStore> target,
                                          const TapeRestoreOptions& opts) {
  TapeRestoreReport report;
  Filesystem* fs = state.fs();
  PBSKIT_ASSIGN_OR_RETURN(auto inv, Inventory::Load(fs, state.dir()));
  PBSKIT_ASSIGN_OR_RETURN(auto uuids, inv.MediaSetMembers(opts.media_set));
  if (uuids.empty()) {
    return Status::NotFound("media set " + UuidToString(opts.media_set) +
                            " not found in the inventory");
  }
  PBSKIT_ASSIGN_OR_RETURN(auto online_list, drive->OnlineMediaLabelTexts());
  std::set<std::string> online(online_list.begin(), online_list.end());
  std::vector<Member> members(uuids.size());
  for (size_t i = 0; i < uuids.size(); ++i) {
    if (!uuids[i]) {
      report.missing_media.push_back("seq " + std::to_string(i) + " (unknown media)");
      continue;
    }
    Member& m = members[i];
    m.id = inv.Find(*uuids[i])->id;
    m.online = online.count(m.id.label.label_text) != 0;
    if (!m.online) report.missing_media.push_back(m.id.label.label_text);
    auto c = state.LoadCatalog(m.id);
    if (c.ok()) {
      m.catalog_ok = true;
      m.content = std::move(*c);
    } else {
      m.catalog_error = c.status().message();
    }
  }
  // Snapshot lookup via the .index caches; file numbers and chunks via the catalogs.
  std::map<std::pair<std::string, std::string>, size_t> holder;
  for (size_t i = 0; i < members.size(); ++i) {
    if (!members[i].catalog_ok) continue;
    PBSKIT_ASSIGN_OR_RETURN(auto list, state.SnapshotList(members[i].id));
    for (const auto& p : list) holder.emplace(p, i);
  }
  std::vector<Wanted> wanted;
  auto want = [&](const std::string& store, const std::string& snapshot, size_t m) {
    const auto& c = members[m].content.content.at(store);
    Wanted w;
    w.store = store;
    w.snapshot = snapshot;
    w.loc = Location{m, c.snapshot_index.at(snapshot)};
    for (const auto& e : members[m].content.entries) {
      if (e.type == MediaCatalogEntry::Type::kSnapshot && e.store == store &&
          e.snapshot == snapshot) {
        w.content_uuid = e.uuid;
      }
    }
    w.result = report.snapshots.size();
    report.snapshots.push_back({store, snapshot, "", ""});
    wanted.push_back(std::move(w));
  };
  if (opts.snapshots.empty()) {
    for (const auto& [key, m] : holder) want(key.first, key.second, m);
  } else {
    for (const auto& arg : opts.snapshots) {
      std::string store, snap = arg;
      // "store:snapshot" - the time part has ':' too, a store name has no '/'.
      size_t colon = arg.find(':');
      if (colon != std::string::npos && arg.substr(0, colon).find('/') == std::string::npos) {
        store = arg.substr(0, colon);
        snap = arg.substr(colon + 1);
      }
      PBSKIT_RETURN_IF_ERROR(CheckTapeSnapshotName(snap));
      bool found = false;
      for (const auto& [key, m] : holder) {
        if (key.second == snap && (store.empty() || key.first == store)) {
          want(key.first, key.second, m);
          found = true;
        }
      }
      if (!found) {
        std::string reason =
            "not found in the catalogs of media set " + UuidToString(opts.media_set);
        for (const auto& m : members) {
          if (!m.catalog_ok && !m.id.label.label_text.empty()) {
            reason += "; media '" + m.id.label.label_text + "' has no usable catalog (" +
                      m.catalog_error + ")";
          }
        }
        report.snapshots.push_back({store, snap, "not-found", reason});
      }
    }
  }
  auto incomplete = [&](Wanted& w, const std::string& reason) {
    auto& r = report.snapshots[w.result];
    if (r.status == "incomplete") return;
    r.status = "incomplete";
    r.reason = reason;
  };
  auto load = [&](size_t mi) -> Status {
    const Member& m = members[mi];
    PBSKIT_RETURN_IF_ERROR(drive->LoadMedia(m.id.label.label_text));
    PBSKIT_ASSIGN_OR_RETURN(auto labels, drive->ReadLabel());
    if (!labels.label || labels.label->uuid != m.id.label.uuid) {
      return Status::Corruption("media '" + m.id.label.label_text +
                                "' in the drive has a different label uuid (relabelled?)");
    }
    if (std::find(report.media_read.begin(), report.media_read.end(), m.id.label.label_text) ==
        report.media_read.end()) {
      report.media_read.push_back(m.id.label.label_text);
    }
    return Status::OK();
  };

  std::string tmp_root = JoinPath(state.dir(), "restore-" + UuidToString(opts.media_set));
  (void)RemoveTree(fs, tmp_root);
  PBSKIT_RETURN_IF_ERROR(MkdirAll(fs, tmp_root, 0700));

  // Phase 1: snapshot archives, tape by tape in file order.
  for (auto& w : wanted) {
    auto parsed = ParseSnapshotOrGroupPath(w.snapshot);
    if (parsed.ok()) {
      auto& [ns, g, t] = *parsed;
      auto info = target->GetSnapshotInfo(ns, BackupDir{g, *t});
      if (info.ok() && info->finished) {
        w.exists = true;
        report.snapshots[w.result].status = "exists";
        Log(opts.log, "skip already existing snapshot " + w.snapshot);
      }
    }
  }
  std::vector<size_t> order(wanted.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::make_pair(wanted[a].loc.member, wanted[a].loc.file) <
           std::make_pair(wanted[b].loc.member, wanted[b].loc.file);
  });
  std::optional<size_t> loaded;
  size_t n = 0;
  for (size_t i : order) {
    Wanted& w = wanted[i];
    w.tmp = JoinPath(tmp_root, std::to_string(n++));
    if (w.exists) continue;
    Member& m = members[w.loc.member];
    if (!m.online) {
      incomplete(w, "snapshot archive is on media '" + m.id.label.label_text +
                        "' which is not in the drive");
      continue;
    }
    if (loaded != w.loc.member) {
      Status st = load(w.loc.member);
      if (!st.ok()) {
        incomplete(w, st.message());
        continue;
      }
      loaded = w.loc.member;
    }
    Log(opts.log,
        "restore snapshot archive " + w.store + ":" + w.snapshot + " from " + Where(m, w.loc.file));
    Status st = drive->MoveToFile(w.loc.file);
    if (st.ok()) st = ExtractSnapshot(drive, w, fs, w.tmp);
    ++report.files_read;
    if (st.ok()) st = CollectChunks(fs, &w);
    if (!st.ok()) {
      std::string where = Where(m, w.loc.file);
      report.damaged.push_back(where + ": " + st.message());
      incomplete(w, "snapshot archive at " + where + " is damaged: " + st.message());
      continue;
    }
    w.extracted = true;
  }

  // Phase 2: chunks not yet in the target, read from exactly the archives that hold them.
  std::map<Digest, std::vector<size_t>> needed_by;  // digest -> wanted indices
  for (size_t i = 0; i < wanted.size(); ++i) {
    if (!wanted[i].extracted) continue;
    for (const auto& d : wanted[i].chunks) needed_by[d].push_back(i);
  }
  std::map<std::pair<size_t, uint64_t>, std::set<Digest>> per_file;
  std::map<std::pair<size_t, uint64_t>, Uuid> file_uuid;
  for (const auto& [d, users] : needed_by) {
    auto have = target->chunk_store().StatChunk(d);
    if (!have.ok() && have.status().code() != Code::kNotFound) return have.status();
    if (have.ok()) {
      ++report.chunks_present;
      continue;
    }
    const std::string& store = wanted[users[0]].store;
    std::optional<Location> loc;
    for (size_t mi = 0; mi < members.size() && !loc; ++mi) {
      if (!members[mi].catalog_ok) continue;
      auto sc = members[mi].content.content.find(store);
      if (sc == members[mi].content.content.end()) continue;
      auto it = sc->second.chunk_index.find(d);
      if (it != sc->second.chunk_index.end()) loc = Location{mi, it->second};
    }
    if (!loc) {
      for (size_t u : users) {
        incomplete(wanted[u], "chunk " + ToHex(d) + " is not in any catalog of the media set");
      }
      continue;
    }
    if (!members[loc->member].online) {
      for (size_t u : users) {
        incomplete(wanted[u], "chunks on media '" + members[loc->member].id.label.label_text +
                                  "' which is not in the drive");
      }
      continue;
    }
    per_file[{loc->member, loc->file}].insert(d);
  }
  for (size_t mi = 0; mi < members.size(); ++mi) {
    for (const auto& e : members[mi].content.entries) {
      if (e.type == MediaCatalogEntry::Type::kChunkArchiveStart)
        file_uuid[{mi, e.file_number}] = e.uuid;
    }
  }
  std::vector<uint8_t> plain;
  for (auto& [key, digests] : per_file) {
    auto [mi, file] = key;
    Member& m = members[mi];
    std::string where = Where(m, file);
    auto fail_rest = [&](const std::string& why) {
      report.damaged.push_back(where + ": " + why);
      for (const auto& d : digests) {
        for (size_t u : needed_by[d]) {
          incomplete(wanted[u], "chunk archive at " + where + " is damaged: " + why);
        }
      }
    };
    if (loaded != mi) {
      Status st = load(mi);
      if (!st.ok()) {
        fail_rest(st.message());
        continue;
      }
      loaded = mi;
    }
    Log(opts.log, "restore " + std::to_string(digests.size()) + " chunks from " + where);
    ++report.files_read;
    auto body = [&]() -> Status {
      PBSKIT_RETURN_IF_ERROR(drive->MoveToFile(file));
      PBSKIT_ASSIGN_OR_RETURN(auto dev, drive->ReadNextFile());
      BlockedReader reader;
      PBSKIT_ASSIGN_OR_RETURN(auto kind, BlockedReader::Open(dev.get(), &reader));
      if (kind != BlockedReader::OpenKind::kStream) {
        return Status::Corruption("expected a chunk archive, found an empty file / end of data");
      }
      MediaContentHeader h;
      std::string json;
      PBSKIT_RETURN_IF_ERROR(ReadAnyContentHeader(&reader, &h, &json));
      if (h.content_magic != kChunkArchiveMagic11) {
        return Status::Corruption(std::string("expected a chunk archive, found ") +
                                  ContentMagicName(h.content_magic));
      }
      if (h.uuid != file_uuid[key]) {
        return Status::Corruption("content uuid " + UuidToString(h.uuid) +
                                  " does not match the catalog");
      }
      ChunkArchiveDecoder dec(&reader);
      Digest d;
      std::vector<uint8_t> raw;
      for (;;) {
        PBSKIT_ASSIGN_OR_RETURN(bool more, dec.Next(&d, &raw));
        if (!more) break;
        if (!digests.count(d)) continue;
        bool encrypted =
            raw.size() >= 8 &&
            (std::equal(raw.begin(), raw.begin() + 8, kEncryptedBlobMagic.begin()) ||
             std::equal(raw.begin(), raw.begin() + 8, kEncrCompressedBlobMagic.begin()));
        if (!encrypted) {
          Status st = DecodeBlob(raw, nullptr, &plain);
          if (st.ok() && Sha256(plain) != d)
            st = Status::Corruption("detected chunk with wrong digest.");
          if (!st.ok()) return st.WithContext("chunk " + ToHex(d));
        }
        PBSKIT_RETURN_IF_ERROR(target->chunk_store().InsertChunk(d, raw).status());
        ++report.chunks_restored;
        digests.erase(d);
      }
      if (!digests.empty()) {
        return Status::Corruption(std::to_string(digests.size()) +
                                  " chunks listed in the catalog are not in the archive "
                                  "(truncated archive)");
      }
      return Status::OK();
    };
    Status st = body();
    if (!st.ok()) fail_rest(st.message());
  }
  if (loaded) PBSKIT_RETURN_IF_ERROR(drive->UnloadMedia());

  // Phase 3: move complete snapshots into the datastore.
  for (auto& w : wanted) {
    auto& r = report.snapshots[w.result];
    if (!w.extracted || r.status == "incomplete") continue;
    std::string missing;
    for (const auto& d : w.chunks) {
      if (target->chunk_store().StatChunk(d).ok()) continue;
      missing = ToHex(d);
      break;
    }
    if (!missing.empty()) {
      incomplete(w, "chunk " + missing + " is missing");
      continue;
    }
    Status st = CommitSnapshot(target.get(), w, opts.owner, fs);
    if (!st.ok()) {
      incomplete(w, "unable to write snapshot into datastore: " + st.message());
      continue;
    }
    r.status = "restored";
    Log(opts.log, "restored snapshot " + w.store + ":" + w.snapshot);
  }
  (void)RemoveTree(fs, tmp_root);
  return report;
}

}  // namespace pbskit::tape
