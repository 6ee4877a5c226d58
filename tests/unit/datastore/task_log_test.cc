#include "pbskit/datastore/task_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <regex>
#include <sstream>

#include "test_support.h"

namespace pbskit {
namespace {

class TzGuard {
 public:
  explicit TzGuard(const char* tz) {
    const char* old = std::getenv("TZ");
    if (old) old_ = old;
    had_ = old != nullptr;
    setenv("TZ", tz, 1);
    tzset();
  }
  ~TzGuard() {
    if (had_) setenv("TZ", old_.c_str(), 1);
    else unsetenv("TZ");
    tzset();
  }

 private:
  std::string old_;
  bool had_ = false;
};

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

TEST(TaskLogFormatTest, HumanByte) {
  EXPECT_EQ(FormatHumanByte(0), "0 B");
  EXPECT_EQ(FormatHumanByte(512), "512 B");
  EXPECT_EQ(FormatHumanByte(1023), "1023 B");
  EXPECT_EQ(FormatHumanByte(1024), "1 KiB");
  EXPECT_EQ(FormatHumanByte(1536), "1.5 KiB");
  EXPECT_EQ(FormatHumanByte(4 * 1024 * 1024), "4 MiB");
  EXPECT_EQ(FormatHumanByte(1234567890), "1.15 GiB");
  EXPECT_EQ(FormatHumanByte(1000000), "976.563 KiB");
  EXPECT_EQ(FormatHumanByte(5ull << 40), "5 TiB");
}

TEST(TaskLogFormatTest, TimeSpan) {
  EXPECT_EQ(FormatTimeSpan(86400 + 300), "1d 5m");
  EXPECT_EQ(FormatTimeSpan(3600), "1h");
  EXPECT_EQ(FormatTimeSpan(0), "0s");
  EXPECT_EQ(FormatTimeSpan(59), "59s");
  EXPECT_EQ(FormatTimeSpan(2880 * 60), "2d");
  EXPECT_EQ(FormatTimeSpan(8 * 86400 + 3661), "1w 1d 1h 1m 1s");
  EXPECT_EQ(FormatTimeSpan(31557600 + 2630016), "1y 1M");
}

TEST(TaskLogFormatTest, Rfc3339LocalAndUtc) {
  {
    TzGuard tz("UTC");
    EXPECT_EQ(FormatLocalRfc3339(1556581955), "2019-04-29T23:52:35+00:00");
  }
  {
    TzGuard tz("CET-1");
    EXPECT_EQ(FormatLocalRfc3339(1556581955), "2019-04-30T00:52:35+01:00");
  }
  {
    TzGuard tz("XYZ+5:30");
    EXPECT_EQ(FormatLocalRfc3339(1556581955), "2019-04-29T18:22:35-05:30");
  }
  EXPECT_EQ(FormatUtcRfc3339(1556581955), "2019-04-29T23:52:35Z");
}

TEST(TaskStateTest, StatusTextRoundTrip) {
  auto ok = TaskState::FromStatusText(5, "OK");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->kind, TaskState::Kind::kOk);
  EXPECT_EQ(ok->ResultLine(), "TASK OK");
  auto w = TaskState::FromStatusText(5, "WARNINGS: 3");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->warnings, 3u);
  EXPECT_EQ(w->ResultLine(), "TASK WARNINGS: 3");
  auto e = TaskState::FromStatusText(5, "ERROR: boom");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->kind, TaskState::Kind::kError);
  EXPECT_EQ(e->message, "boom");
  EXPECT_EQ(e->StatusText(), "boom");
  EXPECT_EQ(e->ResultLine(), "TASK ERROR: boom");
  auto bare = TaskState::FromStatusText(5, "something failed");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->kind, TaskState::Kind::kError);
  EXPECT_FALSE(TaskState::FromStatusText(5, "").ok());
  EXPECT_FALSE(TaskState::FromStatusText(5, "WARNINGS: x").ok());
}

TEST(TaskLogTest, NewUpidDescribesThisProcess) {
  auto u = NewUpid("garbage_collection", std::string("store1"), "root@pam");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->pid, static_cast<int32_t>(getpid()));
  EXPECT_TRUE(UpidProcessRunning(*u));
  EXPECT_NEAR(static_cast<double>(u->starttime), static_cast<double>(std::time(nullptr)), 5.0);
  auto again = Upid::Parse(u->ToString());
  ASSERT_TRUE(again.ok()) << u->ToString();
  EXPECT_EQ(*again, *u);
  auto next = NewUpid("prune", std::nullopt, "root@pam");
  ASSERT_TRUE(next.ok());
  EXPECT_GT(next->task_id, u->task_id);
  EXPECT_FALSE(NewUpid("bad type", std::nullopt, "root@pam").ok());
  EXPECT_FALSE(NewUpid("gc", std::nullopt, "root:pam").ok());
  Upid dead = *u;
  dead.pstart += 12345;  // same pid, different start: a recycled pid is not our task
  EXPECT_FALSE(UpidProcessRunning(dead));
}

TEST(TaskLogTest, WritesPbsLayoutAndResultLines) {
  TzGuard tz("UTC");
  test::TempDir dir;
  auto upid = NewUpid("garbage_collection", std::string("store1"), "root@pam");
  ASSERT_TRUE(upid.ok());
  std::ostringstream echo;
  auto log = TaskLog::Start(dir.path(), *upid, TaskLogOptions{&echo});
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  char xx[4];
  std::snprintf(xx, sizeof xx, "%02X", static_cast<unsigned>(upid->pstart & 0xff));
  EXPECT_EQ((*log)->path(), dir.path() + "/tasks/" + xx + "/" + upid->ToString());

  // While running, the task is listed in `active` as a bare UPID line.
  EXPECT_EQ(test::ReadText(dir / "tasks/active"), upid->ToString() + "\n");
  auto running = ListTasks(dir.path(), true);
  ASSERT_TRUE(running.ok());
  ASSERT_EQ(running->size(), 1u);
  EXPECT_FALSE((*running)[0].state.has_value());

  (*log)->Info("starting garbage collection on store store1");
  (*log)->Warn("warning: unable to access non-existent chunk 00, required by x");
  auto st = (*log)->Finish(Status::OK());
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->kind, TaskState::Kind::kWarnings);
  EXPECT_FALSE((*log)->Finish(Status::OK()).ok());

  auto lines = Lines(test::ReadText((*log)->path()));
  ASSERT_EQ(lines.size(), 3u);
  std::regex prefix(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00: )");
  for (const auto& l : lines) EXPECT_TRUE(std::regex_search(l, prefix)) << l;
  EXPECT_EQ(lines[0].substr(27), "starting garbage collection on store store1");
  EXPECT_EQ(lines[2].substr(27), "TASK WARNINGS: 1");
  EXPECT_EQ(echo.str(),
            "starting garbage collection on store store1\n"
            "warning: unable to access non-existent chunk 00, required by x\n");

  // Finished: `active` is empty and the archive holds "<UPID> <ENDTIME> <STATUS>".
  EXPECT_EQ(test::ReadText(dir / "tasks/active"), "");
  auto archive = Lines(test::ReadText(dir / "tasks/archive"));
  ASSERT_EQ(archive.size(), 1u);
  std::regex line_re("^" + std::regex_replace(upid->ToString(), std::regex(R"([\\^$.|?*+()\[\]{}])"),
                                               R"(\$&)") +
                     R"( [0-9A-F]{8} WARNINGS: 1$)");
  EXPECT_TRUE(std::regex_match(archive[0], line_re)) << archive[0];

  auto state = ReadTaskState(dir.path(), *upid);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->kind, TaskState::Kind::kWarnings);
  EXPECT_EQ(state->warnings, 1u);
}

TEST(TaskLogTest, ErrorResultAndListOrder) {
  test::TempDir dir;
  auto a = NewUpid("prune", std::string("s1::vm/100"), "root@pam");
  auto b = NewUpid("verify", std::string("s1"), "root@pam");
  ASSERT_TRUE(a.ok() && b.ok());
  {
    auto log = TaskLog::Start(dir.path(), *a);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->Finish(Status::Busy("unable to get exclusive lock - EAGAIN")).ok());
    auto lines = Lines(test::ReadText((*log)->path()));
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_NE(lines[0].find(": TASK ERROR: unable to get exclusive lock - EAGAIN"), std::string::npos);
  }
  {
    auto log = TaskLog::Start(dir.path(), *b);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->Finish(Status::OK()).ok());
  }
  auto list = ListTasks(dir.path(), true);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].upid, *b);  // newest first
  EXPECT_EQ((*list)[0].state->kind, TaskState::Kind::kOk);
  EXPECT_EQ((*list)[1].state->kind, TaskState::Kind::kError);
  EXPECT_EQ((*list)[1].state->message, "unable to get exclusive lock - EAGAIN");
  auto active_only = ListTasks(dir.path(), false);
  ASSERT_TRUE(active_only.ok());
  EXPECT_TRUE(active_only->empty());
}

TEST(TaskLogTest, VanishedWorkerIsArchivedWithItsLastState) {
  TzGuard tz("UTC");
  test::TempDir dir;
  // A task of a process that no longer exists, whose log ends without a result line.
  Upid dead;
  dead.node = "pbs";
  dead.pid = 0x7ffffff0;
  dead.pstart = 0x1234;
  dead.starttime = 1700000000;
  dead.worker_type = "garbage_collection";
  dead.worker_id = "store1";
  dead.auth_id = "root@pam";
  std::string path = TaskLogPath(dir.path(), dead);
  EXPECT_EQ(path, dir.path() + "/tasks/34/" + dead.ToString());
  ASSERT_EQ(system(("mkdir -p '" + dir.path() + "/tasks/34'").c_str()), 0);
  test::WriteText(path, "2023-11-14T22:13:20+00:00: starting garbage collection on store store1\n"
                        "2023-11-14T22:13:25+00:00: Start GC phase1 (mark used chunks)\n");
  test::WriteText(dir / "tasks/active", dead.ToString() + "\n");
  auto st = ReadTaskState(dir.path(), dead);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->kind, TaskState::Kind::kUnknown);
  EXPECT_EQ(st->endtime, 1700000005);

  auto list = ListTasks(dir.path(), true);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  ASSERT_TRUE((*list)[0].state.has_value());
  EXPECT_EQ(test::ReadText(dir / "tasks/archive"), dead.ToString() + " 6553F105 unknown\n");
  EXPECT_EQ(test::ReadText(dir / "tasks/active"), "");
}

TEST(TaskLogTest, DroppedUnfinishedTaskLeavesNoResultLine) {
  test::TempDir dir;
  auto u = NewUpid("verify", std::nullopt, "root@pam");
  ASSERT_TRUE(u.ok());
  std::string path;
  {
    auto log = TaskLog::Start(dir.path(), *u);
    ASSERT_TRUE(log.ok());
    (*log)->Info("verify datastore s1");
    path = (*log)->path();
  }
  auto list = ListTasks(dir.path(), true);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  ASSERT_TRUE((*list)[0].state.has_value());
  EXPECT_EQ((*list)[0].state->kind, TaskState::Kind::kUnknown);
  EXPECT_EQ(test::ReadText(path).find("TASK"), std::string::npos);
}

TEST(TaskLogTest, StartFailsWhenStateDirIsAFile) {
  test::TempDir dir;
  test::WriteText(dir / "state", "not a directory");
  auto u = NewUpid("verify", std::nullopt, "root@pam");
  ASSERT_TRUE(u.ok());
  auto log = TaskLog::Start(dir / "state", *u);
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("state"), std::string::npos) << log.status().message();
}

}  // namespace
}  // namespace pbskit
