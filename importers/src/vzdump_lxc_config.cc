// Container tar import: the object's accessors, the pct.conf flags it reads, ACL qualifiers.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "vzdump_lxc_internal.h"

namespace pbskit {

std::string LxcTarArchive::Impl::PathOf(uint32_t i) const {
  std::string out;
  while (i != 0 && i != kLxcNone) {
    out = out.empty() ? nodes[i].name : nodes[i].name + "/" + out;
    i = nodes[i].parent;
  }
  return out;
}

std::optional<uint32_t> LxcAclQualifier(const std::string& name, bool group) {
  if (!name.empty() && name.size() <= 10 &&
      std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    uint64_t v = std::strtoull(name.c_str(), nullptr, 10);
    if (v <= 0xffffffffULL) return static_cast<uint32_t>(v);
    return std::nullopt;
  }
  // Debian base-passwd (the fixed ids every Debian/PVE host has).
  static const std::pair<const char*, uint32_t> kUsers[] = {
      {"root", 0},  {"daemon", 1}, {"bin", 2},    {"sys", 3},       {"sync", 4},
      {"games", 5}, {"man", 6},    {"lp", 7},     {"mail", 8},      {"news", 9},
      {"uucp", 10}, {"proxy", 13}, {"www-data", 33}, {"backup", 34}, {"list", 38},
      {"irc", 39},  {"gnats", 41}, {"_apt", 42},  {"nobody", 65534}};
  static const std::pair<const char*, uint32_t> kGroups[] = {
      {"root", 0},     {"daemon", 1},  {"bin", 2},      {"sys", 3},      {"adm", 4},
      {"tty", 5},      {"disk", 6},    {"lp", 7},       {"mail", 8},     {"news", 9},
      {"uucp", 10},    {"man", 12},    {"proxy", 13},   {"kmem", 15},    {"dialout", 20},
      {"fax", 21},     {"voice", 22},  {"cdrom", 24},   {"floppy", 25},  {"tape", 26},
      {"sudo", 27},    {"audio", 29},  {"dip", 30},     {"www-data", 33}, {"backup", 34},
      {"operator", 37}, {"list", 38},  {"irc", 39},     {"src", 40},     {"gnats", 41},
      {"shadow", 42},  {"utmp", 43},   {"video", 44},   {"sasl", 45},    {"plugdev", 46},
      {"staff", 50},   {"games", 60},  {"users", 100},  {"nogroup", 65534}};
  if (group) {
    for (const auto& [n, id] : kGroups)
      if (name == n) return id;
  } else {
    for (const auto& [n, id] : kUsers)
      if (name == n) return id;
  }
  return std::nullopt;
}

LxcTarArchive::LxcTarArchive(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LxcTarArchive::~LxcTarArchive() {
  if (impl_ && impl_->spool_fd >= 0) close(impl_->spool_fd);
  if (impl_ && impl_->source_fd >= 0) close(impl_->source_fd);
}
const std::string& LxcTarArchive::pct_conf() const { return impl_->pct_conf; }
const std::optional<std::string>& LxcTarArchive::pct_fw() const { return impl_->pct_fw; }
const LxcTarStats& LxcTarArchive::stats() const { return impl_->stats; }
void LxcTarArchive::set_pxarexclude_cli(std::optional<std::string> content) {
  impl_->pxarexclude_cli = std::move(content);
}
bool LxcTarArchive::unprivileged() const {
  size_t pos = 0;
  const std::string& c = impl_->pct_conf;
  while (pos < c.size()) {  // the main section ends at the first "[snapshot]" header
    size_t end = c.find('\n', pos);
    if (end == std::string::npos) end = c.size();
    std::string line = c.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line[0] == '[') break;
    if (line.rfind("unprivileged:", 0) == 0) {
      size_t v = line.find_first_not_of(" \t", 13);
      return v != std::string::npos && line[v] == '1';
    }
  }
  return false;
}

}  // namespace pbskit
