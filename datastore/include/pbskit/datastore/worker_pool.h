// WorkerPool: the one bounded two-stage pipeline (reader threads feeding worker threads) that
// verify, import and sync use, shaped like PBS's `read-threads` / `verify-threads`.
//
// The caller owns a fixed array of `slot_count()` slots (e.g. one reusable read buffer each).
// A job is a number 0..job_count-1 (an index into the caller's own job list). Reader threads
// claim jobs in ascending order, wait for a free slot, fill it (`read`), and hand it to a worker
// thread (`work`), which releases the slot when done. Nothing is allocated per job: queues are
// fixed rings sized by the slot count, so memory stays flat whatever the job count.
//
// With one reader thread the read order is exactly the job order (verify relies on this for its
// inode-ordered chunk reads).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <vector>

#include "pbskit/formats/status.h"

namespace pbskit {

struct WorkerPoolOptions {
  size_t read_threads = 1;  // PBS default-verification-readers
  size_t work_threads = 4;  // PBS default-verification-workers
  size_t slots = 0;         // 0: 2 * (read_threads + work_threads)
};

class WorkerPool {
 public:
  // Called on a reader thread with a free slot. Returns true to hand the slot to a worker,
  // false when the job is finished already (e.g. the read failed and was accounted for).
  using ReadFn = std::function<bool(size_t job, size_t slot)>;
  // Called on worker thread `worker` (0..work_threads-1) for a slot the read stage filled.
  using WorkFn = std::function<void(size_t job, size_t slot, size_t worker)>;

  // Thread counts below 1 are raised to 1. Threads are started by Run and joined before it
  // returns; the object itself holds no threads between runs.
  explicit WorkerPool(WorkerPoolOptions options = {});
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  size_t read_threads() const { return read_threads_; }
  size_t work_threads() const { return work_threads_; }
  size_t slot_count() const { return slots_; }

  // Runs jobs 0..job_count-1 through read then work and returns once every started job has
  // finished both stages. Returns OK, or the first status passed to Stop() during the run (jobs
  // not yet read are then skipped; those already read still get their work call). Not
  // reentrant: one Run at a time per pool. Exceptions thrown by the callbacks terminate.
  Status Run(size_t job_count, const ReadFn& read, const WorkFn& work);

  // Asks the running Run to stop early and return `why` (the first call wins). Thread safe;
  // may be called from the callbacks. A Stop outside a Run affects nothing.
  void Stop(Status why);
  // Ends the job sequence early and successfully: jobs numbered >= `job` are not started (use
  // when the job count is not known in advance, e.g. reading a stream until EOF). Thread safe;
  // effective only during a Run.
  void EndAt(size_t job);
  // True once Stop was called in the current run. Thread safe.
  bool stopping() const { return stop_.load(std::memory_order_relaxed); }

 private:
  void ReaderLoop(size_t job_count, const ReadFn& read);
  void WorkerLoop(size_t worker, const WorkFn& work);
  size_t AcquireFreeSlot();  // blocks; returns slots_ when stopping
  void ReleaseSlot(size_t slot);

  size_t read_threads_, work_threads_, slots_;
  std::atomic<size_t> next_job_{0};
  std::atomic<size_t> job_limit_{0};
  std::atomic<bool> stop_{false};

  std::mutex mu_;
  std::condition_variable free_cv_, ready_cv_;
  std::vector<size_t> free_;                      // stack of free slots
  std::vector<std::pair<size_t, size_t>> ready_;  // ring of (job, slot) awaiting work
  size_t ready_head_ = 0, ready_count_ = 0;
  size_t readers_running_ = 0;
  size_t free_waiters_ = 0, ready_waiters_ = 0;  // threads blocked on free_cv_ / ready_cv_
  Status stop_status_;
};

}  // namespace pbskit
