// Names used inside a PBS datastore: backup types, backup ids, backup times, namespaces,
// groups, snapshots and archive names, plus systemd path escaping used to name lock files.
//
// Everything here is pure string handling (no filesystem access). All functions are thread safe.
// Syntax rules follow pbs-api-types (FORMATS.md §1.3-§1.6):
//   SAFE_ID        ^[A-Za-z0-9_][A-Za-z0-9._\-]*$
//   backup id      SAFE_ID
//   backup time    YYYY-MM-DDTHH:MM:SSZ (UTC), value >= 1
//   namespace      0..7 SAFE_ID components joined by '/', joined length <= 256
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "pbskit/formats/status.h"

namespace pbskit {

inline constexpr size_t kMaxNamespaceDepth = 7;     // MAX_NAMESPACE_DEPTH
inline constexpr size_t kMaxNamespaceLength = 256;  // MAX_BACKUP_NAMESPACE_LENGTH

enum class BackupType { kVm, kCt, kHost };

// "vm", "ct" or "host".
const char* BackupTypeName(BackupType type);
// Parses "vm" / "ct" / "host". InvalidArgument for anything else.
Result<BackupType> ParseBackupType(std::string_view text);
// Sort rank used by PBS listings: ct < host < vm.
int BackupTypeSortRank(BackupType type);

// True when `s` matches PROXMOX_SAFE_ID ^[A-Za-z0-9_][A-Za-z0-9._\-]*$ (so never empty, never
// starting with '.' or '-', never containing '/' or NUL).
bool IsSafeId(std::string_view s);
// InvalidArgument (naming the id) unless `id` is a valid backup id (SAFE_ID).
Status CheckBackupId(std::string_view id);
// InvalidArgument unless `name` is a valid archive file name: SAFE_ID ending in .fidx, .didx or
// .blob. "..", "/" and NUL are refused with a message that says so.
Status CheckArchiveName(std::string_view name);
// InvalidArgument unless `name` is a valid datastore name (SAFE_ID, 3..32 characters).
Status CheckDatastoreName(std::string_view name);

// Formats a backup time (Unix epoch seconds, UTC) as "YYYY-MM-DDTHH:MM:SSZ".
// Requires 0 <= epoch <= 253402300799 (year 9999); other values are clamped into that range.
std::string FormatBackupTime(int64_t epoch);
// Parses exactly "YYYY-MM-DDTHH:MM:SSZ" (the snapshot directory form; seconds 00..60).
// InvalidArgument for anything else, including times < 1 (BACKUP_TIME_SCHEMA minimum).
Result<int64_t> ParseBackupTime(std::string_view text);
// True when `text` looks like a snapshot directory name (the regex only, no range checks).
bool IsBackupTimeString(std::string_view text);

class BackupNamespace {
 public:
  BackupNamespace() = default;  // the root namespace

  // Parses the textual form "a/b/c" ("" is the root). Leading/trailing '/' are not accepted.
  // InvalidArgument for a bad component (not SAFE_ID, "..", NUL), depth > 7 or length > 256.
  static Result<BackupNamespace> Parse(std::string_view text);
  // Builds a namespace from components, checking them like Parse.
  static Result<BackupNamespace> FromComponents(const std::vector<std::string>& components);

  const std::vector<std::string>& components() const { return components_; }
  // "a/b/c"; "" for the root.
  std::string ToString() const;
  // Datastore-relative directory: "ns/a/ns/b/ns/c"; "" for the root.
  std::string Path() const;
  // Lock-name prefix used by the PBS >= 3.3.5 lock scheme: "a:b:c"; "" for the root.
  std::string LockPrefix() const;
  size_t depth() const { return components_.size(); }
  bool IsRoot() const { return components_.empty(); }
  // This namespace plus one component; InvalidArgument if the result would be invalid.
  Result<BackupNamespace> Child(std::string_view component) const;
  // The parent (the root's parent is the root).
  BackupNamespace Parent() const;
  // True when `other` equals this namespace or lies below it.
  bool Contains(const BackupNamespace& other) const;

  bool operator==(const BackupNamespace& o) const { return components_ == o.components_; }
  bool operator!=(const BackupNamespace& o) const { return !(*this == o); }
  bool operator<(const BackupNamespace& o) const { return components_ < o.components_; }

 private:
  std::vector<std::string> components_;
};

struct BackupGroup {
  BackupType type = BackupType::kVm;
  std::string id;

  // "vm/100".
  std::string ToString() const;
  // Datastore-relative directory below the namespace directory: same as ToString().
  std::string RelativePath() const { return ToString(); }
  // Parses "type/id". InvalidArgument for a bad type or id.
  static Result<BackupGroup> Parse(std::string_view text);

  bool operator==(const BackupGroup& o) const { return type == o.type && id == o.id; }
  bool operator!=(const BackupGroup& o) const { return !(*this == o); }
  // PBS listing order: type (ct < host < vm), then ids that parse as u64 numerically and before
  // others, others bytewise.
  bool operator<(const BackupGroup& o) const;
};

struct BackupDir {
  BackupGroup group;
  int64_t time = 0;

  // "vm/100/2024-05-01T10:00:00Z".
  std::string ToString() const;
  std::string TimeString() const { return FormatBackupTime(time); }
  // Parses "type/id/YYYY-MM-DDTHH:MM:SSZ". InvalidArgument on any syntax error.
  static Result<BackupDir> Parse(std::string_view text);

  bool operator==(const BackupDir& o) const { return group == o.group && time == o.time; }
  bool operator!=(const BackupDir& o) const { return !(*this == o); }
  bool operator<(const BackupDir& o) const {
    return group != o.group ? group < o.group : time < o.time;
  }
};

// Accepts PBS's printed form ("vm/100", "vm/100/2024-05-01T10:00:00Z", namespace root) or the
// datastore-relative directory form ("ns/a/ns/b/vm/100[/time]"). A trailing '/' is tolerated.
// Returns namespace + group + optional time. InvalidArgument with a message naming the bad
// part otherwise (never touches the filesystem).
Result<std::tuple<BackupNamespace, BackupGroup, std::optional<int64_t>>> ParseSnapshotOrGroupPath(
    std::string_view text);

// systemd unit-name escaping with is_path=true (proxmox-systemd escape_unit): leading '/' are
// stripped, '/' becomes '-', bytes outside [A-Za-z0-9_.] (and a '.' at position 0) become
// "\xNN" in lower-case hex. An empty path yields "-".
std::string SystemdEscapePath(std::string_view path);

}  // namespace pbskit
