// Errors as values at the library boundary: nothing in libdtcall throws or
// exits on bad input; it returns a Result that says what was wrong and where.
#pragma once

#include <dtcall/export.hpp>

#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace dtcall {

// What kind of failure, for code that branches on it. The message says the rest.
enum class ErrorCode {
    other,            // none of the below
    address_in_use,   // a port is taken (EADDRINUSE)
    bad_address,      // not an IP literal, or not an address of this host
    permission,       // EACCES/EPERM: a file, a low port, a socket path
    bad_config,       // a setting out of range or inconsistent
    bad_key,          // a key or key file that does not parse or is unusable
    io,               // reading or writing a file failed
    not_found,        // no such user, call, file
    not_logged_in,    // a Client command before login
    invalid_state,    // e.g. start() twice, a call command without a call
    invalid_argument, // a name or value the protocol cannot carry
    unavailable,      // a backing store (user directory) could not answer
};
DTCALL_API const char* to_string(ErrorCode code);

// A failure: its kind and a human-readable reason written as one log/stderr
// line (it names the file, line, field or address when there is one).
struct Error {
    ErrorCode code = ErrorCode::other;
    std::string message;

    Error() = default;
    Error(ErrorCode c, std::string m) : code(c), message(std::move(m)) {}
    explicit Error(std::string m) : message(std::move(m)) {}
};

namespace detail {
// value() on an error: prints the error to stderr and aborts (a bug in the caller).
[[noreturn]] DTCALL_API void bad_result_access(const std::string& message);
}  // namespace detail

template <class T>
class Result {
public:
    Result(T value) : value_(std::move(value)) {}
    Result(Error error) : error_(std::move(error)) {}
    // Anything a T can be made from: a directory may answer
    // `answer(key)` or `answer(std::nullopt)` for a Result<std::optional<PublicKey>>.
    template <class U, class = std::enable_if_t<!std::is_same_v<std::decay_t<U>, Result> &&
                                                !std::is_same_v<std::decay_t<U>, Error> &&
                                                !std::is_same_v<std::decay_t<U>, T> &&
                                                std::is_constructible_v<T, U&&>>>
    Result(U&& value) : value_(T(std::forward<U>(value))) {}

    bool ok() const { return value_.has_value(); }
    explicit operator bool() const { return ok(); }
    // The value; calling these on an error aborts with the error's message.
    T& value() { return *checked(); }
    const T& value() const { return *checked(); }
    T& operator*() { return value(); }
    const T& operator*() const { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    // On an error: its message and kind (empty and ErrorCode::other on success).
    const std::string& error() const { return error_.message; }
    ErrorCode code() const { return error_.code; }
    const Error& failure() const { return error_; }

private:
    const std::optional<T>& checked() const {
        if (!value_) detail::bad_result_access(error_.message);
        return value_;
    }
    std::optional<T>& checked() {
        if (!value_) detail::bad_result_access(error_.message);
        return value_;
    }
    std::optional<T> value_;
    Error error_;
};

// For operations that succeed with nothing to return.
struct Done {};
using Status = Result<Done>;

}  // namespace dtcall
