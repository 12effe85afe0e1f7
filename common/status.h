// Status and Result<T>: the one error type of ledgerkeep (LevelDB style).
//
// Every fallible function returns a Status or a Result<T>. Both are
// [[nodiscard]]: dropping an error has to be written out (`(void)` or
// `.IgnoreError()`), so a swallowed error is visible in the code. Exceptions
// never cross a thread or process boundary; code that calls throwing libraries
// converts at the edge.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace ledgerkeep {

// Codes are also sent on the wire (CommandResult.error_code): append only.
enum class StatusCode : uint16_t {
  kOk = 0,
  kInvalidArgument = 1,   // the caller's input is wrong; retrying won't help
  kNotFound = 2,
  kCorruption = 3,        // data failed a checksum / verifier / chain check
  kIOError = 4,
  kUnavailable = 5,       // a peer or destination cannot be reached now
  kPermissionDenied = 6,
  kTimeout = 7,
  kBusy = 8,              // another operation holds the resource
  kAborted = 9,
  kFailedPrecondition = 10,
  kInternal = 11,
  kAlreadyExists = 12,
  kNoSpace = 13,
  kExpired = 14,          // a command's deadline passed
};
constexpr uint16_t kMaxStatusCode = 14;

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status OK() { return {}; }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status Corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
  static Status IOError(std::string m) { return {StatusCode::kIOError, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
  static Status Timeout(std::string m) { return {StatusCode::kTimeout, std::move(m)}; }
  static Status Busy(std::string m) { return {StatusCode::kBusy, std::move(m)}; }
  static Status Aborted(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
  static Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
  static Status NoSpace(std::string m) { return {StatusCode::kNoSpace, std::move(m)}; }
  static Status Expired(std::string m) { return {StatusCode::kExpired, std::move(m)}; }

  // errno-based IO error: "<what>: <strerror(err)>"; ENOSPC maps to kNoSpace,
  // EACCES/EPERM to kPermissionDenied, ENOENT to kNotFound.
  static Status FromErrno(int err, std::string_view what);

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "Code: message", or "OK".
  std::string ToString() const;
  // A copy whose message is "<context>: <message>" (OK stays OK).
  Status WithContext(std::string_view context) const;
  // Explicitly drop an error (documents that ignoring it is intended).
  void IgnoreError() const {}

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}     // NOLINT: must not be OK

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T value_or(T other) const& { return ok() ? value() : std::move(other); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace ledgerkeep

#define LK_CONCAT_INNER(a, b) a##b
#define LK_CONCAT(a, b) LK_CONCAT_INNER(a, b)

#define LK_RETURN_IF_ERROR(expr)                 \
  do {                                           \
    ::ledgerkeep::Status lk_status_ = (expr);    \
    if (!lk_status_.ok()) return lk_status_;     \
  } while (0)

#define LK_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

#define LK_ASSIGN_OR_RETURN(lhs, expr) \
  LK_ASSIGN_OR_RETURN_IMPL(LK_CONCAT(lk_result_, __LINE__), lhs, expr)
