#include "pbskit/server/access_control.h"

#include <sys/stat.h>

#include <ctime>
#include <map>

#include "pbskit/formats/crypto.h"
#include "pbskit/server/password.h"

namespace pbskit::server {

struct AccessControl::Snapshot {
  bool ok = false;
  UserConfig users;
  AclTree acl;
  std::map<std::string, std::string> token_hashes;
  std::map<std::string, std::string> password_hashes;
  // tokenid -> SHA-256 of a secret that verified against the current token.shadow.
  mutable std::mutex cache_mu;
  mutable std::map<std::string, Digest> verified;
};

namespace {

std::string FileStamp(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return "-;";
  return std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + "/" +
         std::to_string(st.st_size) + "/" + std::to_string(st.st_ino) + ";";
}

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

}  // namespace

std::vector<std::string> DatastoreAclPath(const std::string& store, const BackupNamespace& ns) {
  std::vector<std::string> path = {"datastore", store};
  for (const auto& c : ns.components()) path.push_back(c);
  return path;
}

bool OwnerMatches(const std::string& owner, const Authid& auth_id) {
  if (owner == auth_id.ToString()) return true;
  if (auth_id.is_token()) return false;
  auto owner_id = Authid::Parse(owner);
  return owner_id.ok() && owner_id->is_token() && owner_id->user == auth_id.user;
}

AccessControl::AccessControl(std::string config_dir) : config_dir_(std::move(config_dir)) {}

std::shared_ptr<const AccessControl::Snapshot> AccessControl::Current() {
  std::string stamp = FileStamp(config_dir_ + "/" + kUserCfgFile) +
                      FileStamp(config_dir_ + "/" + kAclCfgFile) +
                      FileStamp(config_dir_ + "/" + kTokenShadowFile) +
                      FileStamp(config_dir_ + "/" + kShadowFile);
  std::lock_guard<std::mutex> lock(mu_);
  if (snapshot_ && stamp == stamp_) return snapshot_;
  auto snap = std::make_shared<Snapshot>();
  auto users = UserConfig::Load(config_dir_);
  auto acl = LoadAcl(config_dir_);
  auto tokens = LoadHashFile(config_dir_ + "/" + kTokenShadowFile);
  auto passwords = LoadHashFile(config_dir_ + "/" + kShadowFile);
  if (users.ok() && acl.ok() && tokens.ok() && passwords.ok()) {
    snap->ok = true;
    snap->users = std::move(users).value();
    snap->acl = std::move(acl).value();
    snap->token_hashes = std::move(tokens).value();
    snap->password_hashes = std::move(passwords).value();
  }
  snapshot_ = snap;
  stamp_ = stamp;
  return snapshot_;
}

uint64_t AccessControl::LookupPrivs(const Authid& auth_id, const std::vector<std::string>& path) {
  if (!auth_id.is_token() && auth_id.user == "root@pam") return kRoleAdmin;
  auto snap = Current();
  if (!snap->ok) return 0;
  uint64_t privs = 0;
  for (const auto& [role, propagate] : snap->acl.Roles(auth_id, path)) {
    privs |= RolePrivileges(role).value_or(0);
  }
  if (auth_id.is_token()) {
    Authid user{auth_id.user, ""};
    privs &= LookupPrivs(user, path);
  }
  return privs;
}

Status AccessControl::CheckPrivs(const Authid& auth_id, const std::vector<std::string>& path,
                                 uint64_t required, bool partial) {
  uint64_t privs = LookupPrivs(auth_id, path);
  bool allowed = partial ? (privs & required) != 0 : (privs & required) == required;
  if (allowed) return Status::OK();
  std::string names;
  for (const auto& n : PrivilegeNames(required)) {
    if (!names.empty()) names += partial ? "|" : "&";
    names += n;
  }
  std::string p;
  for (const auto& c : path) p += (p.empty() ? "" : "/") + c;
  return Status::PermissionDenied("missing permissions '" + names + "' on '/" + p + "'");
}

bool AccessControl::IsActive(const Authid& auth_id) {
  auto snap = Current();
  return snap->ok && snap->users.IsActive(auth_id, Now());
}

Status AccessControl::VerifyTokenSecret(const Authid& token_id, const std::string& secret) {
  auto snap = Current();
  std::string id = token_id.ToString();
  auto it = snap->token_hashes.find(id);
  if (!snap->ok || !token_id.is_token() || it == snap->token_hashes.end()) {
    return Status::PermissionDenied("invalid credentials");
  }
  Digest d = Sha256(secret);
  {
    std::lock_guard<std::mutex> lock(snap->cache_mu);
    auto c = snap->verified.find(id);
    if (c != snap->verified.end() && c->second == d) return Status::OK();
  }
  PBSKIT_RETURN_IF_ERROR(server::VerifyPassword(secret, it->second));
  std::lock_guard<std::mutex> lock(snap->cache_mu);
  snap->verified[id] = d;
  return Status::OK();
}

Status AccessControl::VerifyPassword(const std::string& userid, const std::string& password) {
  auto snap = Current();
  auto id = Authid::Parse(userid);
  if (!snap->ok || !id.ok() || id->is_token() || id->Realm() != "pbs") {
    return Status::PermissionDenied("authentication failure");
  }
  auto it = snap->password_hashes.find(userid);
  if (it == snap->password_hashes.end()) return Status::PermissionDenied("authentication failure");
  auto st = server::VerifyPassword(password, it->second);
  if (!st.ok()) return Status::PermissionDenied("authentication failure");
  return Status::OK();
}

}  // namespace pbskit::server
