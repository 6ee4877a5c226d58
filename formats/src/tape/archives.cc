// Chunk, snapshot and catalog archives on tape (see archives.h, docs/formats/tape.md).
#include "pbskit/formats/tape/archives.h"

#include <boost/json.hpp>
#include <cstring>

#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/json.h"
#include "pbskit/formats/pxar/decoder.h"
#include "pbskit/formats/pxar/encoder.h"
#include "pbskit/formats/tape/media_catalog.h"

namespace pbskit::tape {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Writes MediaContentHeader + JSON into a fresh BlockedWriter.
Result<bool> WriteHeader(BlockedWriter* w, const Magic& magic, const std::string& json,
                         int64_t ctime, const Uuid& uuid) {
  MediaContentHeader h;
  h.content_magic = magic;
  h.uuid = uuid;
  h.ctime = ctime;
  h.size = static_cast<uint32_t>(json.size());
  auto raw = h.Encode();
  PBSKIT_RETURN_IF_ERROR(w->Write(raw).status());
  return w->Write(Bytes(json));
}

Result<boost::json::object> ParseObject(std::string_view json, const std::string& what) {
  boost::system::error_code ec;
  auto v = boost::json::parse(json, ec);
  if (ec) return Status::InvalidArgument(what + " - " + ec.message());
  if (!v.is_object()) return Status::InvalidArgument(what + " - not a JSON object");
  return std::move(v.as_object());
}

Result<std::string> StringField(const boost::json::object& o, const char* key,
                                const std::string& what) {
  auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) {
    return Status::InvalidArgument(what + " - missing or invalid string field `" + key + "`");
  }
  return std::string(v->as_string());
}

Result<Uuid> UuidField(const boost::json::object& o, const char* key, const std::string& what) {
  PBSKIT_ASSIGN_OR_RETURN(std::string s, StringField(o, key, what));
  auto u = ParseUuid(s);
  if (!u.ok()) return Status::InvalidArgument(what + " - " + u.status().message());
  return *u;
}

// pxar sink into the block stream that fails at logical end of media (PBS's PxarTapeWriter).
class TapeSink : public pxar::PxarSink {
 public:
  explicit TapeSink(BlockedWriter* w) : w_(w) {}
  Status Write(std::span<const uint8_t> data) override {
    PBSKIT_ASSIGN_OR_RETURN(bool leom, w_->Write(data));
    if (leom) {
      leom_hit_ = true;
      return Status::IoError("no space left on device (logical end of media)");
    }
    return Status::OK();
  }
  bool leom_hit() const { return leom_hit_; }

 private:
  BlockedWriter* w_;
  bool leom_hit_ = false;
};

class BlockedSource : public pxar::PxarSource {
 public:
  explicit BlockedSource(BlockedReader* r) : r_(r) {}
  Result<size_t> Read(std::span<uint8_t> buf) override { return r_->Read(buf); }

 private:
  BlockedReader* r_;
};

}  // namespace

Status ReadAnyContentHeader(BlockedReader* reader, MediaContentHeader* header, std::string* data) {
  std::array<uint8_t, kMediaContentHeaderSize> raw{};
  PBSKIT_RETURN_IF_ERROR(reader->ReadExact(raw).WithContext("MediaContentHeader"));
  *header = MediaContentHeader::Decode(raw);
  if (header->magic != kContentHeaderMagic) {
    return Status::Corruption("missing MediaContentHeader");
  }
  if (header->size > kArchiveHeaderMaxSize) {
    return Status::Corruption("MediaContentHeader: got unexpected size (" +
                              std::to_string(header->size) + " bytes of header data)");
  }
  data->assign(header->size, '\0');
  return reader->ReadExact(
      std::span<uint8_t>(reinterpret_cast<uint8_t*>(data->data()), data->size()));
}

// ------------------------------------------------------------------ chunk archives

std::string ChunkArchiveHeaderJson(std::string_view store) {
  boost::json::object o;
  o["store"] = store;
  return ToSerdePretty(o);
}

Result<std::string> ParseChunkArchiveHeader(std::string_view json) {
  const std::string what = "unable to parse chunk archive header";
  PBSKIT_ASSIGN_OR_RETURN(auto o, ParseObject(json, what));
  return StringField(o, "store", what);
}

Result<std::unique_ptr<ChunkArchiveWriter>> ChunkArchiveWriter::Begin(
    TapeBlockWriter* device, std::string_view store, bool close_on_leom, int64_t ctime,
    const std::optional<Uuid>& content_uuid) {
  std::unique_ptr<ChunkArchiveWriter> w(new ChunkArchiveWriter(device, close_on_leom));
  w->uuid_ = content_uuid ? *content_uuid : RandomUuid();
  PBSKIT_RETURN_IF_ERROR(WriteHeader(w->writer_.get(), kChunkArchiveMagic11,
                                     ChunkArchiveHeaderJson(store), ctime, w->uuid_)
                             .status());
  return w;
}

Result<bool> ChunkArchiveWriter::TryWriteChunk(const Digest& digest,
                                               std::span<const uint8_t> raw_blob) {
  if (closed_) return false;
  std::array<uint8_t, kChunkArchiveEntryHeaderSize> head{};
  std::memcpy(head.data(), kChunkArchiveEntryMagic.data(), 8);
  std::memcpy(head.data() + 8, digest.data(), 32);
  uint64_t size = raw_blob.size();
  for (int i = 0; i < 8; ++i) head[40 + i] = static_cast<uint8_t>(size >> (8 * i));
  PBSKIT_RETURN_IF_ERROR(writer_->Write(head).status());
  size_t start = 0;
  while (start < raw_blob.size()) {
    size_t n = std::min(kBlockSize, raw_blob.size() - start);
    bool last = start + n >= raw_blob.size();
    PBSKIT_ASSIGN_OR_RETURN(bool leom, writer_->Write(raw_blob.subspan(start, n)));
    if (leom && close_on_leom_) {
      PBSKIT_RETURN_IF_ERROR(writer_->Finish(false).status());
      closed_ = true;
      return last;
    }
    start += n;
  }
  return true;
}

Result<bool> ChunkArchiveWriter::Finish() {
  if (closed_) return true;
  closed_ = true;
  return writer_->Finish(false);
}

Status ChunkArchiveDecoder::ReadOrEof(std::span<uint8_t> out, bool* eof) {
  size_t done = 0;
  while (done < out.size()) {
    PBSKIT_ASSIGN_OR_RETURN(size_t n, reader_->Read(out.subspan(done)));
    if (n == 0) {
      *eof = true;
      return Status::OK();
    }
    done += n;
  }
  *eof = false;
  return Status::OK();
}

Result<bool> ChunkArchiveDecoder::Next(Digest* digest, std::vector<uint8_t>* raw_blob) {
  std::array<uint8_t, kChunkArchiveEntryHeaderSize> head{};
  bool eof = false;
  // A clean end leaves nothing; a partial header counts as a cut last entry.
  size_t got = 0;
  while (got < head.size()) {
    PBSKIT_ASSIGN_OR_RETURN(size_t n, reader_->Read(std::span(head).subspan(got)));
    if (n == 0) break;
    got += n;
  }
  if (got == 0) return false;
  if (got < head.size()) {
    truncated_ = true;
    return false;
  }
  if (std::memcmp(head.data(), kChunkArchiveEntryMagic.data(), 8) != 0) {
    return Status::Corruption("wrong magic number");
  }
  std::memcpy(digest->data(), head.data() + 8, 32);
  uint64_t size = 0;
  for (int i = 0; i < 8; ++i) size |= uint64_t(head[40 + i]) << (8 * i);
  if (size > kMaxBlobSize + kEncryptedBlobHeaderSize + 1024 * 1024) {
    return Status::Corruption("chunk archive entry " + ToHex(*digest) + " has implausible size " +
                              std::to_string(size));
  }
  raw_blob->resize(size);
  PBSKIT_RETURN_IF_ERROR(ReadOrEof(*raw_blob, &eof));
  if (eof) {
    truncated_ = true;
    return false;
  }
  Status st = CheckBlobHeader(*raw_blob, /*check_crc=*/true);
  if (!st.ok()) {
    return Status::Corruption("chunk " + ToHex(*digest) + " in chunk archive: " + st.message());
  }
  return true;
}

// ------------------------------------------------------------------ snapshot archives

std::string SnapshotArchiveHeader::ToJson() const {
  // Declaration order (snapshot, store): boost::json keeps insertion order.
  boost::json::object o;
  o["snapshot"] = snapshot;
  o["store"] = store;
  return ToSerdePretty(o);
}

Result<SnapshotArchiveHeader> SnapshotArchiveHeader::FromJson(std::string_view json) {
  const std::string what = "unable to parse snapshot archive header";
  PBSKIT_ASSIGN_OR_RETURN(auto o, ParseObject(json, what));
  SnapshotArchiveHeader h;
  PBSKIT_ASSIGN_OR_RETURN(h.snapshot, StringField(o, "snapshot", what));
  PBSKIT_ASSIGN_OR_RETURN(h.store, StringField(o, "store", what));
  PBSKIT_RETURN_IF_ERROR(CheckTapeSnapshotName(h.snapshot));
  return h;
}

Result<std::optional<Uuid>> WriteSnapshotArchive(TapeBlockWriter* device,
                                                 const SnapshotArchiveHeader& header,
                                                 bool root_namespace,
                                                 const std::vector<SnapshotArchiveFile>& files,
                                                 int64_t ctime,
                                                 const std::optional<Uuid>& content_uuid) {
  BlockedWriter w(device);
  Uuid uuid = content_uuid ? *content_uuid : RandomUuid();
  const Magic& magic = root_namespace ? kSnapshotArchiveMagic11 : kSnapshotArchiveMagic12;
  TapeSink sink(&w);
  bool header_leom = false;
  auto body = [&]() -> Status {
    PBSKIT_ASSIGN_OR_RETURN(header_leom, WriteHeader(&w, magic, header.ToJson(), ctime, uuid));
    if (header_leom) return Status::IoError("no space left on device (logical end of media)");
    pxar::Metadata root;
    root.stat.mode = pxar::kModeIfdir | 0664;
    PBSKIT_ASSIGN_OR_RETURN(auto enc, pxar::Encoder::Create(&sink, nullptr, root));
    std::vector<uint8_t> buf(kBlockSize);
    for (const auto& f : files) {
      if (!f.stat.is_regular_file()) {
        return Status::InvalidArgument("file '" + f.name + "' is not a regular file");
      }
      pxar::Metadata meta;
      meta.stat = f.stat;
      PBSKIT_RETURN_IF_ERROR(enc->BeginFile(meta, f.name, f.size).status());
      uint64_t off = 0;
      while (off < f.size) {
        PBSKIT_ASSIGN_OR_RETURN(size_t n, f.read(off, buf));
        if (n == 0) return Status::InvalidArgument("file '" + f.name + "' shrunk while reading");
        if (off + n > f.size) {
          return Status::InvalidArgument("file '" + f.name + "' changed while reading");
        }
        PBSKIT_RETURN_IF_ERROR(enc->WriteFileData(std::span(buf).first(n)));
        off += n;
      }
      PBSKIT_RETURN_IF_ERROR(enc->EndFile());
    }
    return enc->Finish();
  };
  Status st = body();
  if (st.ok()) {
    PBSKIT_RETURN_IF_ERROR(w.Finish(false).status());
    return std::optional<Uuid>(uuid);
  }
  if (header_leom || sink.leom_hit()) {
    PBSKIT_RETURN_IF_ERROR(w.Finish(true).status());
    return std::optional<Uuid>();
  }
  return st;
}

Status ReadSnapshotArchive(
    BlockedReader* reader,
    const std::function<Status(const std::string&, const pxar::Stat&, uint64_t,
                               const std::function<Result<size_t>(std::span<uint8_t>)>&)>&
        on_file) {
  BlockedSource src(reader);
  pxar::DecoderOptions opts;
  opts.name = "snapshot archive";
  pxar::Decoder dec(&src, nullptr, opts);
  pxar::Entry e;
  bool first = true;
  for (;;) {
    PBSKIT_ASSIGN_OR_RETURN(bool more, dec.Next(&e));
    if (!more) break;
    if (first) {
      first = false;
      if (e.kind != pxar::EntryKind::kDirectory || e.path != "/") {
        return Status::Corruption("snapshot archive: root entry is not a directory");
      }
      continue;
    }
    if (e.kind != pxar::EntryKind::kFile) {
      return Status::Corruption("snapshot archive: entry '" + e.path + "' is not a regular file");
    }
    if (e.path.size() < 2 || e.path.find('/', 1) != std::string::npos) {
      return Status::Corruption("snapshot archive: entry '" + e.path +
                                "' is not directly below the root");
    }
    std::function<Result<size_t>(std::span<uint8_t>)> read = [&](std::span<uint8_t> b) {
      return dec.ReadContent(b);
    };
    PBSKIT_RETURN_IF_ERROR(on_file(e.path.substr(1), e.metadata.stat, e.file_size, read));
  }
  if (first) return Status::Corruption("snapshot archive: empty pxar stream");
  return Status::OK();
}

// ------------------------------------------------------------------ catalog archives

std::string CatalogArchiveHeader::ToJson() const {
  boost::json::object o;
  o["uuid"] = UuidToString(uuid);
  o["media_set_uuid"] = UuidToString(media_set_uuid);
  o["seq_nr"] = seq_nr;
  return ToSerdePretty(o);
}

Result<CatalogArchiveHeader> CatalogArchiveHeader::FromJson(std::string_view json) {
  const std::string what = "unable to parse catalog archive header";
  PBSKIT_ASSIGN_OR_RETURN(auto o, ParseObject(json, what));
  CatalogArchiveHeader h;
  PBSKIT_ASSIGN_OR_RETURN(h.uuid, UuidField(o, "uuid", what));
  PBSKIT_ASSIGN_OR_RETURN(h.media_set_uuid, UuidField(o, "media_set_uuid", what));
  auto* s = o.if_contains("seq_nr");
  if (s == nullptr || !(s->is_uint64() || (s->is_int64() && s->as_int64() >= 0))) {
    return Status::InvalidArgument(what + " - missing or invalid integer field `seq_nr`");
  }
  h.seq_nr = s->is_uint64() ? s->as_uint64() : static_cast<uint64_t>(s->as_int64());
  return h;
}

Result<std::optional<Uuid>> WriteCatalogArchive(TapeBlockWriter* device,
                                                const CatalogArchiveHeader& header, bool ns_magic,
                                                std::span<const uint8_t> catalog, int64_t ctime,
                                                const std::optional<Uuid>& content_uuid) {
  BlockedWriter w(device);
  Uuid uuid = content_uuid ? *content_uuid : RandomUuid();
  PBSKIT_ASSIGN_OR_RETURN(
      bool leom, WriteHeader(&w, ns_magic ? kCatalogArchiveMagic11 : kCatalogArchiveMagic10,
                             header.ToJson(), ctime, uuid));
  size_t off = 0;
  while (!leom && off < catalog.size()) {
    size_t n = std::min(kBlockPayloadSize, catalog.size() - off);
    PBSKIT_ASSIGN_OR_RETURN(leom, w.Write(catalog.subspan(off, n)));
    off += n;
  }
  if (off < catalog.size() || (leom && catalog.empty())) {
    PBSKIT_RETURN_IF_ERROR(w.Finish(true).status());
    return std::optional<Uuid>();
  }
  PBSKIT_RETURN_IF_ERROR(w.Finish(false).status());
  return std::optional<Uuid>(uuid);
}

}  // namespace pbskit::tape
