// Errors as values at the library boundary: nothing in libdtcall throws or exits
// on bad input; it returns a Result that says what was wrong and where.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace dtcall {

// A human-readable reason, written so it can be printed as one log/stderr line
// (it names the file, line or field when there is one).
struct Error {
    std::string message;
};

template <class T>
class Result {
public:
    Result(T value) : value_(std::move(value)) {}
    Result(Error error) : error_(std::move(error)) {}

    bool ok() const { return value_.has_value(); }
    explicit operator bool() const { return ok(); }
    T& value() { return *value_; }
    const T& value() const { return *value_; }
    T& operator*() { return *value_; }
    const T& operator*() const { return *value_; }
    T* operator->() { return &*value_; }
    const T* operator->() const { return &*value_; }
    const std::string& error() const { return error_.message; }

private:
    std::optional<T> value_;
    Error error_;
};

// For operations that succeed with nothing to return.
struct Done {};
using Status = Result<Done>;

}  // namespace dtcall
