#include "pbskit/server/task_manager.h"

#include <utility>

namespace pbskit::server {

Status WorkerTask::CheckAbort() const {
  return CheckTaskAbort(abort_.get());
}

TaskManager::TaskManager(TaskManagerOptions options) : options_(options) {
  if (options_.worker_threads < 1) options_.worker_threads = 1;
  threads_.reserve(options_.worker_threads);
  for (size_t i = 0; i < options_.worker_threads; ++i) {
    threads_.emplace_back([this] { WorkerLoop(); });
  }
}

TaskManager::~TaskManager() {
  std::deque<std::shared_ptr<Task>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (auto& [upid, task] : active_) task->abort->store(true);
    dropped.swap(queue_);
  }
  queue_cv_.notify_all();
  for (auto& t : threads_) t.join();
  // Tasks that never got a thread: their logs still get a result line.
  for (auto& task : dropped) {
    (void)task->log->Finish(Status::Aborted(kTaskAbortMessage));
  }
}

Result<std::string> TaskManager::Spawn(const std::string& state_dir, const std::string& worker_type,
                                       std::optional<std::string> worker_id,
                                       const std::string& auth_id, Body body) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Status::Aborted("server is shutting down");
    if (queue_.size() >= options_.max_queued) {
      return Status::Busy("too many queued tasks (" + std::to_string(queue_.size()) + ")");
    }
  }
  PBSKIT_ASSIGN_OR_RETURN(Upid upid, NewUpid(worker_type, std::move(worker_id), auth_id));
  PBSKIT_ASSIGN_OR_RETURN(std::unique_ptr<TaskLog> log, TaskLog::Start(state_dir, upid));
  auto task = std::make_shared<Task>();
  task->upid = upid;
  task->upid_str = upid.ToString();
  task->log = std::move(log);
  task->abort = std::make_shared<std::atomic<bool>>(false);
  task->body = std::move(body);
  std::string upid_str = task->upid_str;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      (void)task->log->Finish(Status::Aborted(kTaskAbortMessage));
      return Status::Aborted("server is shutting down");
    }
    active_[upid_str] = task;
    queue_.push_back(std::move(task));
  }
  queue_cv_.notify_one();
  return upid_str;
}

void TaskManager::WorkerLoop() {
  for (;;) {
    std::shared_ptr<Task> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    Run(*task);
    {
      std::lock_guard<std::mutex> lock(mu_);
      active_.erase(task->upid_str);
      if (active_.empty()) idle_cv_.notify_all();
    }
  }
}

void TaskManager::Run(Task& task) {
  Status result;
  if (task.abort->load()) {
    result = Status::Aborted(kTaskAbortMessage);
  } else {
    WorkerTask worker(task.upid, task.log.get(), task.abort);
    result = task.body(worker);
    task.body = nullptr;  // release what the body captured before the task is listed as done
  }
  // Finish writes the result line and moves the task to the archive; when the list cannot be
  // updated the log is still complete, and the next list update archives the task.
  (void)task.log->Finish(result);
  task.log.reset();
}

bool TaskManager::IsActive(const std::string& upid) const {
  std::lock_guard<std::mutex> lock(mu_);
  return active_.count(upid) > 0;
}

bool TaskManager::HasActive(const std::string& worker_type, const std::string& worker_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [upid, task] : active_) {
    if (task->upid.worker_type == worker_type && task->upid.worker_id == worker_id) return true;
  }
  return false;
}

Status TaskManager::Abort(const std::string& upid) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = active_.find(upid);
  if (it == active_.end()) return Status::NotFound("task '" + upid + "' is not running");
  it->second->abort->store(true);
  return Status::OK();
}

void TaskManager::WaitIdle() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [&] { return active_.empty(); });
}

}  // namespace pbskit::server
