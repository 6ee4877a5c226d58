// dpkg status, APT package lists, Debian version ordering and pkg-state.json.
#include "pbskit/checker/packages.h"

#include <boost/json.hpp>
#include <cctype>

namespace pbskit::checker {
namespace {

// dpkg's ordering of characters in the non-digit parts: '~' before everything (even the end),
// letters before non-letters.
int Order(int c) {
  if (std::isdigit(c)) return 0;
  if (std::isalpha(c)) return c;
  if (c == '~') return -1;
  if (c) return c + 256;
  return 0;
}

int VerRevCmp(std::string_view a, std::string_view b) {
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    int first_diff = 0;
    while ((i < a.size() && !std::isdigit(static_cast<unsigned char>(a[i]))) ||
           (j < b.size() && !std::isdigit(static_cast<unsigned char>(b[j])))) {
      int ac = i < a.size() ? Order(static_cast<unsigned char>(a[i])) : 0;
      int bc = j < b.size() ? Order(static_cast<unsigned char>(b[j])) : 0;
      if (ac != bc) return ac - bc;
      ++i;
      ++j;
    }
    while (i < a.size() && a[i] == '0') ++i;
    while (j < b.size() && b[j] == '0') ++j;
    while (i < a.size() && std::isdigit(static_cast<unsigned char>(a[i])) && j < b.size() &&
           std::isdigit(static_cast<unsigned char>(b[j]))) {
      if (!first_diff) first_diff = a[i] - b[j];
      ++i;
      ++j;
    }
    if (i < a.size() && std::isdigit(static_cast<unsigned char>(a[i]))) return 1;
    if (j < b.size() && std::isdigit(static_cast<unsigned char>(b[j]))) return -1;
    if (first_diff) return first_diff;
  }
  return 0;
}

struct Version {
  long epoch = 0;
  std::string_view upstream;
  std::string_view revision;
};

Version SplitVersion(std::string_view v) {
  Version out;
  size_t colon = v.find(':');
  if (colon != std::string_view::npos) {
    out.epoch = std::strtol(std::string(v.substr(0, colon)).c_str(), nullptr, 10);
    v.remove_prefix(colon + 1);
  }
  size_t dash = v.rfind('-');
  if (dash != std::string_view::npos) {
    out.revision = v.substr(dash + 1);
    v = v.substr(0, dash);
  }
  out.upstream = v;
  return out;
}

// Calls fn(fields) for each stanza of a Debian control-format file (Packages, status).
template <typename Fn>
void ForEachStanza(std::string_view text, Fn fn) {
  std::map<std::string, std::string> fields;
  std::string last;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    if (line.empty() || line == "\r") {
      if (!fields.empty()) fn(fields);
      fields.clear();
      continue;
    }
    if (line.front() == ' ' || line.front() == '\t') continue;  // continuation
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\r')) value.remove_suffix(1);
    fields[std::string(line.substr(0, colon))] = std::string(value);
  }
  if (!fields.empty()) fn(fields);
}

// Package names from a Depends field ("a (>= 1), b | c, d:any").
std::vector<std::string> DependsNames(const std::string& depends) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < depends.size()) {
    size_t comma = depends.find(',', pos);
    std::string part = depends.substr(pos, comma == std::string::npos ? std::string::npos
                                                                      : comma - pos);
    pos = comma == std::string::npos ? depends.size() : comma + 1;
    // Only the first alternative counts, as APT would pick it.
    part = part.substr(0, part.find('|'));
    size_t b = part.find_first_not_of(" \t");
    if (b == std::string::npos) continue;
    size_t e = part.find_first_of(" \t(:[", b);
    out.push_back(part.substr(b, e == std::string::npos ? std::string::npos : e - b));
  }
  return out;
}

Result<std::vector<PackageUpdate>> FromStateFile(const std::string& text,
                                                 const std::string& path) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec || !v.is_object()) {
    return Status::Corruption(path + ": not a JSON object" + (ec ? " (" + ec.message() + ")" : ""));
  }
  const auto* list = v.as_object().if_contains("package_status");
  if (!list || !list->is_array()) {
    return Status::Corruption(path + ": missing 'package_status' list");
  }
  std::vector<PackageUpdate> out;
  for (const auto& item : list->as_array()) {
    if (!item.is_object()) continue;
    const auto& o = item.as_object();
    PackageUpdate u;
    if (const auto* p = o.if_contains("Package"); p && p->is_string()) u.package = p->as_string();
    if (const auto* p = o.if_contains("OldVersion"); p && p->is_string()) {
      u.old_version = p->as_string();
    }
    if (const auto* p = o.if_contains("Version"); p && p->is_string()) u.version = p->as_string();
    out.push_back(std::move(u));
  }
  return out;
}

}  // namespace

int CompareDebianVersions(std::string_view a, std::string_view b) {
  Version va = SplitVersion(a), vb = SplitVersion(b);
  if (va.epoch != vb.epoch) return va.epoch < vb.epoch ? -1 : 1;
  int r = VerRevCmp(va.upstream, vb.upstream);
  if (r) return r;
  return VerRevCmp(va.revision, vb.revision);
}

std::map<std::string, std::string> ParseDpkgStatus(std::string_view text) {
  std::map<std::string, std::string> out;
  ForEachStanza(text, [&](const std::map<std::string, std::string>& f) {
    auto p = f.find("Package");
    auto s = f.find("Status");
    auto v = f.find("Version");
    if (p == f.end() || s == f.end() || v == f.end()) return;
    if (s->second.size() < 9 || s->second.compare(s->second.size() - 9, 9, "installed") != 0 ||
        s->second.find("not-installed") != std::string::npos ||
        s->second.find("config-files") != std::string::npos) {
      return;
    }
    out[p->second] = v->second;
  });
  return out;
}

Result<std::vector<PackageUpdate>> ListAvailableUpdates(const Host& host) {
  const std::string state = "/var/lib/proxmox-backup/pkg-state.json";
  const std::string status_path = "/var/lib/dpkg/status";
  auto state_mtime = host.MtimeNs(state);
  auto cache_mtime = host.MtimeNs("/var/cache/apt/pkgcache.bin");
  auto status_mtime = host.MtimeNs(status_path);
  if (state_mtime && cache_mtime && status_mtime && *state_mtime >= *cache_mtime &&
      *state_mtime >= *status_mtime) {
    auto text = host.ReadFile(state);
    if (text.ok()) {
      auto parsed = FromStateFile(*text, state);
      if (parsed.ok()) return parsed;
    }
  }

  PBSKIT_ASSIGN_OR_RETURN(std::string status_text, host.ReadFile(status_path));
  auto installed = ParseDpkgStatus(status_text);
  const std::string lists = "/var/lib/apt/lists";
  auto names = host.ListDir(lists);
  if (!names.ok()) {
    return Status::NotFound("no APT package lists in " + lists + " (run 'apt update')");
  }
  // Candidate = highest version offered by any list.
  std::map<std::string, std::pair<std::string, std::string>> candidates;  // name -> version, deps
  bool any = false;
  for (const auto& n : *names) {
    if (n.size() < 9 || n.compare(n.size() - 9, 9, "_Packages") != 0) continue;
    any = true;
    PBSKIT_ASSIGN_OR_RETURN(std::string text, host.ReadFile(lists + "/" + n));
    ForEachStanza(text, [&](const std::map<std::string, std::string>& f) {
      auto p = f.find("Package");
      auto v = f.find("Version");
      if (p == f.end() || v == f.end()) return;
      auto d = f.find("Depends");
      auto& c = candidates[p->second];
      if (c.first.empty() || CompareDebianVersions(v->second, c.first) > 0) {
        c = {v->second, d == f.end() ? std::string() : d->second};
      }
    });
  }
  if (!any) return Status::NotFound("no APT package lists in " + lists + " (run 'apt update')");
  std::vector<PackageUpdate> out;
  std::map<std::string, bool> added;
  for (const auto& [name, version] : installed) {
    auto c = candidates.find(name);
    if (c == candidates.end() || CompareDebianVersions(c->second.first, version) <= 0) continue;
    out.push_back({name, version, c->second.first});
    added[name] = true;
  }
  // New dependencies of the candidates that are not installed yet.
  size_t upgrades = out.size();
  for (size_t i = 0; i < upgrades; ++i) {
    for (const auto& dep : DependsNames(candidates[out[i].package].second)) {
      if (installed.count(dep) || added[dep]) continue;
      auto c = candidates.find(dep);
      if (c == candidates.end()) continue;
      added[dep] = true;
      out.push_back({dep, "", c->second.first});
    }
  }
  return out;
}

}  // namespace pbskit::checker
