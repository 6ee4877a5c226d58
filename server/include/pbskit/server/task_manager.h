// Worker tasks of `pbskit serve`: long work (verify, garbage collection, prune) runs on a bounded
// set of worker threads, each task with a UPID and a task log in PBS's layout
// (datastore/task_log.h), so `GET /nodes/{node}/tasks/...` and `pbskit task list|log` read the
// same files.
//
// A task is visible as running from Spawn on: its log file exists and it is listed in
// <state>/tasks/active. When every worker thread is busy it waits in a bounded queue (still
// "running", with an empty log) until a thread is free. An abort request (DELETE of the task)
// sets a flag the task body polls between its units of work; a task aborted before it started
// never runs. Either way the task ends with "TASK ERROR: abort requested - aborting task", as
// PBS's check_abort does.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pbskit/datastore/task_log.h"
#include "pbskit/formats/status.h"
#include "pbskit/formats/upid.h"

namespace pbskit::server {

// What a task body sees of its task. Owned by the manager; valid during the body's call.
class WorkerTask {
 public:
  const Upid& upid() const { return upid_; }
  const std::string& upid_str() const { return upid_str_; }
  // The task log (thread safe; may be used by helper threads of the body).
  TaskLogger* log() { return log_; }
  // True once an abort was requested. Thread safe.
  bool abort_requested() const { return abort_->load(std::memory_order_relaxed); }
  // Aborted(kTaskAbortMessage) once an abort was requested, else OK.
  Status CheckAbort() const;
  // The flag an abort request sets, for engines that poll it (GcOptions::abort,
  // VerifyOptions::abort). Valid during the body's call.
  const std::atomic<bool>* abort_flag() const { return abort_.get(); }

 private:
  friend class TaskManager;
  WorkerTask(Upid upid, TaskLogger* log, std::shared_ptr<std::atomic<bool>> abort)
      : upid_(std::move(upid)), upid_str_(upid_.ToString()), log_(log), abort_(std::move(abort)) {}
  Upid upid_;
  std::string upid_str_;
  TaskLogger* log_;
  std::shared_ptr<std::atomic<bool>> abort_;
};

struct TaskManagerOptions {
  size_t worker_threads = 2;  // tasks running at the same time
  size_t max_queued = 64;     // tasks waiting for a thread; more are refused (Busy)
};

class TaskManager {
 public:
  // The body's result becomes the log's last line: OK -> "TASK OK" (or "TASK WARNINGS: n" when
  // warnings were logged), an error -> "TASK ERROR: <message>".
  using Body = std::function<Status(WorkerTask&)>;

  explicit TaskManager(TaskManagerOptions options = {});
  // Requests abort of every task, ends queued ones without running them and joins the worker
  // threads (a running body is waited for).
  ~TaskManager();
  TaskManager(const TaskManager&) = delete;
  TaskManager& operator=(const TaskManager&) = delete;

  // Creates a UPID (NewUpid: this host, this process, now), starts its task log in
  // `state_dir` and queues `body`. Returns the UPID string.
  // Errors: InvalidArgument for a worker type / auth id PBS refuses; IoError when the task log
  // or the task list cannot be written; Busy "too many queued tasks (<n>)" when the queue is
  // full. Thread safe.
  Result<std::string> Spawn(const std::string& state_dir, const std::string& worker_type,
                            std::optional<std::string> worker_id, const std::string& auth_id,
                            Body body);

  // True while a task of this manager with this UPID string is queued or running. Thread safe.
  bool IsActive(const std::string& upid) const;
  // True when a task with this worker type and id is queued or running (one GC per store).
  bool HasActive(const std::string& worker_type, const std::string& worker_id) const;
  // Requests the abort of a queued or running task of this manager. NotFound when it is not
  // (or no longer) active here. Thread safe; never blocks on the task.
  Status Abort(const std::string& upid);
  // Blocks until no task is queued or running (tests, shutdown). Thread safe.
  void WaitIdle();

 private:
  struct Task {
    Upid upid;
    std::string upid_str;
    std::unique_ptr<TaskLog> log;
    std::shared_ptr<std::atomic<bool>> abort;
    Body body;
  };
  void WorkerLoop();
  void Run(Task& task);

  TaskManagerOptions options_;
  mutable std::mutex mu_;
  std::condition_variable queue_cv_, idle_cv_;
  std::deque<std::shared_ptr<Task>> queue_;
  std::map<std::string, std::shared_ptr<Task>> active_;  // by UPID string, queued + running
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

}  // namespace pbskit::server
