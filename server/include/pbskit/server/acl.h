// Users, API token ids, privileges, roles and the ACL tree of `acl.cfg`, with PBS's evaluation
// rules (pbs-config acl.rs / cached_user_info.rs).
//
// acl.cfg holds one line per entry group:
//   acl:<propagate 0|1>:<path>:<comma list of auth ids / @groups>:<comma list of roles>
// e.g. `acl:1:/datastore/store1:backup@pbs!client:DatastoreBackup`. root@pam entries are never
// written (root always has every privilege).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/formats/status.h"

namespace pbskit::server {

// A user ("name@realm") or an API token ("name@realm!token").
struct Authid {
  std::string user;   // "backup@pbs"
  std::string token;  // "client", empty for users

  // Parses and validates (user name: no whitespace, ':', '/' or control characters; realm and
  // token name: SAFE_ID; user id length 3..64). InvalidArgument "value '<s>' is not a valid
  // Authid" style messages otherwise.
  static Result<Authid> Parse(std::string_view text);
  bool is_token() const { return !token.empty(); }
  std::string ToString() const { return token.empty() ? user : user + "!" + token; }
  std::string Realm() const;
  bool operator==(const Authid& o) const { return user == o.user && token == o.token; }
  bool operator<(const Authid& o) const { return ToString() < o.ToString(); }
};

// Validates a user id "name@realm". InvalidArgument otherwise.
Status CheckUserid(std::string_view userid);

// Privilege bits, in PBS's bit order.
enum Privilege : uint64_t {
  kPrivSysAudit = 1ull << 0,
  kPrivSysModify = 1ull << 1,
  kPrivSysPowerManagement = 1ull << 2,
  kPrivDatastoreAudit = 1ull << 3,
  kPrivDatastoreAllocate = 1ull << 4,
  kPrivDatastoreModify = 1ull << 5,
  kPrivDatastoreRead = 1ull << 6,
  kPrivDatastoreVerify = 1ull << 7,
  kPrivDatastoreBackup = 1ull << 8,
  kPrivDatastorePrune = 1ull << 9,
  kPrivPermissionsModify = 1ull << 10,
  kPrivRemoteAudit = 1ull << 11,
  kPrivRemoteModify = 1ull << 12,
  kPrivRemoteRead = 1ull << 13,
  kPrivRemoteDatastoreBackup = 1ull << 14,
  kPrivRemoteDatastoreModify = 1ull << 15,
  kPrivRemoteDatastorePrune = 1ull << 16,
  kPrivSysConsole = 1ull << 17,
  kPrivTapeAudit = 1ull << 18,
  kPrivTapeModify = 1ull << 19,
  kPrivTapeWrite = 1ull << 20,
  kPrivTapeRead = 1ull << 21,
  kPrivRealmAllocate = 1ull << 22,
};
inline constexpr uint64_t kRoleAdmin = ~0ull;

// Privilege bits of a role name ("DatastoreAdmin"); nullopt for unknown roles.
std::optional<uint64_t> RolePrivileges(std::string_view role);
// Every role name in PBS's order.
const std::vector<std::string>& RoleNames();
// "Datastore.Audit", ... for each bit set, in bit order.
std::vector<std::string> PrivilegeNames(uint64_t privs);

// Splits an ACL path ("/datastore/store1/ns1") into components; "/" gives {}.
std::vector<std::string> SplitAclPath(std::string_view path);
// InvalidArgument "invalid acl path '<p>'." unless PBS accepts the path (/, /access[/acl|/users],
// /datastore[/<store>[/<ns up to 7 levels>]], /remote[/<r>[/<store>[/ns...]]], /system[/...],
// /tape[/...]).
Status CheckAclPath(std::string_view path);

class AclTree {
 public:
  // Parses acl.cfg text. InvalidArgument "unable to parse acl config '<file>', line N - <why>".
  static Result<AclTree> Parse(std::string_view text, const std::string& filename);
  // Serialises exactly as PBS writes it (per node: non-propagating lines first, then
  // propagating ones, grouped by identical user lists; children in name order).
  std::string ToString() const;

  // Adds a role for an auth id (or "@group") at `path`. NoAccess replaces every other role of
  // that entry, any other role removes NoAccess (PBS semantics).
  void Insert(std::string_view path, const std::string& ugid, const std::string& role,
              bool propagate);
  // Removes one role of an entry (no-op when absent).
  void Remove(std::string_view path, const std::string& ugid, const std::string& role);
  // Removes every entry of `auth_id` (used when deleting users/tokens).
  void RemoveAuthid(const std::string& auth_id);

  // Role -> propagate map that applies to `auth_id` at `path` (components), following PBS:
  // walk from the root, entries at deeper nodes replace shallower ones, non-propagating entries
  // only count at the final node, user/token entries override group entries.
  std::map<std::string, bool> Roles(const Authid& auth_id,
                                    const std::vector<std::string>& path) const;

  struct Entry {
    std::string path;
    std::string ugid;
    std::string role;
    bool propagate;
  };
  // Every entry, sorted by path then ugid then role.
  std::vector<Entry> Entries() const;

 private:
  struct Node {
    std::map<std::string, std::map<std::string, bool>> users;   // authid -> role -> propagate
    std::map<std::string, std::map<std::string, bool>> groups;  // group -> role -> propagate
    std::map<std::string, Node> children;
  };
  static std::map<std::string, bool> Extract(const Node& node, const Authid& auth_id, bool leaf);
  static void WriteNode(const Node& node, const std::string& path, std::string* out);
  static void CollectEntries(const Node& node, const std::string& path, std::vector<Entry>* out);
  static void RemoveAuthidFrom(Node& node, const std::string& auth_id);
  Node* GetOrInsert(std::string_view path);
  Node root_;
};

}  // namespace pbskit::server
