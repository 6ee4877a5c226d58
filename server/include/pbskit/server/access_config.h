// The access configuration files PBS keeps in its configuration directory, read and written in
// PBS's own formats so a config directory can move between pbskit and PBS:
//   user.cfg      section config: `user: <userid>` and `token: <userid>!<name>` sections
//   token.shadow  JSON object {"<tokenid>": "<crypt hash of the secret>"} (compact)
//   shadow.json   JSON object {"<userid>": "<crypt hash>"} for the `pbs` realm (pretty)
//   acl.cfg       see acl.h
// Writers take the matching lock file (.user.lck, token.shadow.lock, shadow.json.lock,
// .acl.lck) and replace files atomically.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pbskit/formats/section_config.h"
#include "pbskit/formats/status.h"
#include "pbskit/server/acl.h"

namespace pbskit::server {

inline constexpr const char* kUserCfgFile = "user.cfg";
inline constexpr const char* kTokenShadowFile = "token.shadow";
inline constexpr const char* kShadowFile = "shadow.json";
inline constexpr const char* kAclCfgFile = "acl.cfg";

// One `user:` or `token:` section.
struct UserEntry {
  std::string id;  // userid, or tokenid "user@realm!name" for tokens
  bool is_token = false;
  std::optional<bool> enable;     // absent = enabled
  std::optional<int64_t> expire;  // absent or 0 = never
  std::string comment, email, firstname, lastname;  // empty = absent (tokens: comment only)

  // True when enabled and not expired at `now` (epoch seconds).
  bool Active(int64_t now) const;
};

class UserConfig {
 public:
  // Parses user.cfg text; adds the implicit `root@pam` user (comment "Superuser") when missing,
  // as PBS does. InvalidArgument "<file>:<line>: ..." on syntax or schema errors (unknown
  // section type or property, bad ids, bad booleans/integers).
  static Result<UserConfig> Parse(std::string_view text, const std::string& filename);
  // Reads `<config_dir>/user.cfg` (a missing file is an empty config).
  static Result<UserConfig> Load(const std::string& config_dir);
  // Exactly PBS's serialisation (properties sorted by key, one empty line between sections).
  std::string ToString() const;
  // Atomically replaces `<config_dir>/user.cfg` (mode 0640).
  Status Save(const std::string& config_dir) const;

  const UserEntry* Find(const std::string& id) const;
  const std::vector<UserEntry>& entries() const { return entries_; }
  // AlreadyExists when the id is taken; InvalidArgument for a bad id; a token requires its
  // user to exist (NotFound otherwise).
  Status Add(UserEntry entry);
  // Removes a user together with its tokens, or a single token. NotFound when absent.
  Status Remove(const std::string& id);
  // Whether `auth_id` may authenticate at `now`: its user (and for tokens the token too)
  // exists, is enabled and not expired.
  bool IsActive(const Authid& auth_id, int64_t now) const;

 private:
  std::vector<UserEntry> entries_;  // file order
};

// token.shadow / shadow.json: id -> crypt hash. A missing file is empty.
Result<std::map<std::string, std::string>> LoadHashFile(const std::string& path);
// `pretty` selects serde_json's pretty format (shadow.json) over the compact one (token.shadow).
Status SaveHashFile(const std::string& path, const std::map<std::string, std::string>& hashes,
                    bool pretty);

// Reads `<config_dir>/acl.cfg` (missing = empty tree).
Result<AclTree> LoadAcl(const std::string& config_dir);
Status SaveAcl(const std::string& config_dir, const AclTree& tree);

// Path of the lock file guarding `file` ("user.cfg" -> "<dir>/.user.lck").
std::string ConfigLockPath(const std::string& config_dir, const std::string& file);

// A fresh API token secret: a random lower-case UUID string (36 characters), like PBS.
std::string GenerateTokenSecret();

}  // namespace pbskit::server
