// Push-style dynamic indexes of a SnapshotWriter (BeginDynamicIndex / DynamicIndexStream) and
// the upload threads they share.
#include <sys/stat.h>

#include <utility>

#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/formats/hex.h"
#include "snapshot_writer_internal.h"

namespace pbskit {
namespace {

constexpr uint64_t kMaxChunkSize = 16 * 1024 * 1024;  // PBS's limit for one chunk

Status AbortedStatus(const std::string& archive) {
  return Status::Aborted("archive '" + archive +
                         "': the snapshot writer is no longer usable (finished or aborted)");
}

}  // namespace

// ---- ChunkUploader ------------------------------------------------------------------------

ChunkUploader::ChunkUploader(SnapshotWriter* writer, size_t threads, size_t capacity)
    : writer_(writer), capacity_(capacity < 1 ? 1 : capacity) {
  if (threads < 1) threads = 1;
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

ChunkUploader::~ChunkUploader() { Shutdown(); }

Status ChunkUploader::Submit(DynamicIndexStream* stream, size_t index,
                             std::vector<uint8_t> data) {
  std::unique_lock<std::mutex> lock(mu_);
  not_full_.wait(lock, [&] { return stop_ || queue_.size() < capacity_; });
  if (stop_) return AbortedStatus(stream->archive());
  queue_.push_back(Job{stream, index, std::move(data)});
  not_empty_.notify_one();
  return Status::OK();
}

std::vector<uint8_t> ChunkUploader::TakeBuffer() {
  std::lock_guard<std::mutex> lock(mu_);
  if (spare_.empty()) return {};
  std::vector<uint8_t> buf = std::move(spare_.back());
  spare_.pop_back();
  return buf;
}

void ChunkUploader::Shutdown() {
  std::deque<Job> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ && threads_.empty()) return;
    stop_ = true;
    dropped.swap(queue_);
  }
  not_full_.notify_all();
  not_empty_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  for (auto& job : dropped)
    job.stream->ChunkDone(job.index, Digest{}, AbortedStatus(job.stream->archive()));
}

void ChunkUploader::Loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      not_empty_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    not_full_.notify_one();
    Digest d{};
    Status st = writer_->StoreChunk(job.data, &d, &job.stream->stats_);
    if (!st.ok()) st = st.WithContext("archive '" + job.stream->archive() + "'");
    job.stream->ChunkDone(job.index, d, st);
    job.data.clear();
    std::lock_guard<std::mutex> lock(mu_);
    if (spare_.size() < kMaxSpare) spare_.push_back(std::move(job.data));
  }
}

// ---- SnapshotWriter: stream side ------------------------------------------------------------

Result<std::unique_ptr<DynamicIndexStream>> SnapshotWriter::BeginDynamicIndex(
    const std::string& archive, size_t avg_chunk_size, DynamicChunkerKind kind) {
  PBSKIT_RETURN_IF_ERROR(CheckNewArchive(archive, ArchiveType::kDynamicIndex));
  if (!avg_chunk_size || (avg_chunk_size & (avg_chunk_size - 1)) || avg_chunk_size < 65536 ||
      avg_chunk_size > kDefaultDynamicChunkSize)
    return Status::InvalidArgument("dynamic chunk size must be a power of two between 64 KiB "
                                   "and 4 MiB, got " + std::to_string(avg_chunk_size));
  if (!uploader_) {
    size_t threads = options_.work_threads < 1 ? 1 : options_.work_threads;
    // Six chunks queued beyond one per thread: the producer (tar or file reading, pxar
    // encoding, chunking) runs unevenly, and a deeper queue keeps the upload threads busy
    // through its slow stretches (container import: ~78 % -> ~81 % of the bench ceiling).
    uploader_ = std::make_unique<ChunkUploader>(this, threads, threads + 6);
  }
  std::unique_ptr<DynamicIndexStream> s(
      new DynamicIndexStream(this, archive, avg_chunk_size, kind));
  open_streams_.push_back(s.get());
  return s;
}

std::vector<uint8_t> SnapshotWriter::TakeChunkBuffer() { return uploader_->TakeBuffer(); }

Status SnapshotWriter::SubmitChunk(DynamicIndexStream* stream, size_t index,
                                   std::vector<uint8_t> data) {
  return uploader_->Submit(stream, index, std::move(data));
}

Status SnapshotWriter::AppendKnown(DynamicIndexStream* stream, const Digest& digest,
                                   uint64_t size) {
  ChunkStore& chunks = store_->chunk_store();
  auto existing = chunks.StatChunk(digest);
  if (!existing.ok()) {
    if (existing.status().IsNotFound())
      return Status::NotFound("archive '" + stream->archive() + "': chunk " + ToHex(digest) +
                              " is not in the datastore '" + store_->name() + "'");
    return existing.status();
  }
  if (!S_ISREG(existing->st_mode) || existing->st_size <= 0)
    return Status::Corruption("archive '" + stream->archive() + "': chunk " + ToHex(digest) +
                              " in datastore '" + store_->name() + "' is empty or not a file");
  PBSKIT_RETURN_IF_ERROR(chunks.TouchChunk(digest));
  std::lock_guard<std::mutex> lock(mu_);
  ArchiveUploadStats& stats = stream->stats_;
  if (session_chunks_.insert(digest).second) {
    stats.unique_chunks++;
    stats.reused_chunks++;
  }
  stats.reused_size += size;
  return Status::OK();
}

void SnapshotWriter::ForgetStream(DynamicIndexStream* stream) {
  for (auto it = open_streams_.begin(); it != open_streams_.end(); ++it) {
    if (*it == stream) {
      open_streams_.erase(it);
      return;
    }
  }
}

// ---- DynamicIndexStream --------------------------------------------------------------------

DynamicIndexStream::DynamicIndexStream(SnapshotWriter* writer, std::string archive, size_t avg,
                                       DynamicChunkerKind kind)
    : writer_(writer),
      archive_(std::move(archive)),
      kind_(kind),
      chunker_(avg),
      payload_chunker_(avg),
      t0_(std::chrono::steady_clock::now()) {}

DynamicIndexStream::~DynamicIndexStream() {
  WaitIdle();
  if (writer_) writer_->ForgetStream(this);
}

Status DynamicIndexStream::CheckUsable() const {
  if (closed_) return Status::InvalidArgument("archive '" + archive_ + "' is already closed");
  if (!writer_) return AbortedStatus(archive_);
  return Status::OK();
}

Status DynamicIndexStream::TakeUploadError() {
  std::lock_guard<std::mutex> lock(mu_);
  return upload_error_;
}

void DynamicIndexStream::WaitIdle() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [&] { return pending_ == 0; });
}

void DynamicIndexStream::ChunkDone(size_t index, const Digest& d, const Status& st) {
  std::lock_guard<std::mutex> lock(mu_);
  if (st.ok())
    entries_[index].digest = d;
  else if (upload_error_.ok())
    upload_error_ = st;
  if (--pending_ == 0) idle_cv_.notify_all();
}

Status DynamicIndexStream::CutFront(size_t len) {
  std::vector<uint8_t> chunk = writer_->TakeChunkBuffer();
  if (len == buf_.size()) {
    chunk.swap(buf_);
    if (buf_.capacity() < chunk.capacity()) buf_.reserve(chunk.capacity());
  } else {
    chunk.assign(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(len));
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(len));
  }
  consumed_ += len;
  scan_pos_ = 0;
  size_t index;
  {
    std::lock_guard<std::mutex> lock(mu_);
    index = entries_.size();
    entries_.push_back(DynamicEntry{consumed_, Digest{}});
    ++pending_;
  }
  Status st = writer_->SubmitChunk(this, index, std::move(chunk));
  if (!st.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    --pending_;
  }
  return st;
}

Status DynamicIndexStream::Write(std::span<const uint8_t> data) {
  PBSKIT_RETURN_IF_ERROR(CheckUsable());
  Status st = TakeUploadError();
  if (st.ok() && kind_ == DynamicChunkerKind::kRegular) {
    // Cuts do not depend on the split: scan the caller's data directly, buffer one chunk only.
    while (st.ok() && !data.empty()) {
      size_t p = chunker_.Scan(data);
      if (p == 0) {
        buf_.insert(buf_.end(), data.begin(), data.end());
        break;
      }
      buf_.insert(buf_.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(p));
      data = data.subspan(p);
      st = CutFront(buf_.size());
    }
  } else if (st.ok()) {
    // PBS's ChunkStream: append the piece, scan the unscanned tail with the chunk start and
    // the buffered total as context, after a cut rescan what remains.
    buf_.insert(buf_.end(), data.begin(), data.end());
    while (st.ok() && scan_pos_ < buf_.size()) {
      size_t p = payload_chunker_.ScanWithContext(
          std::span<const uint8_t>(buf_).subspan(scan_pos_), consumed_, buf_.size());
      if (p == 0) {
        scan_pos_ = buf_.size();
        break;
      }
      st = CutFront(scan_pos_ + p);
    }
  }
  if (!st.ok()) {
    SnapshotWriter* w = writer_;
    return w->Fail(st);
  }
  return Status::OK();
}

void DynamicIndexStream::SuggestBoundary(uint64_t offset) {
  if (kind_ == DynamicChunkerKind::kPayload) payload_chunker_.SuggestBoundary(offset);
}

Status DynamicIndexStream::AppendKnownChunk(const Digest& digest, uint64_t size) {
  PBSKIT_RETURN_IF_ERROR(CheckUsable());
  if (size == 0 || size > kMaxChunkSize)
    return Status::InvalidArgument("archive '" + archive_ + "': known chunk size " +
                                   std::to_string(size) + " is not within 1..16 MiB");
  Status st = TakeUploadError();
  if (st.ok() && !buf_.empty()) st = CutFront(buf_.size());
  if (st.ok()) st = writer_->AppendKnown(this, digest, size);
  if (!st.ok()) {
    SnapshotWriter* w = writer_;
    return w->Fail(st);
  }
  chunker_.Reset();
  payload_chunker_.Reset();
  scan_pos_ = 0;
  consumed_ += size;
  std::lock_guard<std::mutex> lock(mu_);
  entries_.push_back(DynamicEntry{consumed_, digest});
  return Status::OK();
}

Result<ArchiveResult> DynamicIndexStream::Close() {
  PBSKIT_RETURN_IF_ERROR(CheckUsable());
  SnapshotWriter* w = writer_;
  Status st = buf_.empty() ? Status::OK() : CutFront(buf_.size());
  WaitIdle();
  if (st.ok()) st = TakeUploadError();
  if (!st.ok()) return w->Fail(st);

  DynamicIndexWriter writer;
  for (const auto& e : entries_) {
    st = writer.Add(e.end, e.digest);
    if (!st.ok()) return w->Fail(st.WithContext("archive '" + archive_ + "'"));
  }
  Digest csum;
  auto bytes = writer.Finish(&csum);
  if (!bytes.ok()) return w->Fail(bytes.status());
  st = w->WriteIndexFile(archive_, *bytes);
  if (!st.ok()) return w->Fail(st);

  ArchiveResult result;
  result.stats = stats_;
  result.stats.chunk_count = entries_.size();
  result.stats.size = writer.size();
  result.stats.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  result.info = FileInfo{archive_, w->options_.crypt_mode, writer.size(), csum};
  w->files_.push_back(result.info);
  closed_ = true;
  w->ForgetStream(this);
  writer_ = nullptr;
  return result;
}

}  // namespace pbskit
