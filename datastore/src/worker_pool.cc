#include "pbskit/datastore/worker_pool.h"

#include <algorithm>
#include <thread>
#include <utility>

namespace pbskit {

WorkerPool::WorkerPool(WorkerPoolOptions options)
    : read_threads_(std::max<size_t>(1, options.read_threads)),
      work_threads_(std::max<size_t>(1, options.work_threads)),
      slots_(options.slots ? options.slots : 2 * (read_threads_ + work_threads_)) {
  // A reader holding a slot must never wait for itself: at least one slot per reader.
  slots_ = std::max(slots_, read_threads_);
}

void WorkerPool::Stop(Status why) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!stop_.load()) {
    stop_status_ = why.ok() ? Status::Aborted("worker pool stopped") : std::move(why);
    stop_.store(true);
  }
  free_cv_.notify_all();
  ready_cv_.notify_all();
}

void WorkerPool::EndAt(size_t job) {
  size_t cur = job_limit_.load();
  while (job < cur && !job_limit_.compare_exchange_weak(cur, job)) {
  }
}

size_t WorkerPool::AcquireFreeSlot() {
  std::unique_lock<std::mutex> lock(mu_);
  if (free_.empty() && !stop_.load()) {
    ++free_waiters_;
    free_cv_.wait(lock, [&] { return !free_.empty() || stop_.load(); });
    --free_waiters_;
  }
  if (stop_.load()) return slots_;
  size_t slot = free_.back();
  free_.pop_back();
  return slot;
}

void WorkerPool::ReleaseSlot(size_t slot) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(slot);
    // A waiting reader is woken once a batch of slots is free, or at once when the workers are
    // about to run dry: one wake-up (and context switch) per batch of reads, not per chunk.
    // No lost wake-up: while the ready ring holds work, more releases follow, and the last of
    // them sees an empty ring.
    const size_t batch = std::max<size_t>(1, slots_ / 2);
    wake = free_waiters_ > 0 && (free_.size() >= batch || ready_count_ == 0);
  }
  if (wake) free_cv_.notify_all();
}

void WorkerPool::ReaderLoop(size_t job_count, const ReadFn& read) {
  for (;;) {
    if (stop_.load(std::memory_order_relaxed)) break;
    // Take the slot first, then the job number: with one reader this keeps reads in job order
    // and a job is never claimed by a reader that then gives up waiting for a slot.
    size_t slot = AcquireFreeSlot();
    if (slot == slots_) break;
    size_t job = next_job_.fetch_add(1);
    if (job >= job_count || job >= job_limit_.load()) {
      ReleaseSlot(slot);
      break;
    }
    if (!read(job, slot)) {
      ReleaseSlot(slot);
      continue;
    }
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Cannot overflow: the ring has one place per slot and each queued entry holds a slot.
      ready_[(ready_head_ + ready_count_) % slots_] = {job, slot};
      ++ready_count_;
      wake = ready_waiters_ > 0;
    }
    if (wake) ready_cv_.notify_one();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    --readers_running_;
  }
  ready_cv_.notify_all();
}

void WorkerPool::WorkerLoop(size_t worker, const WorkFn& work) {
  for (;;) {
    std::pair<size_t, size_t> item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (ready_count_ == 0 && readers_running_ > 0) {
        ++ready_waiters_;
        ready_cv_.wait(lock, [&] { return ready_count_ > 0 || readers_running_ == 0; });
        --ready_waiters_;
      }
      if (ready_count_ == 0) return;  // readers done and queue drained
      item = ready_[ready_head_];
      ready_head_ = (ready_head_ + 1) % slots_;
      --ready_count_;
    }
    work(item.first, item.second, worker);
    ReleaseSlot(item.second);
  }
}

Status WorkerPool::Run(size_t job_count, const ReadFn& read, const WorkFn& work) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    next_job_.store(0);
    job_limit_.store(job_count);
    stop_.store(false);
    stop_status_ = Status::OK();
    free_.clear();
    for (size_t i = slots_; i > 0; --i) free_.push_back(i - 1);  // slot 0 handed out first
    ready_.assign(slots_, {0, 0});
    ready_head_ = ready_count_ = 0;
    free_waiters_ = ready_waiters_ = 0;
    readers_running_ = read_threads_;
  }
  if (job_count == 0) return Status::OK();

  std::vector<std::thread> threads;
  threads.reserve(read_threads_ + work_threads_);
  for (size_t w = 0; w < work_threads_; ++w)
    threads.emplace_back([this, w, &work] { WorkerLoop(w, work); });
  for (size_t r = 0; r < read_threads_; ++r)
    threads.emplace_back([this, job_count, &read] { ReaderLoop(job_count, read); });
  for (auto& t : threads) t.join();

  std::lock_guard<std::mutex> lock(mu_);
  return stop_.load() ? stop_status_ : Status::OK();
}

}  // namespace pbskit
