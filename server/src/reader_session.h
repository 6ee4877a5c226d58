// One reader protocol session (PROTOCOL.md §5): the shared lock on the snapshot held for the
// whole connection, the set of chunks the client may download (the chunks of every index it
// downloaded in this session), and the HTTP/2 endpoints /download, /chunk and /speedtest.
#pragma once

#include <memory>
#include <string>
#include <unordered_set>

#include "backup_protocol.h"
#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/task_log.h"
#include "pbskit/server/h2_server.h"

namespace pbskit::server {

struct ReaderSessionParams {
  std::shared_ptr<DataStore> store;
  BackupNamespace ns;
  BackupDir dir;
  Authid auth_id;
  bool debug = false;
  std::string state_dir;  // task log below it when not empty
  std::string peer;
};

class ReaderSession final : public H2Handler {
 public:
  // Checks that the snapshot exists (InvalidArgument "snapshot <dir> does not exist.") and
  // takes the shared snapshot lock (InvalidArgument "while reading snapshot ..." when it is
  // locked exclusively). Privileges and ownership are checked by the caller.
  static Result<std::unique_ptr<ReaderSession>> Start(ReaderSessionParams params);
  ~ReaderSession() override;

  size_t MaxBodySize(const H2Request& request) override;
  H2Response Handle(H2Request& request) override;
  // Called once the HTTP/2 connection ended: finishes the task log and releases the lock.
  void End(const H2ConnectionStats& stats);

 private:
  struct DigestHash {
    size_t operator()(const Digest& d) const;
  };
  using Params = boost::json::object;
  using Endpoint = H2Endpoint<ReaderSession>;
  static const std::vector<Endpoint>& Endpoints();

  explicit ReaderSession(ReaderSessionParams params) : p_(std::move(params)) {}
  void Log(const std::string& line);
  H2Response Download(H2Request&, const Params&);
  H2Response Chunk(H2Request&, const Params&);
  H2Response Speedtest(H2Request&, const Params&);
  H2Response ListSubdirs(H2Request&, const Params&);

  ReaderSessionParams p_;
  LockGuardPtr snapshot_lock_;
  std::unordered_set<Digest, DigestHash> allowed_chunks_;
  std::unique_ptr<TaskLog> task_;
};

}  // namespace pbskit::server
