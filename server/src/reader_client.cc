#include "pbskit/server/reader_client.h"

#include <deque>
#include <future>

#include "backup_client_common.h"
#include "pbskit/datastore/archive_reader.h"
#include "pbskit/datastore/datastore.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"

namespace pbskit::server {
namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

}  // namespace

Result<std::unique_ptr<ReaderClient>> ReaderClient::Start(const RepositoryConnectOptions& connect,
                                                          const ReaderSessionOptions& options) {
  if (options.backup_time < 1) {
    return Status::InvalidArgument("backup-time must be at least 1 (got " +
                                   std::to_string(options.backup_time) + ")");
  }
  PBSKIT_RETURN_IF_ERROR(ParseBackupType(options.backup_type).status());
  PBSKIT_RETURN_IF_ERROR(CheckBackupId(options.backup_id));
  std::unique_ptr<ReaderClient> c(new ReaderClient());
  c->options_ = options;
  if (c->options_.max_pending_downloads < 1) c->options_.max_pending_downloads = 1;
  std::vector<std::pair<std::string, std::string>> q = {
      {"backup-id", options.backup_id},
      {"backup-time", std::to_string(options.backup_time)},
      {"backup-type", options.backup_type},
      {"debug", options.debug ? "true" : "false"}};
  if (!options.ns.IsRoot()) q.emplace_back("ns", options.ns.ToString());
  q.emplace_back("store", connect.repository.store);
  PBSKIT_ASSIGN_OR_RETURN(H2ClientOptions h2opts, ProtocolConnectOptions(connect));
  PBSKIT_ASSIGN_OR_RETURN(
      c->h2_,
      H2Connection::Upgrade(h2opts, "/api2/json/reader?" + EncodeH2Query(q), kReaderProtocolId));
  PBSKIT_ASSIGN_OR_RETURN(std::string raw,
                          c->Get("/download", EncodeH2Query({{"file-name", kManifestBlobName}})));
  c->manifest_blob_.assign(raw.begin(), raw.end());
  PBSKIT_ASSIGN_OR_RETURN(c->manifest_, Manifest::FromBlob(c->manifest_blob_, kManifestBlobName));
  PBSKIT_RETURN_IF_ERROR(CheckManifestKey(c->manifest_, options.crypt));
  return c;
}

ReaderClient::~ReaderClient() {
  if (h2_) h2_->Close();
}

Result<std::string> ReaderClient::Get(const std::string& path, const std::string& query) {
  PBSKIT_ASSIGN_OR_RETURN(H2ClientResponse r, h2_->Request("GET", path, query));
  if (r.status != 200) return StatusOfHttpError(r.status, r.body, "GET " + path);
  return std::move(r.body);
}

Status ReaderClient::CheckAgainstManifest(const std::string& name, uint64_t size,
                                          const Digest& csum) const {
  const FileInfo* info = manifest_.Lookup(name);
  if (!info) return Status::OK();
  if (info->size != size) {
    return Status::Corruption("wrong size for file '" + name + "' (" + std::to_string(info->size) +
                              " != " + std::to_string(size) + ")");
  }
  if (info->csum != csum) return Status::Corruption("wrong checksum for file '" + name + "'");
  return Status::OK();
}

Result<std::vector<uint8_t>> ReaderClient::DownloadFile(const std::string& name) {
  PBSKIT_ASSIGN_OR_RETURN(std::string raw, Get("/download", EncodeH2Query({{"file-name", name}})));
  std::vector<uint8_t> out(raw.begin(), raw.end());
  if (name.ends_with(".blob")) {
    PBSKIT_RETURN_IF_ERROR(CheckAgainstManifest(name, out.size(), Sha256(out)));
  }
  return out;
}

Result<std::vector<uint8_t>> ReaderClient::DownloadBlob(const std::string& name) {
  PBSKIT_ASSIGN_OR_RETURN(std::vector<uint8_t> raw, DownloadFile(name));
  PBSKIT_ASSIGN_OR_RETURN(DataBlob blob, DataBlob::FromRaw(std::move(raw), true));
  const FileInfo* info = manifest_.Lookup(name);
  if (info && (info->crypt_mode == CryptMode::kEncrypt) != blob.is_encrypted()) {
    return Status::Corruption("blob '" + name + "' does not have the crypt mode '" +
                              CryptModeName(info->crypt_mode) + "' the manifest records");
  }
  return blob.Decode(options_.crypt);
}

Result<FixedIndex> ReaderClient::DownloadFixedIndex(const std::string& name) {
  PBSKIT_ASSIGN_OR_RETURN(std::string raw, Get("/download", EncodeH2Query({{"file-name", name}})));
  PBSKIT_ASSIGN_OR_RETURN(FixedIndex idx, FixedIndex::Parse(Bytes(raw), name));
  PBSKIT_RETURN_IF_ERROR(CheckAgainstManifest(name, idx.size(), idx.ComputeCsum()));
  return idx;
}

Result<DynamicIndex> ReaderClient::DownloadDynamicIndex(const std::string& name) {
  PBSKIT_ASSIGN_OR_RETURN(std::string raw, Get("/download", EncodeH2Query({{"file-name", name}})));
  PBSKIT_ASSIGN_OR_RETURN(DynamicIndex idx, DynamicIndex::Parse(Bytes(raw), name));
  PBSKIT_RETURN_IF_ERROR(CheckAgainstManifest(name, idx.size(), idx.ComputeCsum()));
  return idx;
}

Result<std::vector<uint8_t>> ReaderClient::DownloadChunk(const Digest& digest) {
  PBSKIT_ASSIGN_OR_RETURN(std::string raw,
                          Get("/chunk", EncodeH2Query({{"digest", ToHex(digest)}})));
  return std::vector<uint8_t>(raw.begin(), raw.end());
}

Status ReaderClient::RestoreArchive(const std::string& name, const Sink& sink,
                                    RestoreStats* stats) {
  const FileInfo* info = manifest_.Lookup(name);
  if (!info) return Status::NotFound("manifest does not contain file '" + name + "'");
  RestoreStats local;
  RestoreStats& st = stats ? *stats : local;
  if (name.ends_with(".blob")) {
    PBSKIT_ASSIGN_OR_RETURN(std::vector<uint8_t> data, DownloadBlob(name));
    st.bytes += data.size();
    return sink(data);
  }
  if (info->crypt_mode == CryptMode::kEncrypt && !options_.crypt) {
    return Status::InvalidArgument("archive '" + name + "' is encrypted - missing key");
  }
  // (digest, start, end) of every chunk in archive order.
  std::vector<std::tuple<Digest, uint64_t, uint64_t>> chunks;
  if (name.ends_with(".fidx")) {
    PBSKIT_ASSIGN_OR_RETURN(FixedIndex idx, DownloadFixedIndex(name));
    for (size_t i = 0; i < idx.chunk_count(); ++i) {
      auto [b, e] = idx.chunk_range(i);
      chunks.emplace_back(idx.digest(i), b, e);
    }
  } else if (name.ends_with(".didx")) {
    PBSKIT_ASSIGN_OR_RETURN(DynamicIndex idx, DownloadDynamicIndex(name));
    for (size_t i = 0; i < idx.chunk_count(); ++i) {
      auto [b, e] = idx.chunk_range(i);
      chunks.emplace_back(idx.entry(i).digest, b, e);
    }
  } else {
    return Status::InvalidArgument("archive name '" + name + "' has an unknown type");
  }
  // Downloads run ahead of the decoding, in archive order, up to max_pending_downloads.
  std::deque<std::future<Result<H2ClientResponse>>> inflight;
  size_t next = 0;
  auto submit = [&] {
    while (next < chunks.size() && inflight.size() < options_.max_pending_downloads) {
      inflight.push_back(h2_->Submit(
          "GET", "/chunk", EncodeH2Query({{"digest", ToHex(std::get<0>(chunks[next]))}})));
      ++next;
    }
  };
  std::vector<uint8_t> plain;
  for (size_t i = 0; i < chunks.size(); ++i) {
    submit();
    auto r = inflight.front().get();
    inflight.pop_front();
    if (!r.ok()) return r.status();
    const auto& [digest, begin, end] = chunks[i];
    if (r->status != 200) {
      return StatusOfHttpError(r->status, r->body, "download chunk " + ToHex(digest));
    }
    st.chunks += 1;
    st.downloaded += 1;
    st.raw_bytes += r->body.size();
    PBSKIT_RETURN_IF_ERROR(DecodeAndCheckChunk(Bytes(r->body), digest, end - begin,
                                               info->crypt_mode, options_.crypt, &plain));
    st.bytes += plain.size();
    PBSKIT_RETURN_IF_ERROR(sink(plain));
  }
  return Status::OK();
}

Result<std::string> ReaderClient::Speedtest() { return Get("/speedtest", ""); }

}  // namespace pbskit::server
