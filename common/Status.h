//===- Status.h - errors as values for code built without exceptions ------===//
//
// LLVM (and so all of aimc) builds with -fno-exceptions. common/ does not link
// LLVM, so it cannot use llvm::Expected; this is the small equivalent.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_COMMON_STATUS_H
#define AIMC_COMMON_STATUS_H

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace aim {

/// Success, or a message for a person: what is wrong and how to fix it.
class Status {
public:
  static Status ok() { return Status(); }
  static Status error(std::string message) {
    Status s;
    s.message_ = std::move(message);
    s.failed_ = true;
    return s;
  }
  bool isOk() const { return !failed_; }
  explicit operator bool() const { return isOk(); }
  const std::string &message() const { return message_; }

private:
  bool failed_ = false;
  std::string message_;
};

/// A value or the Status that explains why there is none.
template <typename T> class StatusOr {
public:
  StatusOr(T value) : value_(std::move(value)) {}
  StatusOr(Status status) : status_(std::move(status)) {
    assert(!status_.isOk() && "StatusOr needs a value or an error");
  }
  bool isOk() const { return value_.has_value(); }
  explicit operator bool() const { return isOk(); }
  const Status &status() const { return status_; }
  T &operator*() { return *value_; }
  const T &operator*() const { return *value_; }
  T *operator->() { return &*value_; }
  const T *operator->() const { return &*value_; }

private:
  std::optional<T> value_;
  Status status_;
};

} // namespace aim

#endif // AIMC_COMMON_STATUS_H
