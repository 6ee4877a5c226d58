#include "pbskit/server/acl.h"

#include <set>

#include "pbskit/formats/names.h"

namespace pbskit::server {
namespace {

constexpr const char* kNoAccess = "NoAccess";

bool ValidUserName(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
        c == '\f' || c == ':' || c == '/') {
      return false;
    }
  }
  return true;
}

struct RoleDef {
  const char* name;
  uint64_t privs;
};

const std::vector<RoleDef>& Roles() {
  static const std::vector<RoleDef> roles = {
      {"Admin", kRoleAdmin},
      {"Audit", kPrivSysAudit | kPrivDatastoreAudit},
      {"NoAccess", 0},
      {"DatastoreAdmin", kPrivDatastoreAudit | kPrivDatastoreModify | kPrivDatastoreRead |
                             kPrivDatastoreVerify | kPrivDatastoreBackup | kPrivDatastorePrune},
      {"DatastoreReader", kPrivDatastoreAudit | kPrivDatastoreVerify | kPrivDatastoreRead},
      {"DatastoreBackup", kPrivDatastoreBackup},
      {"DatastorePowerUser", kPrivDatastorePrune | kPrivDatastoreBackup},
      {"DatastoreAudit", kPrivDatastoreAudit},
      {"RemoteAudit", kPrivRemoteAudit},
      {"RemoteAdmin", kPrivRemoteAudit | kPrivRemoteModify | kPrivRemoteRead},
      {"RemoteSyncOperator", kPrivRemoteAudit | kPrivRemoteRead},
      {"RemoteSyncPushOperator", kPrivRemoteAudit | kPrivRemoteDatastoreBackup},
      {"RemoteDatastorePowerUser",
       kPrivRemoteAudit | kPrivRemoteDatastoreBackup | kPrivRemoteDatastorePrune},
      {"RemoteDatastoreAdmin", kPrivRemoteAudit | kPrivRemoteDatastoreBackup |
                                   kPrivRemoteDatastoreModify | kPrivRemoteDatastorePrune},
      {"TapeAudit", kPrivTapeAudit},
      {"TapeAdmin", kPrivTapeAudit | kPrivTapeModify | kPrivTapeRead | kPrivTapeWrite},
      {"TapeOperator", kPrivTapeAudit | kPrivTapeRead | kPrivTapeWrite},
      {"TapeReader", kPrivTapeAudit | kPrivTapeRead},
  };
  return roles;
}

const char* kPrivNames[] = {
    "Sys.Audit",          "Sys.Modify",          "Sys.PowerManagement",
    "Datastore.Audit",    "Datastore.Allocate",  "Datastore.Modify",
    "Datastore.Read",     "Datastore.Verify",    "Datastore.Backup",
    "Datastore.Prune",    "Permissions.Modify",  "Remote.Audit",
    "Remote.Modify",      "Remote.Read",         "Remote.DatastoreBackup",
    "Remote.DatastoreModify", "Remote.DatastorePrune", "Sys.Console",
    "Tape.Audit",         "Tape.Modify",         "Tape.Write",
    "Tape.Read",          "Realm.Allocate",
};

std::string JoinSet(const std::set<std::string>& items) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += ',';
    out += i;
  }
  return out;
}

void InsertRole(std::map<std::string, bool>& roles, const std::string& role, bool propagate) {
  if (role == kNoAccess) {
    roles.clear();
  } else {
    roles.erase(kNoAccess);
  }
  roles[role] = propagate;
}

}  // namespace

Status CheckUserid(std::string_view userid) {
  auto at = userid.rfind('@');
  if (userid.size() < 3 || userid.size() > 64 || at == std::string_view::npos ||
      !ValidUserName(userid.substr(0, at))) {
    return Status::InvalidArgument("value '" + std::string(userid) + "' is not a valid userid");
  }
  std::string_view realm = userid.substr(at + 1);
  if (!IsSafeId(realm) || realm.size() < 2 || realm.size() > 32) {
    return Status::InvalidArgument("value '" + std::string(userid) + "' is not a valid userid");
  }
  return Status::OK();
}

Result<Authid> Authid::Parse(std::string_view text) {
  Authid id;
  auto bang = text.find('!');
  std::string_view user = text.substr(0, bang);
  auto st = CheckUserid(user);
  if (!st.ok()) {
    return Status::InvalidArgument("value '" + std::string(text) + "' is not a valid Authid");
  }
  id.user = std::string(user);
  if (bang != std::string_view::npos) {
    std::string_view token = text.substr(bang + 1);
    if (!IsSafeId(token) || token.size() > 64) {
      return Status::InvalidArgument("value '" + std::string(text) +
                                     "' is not a valid Authid (bad token name)");
    }
    id.token = std::string(token);
  }
  return id;
}

std::string Authid::Realm() const {
  auto at = user.rfind('@');
  return at == std::string::npos ? "" : user.substr(at + 1);
}

std::optional<uint64_t> RolePrivileges(std::string_view role) {
  for (const auto& r : Roles()) {
    if (role == r.name) return r.privs;
  }
  return std::nullopt;
}

const std::vector<std::string>& RoleNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& r : Roles()) n.emplace_back(r.name);
    return n;
  }();
  return names;
}

std::vector<std::string> PrivilegeNames(uint64_t privs) {
  std::vector<std::string> out;
  for (size_t i = 0; i < sizeof(kPrivNames) / sizeof(kPrivNames[0]); ++i) {
    if (privs & (1ull << i)) out.emplace_back(kPrivNames[i]);
  }
  return out;
}

std::vector<std::string> SplitAclPath(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) out.emplace_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

Status CheckAclPath(std::string_view path) {
  auto bad = [&] { return Status::InvalidArgument("invalid acl path '" + std::string(path) + "'."); };
  if (path.empty() || path[0] != '/' || path.size() > 128) return bad();
  auto c = SplitAclPath(path);
  for (const auto& comp : c) {
    if (!IsSafeId(comp)) return bad();
  }
  size_t n = c.size();
  if (n == 0) return Status::OK();
  const std::string& top = c[0];
  if (top == "access") {
    if (n == 1 || (n == 2 && (c[1] == "acl" || c[1] == "users" || c[1] == "domains")) ||
        (n <= 3 && c[1] == "openid")) {
      return Status::OK();
    }
  } else if (top == "datastore") {
    if (n <= 2 + kMaxNamespaceDepth) return Status::OK();
  } else if (top == "remote") {
    if (n <= 3 + kMaxNamespaceDepth) return Status::OK();
  } else if (top == "system") {
    static const std::set<std::string> two = {"certificates", "disks", "log", "notifications",
                                              "status", "tasks", "time"};
    if (n == 1 || (n == 2 && two.count(c[1])) || (c[1] == "services" && n <= 3) ||
        (c[1] == "network" && (n == 2 || (n == 3 && c[2] == "dns") ||
                               (c[2] == "interfaces" && n <= 4))) ||
        ((c[1] == "s3-endpoint" || c[1] == "encryption-keys") && n <= 3)) {
      return Status::OK();
    }
  } else if (top == "tape") {
    if (n == 1 || ((c[1] == "device" || c[1] == "pool" || c[1] == "job") && n <= 3)) {
      return Status::OK();
    }
  }
  return bad();
}

AclTree::Node* AclTree::GetOrInsert(std::string_view path) {
  Node* node = &root_;
  for (const auto& comp : SplitAclPath(path)) node = &node->children[comp];
  return node;
}

Result<AclTree> AclTree::Parse(std::string_view text, const std::string& filename) {
  AclTree tree;
  size_t lineno = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++lineno;
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front()))) line.remove_prefix(1);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.remove_suffix(1);
    if (line.empty()) continue;
    auto fail = [&](const std::string& why) {
      return Status::InvalidArgument("unable to parse acl config '" + filename + "', line " +
                                     std::to_string(lineno) + " - " + why);
    };
    std::vector<std::string> items;
    size_t i = 0;
    for (;;) {
      size_t j = line.find(':', i);
      items.emplace_back(line.substr(i, j == std::string_view::npos ? line.npos : j - i));
      if (j == std::string_view::npos) break;
      i = j + 1;
    }
    if (items.size() != 5) return fail("wrong number of items.");
    if (items[0] != "acl") return fail("line does not start with 'acl'.");
    if (items[1] != "0" && items[1] != "1") return fail("expected '0' or '1' for propagate flag.");
    bool propagate = items[1] == "1";
    Node* node = tree.GetOrInsert(items[2]);
    auto split_list = [](const std::string& s) {
      std::vector<std::string> out;
      size_t a = 0;
      for (;;) {
        size_t b = s.find(',', a);
        std::string v = s.substr(a, b == std::string::npos ? s.npos : b - a);
        while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.erase(0, 1);
        while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
        out.push_back(v);
        if (b == std::string::npos) break;
        a = b + 1;
      }
      return out;
    };
    for (const auto& ug : split_list(items[3])) {
      for (const auto& role : split_list(items[4])) {
        if (!RolePrivileges(role)) return fail("unknown role '" + role + "'");
        if (!ug.empty() && ug[0] == '@') {
          InsertRole(node->groups[ug.substr(1)], role, propagate);
        } else {
          auto id = Authid::Parse(ug);
          if (!id.ok()) return fail(id.status().message());
          InsertRole(node->users[id->ToString()], role, propagate);
        }
      }
    }
  }
  return tree;
}

void AclTree::WriteNode(const Node& node, const std::string& path, std::string* out) {
  // role -> set of user/group ids, per propagate flag
  std::map<std::string, std::set<std::string>> role_ug[2];
  for (const auto& [auth_id, roles] : node.users) {
    if (auth_id == "root@pam") continue;  // root is always Admin, never saved
    for (const auto& [role, propagate] : roles) role_ug[propagate ? 1 : 0][role].insert(auth_id);
  }
  for (const auto& [group, roles] : node.groups) {
    for (const auto& [role, propagate] : roles) {
      role_ug[propagate ? 1 : 0][role].insert("@" + group);
    }
  }
  const std::string shown = path.empty() ? "/" : path;
  for (int p = 0; p < 2; ++p) {
    std::map<std::string, std::set<std::string>> by_list;  // ug list -> roles
    for (const auto& [role, ugs] : role_ug[p]) by_list[JoinSet(ugs)].insert(role);
    for (const auto& [uglist, roles] : by_list) {
      std::string role_list = roles.count(kNoAccess) ? std::string(kNoAccess) : JoinSet(roles);
      *out += "acl:" + std::to_string(p) + ":" + shown + ":" + uglist + ":" + role_list + "\n";
    }
  }
  for (const auto& [name, child] : node.children) WriteNode(child, path + "/" + name, out);
}

std::string AclTree::ToString() const {
  std::string out;
  WriteNode(root_, "", &out);
  return out;
}

void AclTree::Insert(std::string_view path, const std::string& ugid, const std::string& role,
                     bool propagate) {
  Node* node = GetOrInsert(path);
  if (!ugid.empty() && ugid[0] == '@') {
    InsertRole(node->groups[ugid.substr(1)], role, propagate);
  } else {
    InsertRole(node->users[ugid], role, propagate);
  }
}

void AclTree::Remove(std::string_view path, const std::string& ugid, const std::string& role) {
  Node* node = &root_;
  for (const auto& comp : SplitAclPath(path)) {
    auto it = node->children.find(comp);
    if (it == node->children.end()) return;
    node = &it->second;
  }
  auto& map = (!ugid.empty() && ugid[0] == '@') ? node->groups : node->users;
  auto key = (!ugid.empty() && ugid[0] == '@') ? ugid.substr(1) : ugid;
  auto it = map.find(key);
  if (it == map.end()) return;
  it->second.erase(role);
  if (it->second.empty()) map.erase(it);
}

void AclTree::RemoveAuthidFrom(Node& node, const std::string& auth_id) {
  node.users.erase(auth_id);
  for (auto& [name, child] : node.children) RemoveAuthidFrom(child, auth_id);
}

void AclTree::RemoveAuthid(const std::string& auth_id) { RemoveAuthidFrom(root_, auth_id); }

std::map<std::string, bool> AclTree::Extract(const Node& node, const Authid& auth_id, bool leaf) {
  std::map<std::string, bool> out;
  auto it = node.users.find(auth_id.ToString());
  if (it != node.users.end()) {
    for (const auto& [role, propagate] : it->second) {
      if (!propagate && !leaf) continue;
      if (role == kNoAccess) return {{kNoAccess, false}};
      out[role] = propagate;
    }
  }
  // Group membership is not modelled by PBS either (no user is member of any group), so
  // group entries never apply.
  return out;
}

std::map<std::string, bool> AclTree::Roles(const Authid& auth_id,
                                           const std::vector<std::string>& path) const {
  const Node* node = &root_;
  auto roles = Extract(*node, auth_id, path.empty());
  for (size_t i = 0; i < path.size(); ++i) {
    auto it = node->children.find(path[i]);
    if (it == node->children.end()) return roles;
    node = &it->second;
    auto next = Extract(*node, auth_id, i + 1 == path.size());
    if (!next.empty()) roles = std::move(next);
  }
  return roles;
}

void AclTree::CollectEntries(const Node& node, const std::string& path, std::vector<Entry>* out) {
  std::string shown = path.empty() ? "/" : path;
  for (const auto& [ug, roles] : node.users) {
    for (const auto& [role, p] : roles) out->push_back({shown, ug, role, p});
  }
  for (const auto& [g, roles] : node.groups) {
    for (const auto& [role, p] : roles) out->push_back({shown, "@" + g, role, p});
  }
  for (const auto& [name, child] : node.children) CollectEntries(child, path + "/" + name, out);
}

std::vector<AclTree::Entry> AclTree::Entries() const {
  std::vector<Entry> out;
  CollectEntries(root_, "", &out);
  return out;
}

}  // namespace pbskit::server
