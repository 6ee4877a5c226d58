// Authentication and privilege lookups over the access configuration (user.cfg, token.shadow,
// shadow.json, acl.cfg), reloaded whenever one of those files changes. The equivalent of PBS's
// CachedUserInfo plus its token-secret cache.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pbskit/formats/names.h"
#include "pbskit/formats/status.h"
#include "pbskit/server/access_config.h"
#include "pbskit/server/acl.h"

namespace pbskit::server {

// ACL path of a datastore namespace: {"datastore", store, ns components...}.
std::vector<std::string> DatastoreAclPath(const std::string& store, const BackupNamespace& ns);

// Whether `auth_id` may act on a group owned by `owner`: equal, or `owner` is a token of the
// user `auth_id` (PBS check_backup_owner). A token never matches groups of its user.
bool OwnerMatches(const std::string& owner, const Authid& auth_id);

class AccessControl {
 public:
  explicit AccessControl(std::string config_dir);

  // Privileges of `auth_id` on `path` (components). root@pam has every privilege; a token gets
  // its own ACL privileges intersected with its user's. Reloads changed config files first;
  // on a broken config it logs nothing and grants nothing beyond root.
  uint64_t LookupPrivs(const Authid& auth_id, const std::vector<std::string>& path);
  // Like PBS check_privs: OK when all (or with `partial` any) of `required` are present, else
  // PermissionDenied "missing permissions '<A&B>' on '/<path>'".
  Status CheckPrivs(const Authid& auth_id, const std::vector<std::string>& path,
                    uint64_t required, bool partial);
  // User (and token) exists, enabled, not expired.
  bool IsActive(const Authid& auth_id);
  // Checks an API token secret against token.shadow (verified secrets are cached until the
  // file changes). PermissionDenied on mismatch or unknown token.
  Status VerifyTokenSecret(const Authid& token_id, const std::string& secret);
  // Password login for realm `pbs` (shadow.json). The `pam` realm has no PAM backend here:
  // PermissionDenied, as for a wrong password.
  Status VerifyPassword(const std::string& userid, const std::string& password);
  const std::string& config_dir() const { return config_dir_; }

 private:
  struct Snapshot;
  std::shared_ptr<const Snapshot> Current();

  std::string config_dir_;
  std::mutex mu_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::string stamp_;  // mtimes/sizes of the files the snapshot was built from
};

}  // namespace pbskit::server
