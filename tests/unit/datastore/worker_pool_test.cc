#include "pbskit/datastore/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <mutex>
#include <set>
#include <vector>

namespace pbskit {
namespace {

TEST(WorkerPoolTest, EveryJobReadAndWorkedExactlyOnce) {
  WorkerPool pool({.read_threads = 2, .work_threads = 3, .slots = 4});
  EXPECT_EQ(pool.slot_count(), 4u);
  const size_t kJobs = 5000;
  std::vector<std::atomic<int>> read_count(kJobs), work_count(kJobs);
  std::vector<size_t> slot_job(pool.slot_count());
  std::atomic<int> max_worker{-1};
  Status st = pool.Run(
      kJobs,
      [&](size_t job, size_t slot) {
        read_count[job]++;
        slot_job[slot] = job;  // the slot carries data from read to work
        return job % 7 != 0;   // every 7th job "fails" in the read stage
      },
      [&](size_t job, size_t slot, size_t worker) {
        EXPECT_EQ(slot_job[slot], job);
        EXPECT_LT(worker, 3u);
        work_count[job]++;
      });
  ASSERT_TRUE(st.ok()) << st.ToString();
  for (size_t j = 0; j < kJobs; ++j) {
    EXPECT_EQ(read_count[j].load(), 1) << j;
    EXPECT_EQ(work_count[j].load(), j % 7 != 0 ? 1 : 0) << j;
  }
}

// A waiting reader is woken only once a batch of slots is free or the workers run dry: no
// shape of pool (threads, slots, failing reads, slow or fast work) may lose that wake-up.
TEST(WorkerPoolTest, EveryShapeFinishesWithBatchedWakeUps) {
  for (size_t readers = 1; readers <= 3; ++readers) {
    for (size_t workers = 1; workers <= 3; ++workers) {
      for (size_t slots = 1; slots <= 7; ++slots) {
        WorkerPool pool({.read_threads = readers, .work_threads = workers, .slots = slots});
        std::atomic<size_t> worked{0}, failed{0};
        Status st = pool.Run(
            300,
            [&](size_t job, size_t) {
              if (job % 5 == 3) {  // a failed read gives its slot straight back
                failed++;
                return false;
              }
              return true;
            },
            [&](size_t job, size_t, size_t) {
              if (job % 11 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
              worked++;
            });
        ASSERT_TRUE(st.ok()) << st.ToString();
        EXPECT_EQ(worked.load() + failed.load(), 300u)
            << readers << " readers, " << workers << " workers, " << slots << " slots";
      }
    }
  }
}

TEST(WorkerPoolTest, SlotsAreNeverSharedBetweenJobsInFlight) {
  WorkerPool pool({.read_threads = 2, .work_threads = 2, .slots = 3});
  std::vector<std::atomic<int>> in_use(pool.slot_count());
  std::atomic<int> violations{0};
  ASSERT_TRUE(pool.Run(
                      2000,
                      [&](size_t, size_t slot) {
                        if (in_use[slot].fetch_add(1) != 0) violations++;
                        return true;
                      },
                      [&](size_t, size_t slot, size_t) {
                        if (in_use[slot].fetch_sub(1) != 1) violations++;
                      })
                  .ok());
  EXPECT_EQ(violations.load(), 0);
}

TEST(WorkerPoolTest, SingleReaderReadsInJobOrder) {
  WorkerPool pool({.read_threads = 1, .work_threads = 4});
  std::vector<size_t> order;
  ASSERT_TRUE(pool.Run(
                      300,
                      [&](size_t job, size_t) {
                        order.push_back(job);  // only one reader thread: no race
                        return true;
                      },
                      [](size_t, size_t, size_t) {})
                  .ok());
  ASSERT_EQ(order.size(), 300u);
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], i);
}

TEST(WorkerPoolTest, StopReturnsStatusAndSkipsRemainingJobs) {
  WorkerPool pool({.read_threads = 1, .work_threads = 2});
  std::atomic<size_t> reads{0};
  Status st = pool.Run(
      100000,
      [&](size_t job, size_t) {
        reads++;
        if (job == 10) pool.Stop(Status::Aborted("task aborted"));
        return true;
      },
      [](size_t, size_t, size_t) {});
  EXPECT_EQ(st.code(), Code::kAborted);
  EXPECT_EQ(st.message(), "task aborted");
  EXPECT_LT(reads.load(), 100000u);
  // The pool is reusable after a stop.
  std::atomic<size_t> works{0};
  EXPECT_TRUE(pool.Run(
                      50, [](size_t, size_t) { return true; },
                      [&](size_t, size_t, size_t) { works++; })
                  .ok());
  EXPECT_EQ(works.load(), 50u);
}

TEST(WorkerPoolTest, EndAtFinishesSuccessfullyWithUnknownJobCount) {
  WorkerPool pool({.read_threads = 1, .work_threads = 2});
  std::atomic<size_t> works{0};
  std::vector<size_t> reads;
  Status st = pool.Run(
      SIZE_MAX,
      [&](size_t job, size_t) {
        reads.push_back(job);
        if (job == 41) pool.EndAt(42);  // "EOF" after job 41
        return true;
      },
      [&](size_t, size_t, size_t) { works++; });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(reads.size(), 42u);
  EXPECT_EQ(works.load(), 42u);
}

TEST(WorkerPoolTest, ZeroJobsAndMinimumThreads) {
  WorkerPool pool({.read_threads = 0, .work_threads = 0, .slots = 0});
  EXPECT_EQ(pool.read_threads(), 1u);
  EXPECT_EQ(pool.work_threads(), 1u);
  EXPECT_GE(pool.slot_count(), 1u);
  bool called = false;
  EXPECT_TRUE(pool.Run(
                      0, [&](size_t, size_t) { return called = true; },
                      [&](size_t, size_t, size_t) { called = true; })
                  .ok());
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace pbskit
