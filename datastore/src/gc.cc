// GC driver: locking, atime check, cutoff, the two phases, summary and .gc-status.
#include "pbskit/datastore/gc.h"

#include <cinttypes>
#include <cstdio>
#include <ctime>

#include <boost/json.hpp>

#include "gc_internal.h"
#include "pbskit/formats/json.h"

namespace pbskit {
namespace gc_internal {

std::string DebugQuote(const std::string& path) {
  std::string out = "\"";
  for (char c : path) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

}  // namespace gc_internal

namespace {

using gc_internal::Info;

std::string Fixed2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

void AppendField(std::string* out, const char* key, uint64_t v) {
  *out += ",\"";
  *out += key;
  *out += "\":";
  *out += std::to_string(v);
}

void LogSummary(const GarbageCollectionStatus& s, TaskLogger* log) {
  if (!log) return;
  if (s.cache_stats) {
    uint64_t total = s.cache_stats->hits + s.cache_stats->misses;
    if (total > 0) {
      double ratio = static_cast<double>(s.cache_stats->hits) * 100.0 / static_cast<double>(total);
      log->Info("Chunk cache: hits " + std::to_string(s.cache_stats->hits) + ", misses " +
                std::to_string(s.cache_stats->misses) + " (hit ratio " + Fixed2(ratio) + "%)");
    }
  }
  log->Info("Removed garbage: " + FormatHumanByte(s.removed_bytes));
  log->Info("Removed chunks: " + std::to_string(s.removed_chunks));
  if (s.pending_bytes > 0) {
    log->Info("Pending removals: " + FormatHumanByte(s.pending_bytes) + " (in " +
              std::to_string(s.pending_chunks) + " chunks)");
  }
  if (s.removed_bad > 0) log->Info("Removed bad chunks: " + std::to_string(s.removed_bad));
  if (s.still_bad > 0) log->Info("Leftover bad chunks: " + std::to_string(s.still_bad));
  log->Info("Original data usage: " + FormatHumanByte(s.index_data_bytes));
  if (s.index_data_bytes > 0) {
    double per = static_cast<double>(s.disk_bytes) * 100.0 / static_cast<double>(s.index_data_bytes);
    log->Info("On-Disk usage: " + FormatHumanByte(s.disk_bytes) + " (" + Fixed2(per) + "%)");
  }
  log->Info("On-Disk chunks: " + std::to_string(s.disk_chunks));
  double dedup = s.disk_bytes > 0
                     ? static_cast<double>(s.index_data_bytes) / static_cast<double>(s.disk_bytes)
                     : 1.0;
  log->Info("Deduplication factor: " + Fixed2(dedup));
  if (s.disk_chunks > 0) {
    log->Info("Average chunk size: " + FormatHumanByte(s.disk_bytes / s.disk_chunks));
  }
}

Result<uint64_t> GetU64(const boost::json::object& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return uint64_t{0};
  const auto& v = it->value();
  if (v.is_uint64()) return v.as_uint64();
  if (v.is_int64() && v.as_int64() >= 0) return static_cast<uint64_t>(v.as_int64());
  return Status::InvalidArgument(std::string(".gc-status: field '") + key +
                                 "' is not a non-negative integer");
}

}  // namespace

std::string GarbageCollectionStatus::ToJson() const {
  std::string out = "{\"upid\":";
  if (upid) {
    AppendSerdeString(*upid, &out);
  } else {
    out += "null";
  }
  AppendField(&out, "index-file-count", index_file_count);
  AppendField(&out, "index-data-bytes", index_data_bytes);
  AppendField(&out, "disk-bytes", disk_bytes);
  AppendField(&out, "disk-chunks", disk_chunks);
  AppendField(&out, "removed-bytes", removed_bytes);
  AppendField(&out, "removed-chunks", removed_chunks);
  AppendField(&out, "pending-bytes", pending_bytes);
  AppendField(&out, "pending-chunks", pending_chunks);
  AppendField(&out, "removed-bad", removed_bad);
  AppendField(&out, "still-bad", still_bad);
  if (cache_stats) {
    out += ",\"cache-stats\":{\"hits\":" + std::to_string(cache_stats->hits) +
           ",\"misses\":" + std::to_string(cache_stats->misses) + "}";
  }
  out += "}";
  return out;
}

Result<GarbageCollectionStatus> GarbageCollectionStatus::FromJson(std::string_view text) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec || !v.is_object()) {
    return Status::InvalidArgument(".gc-status: not a JSON object" +
                                   (ec ? " (" + ec.message() + ")" : std::string()));
  }
  const auto& o = v.as_object();
  GarbageCollectionStatus s;
  if (auto it = o.find("upid"); it != o.end() && !it->value().is_null()) {
    if (!it->value().is_string()) return Status::InvalidArgument(".gc-status: 'upid' is not a string");
    s.upid = std::string(it->value().as_string());
  }
  PBSKIT_ASSIGN_OR_RETURN(s.index_file_count, GetU64(o, "index-file-count"));
  PBSKIT_ASSIGN_OR_RETURN(s.index_data_bytes, GetU64(o, "index-data-bytes"));
  PBSKIT_ASSIGN_OR_RETURN(s.disk_bytes, GetU64(o, "disk-bytes"));
  PBSKIT_ASSIGN_OR_RETURN(s.disk_chunks, GetU64(o, "disk-chunks"));
  PBSKIT_ASSIGN_OR_RETURN(s.removed_bytes, GetU64(o, "removed-bytes"));
  PBSKIT_ASSIGN_OR_RETURN(s.removed_chunks, GetU64(o, "removed-chunks"));
  PBSKIT_ASSIGN_OR_RETURN(s.pending_bytes, GetU64(o, "pending-bytes"));
  PBSKIT_ASSIGN_OR_RETURN(s.pending_chunks, GetU64(o, "pending-chunks"));
  PBSKIT_ASSIGN_OR_RETURN(s.removed_bad, GetU64(o, "removed-bad"));
  PBSKIT_ASSIGN_OR_RETURN(s.still_bad, GetU64(o, "still-bad"));
  if (auto it = o.find("cache-stats"); it != o.end() && !it->value().is_null()) {
    if (!it->value().is_object()) {
      return Status::InvalidArgument(".gc-status: 'cache-stats' is not an object");
    }
    GcCacheStats cs;
    PBSKIT_ASSIGN_OR_RETURN(cs.hits, GetU64(it->value().as_object(), "hits"));
    PBSKIT_ASSIGN_OR_RETURN(cs.misses, GetU64(it->value().as_object(), "misses"));
    s.cache_stats = cs;
  }
  return s;
}

std::string GcStatusPath(const std::string& base) { return base + "/" + kGcStatusFileName; }

Result<GarbageCollectionStatus> LoadGcStatus(Filesystem* fs, const std::string& base) {
  PBSKIT_ASSIGN_OR_RETURN(std::string text, ReadWholeFileText(fs, GcStatusPath(base)));
  return GarbageCollectionStatus::FromJson(text);
}

Result<GarbageCollectionStatus> GarbageCollection(DataStore& store, const GcOptions& options,
                                                  TaskLogger* log) {
  if (options.atime_cutoff_minutes &&
      (*options.atime_cutoff_minutes < 1 || *options.atime_cutoff_minutes > 2880)) {
    return Status::InvalidArgument("gc-atime-cutoff: value must be between 1 and 2880 minutes");
  }
  if (options.cache_capacity && *options.cache_capacity > kMaxGcCacheCapacity) {
    return Status::InvalidArgument("gc-cache-capacity: value must have a maximum value of " +
                                   std::to_string(kMaxGcCacheCapacity));
  }
  ChunkStore& chunks = store.chunk_store();
  Info(log, "starting garbage collection on store " + store.name());

  // Held for the whole run: no other process may write while we decide by atime.
  PBSKIT_ASSIGN_OR_RETURN(std::unique_ptr<ProcessLockGuard> exclusive, chunks.TryLockExclusive());

  const int64_t phase1_start = static_cast<int64_t>(std::time(nullptr));
  const int64_t oldest_writer = chunks.OldestSharedLockTime().value_or(phase1_start);

  GarbageCollectionStatus status;
  if (!options.upid.empty()) status.upid = options.upid;
  status.cache_stats = GcCacheStats{};

  if (options.atime_safety_check) {
    PBSKIT_RETURN_IF_ERROR(
        RunAtimeSafetyCheck(chunks, log).WithContext("atime safety check failed"));
    Info(log, "Access time update check successful, proceeding with GC.");
  } else {
    Info(log, "Access time update check disabled by datastore tuning options.");
  }

  const int64_t cutoff = options.atime_cutoff_minutes ? *options.atime_cutoff_minutes * 60
                                                      : kDefaultGcAtimeCutoffSeconds;
  int64_t min_atime = phase1_start - cutoff;
  Info(log, "Using access time cutoff " + FormatTimeSpan(static_cast<uint64_t>(cutoff)) +
                ", minimum access time is " + FormatUtcRfc3339(min_atime));
  if (oldest_writer < min_atime) {
    min_atime = oldest_writer - 300;  // 5 minutes safety gap
    // PBS prints the writer's start epoch through its TimeSpan formatter; kept as it is.
    Info(log, "Oldest backup writer started at " +
                  FormatTimeSpan(static_cast<uint64_t>(oldest_writer)) +
                  ", extending minimum access time to " + FormatUtcRfc3339(min_atime));
  }

  uint64_t capacity = kDefaultGcCacheCapacity;
  if (options.cache_capacity) {
    capacity = *options.cache_capacity;
    Info(log, "Using chunk digest cache capacity of " + std::to_string(capacity) + ".");
  }

  Info(log, "Start GC phase1 (mark used chunks)");
  Status marked = gc_internal::MarkUsedChunks(store, capacity, options.abort, &status, log);
  if (marked.IsAborted()) return marked;
  PBSKIT_RETURN_IF_ERROR(marked.WithContext("marking used chunks failed"));

  Info(log, "Start GC phase2 (sweep unused chunks)");
  PBSKIT_RETURN_IF_ERROR(
      gc_internal::SweepUnusedChunks(chunks, store.name(), oldest_writer, min_atime,
                                     options.abort, &status, log));

  LogSummary(status, log);

  // PBS ignores errors writing the status file; so do we (the GC itself succeeded).
  (void)WriteFileAtomic(store.fs(), GcStatusPath(store.base()), status.ToJson(),
                        store.sync_level(), 0644);
  return status;
}

}  // namespace pbskit
