// One backup protocol session (PROTOCOL.md §4): what a PBS BackupEnvironment holds — the locks
// taken at the upgrade, the known-chunk map, the open index writers, upload statistics — and
// the HTTP/2 endpoints that act on it. The snapshot directory exists from Start on; it becomes
// a finished snapshot only through /finish, and is removed with everything in it when the
// session ends any other way (error, abort, dropped connection, benchmark).
#pragma once

#include <variant>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "backup_protocol.h"
#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/task_log.h"
#include "pbskit/datastore/writeback_pacer.h"
#include "pbskit/formats/dynamic_index.h"
#include "pbskit/formats/fixed_index.h"
#include "pbskit/server/h2_server.h"

namespace pbskit::server {

struct BackupSessionParams {
  std::shared_ptr<DataStore> store;
  BackupNamespace ns;
  BackupDir dir;
  Authid auth_id;
  bool benchmark = false;
  bool debug = false;
  std::string state_dir;  // task log below it when not empty
  std::string peer;       // "ip:port" for the log
};

// chunk_upload_stats of the manifest.
struct UploadStatistic {
  uint64_t count = 0;
  uint64_t size = 0;
  uint64_t compressed_size = 0;
  uint64_t duplicates = 0;
};

class BackupSession final : public H2Handler {
 public:
  // The upgrade-time steps 7-11 of PROTOCOL.md §4.1: group lock (creating the group with the
  // caller as owner), owner check (not for benchmarks), last backup (unless its verification
  // failed), time check and shared lock on it, snapshot directory and its lock, shared chunk
  // store lock. Errors carry PBS's messages; every one of them is an HTTP 400.
  static Result<std::unique_ptr<BackupSession>> Start(BackupSessionParams params);
  // Removes the snapshot unless /finish succeeded (or always, for a benchmark).
  ~BackupSession() override;

  size_t MaxBodySize(const H2Request& request) override;
  // Chunk uploads (POST fixed_chunk / dynamic_chunk): their check and store run on workers,
  // several at once; the session state they update is guarded by chunk_mu_.
  bool IsConcurrent(const H2Request& request) override;
  H2Response Handle(H2Request& request) override;

  // Called once the HTTP/2 connection ended: logs, cleans up, finishes the task.
  void End(const H2ConnectionStats& stats);
  bool finished() const { return finished_; }

 private:
  struct DynamicWriter {
    std::string name;
    DynamicIndexWriter index;
    uint64_t offset = 0;
    uint64_t chunk_count = 0;
    UploadStatistic stat;
    bool closed = false;
  };
  struct FixedWriter {
    std::string name;
    FixedIndexWriter index;
    std::optional<uint64_t> size;
    uint64_t chunk_count = 0;
    size_t small_chunk_count = 0;
    UploadStatistic stat;
    bool incremental = false;
    bool closed = false;
  };
  struct DigestHash {
    size_t operator()(const Digest& d) const;
  };
  using Params = boost::json::object;
  using Endpoint = H2Endpoint<BackupSession>;
  static const std::vector<Endpoint>& Endpoints();

  explicit BackupSession(BackupSessionParams params) : p_(std::move(params)) {}
  void Log(const std::string& line);
  void Cleanup(const std::string& why);
  Status EnsureActive() const;
  std::string SnapshotPath() const;

  H2Response PreviousBackupTime(H2Request&, const Params&);
  H2Response Previous(H2Request&, const Params&);
  H2Response UploadBlob(H2Request&, const Params&);
  H2Response CreateDynamicIndex(H2Request&, const Params&);
  H2Response CreateFixedIndex(H2Request&, const Params&);
  H2Response UploadChunk(H2Request&, const Params&, bool fixed);
  // One entry of an append call's digest-list/offset-list: the digest and the size of the
  // session-known chunk it names, or the 400 response PBS gives (bad digest, "no such chunk",
  // inactive session). Entries are resolved one at a time so errors come in PBS's order.
  struct AppendEntry {
    Digest digest;
    uint64_t offset = 0;
    uint64_t size = 0;
  };
  std::variant<AppendEntry, H2Response> ResolveAppendEntry(const boost::json::array& digests,
                                                          const boost::json::array& offsets,
                                                          size_t i) const;
  H2Response DynamicAppend(H2Request&, const Params&);
  H2Response FixedAppend(H2Request&, const Params&);
  H2Response CloseDynamic(H2Request&, const Params&);
  H2Response CloseFixed(H2Request&, const Params&);
  H2Response Finish(H2Request&, const Params&);
  H2Response Speedtest(H2Request&, const Params&);
  H2Response ListSubdirs(H2Request&, const Params&);
  Status WriteIndex(const std::string& name, const std::vector<uint8_t>& bytes);
  void LogUploadStat(const std::string& name, const Digest& csum,
                     const std::array<uint8_t, 16>& uuid, uint64_t size, uint64_t chunk_count,
                     const UploadStatistic& stat);

  BackupSessionParams p_;
  std::unique_ptr<ProcessLockGuard> chunk_store_lock_;
  LockGuardPtr group_lock_, snapshot_lock_, previous_lock_;
  std::optional<BackupDir> last_backup_;
  bool created_group_ = false;
  bool created_dir_ = false;
  bool finished_ = false;
  bool cleaned_ = false;
  int next_wid_ = 0;
  uint64_t file_counter_ = 0;
  uint64_t backup_size_ = 0;
  UploadStatistic backup_stat_;
  std::map<int, DynamicWriter> dynamic_writers_;
  std::map<int, FixedWriter> fixed_writers_;
  std::unordered_map<Digest, uint32_t, DigestHash> known_chunks_;
  std::unique_ptr<TaskLog> task_;
  // Writes new chunk files back in the background so /finish's syncfs finds little left.
  std::unique_ptr<WritebackPacer> pacer_;
  // Held by concurrent chunk uploads while they update writer statistics and known_chunks_
  // (other requests never run beside them, see H2Handler::IsConcurrent).
  std::mutex chunk_mu_;
};

}  // namespace pbskit::server
