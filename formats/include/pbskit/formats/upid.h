// UPID: the unique process/task identifier PBS gives every worker task (GC, prune, verify, ...).
//
//   UPID:<node>:<pid>:<pstart>:<task_id>:<starttime>:<worker_type>:<worker_id>:<auth_id>:
//   UPID:elsa:00004F37:0039E469:00000000:5CA78B83:garbage_collection::root@pam:
//
// Numbers are upper-case hex, at least 8 digits (pstart grows past 8 digits after ~497 days of
// uptime). The worker id is written with systemd's non-path unit escaping ('/' becomes '-',
// every byte outside [A-Za-z0-9_.] and a leading '.' become "\xNN" in lower-case hex), so it
// never contains ':' or whitespace. See docs/formats/task-log.md.
//
// Pure string handling: no clock, no /proc access (datastore/task_log.h creates UPIDs for the
// running process). All functions are thread safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pbskit/formats/status.h"

namespace pbskit {

struct Upid {
  std::string node;                      // host name up to the first '.'
  int32_t pid = 0;                       // process id of the worker's process
  uint64_t pstart = 0;                   // process start time (clock ticks, /proc/<pid>/stat #22)
  uint64_t task_id = 0;                  // per-process task counter
  int64_t starttime = 0;                 // task start, Unix epoch seconds
  std::string worker_type;               // e.g. "garbage_collection", "prune", "verify"
  std::optional<std::string> worker_id;  // unescaped; nullopt is written as an empty field
  std::string auth_id;                   // e.g. "root@pam"

  // The canonical string form (with the trailing ':').
  std::string ToString() const;

  // Parses the string form, accepting what PBS's UPID regex accepts (hex digits in either case,
  // pid 8 digits, pstart 8-9, task_id 8-16, starttime 8). An empty worker id field gives nullopt.
  // InvalidArgument "unable to parse UPID '<text>'" for anything else, including a bad escape
  // sequence in the worker id.
  static Result<Upid> Parse(std::string_view text);

  bool operator==(const Upid& o) const = default;
};

// systemd non-path unit escaping as used for UPID worker ids (proxmox escape_id): '/' -> '-',
// bytes outside [A-Za-z0-9_.] and a '.' at position 0 -> "\xNN" (lower-case hex).
std::string EscapeWorkerId(std::string_view id);
// Inverse of EscapeWorkerId: "\xNN" (either case) -> byte, '-' -> '/'. InvalidArgument for a
// truncated or non-hex escape sequence.
Result<std::string> UnescapeWorkerId(std::string_view escaped);

// InvalidArgument unless `worker_type` / `auth_id` are non-empty and free of '/', ':' and ' '
// (the characters PBS refuses when it creates a UPID).
Status CheckUpidWorkerType(std::string_view worker_type);
Status CheckUpidAuthId(std::string_view auth_id);

}  // namespace pbskit
