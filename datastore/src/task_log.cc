#include "pbskit/datastore/task_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <ostream>
#include <set>
#include <sstream>
#include <thread>

namespace pbskit {

Status CheckTaskAbort(const std::atomic<bool>* flag) {
  if (flag && flag->load(std::memory_order_relaxed)) return Status::Aborted(kTaskAbortMessage);
  return Status::OK();
}
namespace {

// Task ids of this process whose TaskLog is alive (PBS's WORKER_TASK_LIST).
std::mutex g_local_mu;
std::set<uint64_t> g_local_tasks;
std::atomic<uint64_t> g_next_task_id{0};

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

std::string TasksDir(const std::string& state_dir) { return state_dir + "/tasks"; }

Status MkdirP(const std::string& path, mode_t mode) {
  if (path.empty()) return Status::OK();
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return Status::OK();
    return Status::AlreadyExists("unable to create directory " + path + ": not a directory");
  }
  size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    PBSKIT_RETURN_IF_ERROR(MkdirP(path.substr(0, slash), mode));
  }
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, "unable to create task log directory " + path);
  }
  return Status::OK();
}

Result<uint64_t> ReadOwnPstart() {
  std::ifstream in("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return Status::IoError("missing ')' in /proc/self/stat");
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  for (int i = 0; i <= 19; ++i) {
    if (!(fields >> field)) return Status::IoError("failed to find starttime in /proc/self/stat");
  }
  return static_cast<uint64_t>(std::strtoull(field.c_str(), nullptr, 10));
}

std::optional<uint64_t> ProcessStartTime(int32_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return std::nullopt;
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  for (int i = 0; i <= 19; ++i) {
    if (!(fields >> field)) return std::nullopt;
  }
  return static_cast<uint64_t>(std::strtoull(field.c_str(), nullptr, 10));
}

uint64_t OwnPstart() {
  static const uint64_t pstart = [] {
    auto r = ReadOwnPstart();
    return r.ok() ? *r : 0;
  }();
  return pstart;
}

bool IsLocalWorker(const Upid& upid) {
  return upid.pid == static_cast<int32_t>(::getpid()) && upid.pstart == OwnPstart();
}

bool WorkerActive(const Upid& upid) {
  if (IsLocalWorker(upid)) {
    std::lock_guard<std::mutex> lock(g_local_mu);
    return g_local_tasks.count(upid.task_id) > 0;
  }
  return UpidProcessRunning(upid);
}

// Parses "YYYY-MM-DDTHH:MM:SS" followed by "Z" or "+HH:MM"/"-HH:MM".
std::optional<int64_t> ParseRfc3339(std::string_view s) {
  if (s.size() < 20) return std::nullopt;
  int y, mo, d, h, mi, se;
  char t;
  std::string head(s.substr(0, 19));
  if (std::sscanf(head.c_str(), "%4d-%2d-%2d%c%2d:%2d:%2d", &y, &mo, &d, &t, &h, &mi, &se) != 7 ||
      (t != 'T' && t != 't' && t != ' ')) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  struct tm tm {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  int64_t epoch = static_cast<int64_t>(timegm(&tm));
  std::string_view rest = s.substr(19);
  if (rest == "Z" || rest == "z") return epoch;
  if (rest.size() != 6 || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':') return std::nullopt;
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!digit(rest[1]) || !digit(rest[2]) || !digit(rest[4]) || !digit(rest[5])) return std::nullopt;
  int off = ((rest[1] - '0') * 10 + (rest[2] - '0')) * 3600 + ((rest[4] - '0') * 10 + (rest[5] - '0')) * 60;
  return rest[0] == '+' ? epoch - off : epoch + off;
}

// A line of `active` / `archive`: "<UPID>" or "<UPID> <ENDTIME HEX> <STATUS>".
std::optional<TaskListEntry> ParseTaskLine(std::string_view line) {
  size_t sp1 = line.find(' ');
  std::string_view upid_str = line.substr(0, sp1);
  auto upid = Upid::Parse(upid_str);
  if (!upid.ok()) return std::nullopt;
  TaskListEntry e{std::move(upid).value(), std::string(upid_str), std::nullopt};
  if (sp1 == std::string_view::npos) return e;
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return std::nullopt;
  std::string end_hex(line.substr(sp1 + 1, sp2 - sp1 - 1));
  if (end_hex.empty() || end_hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    return std::nullopt;
  }
  auto st = TaskState::FromStatusText(static_cast<int64_t>(std::strtoll(end_hex.c_str(), nullptr, 16)),
                                      line.substr(sp2 + 1));
  if (!st.ok()) return std::nullopt;
  e.state = std::move(st).value();
  return e;
}

std::string RenderTaskLine(const TaskListEntry& e) {
  if (!e.state) return e.upid_str + "\n";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08" PRIX64, static_cast<uint64_t>(e.state->endtime));
  return e.upid_str + " " + buf + " " + e.state->StatusText() + "\n";
}

Result<std::vector<TaskListEntry>> ReadTaskFile(const std::string& path) {
  std::vector<TaskListEntry> out;
  if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) return out;
  std::ifstream in(path);
  if (!in) return Status::IoError("unable to open task list " + path);
  std::string line;
  while (std::getline(in, line)) {
    if (auto e = ParseTaskLine(line)) out.push_back(std::move(*e));
  }
  return out;
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "write " + path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::OK();
}

// flock on tasks/.active.lock, waiting up to 15 s as PBS does.
class ListLock {
 public:
  static Result<ListLock> Acquire(const std::string& tasks_dir, bool exclusive) {
    std::string path = tasks_dir + "/.active.lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0660);
    if (fd < 0) return Status::FromErrno(errno, "unable to open task list lock " + path);
    for (int i = 0;; ++i) {
      if (::flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0) break;
      if (errno != EWOULDBLOCK || i >= 1500) {
        int err = errno;
        ::close(fd);
        if (err == EWOULDBLOCK) return Status::Busy("unable to lock task list " + path + ": timeout");
        return Status::FromErrno(err, "unable to lock task list " + path);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return ListLock(fd);
  }
  ListLock(ListLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  ~ListLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  explicit ListLock(int fd) : fd_(fd) {}
  int fd_;
};

// PBS update_active_workers: moves finished tasks from `active` (and a legacy `index`) to
// `archive`, optionally adding a new running task.
Status UpdateActiveWorkers(const std::string& state_dir, const Upid* new_upid) {
  const std::string dir = TasksDir(state_dir);
  PBSKIT_RETURN_IF_ERROR(MkdirP(dir, 0755));
  PBSKIT_ASSIGN_OR_RETURN(ListLock lock, ListLock::Acquire(dir, true));
  const std::string index_fn = dir + "/index";
  const std::string active_fn = dir + "/active";
  const std::string archive_fn = dir + "/archive";

  PBSKIT_ASSIGN_OR_RETURN(std::vector<TaskListEntry> finish, ReadTaskFile(index_fn));
  bool had_index = !finish.empty();
  PBSKIT_ASSIGN_OR_RETURN(std::vector<TaskListEntry> old_active, ReadTaskFile(active_fn));
  std::vector<TaskListEntry> active;
  for (auto& e : old_active) {
    if (e.state) {
      finish.push_back(std::move(e));
    } else if (!WorkerActive(e.upid)) {
      auto st = ReadTaskState(state_dir, e.upid);
      TaskState s;
      if (st.ok()) {
        s = std::move(st).value();
      } else {
        s.kind = TaskState::Kind::kUnknown;
        s.endtime = Now();
      }
      e.state = std::move(s);
      finish.push_back(std::move(e));
    } else {
      active.push_back(std::move(e));
    }
  }
  if (new_upid) active.push_back({*new_upid, new_upid->ToString(), std::nullopt});

  std::string raw;
  for (const auto& e : active) raw += RenderTaskLine(e);
  std::string tmp = active_fn + ".tmp_" + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0660);
  if (fd < 0) return Status::FromErrno(errno, "unable to write task list " + tmp);
  Status ws = WriteAll(fd, raw, tmp);
  ::close(fd);
  if (!ws.ok() || ::rename(tmp.c_str(), active_fn.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return ws.ok() ? Status::FromErrno(err, "unable to replace task list " + active_fn) : ws;
  }

  std::stable_sort(finish.begin(), finish.end(), [](const TaskListEntry& a, const TaskListEntry& b) {
    int64_t ea = a.state ? a.state->endtime : 0;
    int64_t eb = b.state ? b.state->endtime : 0;
    return ea < eb;
  });
  if (!finish.empty()) {
    int afd = ::open(archive_fn.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0660);
    if (afd < 0) return Status::FromErrno(errno, "unable to open task archive " + archive_fn);
    std::string lines;
    for (const auto& e : finish) lines += RenderTaskLine(e);
    Status as = WriteAll(afd, lines, archive_fn);
    ::close(afd);
    PBSKIT_RETURN_IF_ERROR(as);
  }
  if (had_index) ::unlink(index_fn.c_str());
  return Status::OK();
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string FormatLocalRfc3339(int64_t epoch) {
  time_t t = static_cast<time_t>(epoch);
  struct tm tm {};
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  long off = tm.tm_gmtoff;
  char sign = '+';
  if (off < 0) {
    sign = '-';
    off = -off;
  }
  char zone[48];
  std::snprintf(zone, sizeof zone, "%c%02ld:%02ld", sign, off / 3600, (off / 60) % 60);
  return std::string(buf) + zone;
}

std::string FormatUtcRfc3339(int64_t epoch) {
  time_t t = static_cast<time_t>(epoch);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string FormatHumanByte(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int bits = bytes == 0 ? 0 : 64 - __builtin_clzll(bytes);
  int unit = 0;
  if (bits >= 51) unit = 5;
  else if (bits >= 41) unit = 4;
  else if (bits >= 31) unit = 3;
  else if (bits >= 21) unit = 2;
  else if (bits >= 11) unit = 1;
  double size = static_cast<double>(bytes) / std::pow(1024.0, unit);
  size = std::round(size * 1000.0) / 1000.0;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", size);
  std::string s = buf;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s + " " + kUnits[unit];
}

std::string FormatTimeSpan(uint64_t seconds) {
  constexpr uint64_t kMinute = 60, kHour = 3600, kDay = 86400, kWeek = 7 * kDay;
  constexpr uint64_t kMonth = kDay * 3044 / 100, kYear = kDay * 36525 / 100;
  uint64_t rem = seconds;
  const std::pair<uint64_t, const char*> units[] = {
      {kYear, "y"}, {kMonth, "M"}, {kWeek, "w"}, {kDay, "d"}, {kHour, "h"}, {kMinute, "m"}};
  std::string out;
  for (const auto& [len, name] : units) {
    uint64_t v = rem / len;
    rem %= len;
    if (v > 0) {
      if (!out.empty()) out += ' ';
      out += std::to_string(v) + name;
    }
  }
  if (rem > 0) {
    if (!out.empty()) out += ' ';
    out += std::to_string(rem) + "s";
  } else if (out.empty()) {
    out = "0s";
  }
  return out;
}

Result<Upid> NewUpid(std::string_view worker_type, std::optional<std::string> worker_id,
                     std::string_view auth_id) {
  PBSKIT_RETURN_IF_ERROR(CheckUpidWorkerType(worker_type));
  PBSKIT_RETURN_IF_ERROR(CheckUpidAuthId(auth_id));
  struct utsname un;
  if (::uname(&un) != 0) return Status::FromErrno(errno, "uname");
  std::string node = un.nodename;
  node = node.substr(0, node.find('.'));
  if (node.empty()) return Status::IoError("failed to get nodename from uname()");
  PBSKIT_ASSIGN_OR_RETURN(uint64_t pstart, ReadOwnPstart());
  Upid u;
  u.node = node;
  u.pid = static_cast<int32_t>(::getpid());
  u.pstart = pstart;
  u.task_id = g_next_task_id.fetch_add(1);
  u.starttime = Now();
  u.worker_type = std::string(worker_type);
  u.worker_id = std::move(worker_id);
  u.auth_id = std::string(auth_id);
  return u;
}

bool UpidProcessRunning(const Upid& upid) {
  auto start = ProcessStartTime(upid.pid);
  return start && *start == upid.pstart;
}

std::string TaskState::StatusText() const {
  switch (kind) {
    case Kind::kUnknown: return "unknown";
    case Kind::kOk: return "OK";
    case Kind::kWarnings: return "WARNINGS: " + std::to_string(warnings);
    case Kind::kError: return message;
  }
  return "unknown";
}

std::string TaskState::ResultLine() const {
  if (kind == Kind::kError) return "TASK ERROR: " + message;
  return "TASK " + StatusText();
}

Result<TaskState> TaskState::FromStatusText(int64_t endtime, std::string_view text) {
  TaskState s;
  s.endtime = endtime;
  if (text == "unknown") {
    s.kind = Kind::kUnknown;
  } else if (text == "OK") {
    s.kind = Kind::kOk;
  } else if (text.substr(0, 10) == "WARNINGS: ") {
    std::string n(text.substr(10));
    if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos) {
      return Status::InvalidArgument("unable to parse task warning count '" + n + "'");
    }
    s.kind = Kind::kWarnings;
    s.warnings = std::strtoull(n.c_str(), nullptr, 10);
  } else if (!text.empty()) {
    s.kind = Kind::kError;
    s.message = std::string(text.substr(0, 7) == "ERROR: " ? text.substr(7) : text);
  } else {
    return Status::InvalidArgument("unable to parse Task Status ''");
  }
  return s;
}

// ---------------------------------------------------------------------------------------------

TaskLogger::~TaskLogger() = default;

void MemoryTaskLogger::Info(std::string_view message) {
  std::lock_guard<std::mutex> lock(mu_);
  lines_.emplace_back(message);
}
void MemoryTaskLogger::Warn(std::string_view message) {
  std::lock_guard<std::mutex> lock(mu_);
  lines_.emplace_back(message);
  ++warnings_;
}
uint64_t MemoryTaskLogger::warnings() const {
  std::lock_guard<std::mutex> lock(mu_);
  return warnings_;
}
std::vector<std::string> MemoryTaskLogger::lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}
std::string MemoryTaskLogger::text() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& l : lines_) out += l + "\n";
  return out;
}

void StreamTaskLogger::Info(std::string_view message) {
  std::lock_guard<std::mutex> lock(mu_);
  *out_ << message << '\n' << std::flush;
}
void StreamTaskLogger::Warn(std::string_view message) {
  std::lock_guard<std::mutex> lock(mu_);
  *out_ << message << '\n' << std::flush;
  ++warnings_;
}
uint64_t StreamTaskLogger::warnings() const {
  std::lock_guard<std::mutex> lock(mu_);
  return warnings_;
}

// ---------------------------------------------------------------------------------------------

std::string TaskLogPath(const std::string& state_dir, const Upid& upid) {
  char xx[8];
  std::snprintf(xx, sizeof xx, "%02X", static_cast<unsigned>(upid.pstart & 0xff));
  return TasksDir(state_dir) + "/" + xx + "/" + upid.ToString();
}

TaskLog::TaskLog(std::string state_dir, Upid upid, std::string path, int fd,
                 TaskLogOptions options)
    : state_dir_(std::move(state_dir)),
      upid_(std::move(upid)),
      path_(std::move(path)),
      fd_(fd),
      options_(options) {}

Result<std::unique_ptr<TaskLog>> TaskLog::Start(const std::string& state_dir, const Upid& upid,
                                                TaskLogOptions options) {
  std::string path = TaskLogPath(state_dir, upid);
  PBSKIT_RETURN_IF_ERROR(MkdirP(path.substr(0, path.rfind('/')), 0755)
                             .WithContext("unable to create task log dir"));
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno(errno, "unable to create task log " + path);
  {
    std::lock_guard<std::mutex> lock(g_local_mu);
    g_local_tasks.insert(upid.task_id);
  }
  std::unique_ptr<TaskLog> log(new TaskLog(state_dir, upid, path, fd, options));
  Status st = UpdateActiveWorkers(state_dir, &upid);
  if (!st.ok()) {
    auto fin = log->Finish(st);
    (void)fin;
    return st;
  }
  return log;
}

TaskLog::~TaskLog() {
  if (fd_ >= 0) ::close(fd_);
  std::lock_guard<std::mutex> lock(g_local_mu);
  g_local_tasks.erase(upid_.task_id);
}

void TaskLog::Write(std::string_view message) {
  std::string line = FormatLocalRfc3339(Now());
  line += ": ";
  line += message;
  line += '\n';
  if (fd_ >= 0) (void)WriteAll(fd_, line, path_);
  if (options_.echo) *options_.echo << message << '\n' << std::flush;
}

void TaskLog::Info(std::string_view message) {
  std::lock_guard<std::mutex> lock(mu_);
  Write(message);
}

void TaskLog::Warn(std::string_view message) {
  std::lock_guard<std::mutex> lock(mu_);
  ++warnings_;
  Write(message);
}

uint64_t TaskLog::warnings() const {
  std::lock_guard<std::mutex> lock(mu_);
  return warnings_;
}

Result<TaskState> TaskLog::Finish(const Status& result) {
  TaskState state;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return Status::InvalidArgument("task " + upid_.ToString() + " already finished");
    finished_ = true;
    state.endtime = Now();
    if (!result.ok()) {
      state.kind = TaskState::Kind::kError;
      state.message = result.message();
    } else if (warnings_ > 0) {
      state.kind = TaskState::Kind::kWarnings;
      state.warnings = warnings_;
    } else {
      state.kind = TaskState::Kind::kOk;
    }
    std::string line = FormatLocalRfc3339(state.endtime) + ": " + state.ResultLine() + "\n";
    (void)WriteAll(fd_, line, path_);
    ::close(fd_);
    fd_ = -1;
  }
  {
    std::lock_guard<std::mutex> lock(g_local_mu);
    g_local_tasks.erase(upid_.task_id);
  }
  PBSKIT_RETURN_IF_ERROR(UpdateActiveWorkers(state_dir_, nullptr));
  return state;
}

Result<TaskState> ReadTaskState(const std::string& state_dir, const Upid& upid) {
  std::string path = TaskLogPath(state_dir, upid);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open task log " + path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Status::FromErrno(err, "stat task log " + path);
  }
  off_t start = st.st_size > 8192 ? st.st_size - 8192 : 0;
  std::string data(static_cast<size_t>(st.st_size - start), '\0');
  ssize_t n = ::pread(fd, data.data(), data.size(), start);
  int err = errno;
  ::close(fd);
  if (n < 0) return Status::FromErrno(err, "read task log " + path);
  data.resize(static_cast<size_t>(n));
  while (!data.empty() && data.back() == '\n') data.pop_back();

  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos <= data.size()) {
    size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) nl = data.size();
    lines.emplace_back(data.data() + pos, nl - pos);
    pos = nl + 1;
  }
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    std::string_view line = *it;
    size_t sep = line.find(": ");
    if (sep == std::string_view::npos) continue;
    auto t = ParseRfc3339(line.substr(0, sep));
    if (!t) continue;
    std::string_view rest = line.substr(sep + 2);
    if (rest.substr(0, 5) == "TASK ") {
      auto s = TaskState::FromStatusText(*t, rest.substr(5));
      if (s.ok()) return s;
      continue;
    }
    TaskState u;
    u.endtime = *t;
    return u;
  }
  TaskState u;
  u.endtime = upid.starttime;
  return u;
}

Result<std::vector<TaskListEntry>> ListTasks(const std::string& state_dir, bool include_archive) {
  PBSKIT_RETURN_IF_ERROR(UpdateActiveWorkers(state_dir, nullptr));
  const std::string dir = TasksDir(state_dir);
  PBSKIT_ASSIGN_OR_RETURN(ListLock lock, ListLock::Acquire(dir, false));
  PBSKIT_ASSIGN_OR_RETURN(std::vector<TaskListEntry> active, ReadTaskFile(dir + "/active"));
  std::vector<TaskListEntry> out(std::make_move_iterator(active.rbegin()),
                                 std::make_move_iterator(active.rend()));
  if (include_archive) {
    PBSKIT_ASSIGN_OR_RETURN(std::vector<TaskListEntry> archive, ReadTaskFile(dir + "/archive"));
    for (auto it = archive.rbegin(); it != archive.rend(); ++it) out.push_back(std::move(*it));
  }
  return out;
}

}  // namespace pbskit
