// A task logger for abort tests: it keeps the lines like MemoryTaskLogger and raises an abort
// flag when a line starting with a given text is logged for the n-th time, so a test can stop a
// GC or verify run at an exact point of its work.
#pragma once

#include <atomic>
#include <string>
#include <string_view>

#include "pbskit/datastore/task_log.h"

namespace pbskit::test {

class AbortOnLine : public MemoryTaskLogger {
 public:
  AbortOnLine(std::string prefix, int nth) : prefix_(std::move(prefix)), nth_(nth) {}
  void Info(std::string_view message) override {
    MemoryTaskLogger::Info(message);
    if (message.substr(0, prefix_.size()) == prefix_ && ++seen_ == nth_) flag_.store(true);
  }
  // The flag to hand to GcOptions::abort / VerifyOptions::abort.
  const std::atomic<bool>* flag() const { return &flag_; }
  bool raised() const { return flag_.load(); }

 private:
  std::string prefix_;
  int nth_;
  std::atomic<int> seen_{0};
  std::atomic<bool> flag_{false};
};

}  // namespace pbskit::test
