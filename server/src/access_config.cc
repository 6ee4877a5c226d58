#include "pbskit/server/access_config.h"

#include <openssl/rand.h>

#include <boost/json.hpp>
#include <cstdio>

#include "file_util.h"
#include "pbskit/formats/names.h"

namespace pbskit::server {
namespace {

std::optional<bool> ParseBool(const std::string& v) {
  std::string l;
  for (char c : v) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (l == "1" || l == "true" || l == "yes" || l == "on") return true;
  if (l == "0" || l == "false" || l == "no" || l == "off") return false;
  return std::nullopt;
}

std::optional<int64_t> ParseInt(const std::string& v) {
  try {
    size_t pos = 0;
    long long n = std::stoll(v, &pos);
    if (pos != v.size()) return std::nullopt;
    return n;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// serde_json string escaping (the subset a hash or id can contain, plus controls).
std::string JsonString(const std::string& s) {
  return boost::json::serialize(boost::json::value(s));
}

}  // namespace

bool UserEntry::Active(int64_t now) const {
  if (enable.has_value() && !*enable) return false;
  if (expire.has_value() && *expire > 0 && *expire <= now) return false;
  return true;
}

Result<UserConfig> UserConfig::Parse(std::string_view text, const std::string& filename) {
  PBSKIT_ASSIGN_OR_RETURN(SectionConfig sc, SectionConfig::Parse(text, filename));
  UserConfig cfg;
  for (const auto& s : sc.sections) {
    auto fail = [&](int line, const std::string& why) {
      return Status::InvalidArgument(filename + ":" + std::to_string(line) + ": " + why);
    };
    UserEntry e;
    e.id = s.id;
    if (s.type == "user") {
      if (!CheckUserid(s.id).ok()) return fail(s.line, "invalid userid '" + s.id + "'");
    } else if (s.type == "token") {
      auto id = Authid::Parse(s.id);
      if (!id.ok() || !id->is_token()) return fail(s.line, "invalid token id '" + s.id + "'");
      e.is_token = true;
    } else {
      return fail(s.line, "unknown section type '" + s.type + "'");
    }
    for (size_t i = 0; i < s.properties.size(); ++i) {
      const auto& [k, v] = s.properties[i];
      int line = i < s.property_lines.size() ? s.property_lines[i] : s.line;
      if (k == "enable") {
        e.enable = ParseBool(v);
        if (!e.enable) return fail(line, "enable: value '" + v + "' is not a boolean");
      } else if (k == "expire") {
        e.expire = ParseInt(v);
        if (!e.expire || *e.expire < 0) return fail(line, "expire: value '" + v + "' is invalid");
      } else if (k == "comment") {
        e.comment = v;
      } else if (!e.is_token && k == "email") {
        e.email = v;
      } else if (!e.is_token && k == "firstname") {
        e.firstname = v;
      } else if (!e.is_token && k == "lastname") {
        e.lastname = v;
      } else {
        return fail(line, "section '" + s.id + "': unknown property '" + k + "'");
      }
    }
    if (cfg.Find(e.id)) return fail(s.line, "duplicate section '" + e.id + "'");
    cfg.entries_.push_back(std::move(e));
  }
  if (!cfg.Find("root@pam")) {
    UserEntry root;
    root.id = "root@pam";
    root.comment = "Superuser";
    cfg.entries_.push_back(std::move(root));
  }
  return cfg;
}

Result<UserConfig> UserConfig::Load(const std::string& config_dir) {
  std::string path = config_dir + "/" + kUserCfgFile;
  auto text = ReadFileText(path);
  if (!text.ok() && !text.status().IsNotFound()) return text.status();
  return Parse(text.ok() ? *text : std::string(), path);
}

std::string UserConfig::ToString() const {
  SectionConfig sc;
  for (const auto& e : entries_) {
    SectionConfigEntry s;
    s.type = e.is_token ? "token" : "user";
    s.id = e.id;
    if (!e.comment.empty()) s.Set("comment", e.comment);
    if (!e.email.empty()) s.Set("email", e.email);
    if (e.enable) s.Set("enable", *e.enable ? "true" : "false");
    if (e.expire) s.Set("expire", std::to_string(*e.expire));
    if (!e.firstname.empty()) s.Set("firstname", e.firstname);
    if (!e.lastname.empty()) s.Set("lastname", e.lastname);
    sc.sections.push_back(std::move(s));
  }
  return sc.ToString();
}

Status UserConfig::Save(const std::string& config_dir) const {
  PBSKIT_RETURN_IF_ERROR(EnsureDirectory(config_dir));
  return ReplaceFile(config_dir + "/" + kUserCfgFile, ToString(), 0640);
}

const UserEntry* UserConfig::Find(const std::string& id) const {
  for (const auto& e : entries_) {
    if (e.id == id) return &e;
  }
  return nullptr;
}

Status UserConfig::Add(UserEntry entry) {
  if (entry.is_token) {
    PBSKIT_ASSIGN_OR_RETURN(Authid id, Authid::Parse(entry.id));
    if (!id.is_token()) return Status::InvalidArgument("'" + entry.id + "' is not a token id");
    const UserEntry* user = Find(id.user);
    if (!user || user->is_token) return Status::NotFound("user '" + id.user + "' does not exist");
  } else {
    PBSKIT_RETURN_IF_ERROR(CheckUserid(entry.id));
  }
  for (const std::string* text : {&entry.comment, &entry.email, &entry.firstname,
                                  &entry.lastname}) {
    for (unsigned char c : *text) {
      if (c < 0x20 || c == 0x7f) {
        return Status::InvalidArgument("detected unexpected control character in section '" +
                                       entry.id + "'");
      }
    }
  }
  if (Find(entry.id)) {
    return Status::AlreadyExists(std::string(entry.is_token ? "token" : "user") + " '" +
                                 entry.id + "' already exists.");
  }
  entries_.push_back(std::move(entry));
  return Status::OK();
}

Status UserConfig::Remove(const std::string& id) {
  const UserEntry* e = Find(id);
  if (!e) return Status::NotFound("no such user or token '" + id + "'");
  bool user = !e->is_token;
  std::string prefix = id + "!";
  std::erase_if(entries_, [&](const UserEntry& x) {
    return x.id == id || (user && x.is_token && x.id.compare(0, prefix.size(), prefix) == 0);
  });
  return Status::OK();
}

bool UserConfig::IsActive(const Authid& auth_id, int64_t now) const {
  const UserEntry* user = Find(auth_id.user);
  if (!user || user->is_token || !user->Active(now)) return false;
  if (!auth_id.is_token()) return true;
  const UserEntry* token = Find(auth_id.ToString());
  return token && token->is_token && token->Active(now);
}

Result<std::map<std::string, std::string>> LoadHashFile(const std::string& path) {
  std::map<std::string, std::string> out;
  auto text = ReadFileText(path);
  if (!text.ok()) {
    if (text.status().IsNotFound()) return out;
    return text.status();
  }
  boost::system::error_code ec;
  auto v = boost::json::parse(*text, ec);
  if (ec || !(v.is_object() || v.is_null())) {
    // Like PBS, do not echo the content: it holds secrets.
    return Status::InvalidArgument("unable to parse '" + path + "'");
  }
  if (v.is_null()) return out;
  for (const auto& [k, val] : v.as_object()) {
    if (!val.is_string()) return Status::InvalidArgument("unable to parse '" + path + "'");
    out[std::string(k)] = std::string(val.as_string());
  }
  return out;
}

Status SaveHashFile(const std::string& path, const std::map<std::string, std::string>& hashes,
                    bool pretty) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : hashes) {
    if (!first) out += ",";
    first = false;
    if (pretty) out += "\n  ";
    out += JsonString(k) + (pretty ? ": " : ":") + JsonString(v);
  }
  if (pretty && !hashes.empty()) out += "\n";
  out += "}";
  return ReplaceFile(path, out, pretty ? 0600 : 0640);
}

Result<AclTree> LoadAcl(const std::string& config_dir) {
  std::string path = config_dir + "/" + kAclCfgFile;
  auto text = ReadFileText(path);
  if (!text.ok() && !text.status().IsNotFound()) return text.status();
  return AclTree::Parse(text.ok() ? *text : std::string(), path);
}

Status SaveAcl(const std::string& config_dir, const AclTree& tree) {
  PBSKIT_RETURN_IF_ERROR(EnsureDirectory(config_dir));
  return ReplaceFile(config_dir + "/" + kAclCfgFile, tree.ToString(), 0640);
}

std::string ConfigLockPath(const std::string& config_dir, const std::string& file) {
  if (file == kUserCfgFile) return config_dir + "/.user.lck";
  if (file == kAclCfgFile) return config_dir + "/.acl.lck";
  return config_dir + "/" + file + ".lock";
}

std::string GenerateTokenSecret() {
  unsigned char b[16];
  RAND_bytes(b, sizeof(b));
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  char buf[40];
  std::snprintf(buf, sizeof(buf),
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
                b[14], b[15]);
  return buf;
}

}  // namespace pbskit::server
