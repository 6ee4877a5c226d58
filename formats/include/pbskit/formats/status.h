// Status and Result<T>: errors as values at every module boundary.
//
// A Status is either OK or carries a Code and a message. The message names the object (file,
// chunk digest, snapshot) and says what was expected, e.g.
//   "chunk 0a3f…: crc mismatch (stored 0x1234abcd, computed 0x99887766)".
// A transient read error is IoError, never Corruption: callers rename chunks to .bad only on
// Corruption.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace pbskit {

enum class Code {
  kOk = 0,
  kNotFound,
  kCorruption,
  kIoError,
  kInvalidArgument,
  kPermissionDenied,
  kBusy,
  kUnsupported,
  kAborted,
  kAlreadyExists,
};

// Returns the stable lower-case name of a code ("not found", "corruption", ...).
const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status IoError(std::string m) { return {Code::kIoError, std::move(m)}; }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
  static Status Busy(std::string m) { return {Code::kBusy, std::move(m)}; }
  static Status Unsupported(std::string m) { return {Code::kUnsupported, std::move(m)}; }
  static Status Aborted(std::string m) { return {Code::kAborted, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
  // IoError from an errno value: "<what>: <strerror(err)>".
  static Status FromErrno(int err, const std::string& what);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsIoError() const { return code_ == Code::kIoError; }
  bool IsBusy() const { return code_ == Code::kBusy; }
  bool IsAborted() const { return code_ == Code::kAborted; }

  // The message alone for OK-less statuses ("OK" for OK). This is what users see.
  std::string ToString() const { return ok() ? std::string("OK") : message_; }
  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(const std::string& context) const {
    return ok() ? *this : Status(code_, context + ": " + message_);
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// Holds either a value or a non-OK Status. Accessing value() of an error aborts the process:
// callers check ok() first (or use PBSKIT_ASSIGN_OR_RETURN).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    if (status_.ok()) status_ = Status(Code::kAborted, "Result constructed from OK status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { Check(); return *value_; }
  const T& value() const& { Check(); return *value_; }
  T&& value() && { Check(); return std::move(*value_); }
  T* operator->() { Check(); return &*value_; }
  const T* operator->() const { Check(); return &*value_; }
  T& operator*() & { Check(); return *value_; }
  const T& operator*() const& { Check(); return *value_; }

 private:
  void Check() const {
    if (!value_) std::abort();
  }
  std::optional<T> value_;
  Status status_;
};

}  // namespace pbskit

#define PBSKIT_CONCAT_INNER(a, b) a##b
#define PBSKIT_CONCAT(a, b) PBSKIT_CONCAT_INNER(a, b)

// Returns the Status of `expr` from the current function unless it is OK.
#define PBSKIT_RETURN_IF_ERROR(expr)           \
  do {                                         \
    ::pbskit::Status _pbskit_st = (expr);      \
    if (!_pbskit_st.ok()) return _pbskit_st;   \
  } while (0)

// `lhs = value of expr`, or returns its Status from the current function.
#define PBSKIT_ASSIGN_OR_RETURN(lhs, expr) \
  PBSKIT_ASSIGN_OR_RETURN_IMPL(PBSKIT_CONCAT(_pbskit_r_, __LINE__), lhs, expr)
#define PBSKIT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
