// The open-files limit (RLIMIT_NOFILE) against max_connections. Every command
// connection is a descriptor, and service managers start daemons with a low
// soft limit (systemd: 1024) under a much higher hard one: a server that
// keeps the soft limit fails accept() with EMFILE long before max_connections.
#pragma once

#include <dtcall/result.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace dtcalld {

// Descriptors that are not connections: stdio, the log file, listeners and
// UDP sockets (two per listen address), libevent's epoll and notify fds.
constexpr std::uint64_t reserved_descriptors = 64;

struct OpenFilesLimit {
    std::uint64_t before = 0;  // soft limit found at start
    std::uint64_t now = 0;     // soft limit after raising it to the hard one
    bool unlimited = false;    // hard limit RLIM_INFINITY (not on Linux)
};

// Raises the soft limit to the hard limit. The error (getrlimit/setrlimit
// failed) is one line; the caller logs it and carries on with what it has.
dtcall::Result<OpenFilesLimit> raise_open_files_limit();

// Empty when max_connections fits under `limit` with reserved_descriptors to
// spare, else one warning line starting with `where` (the conf file and line
// of max_connections, or the conf file when it is the default).
std::string connection_limit_warning(std::size_t max_connections, std::uint64_t limit, const std::string& where);

}  // namespace dtcalld
