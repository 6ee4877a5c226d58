// Backup names: types, ids, times, namespaces, groups, snapshots, archive names, lock-name
// escaping. Pure string handling; see names.h for the rules.
#include "pbskit/formats/names.h"

#include <cstdio>
#include <ctime>

#include <fmt/format.h>

namespace pbskit {
namespace {

bool IsSafeFirst(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}
bool IsSafeRest(char c) { return IsSafeFirst(c) || c == '.' || c == '-'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Printable form of a user-supplied name for error messages (control bytes escaped).
std::string Quote(std::string_view s) {
  std::string out = "'";
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += "'";
  return out;
}

// Describes why `s` is not a SAFE_ID (for messages); "" if it is one.
std::string SafeIdProblem(std::string_view s) {
  if (s.empty()) return "is empty";
  if (s.find('\0') != std::string_view::npos) return "contains a NUL byte";
  if (s == "." || s == "..") return "is a relative path component";
  if (s.find('/') != std::string_view::npos) return "contains '/'";
  if (!IsSafeFirst(s[0])) return "must start with a letter, digit or '_'";
  for (char c : s) {
    if (!IsSafeRest(c)) return "may only contain letters, digits, '_', '.' and '-'";
  }
  return "";
}

// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static const unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

}  // namespace

const char* BackupTypeName(BackupType type) {
  switch (type) {
    case BackupType::kVm: return "vm";
    case BackupType::kCt: return "ct";
    case BackupType::kHost: return "host";
  }
  return "vm";
}

Result<BackupType> ParseBackupType(std::string_view text) {
  if (text == "vm") return BackupType::kVm;
  if (text == "ct") return BackupType::kCt;
  if (text == "host") return BackupType::kHost;
  return Status::InvalidArgument("invalid backup type " + Quote(text) +
                                 " (expected vm, ct or host)");
}

int BackupTypeSortRank(BackupType type) {
  switch (type) {
    case BackupType::kCt: return 0;
    case BackupType::kHost: return 1;
    case BackupType::kVm: return 2;
  }
  return 3;
}

bool IsSafeId(std::string_view s) { return SafeIdProblem(s).empty(); }

Status CheckBackupId(std::string_view id) {
  std::string problem = SafeIdProblem(id);
  if (!problem.empty()) return Status::InvalidArgument("invalid backup id " + Quote(id) + ": " + problem);
  return Status::OK();
}

Status CheckArchiveName(std::string_view name) {
  std::string problem = SafeIdProblem(name);
  if (!problem.empty()) {
    return Status::InvalidArgument("invalid archive name " + Quote(name) + ": " + problem);
  }
  auto ends_with = [&](std::string_view suffix) {
    return name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
  };
  if (!ends_with(".fidx") && !ends_with(".didx") && !ends_with(".blob")) {
    return Status::InvalidArgument("invalid archive name " + Quote(name) +
                                   ": must end in .fidx, .didx or .blob");
  }
  return Status::OK();
}

Status CheckDatastoreName(std::string_view name) {
  std::string problem = SafeIdProblem(name);
  if (problem.empty() && (name.size() < 3 || name.size() > 32)) {
    problem = "must be 3 to 32 characters long";
  }
  if (!problem.empty()) {
    return Status::InvalidArgument("invalid datastore name " + Quote(name) + ": " + problem);
  }
  return Status::OK();
}

std::string FormatBackupTime(int64_t epoch) {
  if (epoch < 0) epoch = 0;
  if (epoch > 253402300799) epoch = 253402300799;
  int64_t days = epoch / 86400;
  int64_t secs = epoch % 86400;
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", y, m, d, secs / 3600,
                     (secs / 60) % 60, secs % 60);
}

bool IsBackupTimeString(std::string_view t) {
  // [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z
  static constexpr std::string_view kPattern = "dddd-dd-ddTdd:dd:ddZ";
  if (t.size() != kPattern.size()) return false;
  for (size_t i = 0; i < t.size(); ++i) {
    if (kPattern[i] == 'd' ? !IsDigit(t[i]) : t[i] != kPattern[i]) return false;
  }
  return true;
}

Result<int64_t> ParseBackupTime(std::string_view t) {
  if (!IsBackupTimeString(t)) {
    return Status::InvalidArgument("invalid backup time " + Quote(t) +
                                   " (expected YYYY-MM-DDTHH:MM:SSZ)");
  }
  auto num = [&](size_t pos, size_t len) {
    int64_t v = 0;
    for (size_t i = pos; i < pos + len; ++i) v = v * 10 + (t[i] - '0');
    return v;
  };
  int64_t year = num(0, 4), month = num(5, 2), day = num(8, 2);
  int64_t hour = num(11, 2), minute = num(14, 2), second = num(17, 2);
  if (month < 1 || month > 12 || day < 1 ||
      day > DaysInMonth(year, static_cast<unsigned>(month)) || hour > 23 || minute > 59 ||
      second > 60) {
    return Status::InvalidArgument("invalid backup time " + Quote(t) + ": field out of range");
  }
  int64_t epoch = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) *
                      86400 +
                  hour * 3600 + minute * 60 + second;
  if (epoch < 1) {
    return Status::InvalidArgument("invalid backup time " + Quote(t) +
                                   ": must be after 1970-01-01T00:00:00Z");
  }
  return epoch;
}

// ---- BackupNamespace ----

Result<BackupNamespace> BackupNamespace::Parse(std::string_view text) {
  BackupNamespace ns;
  if (text.empty()) return ns;
  size_t start = 0;
  while (true) {
    size_t slash = text.find('/', start);
    std::string_view comp =
        text.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    auto child = ns.Child(comp);
    if (!child.ok()) {
      return Status::InvalidArgument("invalid namespace " + Quote(text) + ": " +
                                     child.status().message());
    }
    ns = std::move(child).value();
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return ns;
}

Result<BackupNamespace> BackupNamespace::FromComponents(
    const std::vector<std::string>& components) {
  BackupNamespace ns;
  for (const auto& c : components) {
    PBSKIT_ASSIGN_OR_RETURN(ns, ns.Child(c));
  }
  return ns;
}

std::string BackupNamespace::ToString() const {
  std::string out;
  for (size_t i = 0; i < components_.size(); ++i) {
    if (i) out += '/';
    out += components_[i];
  }
  return out;
}

std::string BackupNamespace::Path() const {
  std::string out;
  for (size_t i = 0; i < components_.size(); ++i) {
    if (i) out += '/';
    out += "ns/";
    out += components_[i];
  }
  return out;
}

std::string BackupNamespace::LockPrefix() const {
  std::string out;
  for (size_t i = 0; i < components_.size(); ++i) {
    if (i) out += ':';
    out += components_[i];
  }
  return out;
}

Result<BackupNamespace> BackupNamespace::Child(std::string_view component) const {
  if (component.find('/') != std::string_view::npos) {
    return Status::InvalidArgument("namespace component contained a slash");
  }
  if (depth() >= kMaxNamespaceDepth) {
    return Status::InvalidArgument(
        fmt::format("namespace too deep, {} >= max {}", depth(), kMaxNamespaceDepth));
  }
  size_t len = ToString().size();
  if (len + component.size() + 1 > kMaxNamespaceLength) {
    return Status::InvalidArgument("namespace length exceeded");
  }
  std::string problem = SafeIdProblem(component);
  if (!problem.empty()) {
    return Status::InvalidArgument("not a valid namespace component " + Quote(component) + ": " +
                                   problem);
  }
  BackupNamespace out = *this;
  out.components_.emplace_back(component);
  return out;
}

BackupNamespace BackupNamespace::Parent() const {
  BackupNamespace out = *this;
  if (!out.components_.empty()) out.components_.pop_back();
  return out;
}

bool BackupNamespace::Contains(const BackupNamespace& other) const {
  if (other.components_.size() < components_.size()) return false;
  for (size_t i = 0; i < components_.size(); ++i) {
    if (components_[i] != other.components_[i]) return false;
  }
  return true;
}

// ---- BackupGroup / BackupDir ----

std::string BackupGroup::ToString() const { return std::string(BackupTypeName(type)) + "/" + id; }

Result<BackupGroup> BackupGroup::Parse(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return Status::InvalidArgument("unable to parse backup group path " + Quote(text) +
                                   " (expected <type>/<id>)");
  }
  auto type = ParseBackupType(text.substr(0, slash));
  if (!type.ok()) {
    return Status::InvalidArgument("unable to parse backup group path " + Quote(text) + ": " +
                                   type.status().message());
  }
  std::string_view id = text.substr(slash + 1);
  Status st = CheckBackupId(id);
  if (!st.ok()) {
    return Status::InvalidArgument("unable to parse backup group path " + Quote(text) + ": " +
                                   st.message());
  }
  return BackupGroup{*type, std::string(id)};
}

namespace {
std::optional<uint64_t> ParseU64(const std::string& s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (!IsDigit(c)) return std::nullopt;
    uint64_t next = v * 10 + static_cast<uint64_t>(c - '0');
    if (next / 10 != v) return std::nullopt;  // overflow
    v = next;
  }
  return v;
}
}  // namespace

bool BackupGroup::operator<(const BackupGroup& o) const {
  int ra = BackupTypeSortRank(type), rb = BackupTypeSortRank(o.type);
  if (ra != rb) return ra < rb;
  auto na = ParseU64(id), nb = ParseU64(o.id);
  if (na && nb) return *na < *nb;
  if (na) return true;
  if (nb) return false;
  return id < o.id;
}

std::string BackupDir::ToString() const { return group.ToString() + "/" + TimeString(); }

Result<BackupDir> BackupDir::Parse(std::string_view text) {
  size_t slash = text.rfind('/');
  if (slash == std::string_view::npos) {
    return Status::InvalidArgument("unable to parse backup snapshot path " + Quote(text));
  }
  auto group = BackupGroup::Parse(text.substr(0, slash));
  if (!group.ok()) {
    return Status::InvalidArgument("unable to parse backup snapshot path " + Quote(text) + ": " +
                                   group.status().message());
  }
  auto time = ParseBackupTime(text.substr(slash + 1));
  if (!time.ok()) {
    return Status::InvalidArgument("unable to parse backup snapshot path " + Quote(text) + ": " +
                                   time.status().message());
  }
  return BackupDir{std::move(group).value(), *time};
}

Result<std::tuple<BackupNamespace, BackupGroup, std::optional<int64_t>>> ParseSnapshotOrGroupPath(
    std::string_view text) {
  std::string_view rest = text;
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= rest.size()) {
    size_t slash = rest.find('/', start);
    if (slash == std::string_view::npos) slash = rest.size();
    parts.push_back(rest.substr(start, slash - start));
    start = slash + 1;
  }
  auto fail = [&](const std::string& why) {
    return Status::InvalidArgument("unable to parse backup group or snapshot " + Quote(text) +
                                   ": " + why);
  };
  if (rest.empty()) return fail("empty");
  BackupNamespace ns;
  size_t i = 0;
  while (i + 1 < parts.size() && parts[i] == "ns") {
    auto child = ns.Child(parts[i + 1]);
    if (!child.ok()) return fail(child.status().message());
    ns = std::move(child).value();
    i += 2;
  }
  size_t left = parts.size() - i;
  if (left != 2 && left != 3) {
    return fail("expected [ns/<name>/...]<type>/<id>[/<time>]");
  }
  auto type = ParseBackupType(parts[i]);
  if (!type.ok()) return fail(type.status().message());
  Status st = CheckBackupId(parts[i + 1]);
  if (!st.ok()) return fail(st.message());
  BackupGroup group{*type, std::string(parts[i + 1])};
  std::optional<int64_t> time;
  if (left == 3) {
    auto t = ParseBackupTime(parts[i + 2]);
    if (!t.ok()) return fail(t.status().message());
    time = *t;
  }
  return std::make_tuple(std::move(ns), std::move(group), time);
}

std::string SystemdEscapePath(std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (path.empty()) return "-";
  std::string out;
  out.reserve(path.size() * 2);
  for (size_t i = 0; i < path.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(path[i]);
    if (c == '/') {
      out += '-';
    } else if ((i == 0 && c == '.') ||
               !(c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
                 (c >= 'a' && c <= 'z'))) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace pbskit
