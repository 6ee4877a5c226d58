// Worker-task logs in PBS's layout (proxmox-rest-server worker_task.rs), below a state directory
// (PBS: /var/lib/proxmox-backup):
//
//   <state>/tasks/<XX>/<UPID>     one log per task; XX = pstart & 0xff as 2 upper-case hex digits
//   <state>/tasks/active          running tasks: one "<UPID>" line each (finished ones are moved
//                                 to the archive the next time the list is updated)
//   <state>/tasks/archive         finished tasks: "<UPID> <ENDTIME 8+ HEX> <STATUS>" lines
//   <state>/tasks/.active.lock    flock guarding active + archive
//
// Log lines are "<local RFC 3339 time>: <message>" (e.g. "2024-05-01T12:00:00+02:00: ..."), and
// the last line is "TASK OK", "TASK WARNINGS: <n>" or "TASK ERROR: <message>" with the same time
// prefix. See docs/formats/task-log.md.
//
// GC, prune and verify write their progress through the TaskLogger interface so the same code
// can log into a task file, a stream or memory (tests).
#pragma once

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/formats/status.h"
#include "pbskit/formats/upid.h"

namespace pbskit {

// ---- PBS text renderings used in task logs ----

// proxmox_time::epoch_to_rfc3339: local time with a "+HH:MM" offset ("...T10:00:00+00:00" under
// TZ=UTC). Thread safe (localtime_r).
std::string FormatLocalRfc3339(int64_t epoch);
// proxmox_time::epoch_to_rfc3339_utc: "YYYY-MM-DDTHH:MM:SSZ".
std::string FormatUtcRfc3339(int64_t epoch);
// proxmox HumanByte (binary units): value rounded to 3 decimals in shortest form, e.g. "0 B",
// "512 B", "4 MiB", "1.234 GiB".
std::string FormatHumanByte(uint64_t bytes);
// proxmox_time::TimeSpan for whole seconds: "1d 5m", "2h", "1y 2M 3w 4d 5h 6m 7s", "0s".
std::string FormatTimeSpan(uint64_t seconds);

// ---- task identity ----

// A UPID for a new task of this process: node = host name up to the first '.', pid/pstart of
// this process (/proc/self/stat), starttime = now, task_id from a process-wide counter.
// InvalidArgument for a worker type or auth id containing '/', ':' or ' '; IoError when
// /proc/self/stat or uname cannot be read.
Result<Upid> NewUpid(std::string_view worker_type, std::optional<std::string> worker_id,
                     std::string_view auth_id);

// True when process `pid` runs and its start time equals `pstart` (the UPID's process is alive).
bool UpidProcessRunning(const Upid& upid);

// ---- task state ----

struct TaskState {
  enum class Kind { kUnknown, kOk, kWarnings, kError };
  Kind kind = Kind::kUnknown;
  int64_t endtime = 0;
  uint64_t warnings = 0;  // kWarnings
  std::string message;    // kError

  // The status text of the archive: "unknown", "OK", "WARNINGS: <n>" or the error message.
  std::string StatusText() const;
  // What the log's last line says after the time prefix: "TASK OK", "TASK WARNINGS: 2",
  // "TASK ERROR: <message>", "TASK unknown".
  std::string ResultLine() const;
  // Parses a status text as found in the archive ("OK", "unknown", "WARNINGS: n",
  // "ERROR: msg" or a bare message). InvalidArgument for an empty text.
  static Result<TaskState> FromStatusText(int64_t endtime, std::string_view text);
};

// ---- abort requests ----

// PBS's text for an aborted worker (check_abort).
inline constexpr char kTaskAbortMessage[] = "abort requested - aborting task";

// Aborted(kTaskAbortMessage) once `*flag` is set; OK when `flag` is null or clear. Long jobs
// (GC, verify) take such a flag in their options and poll it between units of work (an index
// file, a chunk, a chunk directory), so an aborted task stops within one unit and leaves the
// datastore as a finished unit left it. Thread safe.
Status CheckTaskAbort(const std::atomic<bool>* flag);

// ---- logging sinks ----

// Receives task log lines. Implementations are thread safe.
class TaskLogger {
 public:
  virtual ~TaskLogger();
  // An ordinary line.
  virtual void Info(std::string_view message) = 0;
  // A line that counts as a warning (the task ends "TASK WARNINGS: n" unless it fails).
  virtual void Warn(std::string_view message) = 0;
  virtual uint64_t warnings() const = 0;
};

// Collects lines in memory (tests, callers that print them later).
class MemoryTaskLogger : public TaskLogger {
 public:
  void Info(std::string_view message) override;
  void Warn(std::string_view message) override;
  uint64_t warnings() const override;
  std::vector<std::string> lines() const;
  // All lines joined with '\n' (each line followed by one).
  std::string text() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
  uint64_t warnings_ = 0;
};

// Writes each line (without time prefix) to a stream; optionally forwards to another logger.
class StreamTaskLogger : public TaskLogger {
 public:
  explicit StreamTaskLogger(std::ostream* out) : out_(out) {}
  void Info(std::string_view message) override;
  void Warn(std::string_view message) override;
  uint64_t warnings() const override;

 private:
  mutable std::mutex mu_;
  std::ostream* out_;
  uint64_t warnings_ = 0;
};

struct TaskLogOptions {
  // When set, every message is also written there (without time prefix), as PBS tools print a
  // worker's log on the terminal.
  std::ostream* echo = nullptr;
};

// One running task's log file. Created by Start, finished exactly once by Finish.
class TaskLog : public TaskLogger {
 public:
  // Creates <state>/tasks/<XX>/ (0755, parents as needed), the log file (O_EXCL, 0644) and adds
  // the task to <state>/tasks/active (moving tasks that are no longer running to the archive).
  // IoError naming the path when anything cannot be created; AlreadyExists if the log exists.
  static Result<std::unique_ptr<TaskLog>> Start(const std::string& state_dir, const Upid& upid,
                                                TaskLogOptions options = {});
  // Closes the file. A task destroyed without Finish is treated like a worker that vanished:
  // its log has no result line and the next list update archives it as "unknown".
  ~TaskLog() override;

  void Info(std::string_view message) override;
  void Warn(std::string_view message) override;
  uint64_t warnings() const override;

  // Writes the result line (TASK ERROR for a non-OK `result` using its message, TASK WARNINGS
  // when warnings were logged, TASK OK otherwise), closes the file and moves the task from
  // `active` to `archive`. Returns the final state; IoError when the task list cannot be
  // updated (the log file itself is complete by then). Calling it twice is InvalidArgument.
  Result<TaskState> Finish(const Status& result);

  const Upid& upid() const { return upid_; }
  const std::string& path() const { return path_; }

 private:
  TaskLog(std::string state_dir, Upid upid, std::string path, int fd, TaskLogOptions options);
  void Write(std::string_view message);

  std::string state_dir_;
  Upid upid_;
  std::string path_;
  int fd_;
  TaskLogOptions options_;
  mutable std::mutex mu_;
  uint64_t warnings_ = 0;
  bool finished_ = false;
};

// ---- reading task lists and logs ----

// "<state>/tasks/<XX>/<UPID>".
std::string TaskLogPath(const std::string& state_dir, const Upid& upid);

// The state from the last line of a task log (PBS upid_read_status): a "TASK ..." line gives its
// state with the line's time as endtime; any other last line gives kUnknown with that time; an
// empty log kUnknown with the UPID's start time. NotFound when the log is missing.
Result<TaskState> ReadTaskState(const std::string& state_dir, const Upid& upid);

struct TaskListEntry {
  Upid upid;
  std::string upid_str;
  std::optional<TaskState> state;  // nullopt: still running
};

// Running tasks (from `active`, after moving finished ones to the archive) followed, when
// include_archive, by archived tasks, newest first. Unparsable lines are skipped.
// IoError when the lock or the files cannot be read/written.
Result<std::vector<TaskListEntry>> ListTasks(const std::string& state_dir, bool include_archive);

}  // namespace pbskit
