#include "proc_stats.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>

namespace dtbench {
namespace {

// A /proc file whole; they are small, and reading stops at 1 MiB anyway.
// The error names the file and the reason: "cannot read PATH: REASON".
dtcall::Result<std::string> slurp(const std::string& path) {
    auto failed = [&path](int error) {
        return dtcall::Error{"cannot read " + path + ": " + std::strerror(error)};
    };
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return failed(errno);
    std::string text;
    char chunk[4096];
    for (;;) {
        ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int error = errno;
            ::close(fd);
            return failed(error);
        }
        if (n == 0) break;
        text.append(chunk, std::size_t(n));
        if (text.size() > (1u << 20)) break;
    }
    ::close(fd);
    return text;
}

dtcall::Result<std::uint64_t> field_kib(const std::string& path, const std::string& text, const char* name) {
    auto at = text.find(name);
    unsigned long long kib = 0;
    if (at == std::string::npos || std::sscanf(text.c_str() + at + std::strlen(name), " %llu", &kib) != 1) {
        const char* shown = name[0] == '\n' ? name + 1 : name;
        return dtcall::Error{"cannot read " + path + ": no \"" + std::string(shown) + "\" figure in it"};
    }
    return std::uint64_t(kib) * 1024;
}

dtcall::Result<std::uint64_t> drops_in(const std::string& path, std::uint16_t port) {
    auto text = slurp(path);
    if (!text) return dtcall::Error{text.error()};
    std::istringstream lines(*text);
    std::string line;
    std::getline(lines, line);  // header
    std::uint64_t total = 0;
    while (std::getline(lines, line)) {
        // "  sl  local_address rem_address st ... drops": the local port is
        // the hex after the first ':' of the second column, drops the last column.
        std::istringstream fields(line);
        std::string slot, local, last, word;
        fields >> slot >> local;
        while (fields >> word) last = word;
        auto colon = local.rfind(':');
        if (colon == std::string::npos || last.empty()) continue;
        unsigned long local_port = std::strtoul(local.c_str() + colon + 1, nullptr, 16);
        if (local_port == port) total += std::strtoull(last.c_str(), nullptr, 10);
    }
    return total;
}

}  // namespace

dtcall::Result<std::uint64_t> resident_bytes(pid_t pid) {
    std::string path = "/proc/" + std::to_string(pid) + "/status";
    auto text = slurp(path);
    if (!text) return dtcall::Error{text.error()};
    return field_kib(path, *text, "VmRSS:");
}

dtcall::Result<CpuSample> process_cpu(pid_t pid) {
    std::string dir = "/proc/" + std::to_string(pid);
    auto stat = slurp(dir + "/stat");
    if (!stat) return dtcall::Error{stat.error()};
    // The command name is in parentheses and may hold spaces: fields count
    // from the last ')'. utime and stime are fields 14 and 15.
    auto close = stat->rfind(')');
    if (close == std::string::npos || close + 2 > stat->size())
        return dtcall::Error{"cannot read " + dir + "/stat: not the format of a Linux /proc/PID/stat"};
    std::istringstream fields(stat->substr(close + 2));
    std::string word;
    unsigned long long utime = 0, stime = 0;
    int field = 3;
    for (; field <= 15 && fields >> word; ++field) {
        if (field == 14) utime = std::strtoull(word.c_str(), nullptr, 10);
        if (field == 15) stime = std::strtoull(word.c_str(), nullptr, 10);
    }
    if (field <= 15) return dtcall::Error{"cannot read " + dir + "/stat: it has no utime and stime fields"};
    long ticks = sysconf(_SC_CLK_TCK);
    if (ticks <= 0) ticks = 100;
    CpuSample sample;
    sample.user_ns = std::int64_t(utime * 1000000000ull / std::uint64_t(ticks));
    sample.system_ns = std::int64_t(stime * 1000000000ull / std::uint64_t(ticks));

    std::int64_t runtime = 0;
    bool any = false;
    if (DIR* tasks = opendir((dir + "/task").c_str())) {
        while (dirent* entry = readdir(tasks)) {
            if (entry->d_name[0] == '.') continue;
            auto schedstat = slurp(dir + "/task/" + entry->d_name + "/schedstat");
            if (!schedstat) continue;  // a thread that ended meanwhile
            runtime += std::strtoll(schedstat->c_str(), nullptr, 10);
            any = true;
        }
        closedir(tasks);
    }
    // Without schedstat, the tick counts are all there is.
    sample.runtime_ns = any ? runtime : sample.user_ns + sample.system_ns;
    return sample;
}

std::int64_t own_cpu_ns() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto ns = [](const timeval& tv) { return std::int64_t(tv.tv_sec) * 1000000000 + std::int64_t(tv.tv_usec) * 1000; };
    return ns(usage.ru_utime) + ns(usage.ru_stime);
}

dtcall::Result<std::uint64_t> udp_socket_drops(std::uint16_t port) {
    // Either table may be missing (a kernel without IPv6): one is enough.
    auto v4 = drops_in("/proc/net/udp", port);
    auto v6 = drops_in("/proc/net/udp6", port);
    if (!v4 && !v6) return dtcall::Error{v4.error() + "; " + v6.error()};
    return (v4 ? *v4 : 0) + (v6 ? *v6 : 0);
}

dtcall::Result<std::uint64_t> slab_bytes() {
    auto text = slurp("/proc/meminfo");
    if (!text) return dtcall::Error{text.error()};
    return field_kib("/proc/meminfo", *text, "\nSlab:");
}

std::uint64_t raise_open_files_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
        getrlimit(RLIMIT_NOFILE, &limit);
    }
    return limit.rlim_cur == RLIM_INFINITY ? (1u << 20) : std::uint64_t(limit.rlim_cur);
}

}  // namespace dtbench
