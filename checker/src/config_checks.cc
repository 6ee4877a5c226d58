// Checks of every /etc/proxmox-backup/*.cfg against the 4.x grammar and property sets
// (UPGRADE-CHECKS.md §10 E1/E3, §11, §12). Errors name file:line.
#include <algorithm>
#include <set>

#include "check_context.h"
#include "pbskit/formats/property_string.h"

namespace pbskit::checker {
namespace {

constexpr char kEtc[] = "/etc/proxmox-backup";

struct TypeSchema {
  std::string type;
  std::set<std::string> keys;      // every allowed key
  std::set<std::string> arrays;    // keys that may repeat
  std::set<std::string> required;  // keys that must be present
};

struct FileSchema {
  std::string file;
  std::vector<TypeSchema> types;  // empty: grammar only
};

const std::set<std::string> kBoolKeys = {
    "verify-new",      "gc-on-unmount",    "enable",       "remove-vanished", "resync-corrupt",
    "encrypted-only",  "verified-only",    "run-on-mount", "unmount-on-done", "ignore-verified",
    "disable",         "eject-before-unload", "eject-media", "export-media-set", "latest-only",
    "path-style",      "use-node-proxy"};

const std::map<std::string, std::set<std::string>> kEnumKeys = {
    {"notification-mode", {"legacy-sendmail", "notification-system"}},
    {"sync-direction", {"pull", "push"}},
};

const std::vector<FileSchema>& Schemas() {
  static const std::vector<FileSchema> schemas = [] {
    std::set<std::string> keep = {"keep-last",   "keep-hourly",  "keep-daily",
                                  "keep-weekly", "keep-monthly", "keep-yearly"};
    auto with = [](std::set<std::string> a, const std::set<std::string>& b) {
      a.insert(b.begin(), b.end());
      return a;
    };
    std::vector<FileSchema> s;
    s.push_back({"datastore.cfg",
                 {{"datastore",
                   with({"path", "comment", "gc-schedule", "gc-on-unmount", "prune-schedule",
                         "verify-new", "notify-user", "notify", "notification-mode", "tuning",
                         "maintenance-mode", "backing-device", "backend",
                         "notification-thresholds", "counter-reset-schedule"},
                        keep),
                   {},
                   {"path"}}}});
    s.push_back({"user.cfg",
                 {{"user", {"comment", "enable", "expire", "firstname", "lastname", "email"}, {},
                   {}},
                  {"token", {"comment", "enable", "expire"}, {}, {}}}});
    s.push_back({"remote.cfg",
                 {{"remote",
                   {"host", "port", "auth-id", "password", "fingerprint", "comment",
                    "use-node-proxy"},
                   {},
                   {"host", "auth-id"}}}});
    s.push_back(
        {"sync.cfg",
         {{"sync",
           {"store", "ns", "owner", "remote", "remote-store", "remote-ns", "remove-vanished",
            "max-depth", "comment", "schedule", "group-filter", "rate-in", "burst-in", "rate-out",
            "burst-out", "transfer-last", "resync-corrupt", "encrypted-only", "verified-only",
            "run-on-mount", "unmount-on-done", "sync-direction", "worker-threads",
            "active-encryption-key", "associated-key"},
           {"group-filter", "associated-key"},
           {"store", "remote-store"}}}});
    s.push_back({"verification.cfg",
                 {{"verification",
                   {"store", "ignore-verified", "outdated-after", "schedule", "comment", "ns",
                    "max-depth", "read-threads", "verify-threads"},
                   {},
                   {"store"}}}});
    s.push_back({"prune.cfg",
                 {{"prune", with({"store", "schedule", "disable", "comment", "ns", "max-depth"}, keep),
                   {},
                   {"store", "schedule"}}}});
    s.push_back({"tape.cfg",
                 {{"lto", {"path", "changer", "changer-drivenum"}, {}, {"path"}},
                  {"changer", {"path", "export-slots", "eject-before-unload"}, {}, {"path"}},
                  {"virtual", {"path", "max-size"}, {}, {"path"}}}});
    s.push_back({"media-pool.cfg",
                 {{"pool", {"allocation", "retention", "template", "encrypt", "comment"}, {}, {}}}});
    s.push_back({"tape-job.cfg",
                 {{"backup",
                   {"store", "pool", "drive", "eject-media", "export-media-set", "latest-only",
                    "notify-user", "notification-mode", "group-filter", "ns", "max-depth",
                    "worker-threads", "comment", "schedule"},
                   {"group-filter"},
                   {"store", "pool", "drive"}}}});
    s.push_back({"traffic-control.cfg",
                 {{"rule",
                   {"network", "rate-in", "burst-in", "rate-out", "burst-out", "timeframe",
                    "users", "comment"},
                   {"network", "timeframe", "users"},
                   {"network"}}}});
    s.push_back({"s3.cfg",
                 {{"s3-endpoint",
                   {"endpoint", "port", "region", "fingerprint", "access-key", "secret-key",
                    "path-style", "put-rate-limit", "provider-quirks", "rate-in", "burst-in",
                    "rate-out", "burst-out"},
                   {"provider-quirks"},
                   {"endpoint", "access-key", "secret-key"}}}});
    for (const char* f : {"domains.cfg", "metricserver.cfg", "notifications.cfg",
                          "notifications-priv.cfg", "encryption-keys.cfg"}) {
      s.push_back({f, {}});
    }
    return s;
  }();
  return schemas;
}

bool IsBool(const std::string& v) {
  std::string l = v;
  for (auto& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return l == "1" || l == "on" || l == "yes" || l == "true" || l == "0" || l == "off" ||
         l == "no" || l == "false";
}

bool IsUint(const std::string& v, unsigned long long lo, unsigned long long hi) {
  if (v.empty() || v.size() > 19 ||
      !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  unsigned long long n = std::stoull(v);
  return n >= lo && n <= hi;
}

// Validates the property strings of datastore.cfg. Appends messages to `errs`.
void CheckDatastoreValue(const std::string& key, const std::string& value,
                         std::vector<std::string>* errs) {
  if (key == "tuning") {
    auto kv = ParsePropertyString(value);
    if (!kv.ok()) return errs->push_back("property 'tuning': " + kv.status().message());
    for (const auto& [k, v] : *kv) {
      bool ok = true;
      if (k == "chunk-order") ok = v == "none" || v == "inode";
      else if (k == "sync-level") ok = v == "none" || v == "file" || v == "filesystem";
      else if (k == "gc-atime-safety-check") ok = IsBool(v);
      else if (k == "gc-atime-cutoff") ok = IsUint(v, 1, 2880);
      else if (k == "gc-cache-capacity") ok = IsUint(v, 0, 8388608);
      else if (k == "default-verification-workers" || k == "default-verification-readers")
        ok = IsUint(v, 1, 1024);
      else {
        errs->push_back("property 'tuning': unknown key '" + k + "'");
        continue;
      }
      if (!ok) errs->push_back("property 'tuning': invalid value '" + v + "' for '" + k + "'");
    }
  } else if (key == "maintenance-mode") {
    auto kv = ParsePropertyString(value, "type");
    if (!kv.ok()) return errs->push_back("property 'maintenance-mode': " + kv.status().message());
    for (const auto& [k, v] : *kv) {
      if (k == "type") {
        static const std::set<std::string> types = {"read-only", "offline", "delete", "unmount",
                                                    "s3-refresh"};
        if (!types.count(v)) {
          errs->push_back("property 'maintenance-mode': unknown type '" + v + "'");
        }
      } else if (k != "message") {
        errs->push_back("property 'maintenance-mode': unknown key '" + k + "'");
      }
    }
    if (!FindProperty(*kv, "type")) errs->push_back("property 'maintenance-mode': type missing");
  } else if (key == "backend") {
    auto kv = ParsePropertyString(value, "type");
    if (!kv.ok()) return errs->push_back("property 'backend': " + kv.status().message());
    for (const auto& [k, v] : *kv) {
      if (k == "type" && v != "filesystem" && v != "s3") {
        errs->push_back("property 'backend': unknown type '" + v + "'");
      } else if (k != "type" && k != "client" && k != "bucket" && k != "max-cache-size") {
        errs->push_back("property 'backend': unknown key '" + k + "'");
      }
    }
  } else if (key == "notify") {
    auto kv = ParsePropertyString(value);
    if (!kv.ok()) return errs->push_back("property 'notify': " + kv.status().message());
    for (const auto& [k, v] : *kv) {
      if (k != "gc" && k != "verify" && k != "sync" && k != "prune") {
        errs->push_back("property 'notify': unknown key '" + k + "'");
      } else if (v != "always" && v != "error" && v != "never") {
        errs->push_back("property 'notify': invalid value '" + v + "' for '" + k + "'");
      }
    }
  }
}

// Schema checks of one parsed section-config file. Returns "line: message" problems.
std::vector<SectionConfigError> CheckSchema(const FileSchema& schema, const SectionConfig& cfg,
                                            const std::string& path) {
  std::vector<SectionConfigError> out;
  if (schema.types.empty()) return out;
  for (const auto& s : cfg.sections) {
    const TypeSchema* ts = nullptr;
    for (const auto& t : schema.types) {
      if (t.type == s.type) ts = &t;
    }
    if (!ts) {
      if (schema.file == "s3.cfg" && s.type == "s3client") continue;  // reported as deprecated
      out.push_back({path, s.line, "unknown section type '" + s.type + "'"});
      continue;
    }
    std::set<std::string> seen;
    for (size_t i = 0; i < s.properties.size(); ++i) {
      const auto& [k, v] = s.properties[i];
      int line = i < s.property_lines.size() ? s.property_lines[i] : s.line;
      if (!ts->keys.count(k)) {
        out.push_back({path, line, "unknown property '" + k + "'"});
        continue;
      }
      if (!seen.insert(k).second && !ts->arrays.count(k)) {
        out.push_back({path, line, "duplicate property '" + k + "'"});
      }
      if (kBoolKeys.count(k) && !IsBool(v)) {
        out.push_back({path, line, "property '" + k + "': value '" + v + "' is not a boolean"});
      }
      if (auto e = kEnumKeys.find(k); e != kEnumKeys.end() && !e->second.count(v)) {
        out.push_back({path, line, "property '" + k + "': unknown value '" + v + "'"});
      }
      if (schema.file == "datastore.cfg") {
        std::vector<std::string> errs;
        CheckDatastoreValue(k, v, &errs);
        for (auto& e : errs) out.push_back({path, line, std::move(e)});
      }
    }
    for (const auto& r : ts->required) {
      if (!s.Get(r)) {
        out.push_back({path, s.line, "section '" + s.id + "': property '" + r +
                                         "' is missing and it is not optional."});
      }
    }
  }
  return out;
}

const std::set<std::string> kRoles = {
    "Admin",          "Audit",           "NoAccess",         "DatastoreAdmin",
    "DatastoreReader", "DatastoreBackup", "DatastorePowerUser", "DatastoreAudit",
    "RemoteAudit",    "RemoteAdmin",     "RemoteSyncOperator", "RemoteSyncPushOperator",
    "RemoteDatastorePowerUser", "RemoteDatastoreAdmin", "TapeAudit", "TapeAdmin",
    "TapeOperator",   "TapeReader"};

std::vector<SectionConfigError> CheckAcl(const std::string& text, const std::string& path) {
  std::vector<SectionConfigError> out;
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    ++line_no;
    size_t b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
    if (b == std::string::npos) continue;
    line = line.substr(b, e - b + 1);
    std::vector<std::string> f;
    size_t p = 0;
    while (true) {
      size_t c = line.find(':', p);
      f.push_back(line.substr(p, c == std::string::npos ? std::string::npos : c - p));
      if (c == std::string::npos) break;
      p = c + 1;
    }
    if (f.size() != 5 || f[0] != "acl") {
      out.push_back({path, line_no, "expected 'acl:<propagate>:<path>:<ugid-list>:<role-list>'"});
      continue;
    }
    if (f[1] != "0" && f[1] != "1") {
      out.push_back({path, line_no, "propagate must be 0 or 1, got '" + f[1] + "'"});
    }
    if (f[2].empty() || f[2][0] != '/') {
      out.push_back({path, line_no, "invalid ACL path '" + f[2] + "'"});
    }
    if (f[3].empty()) out.push_back({path, line_no, "empty user/group list"});
    size_t rp = 0;
    while (rp <= f[4].size()) {
      size_t c = f[4].find(',', rp);
      std::string role = f[4].substr(rp, c == std::string::npos ? std::string::npos : c - rp);
      if (!kRoles.count(role)) out.push_back({path, line_no, "unknown role '" + role + "'"});
      if (c == std::string::npos) break;
      rp = c + 1;
    }
  }
  return out;
}

std::vector<SectionConfigError> CheckNodeCfg(const std::string& text, const std::string& path) {
  static const std::set<std::string> keys = {
      "acme",           "acmedomain0",     "acmedomain1",  "acmedomain2",       "acmedomain3",
      "acmedomain4",    "http-proxy",      "email-from",   "ciphers-tls-1.3",   "ciphers-tls-1.2",
      "default-lang",   "description",     "task-log-max-days", "consent-text", "location"};
  std::vector<SectionConfigError> out;
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0) {
      out.push_back({path, line_no, "expected '<key>: <value>'"});
      continue;
    }
    std::string key = line.substr(0, colon);
    if (!keys.count(key)) out.push_back({path, line_no, "unknown property '" + key + "'"});
  }
  return out;
}

std::string ErrorList(const std::vector<SectionConfigError>& errs) {
  std::string out;
  for (const auto& e : errs) out += "\n      " + e.ToString();
  return out;
}

}  // namespace

const SectionConfig& CheckContext::Config(const std::string& name) {
  auto it = configs.find(name);
  if (it != configs.end()) return it->second;
  std::string path = std::string(kEtc) + "/" + name;
  auto text = host.ReadFile(path);
  std::vector<SectionConfigError> errors;
  SectionConfig cfg;
  if (text.ok()) {
    config_present[name] = true;
    cfg = SectionConfig::ParseLenient(*text, path, &errors);
  } else {
    config_present[name] = false;
    if (!text.status().IsNotFound()) errors.push_back({path, 0, text.status().message()});
  }
  config_errors[name] = std::move(errors);
  return configs.emplace(name, std::move(cfg)).first->second;
}

Status CheckConfigFiles(CheckContext& ctx) {
  ctx.report.Info("config-files", "Checking configuration files in " + std::string(kEtc) + "..");
  auto names = ctx.host.ListDir(kEtc);
  if (!names.ok()) {
    ctx.report.Skip("config-files", "no configuration: " + std::string(kEtc) + " not found");
    return Status::OK();
  }
  for (const auto& name : *names) {
    std::string path = std::string(kEtc) + "/" + name;
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".cfg") != 0 ||
        !ctx.host.IsFile(path)) {
      continue;
    }
    std::vector<SectionConfigError> problems;
    size_t sections = 0;
    const FileSchema* schema = nullptr;
    for (const auto& s : Schemas()) {
      if (s.file == name) schema = &s;
    }
    if (name == "acl.cfg" || name == "node.cfg") {
      auto text = ctx.host.ReadFile(path);
      if (!text.ok()) {
        problems.push_back({path, 0, text.status().message()});
      } else {
        problems = name == "acl.cfg" ? CheckAcl(*text, path) : CheckNodeCfg(*text, path);
      }
    } else if (schema) {
      const SectionConfig& cfg = ctx.Config(name);
      problems = ctx.config_errors[name];
      auto more = CheckSchema(*schema, cfg, path);
      problems.insert(problems.end(), more.begin(), more.end());
      sections = cfg.sections.size();
      // Deprecated content that still parses.
      if (name == "datastore.cfg") {
        for (const auto& s : cfg.OfType("datastore")) {
          std::vector<std::string> legacy;
          for (const auto& [k, v] : s->properties) {
            if (k == "prune-schedule" || k.rfind("keep-", 0) == 0) legacy.push_back(k);
          }
          if (legacy.empty()) continue;
          std::string list;
          for (const auto& k : legacy) list += (list.empty() ? "" : ", ") + k;
          ctx.report.Warn("config-deprecated",
                          path + ":" + std::to_string(s->LineOf(legacy[0])) + ": datastore '" +
                              s->id + "' still has legacy prune options (" + list +
                              "), which 4.x no longer runs.\n      Move them to a prune job: "
                              "proxmox-backup-manager migrate-config update-to-prune-jobs-config");
        }
      }
      if (name == "s3.cfg") {
        for (const auto& s : cfg.OfType("s3client")) {
          ctx.report.Notice("config-deprecated",
                            path + ":" + std::to_string(s->line) + ": section type 's3client' of "
                            "'" + s->id + "' is from a 4.0 beta; it is now 's3-endpoint' (the "
                            "package upgrade rewrites it)");
        }
      }
    } else {
      continue;  // not a file pbskit knows; nothing to say about it
    }
    std::stable_sort(problems.begin(), problems.end(),
                     [](const auto& a, const auto& b) { return a.line < b.line; });
    if (problems.empty()) {
      ctx.report.Pass("config-files",
                      path + ": parsed" +
                          (schema ? ", " + std::to_string(sections) + " section(s)" : ""));
    } else {
      ctx.report.Fail("config-files", path + ": " + std::to_string(problems.size()) +
                                          " problem(s), every API call reading it fails:" +
                                          ErrorList(problems));
    }
  }
  return Status::OK();
}

}  // namespace pbskit::checker
