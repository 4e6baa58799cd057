#include "open_files.hpp"

#include <cerrno>
#include <cstring>
#include <sys/resource.h>

namespace dtcalld {

dtcall::Result<OpenFilesLimit> raise_open_files_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        return dtcall::Error{std::string("cannot read the open files limit: ") + std::strerror(errno)};
    }
    OpenFilesLimit out;
    out.before = limit.rlim_cur;
    out.now = limit.rlim_cur;
    // RLIM_INFINITY is refused as a soft NOFILE limit on Linux; elsewhere it
    // means there is nothing to raise to nor to warn about.
    if (limit.rlim_max == RLIM_INFINITY) {
        out.unlimited = limit.rlim_cur == RLIM_INFINITY;
        return out;
    }
    if (limit.rlim_cur >= limit.rlim_max) return out;
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
        return dtcall::Error{"cannot raise the open files limit from " + std::to_string(out.before) + " to " +
                             std::to_string(limit.rlim_max) + ": " + std::strerror(errno)};
    }
    out.now = limit.rlim_cur;
    return out;
}

std::string connection_limit_warning(std::size_t max_connections, std::uint64_t limit, const std::string& where) {
    std::uint64_t usable = limit > reserved_descriptors ? limit - reserved_descriptors : 0;
    if (max_connections <= usable) return {};
    return where + "max_connections: " + std::to_string(max_connections) + " connections need " +
           std::to_string(max_connections + reserved_descriptors) + " open files, but the limit is " +
           std::to_string(limit) + ", room for " + std::to_string(usable) +
           " connections; raise LimitNOFILE= (systemd) or ulimit -Hn, or lower max_connections";
}

}  // namespace dtcalld
