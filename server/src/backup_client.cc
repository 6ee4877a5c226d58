#include "pbskit/server/backup_client.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "backup_client_common.h"
#include "pbskit/datastore/task_log.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/dynamic_index.h"
#include "pbskit/formats/fixed_index.h"

namespace pbskit::server {
namespace {

constexpr uint64_t kFixedChunkSize = 4 * 1024 * 1024;
constexpr size_t kAppendBatch = 128;  // entries per PUT append

std::string WithoutTypeExtension(const std::string& name) {
  for (const char* ext : {".didx", ".fidx", ".blob"}) {
    size_t n = std::strlen(ext);
    if (name.size() > n && name.compare(name.size() - n, n, ext) == 0) {
      return name.substr(0, name.size() - n);
    }
  }
  return name;
}

}  // namespace

size_t BackupClient::DigestHash::operator()(const Digest& d) const {
  size_t h;
  std::memcpy(&h, d.data(), sizeof h);
  return h;
}

std::vector<std::string> UploadSummaryLines(const std::string& archive, const UploadStats& stats) {
  std::vector<std::string> out;
  std::string name = WithoutTypeExtension(archive);
  uint64_t dirty = stats.size - stats.size_reused;
  uint64_t micros = std::max<uint64_t>(1, static_cast<uint64_t>(stats.duration.count()));
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.2f", static_cast<double>(micros) / 1e6);
  if (archive == "catalog.pcat1.didx") {
    out.push_back("Uploaded backup catalog (" + FormatHumanByte(stats.size) + ")");
  } else {
    out.push_back(name + ": had to backup " + FormatHumanByte(dirty) + " of " +
                  FormatHumanByte(stats.size) + " (compressed " +
                  FormatHumanByte(stats.size_compressed) + ") in " + secs + " s (average " +
                  FormatHumanByte(dirty * 1000000 / micros) + "/s)");
  }
  if (stats.size_reused > 0 && stats.size > 1024 * 1024) {
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.1f",
                  static_cast<double>(stats.size_reused) * 100.0 / static_cast<double>(stats.size));
    out.push_back(name + ": backup was done incrementally, reused " +
                  FormatHumanByte(stats.size_reused) + " (" + pct + "%)");
  }
  return out;
}

// ---- session ----

Result<std::unique_ptr<BackupClient>> BackupClient::Start(const RepositoryConnectOptions& connect,
                                                          const BackupSessionOptions& options) {
  if (options.backup_time < 1) {
    return Status::InvalidArgument("backup-time must be at least 1 (got " +
                                   std::to_string(options.backup_time) + ")");
  }
  PBSKIT_RETURN_IF_ERROR(ParseBackupType(options.backup_type).status());
  PBSKIT_RETURN_IF_ERROR(CheckBackupId(options.backup_id));
  if (options.crypt_mode != CryptMode::kNone && !options.crypt) {
    return Status::InvalidArgument(std::string("crypt mode '") + CryptModeName(options.crypt_mode) +
                                   "' needs a key");
  }
  std::unique_ptr<BackupClient> c(new BackupClient());
  c->options_ = options;
  if (c->options_.max_pending_uploads < 1) c->options_.max_pending_uploads = 1;

  std::vector<std::pair<std::string, std::string>> q = {
      {"backup-id", options.backup_id},
      {"backup-time", std::to_string(options.backup_time)},
      {"backup-type", options.backup_type},
      {"benchmark", options.benchmark ? "true" : "false"},
      {"debug", options.debug ? "true" : "false"}};
  if (!options.ns.IsRoot()) q.emplace_back("ns", options.ns.ToString());
  q.emplace_back("store", connect.repository.store);
  PBSKIT_ASSIGN_OR_RETURN(H2ClientOptions h2opts, ProtocolConnectOptions(connect));
  PBSKIT_ASSIGN_OR_RETURN(
      c->h2_,
      H2Connection::Upgrade(h2opts, "/api2/json/backup?" + EncodeH2Query(q), kBackupProtocolId));
  if (options.reuse_previous) {
    auto t = c->Call("GET", "/previous_backup_time", "");
    if (t.ok() && t->is_int64()) c->previous_time_ = t->as_int64();
    // Like the Rust client, try the previous manifest even when the time query failed.
    if (!t.ok() || c->previous_time_) {
      auto raw =
          c->h2_->Request("GET", "/previous", EncodeH2Query({{"archive-name", kManifestBlobName}}));
      if (raw.ok() && raw->status == 200) {
        std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(raw->body.data()),
                                       raw->body.size());
        auto m = Manifest::FromBlob(bytes, kManifestBlobName);
        if (m.ok()) {
          auto fp = m->KeyFingerprint();
          bool key_ok = !options.crypt || !fp ||
                        (ParseFingerprint(*fp).ok() &&
                         *ParseFingerprint(*fp) == options.crypt->Fingerprint());
          if (key_ok) c->previous_manifest_ = std::move(m).value();
        }
      } else if (!raw.ok()) {
        return raw.status();
      }
    }
  }
  return c;
}

BackupClient::~BackupClient() {
  if (h2_ && !finished_) h2_->Abort();
}

void BackupClient::Abort() {
  failed_ = true;
  pending_.clear();
  if (h2_) h2_->Abort();
}

Status BackupClient::Fail(Status st) {
  if (!st.ok()) failed_ = true;
  return st;
}

Status BackupClient::Usable() const {
  if (finished_) return Status::InvalidArgument("backup session already finished");
  if (failed_) return Status::Aborted("backup session failed earlier");
  return Status::OK();
}

Result<boost::json::value> BackupClient::Call(const std::string& method, const std::string& path,
                                              const std::string& query, std::string body,
                                              const std::string& content_type) {
  PBSKIT_ASSIGN_OR_RETURN(H2ClientResponse r,
                          h2_->Request(method, path, query, std::move(body), content_type));
  return DataOfResponse(r, method + " " + path);
}

// ---- blobs ----

Result<UploadResult> BackupClient::UploadBlob(const std::string& name,
                                              std::span<const uint8_t> data) {
  PBSKIT_RETURN_IF_ERROR(Usable());
  auto t0 = std::chrono::steady_clock::now();
  const CryptConfig* crypt = options_.crypt_mode == CryptMode::kEncrypt ? options_.crypt : nullptr;
  PBSKIT_ASSIGN_OR_RETURN(DataBlob blob, DataBlob::Encode(data, crypt, options_.compress));
  std::string raw(blob.raw().begin(), blob.raw().end());
  UploadResult r;
  r.info.filename = name;
  r.info.crypt_mode = options_.crypt_mode;
  r.info.size = raw.size();
  r.info.csum = Sha256(raw);
  // The query is built before the body is moved into the call.
  std::string query =
      EncodeH2Query({{"encoded-size", std::to_string(raw.size())}, {"file-name", name}});
  auto res = Call("POST", "/blob", query, std::move(raw), "application/octet-stream");
  if (!res.ok()) return Fail(res.status());
  r.stats.chunk_count = 0;
  r.stats.size = data.size();
  r.stats.size_compressed = r.info.size;
  r.stats.csum = r.info.csum;
  r.stats.duration =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  if (name != kManifestBlobName) {
    std::erase_if(files_, [&](const FileInfo& f) { return f.filename == name; });
    files_.push_back(r.info);
  }
  return r;
}

// ---- index writers ----

Status BackupClient::LoadPreviousIndex(const std::string& archive) {
  if (!previous_manifest_) return Status::OK();
  const FileInfo* prev = previous_manifest_->Lookup(archive);
  if (!prev || prev->crypt_mode != options_.crypt_mode) return Status::OK();
  auto raw = h2_->Request("GET", "/previous", EncodeH2Query({{"archive-name", archive}}));
  if (!raw.ok()) return raw.status();
  if (raw->status != 200) return Status::OK();  // the Rust client ignores these errors too
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(raw->body.data()),
                                 raw->body.size());
  // Only an index that matches the previous manifest is trusted.
  if (archive.ends_with(".fidx")) {
    auto idx = FixedIndex::Parse(bytes, archive);
    if (!idx.ok() || idx->ComputeCsum() != prev->csum || idx->size() != prev->size) {
      return Status::OK();
    }
    for (const auto& d : idx->digests()) known_.insert(d);
  } else {
    auto idx = DynamicIndex::Parse(bytes, archive);
    if (!idx.ok() || idx->ComputeCsum() != prev->csum || idx->size() != prev->size) {
      return Status::OK();
    }
    for (const auto& e : idx->entries()) known_.insert(e.digest);
  }
  return Status::OK();
}

Result<uint64_t> BackupClient::OpenWriter(const std::string& archive,
                                          std::optional<uint64_t> size) {
  PBSKIT_RETURN_IF_ERROR(Usable());
  if (open_dynamic_) {
    return Status::InvalidArgument("another dynamic index is still open in this session");
  }
  bool fixed = archive.ends_with(".fidx");
  if (!fixed && !archive.ends_with(".didx")) {
    return Status::InvalidArgument("archive name '" + archive + "' must end in .fidx or .didx");
  }
  PBSKIT_RETURN_IF_ERROR(Fail(LoadPreviousIndex(archive)));
  std::vector<std::pair<std::string, std::string>> q = {{"archive-name", archive}};
  if (size) q.emplace_back("size", std::to_string(*size));
  auto wid = Call("POST", fixed ? "/fixed_index" : "/dynamic_index", EncodeH2Query(q));
  if (!wid.ok()) return Fail(wid.status());
  if (!wid->is_int64() && !wid->is_uint64()) {
    return Fail(Status::Corruption("writer id of '" + archive + "' is not a number"));
  }
  return wid->to_number<uint64_t>();
}

Status BackupClient::AddChunk(bool fixed, uint64_t wid, std::span<const uint8_t> data,
                              uint64_t start, UploadStats* stats, Digest* digest) {
  const CryptConfig* crypt = options_.crypt_mode == CryptMode::kEncrypt ? options_.crypt : nullptr;
  *digest = ComputeChunkDigest(data, crypt);
  return AddEncodedChunk(fixed, wid, *digest, data.size(), start,
                         [&]() -> Result<std::string> {
                           auto blob = DataBlob::Encode(data, crypt, options_.compress);
                           if (!blob.ok()) return blob.status();
                           return std::string(blob->raw().begin(), blob->raw().end());
                         },
                         stats);
}

Status BackupClient::AddEncodedChunk(bool fixed, uint64_t wid, const Digest& d,
                                     uint64_t plain_size, uint64_t start,
                                     const std::function<Result<std::string>()>& encode,
                                     UploadStats* stats) {
  stats->chunk_count += 1;
  stats->size += plain_size;
  if (known_.count(d)) {
    stats->chunk_reused += 1;
    stats->size_reused += plain_size;
  } else {
    auto body = encode();
    if (!body.ok()) return Fail(body.status());
    stats->size_compressed += body->size();
    stats->chunks_uploaded += 1;
    std::string q = EncodeH2Query({{"digest", ToHex(d)},
                                   {"encoded-size", std::to_string(body->size())},
                                   {"size", std::to_string(plain_size)},
                                   {"wid", std::to_string(wid)}});
    pending_.push_back({d, h2_->Submit("POST", fixed ? "/fixed_chunk" : "/dynamic_chunk", q,
                                       std::move(body).value(), "application/octet-stream")});
    known_.insert(d);
    PBSKIT_RETURN_IF_ERROR(DrainUploads(options_.max_pending_uploads));
  }
  appends_.emplace_back(d, start);
  if (appends_.size() >= kAppendBatch) PBSKIT_RETURN_IF_ERROR(FlushAppends(fixed, wid));
  return Status::OK();
}

Status BackupClient::DrainUploads(size_t keep) {
  while (pending_.size() > keep) {
    PendingUpload p = std::move(pending_.front());
    pending_.erase(pending_.begin());
    auto r = p.response.get();
    if (!r.ok()) return Fail(r.status());
    auto data = DataOfResponse(*r, "chunk upload " + ToHex(p.digest));
    if (!data.ok()) return Fail(data.status());
  }
  return Status::OK();
}

Status BackupClient::FlushAppends(bool fixed, uint64_t wid) {
  PBSKIT_RETURN_IF_ERROR(DrainUploads(0));
  if (appends_.empty()) return Status::OK();
  boost::json::array digests, offsets;
  for (const auto& [d, off] : appends_) {
    digests.emplace_back(ToHex(d));
    offsets.emplace_back(off);
  }
  boost::json::object body{
      {"wid", wid}, {"digest-list", std::move(digests)}, {"offset-list", std::move(offsets)}};
  appends_.clear();
  auto r = Call("PUT", fixed ? "/fixed_index" : "/dynamic_index", "", boost::json::serialize(body),
                "application/json");
  return r.ok() ? Status::OK() : Fail(r.status());
}

Result<UploadResult> BackupClient::CloseWriter(bool fixed, uint64_t wid, const std::string& archive,
                                               uint64_t size, UploadStats stats,
                                               std::chrono::steady_clock::time_point t0) {
  PBSKIT_RETURN_IF_ERROR(FlushAppends(fixed, wid));
  auto r = Call("POST", fixed ? "/fixed_close" : "/dynamic_close",
                EncodeH2Query({{"chunk-count", std::to_string(stats.chunk_count)},
                               {"csum", ToHex(stats.csum)},
                               {"size", std::to_string(size)},
                               {"wid", std::to_string(wid)}}));
  if (!r.ok()) return Fail(r.status());
  stats.duration =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  UploadResult out;
  out.info.filename = archive;
  out.info.crypt_mode = options_.crypt_mode;
  out.info.size = size;
  out.info.csum = stats.csum;
  out.stats = stats;
  std::erase_if(files_, [&](const FileInfo& f) { return f.filename == archive; });
  files_.push_back(out.info);
  return out;
}

Result<uint64_t> BackupClient::OpenFixedWriter(const std::string& archive,
                                               std::optional<uint64_t> size) {
  if (!archive.ends_with(".fidx")) {
    return Status::InvalidArgument("fixed index name '" + archive + "' must end in .fidx");
  }
  return OpenWriter(archive, size);
}

Result<UploadResult> BackupClient::UploadFixedIndex(const std::string& archive, ByteSource& source,
                                                    std::optional<uint64_t> size) {
  auto t0 = std::chrono::steady_clock::now();
  PBSKIT_ASSIGN_OR_RETURN(uint64_t wid, OpenFixedWriter(archive, size));
  UploadStats stats;
  Sha256Stream csum;
  std::vector<uint8_t> buf(kFixedChunkSize);
  uint64_t offset = 0;
  for (;;) {
    size_t fill = 0;
    while (fill < buf.size()) {
      auto n = source.Read(std::span<uint8_t>(buf.data() + fill, buf.size() - fill));
      if (!n.ok()) return Fail(n.status());
      if (*n == 0) break;
      fill += *n;
    }
    if (fill == 0) break;
    Digest d;
    Status st = AddChunk(true, wid, std::span<const uint8_t>(buf.data(), fill), offset, &stats, &d);
    if (!st.ok()) return st;
    csum.Update(d);
    offset += fill;
    if (fill < buf.size()) break;
  }
  if (offset == 0) return Fail(Status::InvalidArgument("fixed index '" + archive + "' is empty"));
  if (size && *size != offset) {
    return Fail(Status::InvalidArgument("source of '" + archive + "' delivered " +
                                        std::to_string(offset) + " bytes, announced " +
                                        std::to_string(*size)));
  }
  stats.csum = csum.Finish();
  return CloseWriter(true, wid, archive, offset, stats, t0);
}

Result<UploadResult> BackupClient::UploadFixedIndexEncoded(const std::string& archive,
                                                           EncodedChunkSource& source,
                                                           uint64_t size) {
  auto t0 = std::chrono::steady_clock::now();
  PBSKIT_ASSIGN_OR_RETURN(uint64_t wid, OpenFixedWriter(archive, size));
  UploadStats stats;
  Sha256Stream csum;
  uint64_t offset = 0;
  bool short_chunk = false;
  for (;;) {
    auto next = source.Next();
    if (!next.ok()) return Fail(next.status());
    if (!*next) break;
    EncodedChunk& c = **next;
    if (short_chunk || c.size == 0 || c.size > kFixedChunkSize || offset + c.size > size) {
      return Fail(Status::InvalidArgument(
          "chunk " + ToHex(c.digest) + " of '" + archive + "' at offset " +
          std::to_string(offset) + " has " + std::to_string(c.size) +
          " bytes; fixed index chunks hold 4 MiB except the last (index size " +
          std::to_string(size) + ")"));
    }
    short_chunk = c.size < kFixedChunkSize;
    auto encode = [&c]() -> Result<std::string> { return std::move(c.blob); };
    PBSKIT_RETURN_IF_ERROR(AddEncodedChunk(true, wid, c.digest, c.size, offset, encode, &stats));
    csum.Update(c.digest);
    offset += c.size;
  }
  if (offset == 0) return Fail(Status::InvalidArgument("fixed index '" + archive + "' is empty"));
  if (offset != size) {
    return Fail(Status::InvalidArgument("chunks of '" + archive + "' hold " +
                                        std::to_string(offset) + " bytes, announced " +
                                        std::to_string(size)));
  }
  stats.csum = csum.Finish();
  return CloseWriter(true, wid, archive, offset, stats, t0);
}

Result<UploadResult> BackupClient::UploadDynamicIndex(const std::string& archive,
                                                      ByteSource& source, size_t avg) {
  PBSKIT_ASSIGN_OR_RETURN(std::unique_ptr<DynamicUpload> up, BeginDynamicIndex(archive, avg));
  std::vector<uint8_t> buf(1 << 20);
  for (;;) {
    auto n = source.Read(buf);
    if (!n.ok()) return Fail(n.status());
    if (*n == 0) break;
    PBSKIT_RETURN_IF_ERROR(up->Write(std::span<const uint8_t>(buf.data(), *n)));
  }
  return up->Close();
}

Result<std::unique_ptr<DynamicUpload>> BackupClient::BeginDynamicIndex(const std::string& archive,
                                                                       size_t avg) {
  if (!archive.ends_with(".didx")) {
    return Status::InvalidArgument("dynamic index name '" + archive + "' must end in .didx");
  }
  PBSKIT_ASSIGN_OR_RETURN(uint64_t wid, OpenWriter(archive, std::nullopt));
  open_dynamic_ = true;
  return std::unique_ptr<DynamicUpload>(new DynamicUpload(this, archive, wid, avg));
}

// ---- finish ----

Result<Manifest> BackupClient::Finish() {
  PBSKIT_RETURN_IF_ERROR(Usable());
  if (open_dynamic_) return Status::InvalidArgument("a dynamic index is still open");
  Manifest m;
  m.backup_type = options_.backup_type;
  m.backup_id = options_.backup_id;
  m.backup_time = options_.backup_time;
  m.files = files_;
  if (options_.crypt) m.Sign(options_.crypt->id_key(), options_.crypt->FingerprintString());
  std::string json = m.ToJson();
  // The manifest blob is compressed and never encrypted.
  PBSKIT_ASSIGN_OR_RETURN(
      DataBlob blob,
      DataBlob::Encode(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(json.data()), json.size()),
          nullptr, true));
  std::string raw(blob.raw().begin(), blob.raw().end());
  std::string query = EncodeH2Query(
      {{"encoded-size", std::to_string(raw.size())}, {"file-name", kManifestBlobName}});
  auto up = Call("POST", "/blob", query, std::move(raw), "application/octet-stream");
  if (!up.ok()) return Fail(up.status());
  auto fin = Call("POST", "/finish", "");
  if (!fin.ok()) return Fail(fin.status());
  finished_ = true;
  h2_->Close();
  return m;
}

// ---- push-style dynamic index ----

DynamicUpload::DynamicUpload(BackupClient* client, std::string archive, uint64_t wid, size_t avg)
    : client_(client),
      archive_(std::move(archive)),
      wid_(wid),
      chunker_(avg),
      t0_(std::chrono::steady_clock::now()) {}

DynamicUpload::~DynamicUpload() {
  if (!closed_ && client_) {
    client_->open_dynamic_ = false;
    (void)client_->Fail(Status::Aborted("dynamic index '" + archive_ + "' was not closed"));
  }
}

Status DynamicUpload::Cut(size_t len) {
  Digest d;
  Status st = client_->AddChunk(false, wid_, std::span<const uint8_t>(buf_.data(), len), offset_,
                                &stats_, &d);
  if (!st.ok()) return st;
  offset_ += len;
  uint8_t le[8];
  for (int i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(offset_ >> (8 * i));
  csum_.Update(std::span<const uint8_t>(le, 8));
  csum_.Update(d);
  buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(len));
  scanned_ = 0;
  return Status::OK();
}

Status DynamicUpload::Write(std::span<const uint8_t> data) {
  if (closed_) return Status::InvalidArgument("dynamic index '" + archive_ + "' is closed");
  PBSKIT_RETURN_IF_ERROR(client_->Usable());
  buf_.insert(buf_.end(), data.begin(), data.end());
  while (scanned_ < buf_.size()) {
    size_t p =
        chunker_.Scan(std::span<const uint8_t>(buf_.data() + scanned_, buf_.size() - scanned_));
    if (p == 0) {
      scanned_ = buf_.size();
      break;
    }
    PBSKIT_RETURN_IF_ERROR(Cut(scanned_ + p));
  }
  return Status::OK();
}

Result<UploadResult> DynamicUpload::Close() {
  if (closed_) return Status::InvalidArgument("dynamic index '" + archive_ + "' closed twice");
  PBSKIT_RETURN_IF_ERROR(client_->Usable());
  if (!buf_.empty()) PBSKIT_RETURN_IF_ERROR(Cut(buf_.size()));
  closed_ = true;
  client_->open_dynamic_ = false;
  if (stats_.chunk_count == 0) {
    return client_->Fail(Status::InvalidArgument(
        "dynamic index '" + archive_ + "' is empty (the protocol needs at least one chunk)"));
  }
  stats_.csum = csum_.Finish();
  return client_->CloseWriter(false, wid_, archive_, offset_, stats_, t0_);
}

}  // namespace pbskit::server
