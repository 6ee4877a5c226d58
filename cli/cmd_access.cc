// pbskit user / token / acl: the access configuration (user.cfg, token.shadow, shadow.json,
// acl.cfg), shaped like proxmox-backup-manager's commands.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>

#include "output.h"
#include "pbskit/server/access_config.h"
#include "pbskit/server/password.h"
#include "registry.h"

namespace pbskit::cli {
namespace {

using namespace pbskit::server;

struct UserArgs {
  std::string id;
  std::string password;
  std::string comment, email, firstname, lastname;
  std::optional<bool> enable;
  std::optional<int64_t> expire;
};

struct AclArgs {
  std::string path, role, auth_id;
  bool propagate = true;
  bool remove = false;
};

// Runs `fn` with the user.cfg lock held and saves the result when fn succeeds.
Status WithLock(const std::string& dir, const std::string& file,
                const std::function<Status()>& fn) {
  auto st = [&]() -> Status {
    std::string lock_path = ConfigLockPath(dir, file);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return Status::FromErrno(errno, "unable to open lock file '" + lock_path + "'");
    ::flock(fd, LOCK_EX);
    Status r = fn();
    ::close(fd);
    return r;
  }();
  return st;
}

boost::json::object UserJson(const UserEntry& e) {
  boost::json::object o;
  o[e.is_token ? "tokenid" : "userid"] = e.id;
  if (!e.comment.empty()) o["comment"] = e.comment;
  if (!e.email.empty()) o["email"] = e.email;
  if (!e.firstname.empty()) o["firstname"] = e.firstname;
  if (!e.lastname.empty()) o["lastname"] = e.lastname;
  o["enable"] = e.enable.value_or(true);
  o["expire"] = e.expire.value_or(0);
  return o;
}

int UserCreate(const GlobalOptions& g, const UserArgs& a) {
  Status st = CheckUserid(a.id);
  if (!st.ok()) return ReportError(st, 2);
  st = WithLock(g.config_dir, kUserCfgFile, [&]() -> Status {
    PBSKIT_ASSIGN_OR_RETURN(UserConfig cfg, UserConfig::Load(g.config_dir));
    UserEntry e;
    e.id = a.id;
    e.comment = a.comment;
    e.email = a.email;
    e.firstname = a.firstname;
    e.lastname = a.lastname;
    e.enable = a.enable;
    e.expire = a.expire;
    PBSKIT_RETURN_IF_ERROR(cfg.Add(std::move(e)));
    if (!a.password.empty()) {
      if (a.id.substr(a.id.rfind('@') + 1) != "pbs") {
        return Status::InvalidArgument("passwords can only be set for users of the 'pbs' realm");
      }
      PBSKIT_RETURN_IF_ERROR(WithLock(g.config_dir, kShadowFile, [&]() -> Status {
        std::string path = g.config_dir + "/" + kShadowFile;
        PBSKIT_ASSIGN_OR_RETURN(auto hashes, LoadHashFile(path));
        PBSKIT_ASSIGN_OR_RETURN(hashes[a.id], EncryptPassword(a.password));
        return SaveHashFile(path, hashes, true);
      }));
    }
    return cfg.Save(g.config_dir);
  });
  if (!st.ok()) return ReportError(st, ExitCodeFor(st));
  return 0;
}

int UserList(const GlobalOptions& g) {
  auto cfg = UserConfig::Load(g.config_dir);
  if (!cfg.ok()) return ReportError(cfg.status(), 2);
  boost::json::array rows;
  for (const auto& e : cfg->entries()) {
    if (!e.is_token) rows.push_back(UserJson(e));
  }
  return PrintList(g, std::move(rows),
                   {{"userid", "userid"}, {"enable", "enable"}, {"expire", "expire"},
                    {"firstname", "firstname"}, {"lastname", "lastname"}, {"email", "email"},
                    {"comment", "comment"}});
}

// Removes `ids` from token.shadow / shadow.json and acl.cfg.
Status ForgetSecretsAndAcl(const std::string& dir, const std::vector<std::string>& ids) {
  for (const char* file : {kTokenShadowFile, kShadowFile}) {
    PBSKIT_RETURN_IF_ERROR(WithLock(dir, file, [&]() -> Status {
      std::string path = dir + "/" + file;
      PBSKIT_ASSIGN_OR_RETURN(auto hashes, LoadHashFile(path));
      size_t before = hashes.size();
      for (const auto& id : ids) hashes.erase(id);
      if (hashes.size() == before) return Status::OK();
      return SaveHashFile(path, hashes, std::string(file) == kShadowFile);
    }));
  }
  return WithLock(dir, kAclCfgFile, [&]() -> Status {
    PBSKIT_ASSIGN_OR_RETURN(AclTree acl, LoadAcl(dir));
    std::string before = acl.ToString();
    for (const auto& id : ids) acl.RemoveAuthid(id);
    if (acl.ToString() == before) return Status::OK();
    return SaveAcl(dir, acl);
  });
}

int RemoveEntry(const GlobalOptions& g, const std::string& id, bool token) {
  std::vector<std::string> removed;
  Status st = WithLock(g.config_dir, kUserCfgFile, [&]() -> Status {
    PBSKIT_ASSIGN_OR_RETURN(UserConfig cfg, UserConfig::Load(g.config_dir));
    const UserEntry* e = cfg.Find(id);
    if (!e || e->is_token != token) {
      return Status::NotFound(std::string(token ? "token" : "user") + " '" + id +
                              "' does not exist.");
    }
    if (!token && id == "root@pam") return Status::InvalidArgument("cannot remove root@pam");
    for (const auto& x : cfg.entries()) {
      if (x.id == id || (!token && x.is_token && x.id.rfind(id + "!", 0) == 0)) {
        removed.push_back(x.id);
      }
    }
    PBSKIT_RETURN_IF_ERROR(cfg.Remove(id));
    return cfg.Save(g.config_dir);
  });
  if (st.ok()) st = ForgetSecretsAndAcl(g.config_dir, removed);
  if (!st.ok()) return ReportError(st, st.IsNotFound() ? 2 : ExitCodeFor(st));
  return 0;
}

int TokenCreate(const GlobalOptions& g, const UserArgs& a) {
  auto id = Authid::Parse(a.id);
  if (!id.ok() || !id->is_token()) {
    return ReportError(Status::InvalidArgument("'" + a.id + "' is not a token id (user@realm!name)"),
                       2);
  }
  if (id->token.size() < 3) {
    return ReportError(
        Status::InvalidArgument("token name '" + id->token + "' is too short (3..64 characters)"),
        2);
  }
  std::string secret = GenerateTokenSecret();
  Status st = WithLock(g.config_dir, kUserCfgFile, [&]() -> Status {
    PBSKIT_ASSIGN_OR_RETURN(UserConfig cfg, UserConfig::Load(g.config_dir));
    UserEntry e;
    e.id = a.id;
    e.is_token = true;
    e.comment = a.comment;
    e.enable = a.enable.value_or(true);
    e.expire = a.expire.value_or(0);
    PBSKIT_RETURN_IF_ERROR(cfg.Add(std::move(e)));
    PBSKIT_RETURN_IF_ERROR(WithLock(g.config_dir, kTokenShadowFile, [&]() -> Status {
      std::string path = g.config_dir + "/" + kTokenShadowFile;
      PBSKIT_ASSIGN_OR_RETURN(auto hashes, LoadHashFile(path));
      PBSKIT_ASSIGN_OR_RETURN(hashes[a.id], EncryptPassword(secret));
      return SaveHashFile(path, hashes, false);
    }));
    return cfg.Save(g.config_dir);
  });
  if (!st.ok()) return ReportError(st, st.IsNotFound() ? 2 : ExitCodeFor(st));
  if (g.output_format == "text") {
    std::cout << "tokenid: " << a.id << "\nvalue: " << secret << "\n"
              << "The secret is shown only once; store it now.\n";
  } else {
    PrintJson(std::cout, boost::json::object{{"tokenid", a.id}, {"value", secret}},
              g.output_format);
  }
  return 0;
}

int TokenList(const GlobalOptions& g, const std::string& user) {
  auto cfg = UserConfig::Load(g.config_dir);
  if (!cfg.ok()) return ReportError(cfg.status(), 2);
  boost::json::array rows;
  for (const auto& e : cfg->entries()) {
    if (e.is_token && (user.empty() || e.id.rfind(user + "!", 0) == 0)) rows.push_back(UserJson(e));
  }
  return PrintList(g, std::move(rows),
                   {{"tokenid", "tokenid"}, {"enable", "enable"}, {"expire", "expire"},
                    {"comment", "comment"}});
}

int AclUpdate(const GlobalOptions& g, const AclArgs& a) {
  Status st = CheckAclPath(a.path);
  if (st.ok() && !RolePrivileges(a.role)) {
    st = Status::InvalidArgument("unknown role '" + a.role + "'");
  }
  if (st.ok()) st = Authid::Parse(a.auth_id).status();
  if (!st.ok()) return ReportError(st, 2);
  st = WithLock(g.config_dir, kAclCfgFile, [&]() -> Status {
    PBSKIT_ASSIGN_OR_RETURN(UserConfig users, UserConfig::Load(g.config_dir));
    if (!users.Find(a.auth_id)) {
      return Status::NotFound("no such user or token '" + a.auth_id + "'");
    }
    PBSKIT_ASSIGN_OR_RETURN(AclTree acl, LoadAcl(g.config_dir));
    if (a.remove) {
      acl.Remove(a.path, a.auth_id, a.role);
    } else {
      acl.Insert(a.path, a.auth_id, a.role, a.propagate);
    }
    return SaveAcl(g.config_dir, acl);
  });
  if (!st.ok()) return ReportError(st, st.IsNotFound() ? 2 : ExitCodeFor(st));
  return 0;
}

int AclList(const GlobalOptions& g) {
  auto acl = LoadAcl(g.config_dir);
  if (!acl.ok()) return ReportError(acl.status(), 2);
  boost::json::array rows;
  for (const auto& e : acl->Entries()) {
    rows.push_back(boost::json::object{{"path", e.path},
                                       {"ugid", e.ugid},
                                       {"ugid_type", e.ugid[0] == '@' ? "group" : "user"},
                                       {"roleid", e.role},
                                       {"propagate", e.propagate}});
  }
  return PrintList(g, std::move(rows),
                   {{"ugid", "ugid"}, {"path", "path"}, {"propagate", "propagate"},
                    {"roleid", "roleid"}});
}

void AddUserOptions(CLI::App* c, UserArgs* a, bool token) {
  c->add_option("--comment", a->comment, "comment");
  if (!token) {
    c->add_option("--email", a->email, "e-mail address");
    c->add_option("--firstname", a->firstname, "first name");
    c->add_option("--lastname", a->lastname, "last name");
    c->add_option("--password", a->password, "password (pbs realm only)");
  }
  c->add_option("--enable", a->enable, "enable the account (default true)");
  c->add_option("--expire", a->expire, "expiry as epoch seconds (0 = never)")
      ->check(CLI::NonNegativeNumber);
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto ua = std::make_shared<UserArgs>();
  auto* user = app.add_subcommand("user", "users of the access configuration (user.cfg)");
  user->require_subcommand(1);
  auto* uc = user->add_subcommand("create", "create a user");
  uc->add_option("userid", ua->id, "user id (name@realm)")->required();
  AddUserOptions(uc, ua.get(), false);
  uc->callback([&g, ua] { g.exit_code = UserCreate(g, *ua); });
  user->add_subcommand("list", "list users")->callback([&g] { g.exit_code = UserList(g); });
  auto* ud = user->add_subcommand("delete", "delete a user with its tokens and ACL entries");
  ud->add_option("userid", ua->id, "user id")->required();
  ud->callback([&g, ua] { g.exit_code = RemoveEntry(g, ua->id, false); });

  auto ta = std::make_shared<UserArgs>();
  auto* token = app.add_subcommand("token", "API tokens (user.cfg + token.shadow)");
  token->require_subcommand(1);
  auto* tc = token->add_subcommand("create", "create an API token and print its secret once");
  tc->add_option("tokenid", ta->id, "token id (user@realm!name)")->required();
  AddUserOptions(tc, ta.get(), true);
  tc->callback([&g, ta] { g.exit_code = TokenCreate(g, *ta); });
  auto* tl = token->add_subcommand("list", "list API tokens");
  tl->add_option("userid", ta->id, "only tokens of this user");
  tl->callback([&g, ta] { g.exit_code = TokenList(g, ta->id); });
  auto* td = token->add_subcommand("delete", "delete an API token");
  td->add_option("tokenid", ta->id, "token id")->required();
  td->callback([&g, ta] { g.exit_code = RemoveEntry(g, ta->id, true); });

  auto aa = std::make_shared<AclArgs>();
  auto* acl = app.add_subcommand("acl", "access control list (acl.cfg)");
  acl->require_subcommand(1);
  auto* au = acl->add_subcommand("update", "grant (or with --delete revoke) a role on a path");
  au->add_option("path", aa->path, "ACL path, e.g. /datastore/store1")->required();
  au->add_option("role", aa->role, "role, e.g. DatastoreBackup")->required();
  au->add_option("--auth-id", aa->auth_id, "user or API token")->required();
  au->add_option("--propagate", aa->propagate, "inherit to paths below (default true)");
  au->add_flag("--delete", aa->remove, "remove the role instead");
  au->callback([&g, aa] { g.exit_code = AclUpdate(g, *aa); });
  acl->add_subcommand("list", "list ACL entries")->callback([&g] { g.exit_code = AclList(g); });
}

}  // namespace

PBSKIT_REGISTER_COMMAND(86, Setup);

}  // namespace pbskit::cli
