#pragma once
// Errors as values. possync::errc numbers equal gRPC status codes so that an error
// crosses the wire unchanged; the mapping to grpc::Status lives in the node layer.

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace possync {

/// Error codes; numbers match grpc::StatusCode.
enum class errc : uint8_t {
  ok = 0,
  cancelled = 1,
  unknown = 2,
  invalid_argument = 3,    ///< malformed input: bad id, unknown collection, unparsable body
  deadline_exceeded = 4,
  not_found = 5,
  already_exists = 6,
  permission_denied = 7,   ///< outside the caller's tenant/branch scope, bad token
  resource_exhausted = 8,  ///< disk full, limits exceeded
  failed_precondition = 9, ///< store in a state that refuses the call (read-only after I/O error)
  aborted = 10,
  out_of_range = 11,
  unimplemented = 12,
  internal = 13,
  unavailable = 14,        ///< peer or store not reachable (retry later)
  data_loss = 15,          ///< corruption detected
  unauthenticated = 16,
};

/// Short lower-case name of a code ("invalid_argument").
const char* to_string(errc code) noexcept;

/// An error: a code a caller can react to plus a message a person can read.
struct [[nodiscard]] error {
  errc code = errc::ok;
  std::string message;

  error() = default;
  error(errc c, std::string msg) : code(c), message(std::move(msg)) {}
  explicit operator bool() const noexcept { return code != errc::ok; }
  /// "invalid_argument: id 'x y' has a character outside [A-Za-z0-9._:-]"
  std::string to_string() const;
};

/// A value or an error. Minimal C++17 stand-in for std::expected.
template <class T>
class [[nodiscard]] result {
public:
  result(T value) : v_(std::move(value)) {}
  result(error err) : v_(std::move(err)) {}
  explicit operator bool() const noexcept { return v_.index() == 0; }
  bool has_value() const noexcept { return v_.index() == 0; }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const error& err() const& { return std::get<1>(v_); }
  error&& err() && { return std::get<1>(std::move(v_)); }

private:
  std::variant<T, error> v_;
};

/// Result of an operation that yields nothing but may fail: an empty error is success.
using status = error;

} // namespace possync
