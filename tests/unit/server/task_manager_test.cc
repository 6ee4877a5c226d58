// TaskManager: UPIDs and PBS task logs for spawned work, bounded worker threads with a queue,
// abort of running and queued tasks, results mapped to TASK OK / WARNINGS / ERROR.
#include "pbskit/server/task_manager.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>

#include "test_support.h"

namespace pbskit::server {
namespace {

// A latch the test opens to let a blocked task body continue.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false, entered = false;
  void Open() {
    std::lock_guard<std::mutex> l(mu);
    open = true;
    cv.notify_all();
  }
  void Enter() {
    std::unique_lock<std::mutex> l(mu);
    entered = true;
    cv.notify_all();
    cv.wait(l, [&] { return open; });
  }
  void WaitEntered() {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return entered; });
  }
};

std::string LastLine(const std::string& state_dir, const std::string& upid_text) {
  auto upid = Upid::Parse(upid_text);
  EXPECT_TRUE(upid.ok());
  std::ifstream in(TaskLogPath(state_dir, *upid));
  std::string line, last;
  while (std::getline(in, line)) last = line;
  auto pos = last.find(": ");
  return pos == std::string::npos ? last : last.substr(pos + 2);
}

TEST(TaskManagerTest, ResultsBecomePbsResultLines) {
  test::TempDir dir;
  std::string state = dir / "state";
  TaskManager tasks;
  auto ok = tasks.Spawn(state, "verify", std::string("store1"), "root@pam", [](WorkerTask& w) {
    w.log()->Info("hello");
    return Status::OK();
  });
  auto warn = tasks.Spawn(state, "verify", std::nullopt, "root@pam", [](WorkerTask& w) {
    w.log()->Warn("careful");
    w.log()->Warn("again");
    return Status::OK();
  });
  auto err = tasks.Spawn(state, "garbage_collection", std::string("store1"), "alice@pbs!t",
                         [](WorkerTask&) { return Status::IoError("disk gone"); });
  ASSERT_TRUE(ok.ok() && warn.ok() && err.ok());
  tasks.WaitIdle();
  EXPECT_EQ(LastLine(state, *ok), "TASK OK");
  EXPECT_EQ(LastLine(state, *warn), "TASK WARNINGS: 2");
  EXPECT_EQ(LastLine(state, *err), "TASK ERROR: disk gone");
  auto upid = Upid::Parse(*err);
  ASSERT_TRUE(upid.ok());
  EXPECT_EQ(upid->worker_type, "garbage_collection");
  EXPECT_EQ(upid->worker_id, "store1");
  EXPECT_EQ(upid->auth_id, "alice@pbs!t");
  EXPECT_FALSE(tasks.IsActive(*ok));

  auto list = ListTasks(state, true);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 3u);
  for (const auto& e : *list) EXPECT_TRUE(e.state.has_value());
}

TEST(TaskManagerTest, RefusesWorkerTypesPbsRefuses) {
  test::TempDir dir;
  TaskManager tasks;
  auto r = tasks.Spawn(dir / "state", "bad type", std::nullopt, "root@pam",
                       [](WorkerTask&) { return Status::OK(); });
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
}

TEST(TaskManagerTest, AbortRunningAndQueuedTasks) {
  test::TempDir dir;
  std::string state = dir / "state";
  TaskManager tasks(TaskManagerOptions{.worker_threads = 1, .max_queued = 1});
  Gate gate;
  auto running = tasks.Spawn(state, "verify", std::string("a"), "root@pam", [&](WorkerTask& w) {
    gate.Enter();
    return w.CheckAbort();
  });
  ASSERT_TRUE(running.ok());
  gate.WaitEntered();
  bool queued_ran = false;
  auto queued = tasks.Spawn(state, "prune", std::string("a"), "root@pam", [&](WorkerTask&) {
    queued_ran = true;
    return Status::OK();
  });
  ASSERT_TRUE(queued.ok());
  // The queue holds one task: a third one is refused.
  auto third = tasks.Spawn(state, "prune", std::string("b"), "root@pam",
                           [](WorkerTask&) { return Status::OK(); });
  EXPECT_EQ(third.status().code(), Code::kBusy);
  EXPECT_TRUE(tasks.IsActive(*queued));
  EXPECT_TRUE(tasks.HasActive("prune", "a"));
  EXPECT_FALSE(tasks.HasActive("prune", "b"));

  // Both listed as running in the task list.
  auto active = ListTasks(state, false);
  ASSERT_TRUE(active.ok());
  EXPECT_EQ(active->size(), 2u);

  ASSERT_TRUE(tasks.Abort(*queued).ok());
  ASSERT_TRUE(tasks.Abort(*running).ok());
  gate.Open();
  tasks.WaitIdle();
  EXPECT_FALSE(queued_ran);
  EXPECT_EQ(LastLine(state, *running), "TASK ERROR: abort requested - aborting task");
  EXPECT_EQ(LastLine(state, *queued), "TASK ERROR: abort requested - aborting task");
  EXPECT_EQ(tasks.Abort(*running).code(), Code::kNotFound);
}

TEST(TaskManagerTest, DestructionEndsQueuedTasksWithAResultLine) {
  test::TempDir dir;
  std::string state = dir / "state";
  std::string running_upid, queued_upid;
  Gate gate;
  {
    TaskManager tasks(TaskManagerOptions{.worker_threads = 1, .max_queued = 4});
    // Runs until the destructor requests the abort.
    auto running = tasks.Spawn(state, "verify", std::string("a"), "root@pam", [&](WorkerTask& w) {
      gate.Enter();
      while (!w.abort_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return w.CheckAbort();
    });
    ASSERT_TRUE(running.ok());
    running_upid = *running;
    gate.Open();
    gate.WaitEntered();
    auto queued = tasks.Spawn(state, "verify", std::string("b"), "root@pam",
                              [](WorkerTask&) { return Status::OK(); });
    ASSERT_TRUE(queued.ok());
    queued_upid = *queued;
  }
  EXPECT_EQ(LastLine(state, running_upid), "TASK ERROR: abort requested - aborting task");
  EXPECT_EQ(LastLine(state, queued_upid), "TASK ERROR: abort requested - aborting task");
}

}  // namespace
}  // namespace pbskit::server
