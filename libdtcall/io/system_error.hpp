// An errno as an Error a caller can branch on: the kind from the errno, the
// message naming what failed.
#pragma once

#include <dtcall/result.hpp>

#include <cerrno>
#include <cstring>
#include <string>

namespace dtcall {

inline ErrorCode error_code_of_errno(int err) {
    switch (err) {
    case EADDRINUSE: return ErrorCode::address_in_use;
    case EADDRNOTAVAIL:
    case EAFNOSUPPORT: return ErrorCode::bad_address;
    case EACCES:
    case EPERM: return ErrorCode::permission;
    case ENOENT: return ErrorCode::not_found;
    default: return ErrorCode::io;
    }
}

// "what: strerror(err)", of the kind err says.
inline Error system_error(const std::string& what, int err) {
    return Error{error_code_of_errno(err), what + ": " + std::strerror(err)};
}

}  // namespace dtcall
