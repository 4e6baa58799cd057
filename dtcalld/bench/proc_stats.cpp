#include "proc_stats.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace dtbench {
namespace {

// A /proc file whole; they are small, and reading stops at 1 MiB anyway.
std::optional<std::string> slurp(const std::string& path) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::string text;
    char chunk[4096];
    while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
        text.append(chunk, std::size_t(in.gcount()));
        if (text.size() > (1u << 20)) break;
    }
    return text;
}

std::optional<std::uint64_t> field_kib(const std::string& text, const char* name) {
    auto at = text.find(name);
    if (at == std::string::npos) return std::nullopt;
    unsigned long long kib = 0;
    if (std::sscanf(text.c_str() + at + std::strlen(name), " %llu", &kib) != 1) return std::nullopt;
    return std::uint64_t(kib) * 1024;
}

std::optional<std::uint64_t> drops_in(const std::string& path, std::uint16_t port) {
    auto text = slurp(path);
    if (!text) return std::nullopt;
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

std::optional<std::uint64_t> resident_bytes(pid_t pid) {
    auto text = slurp("/proc/" + std::to_string(pid) + "/status");
    if (!text) return std::nullopt;
    return field_kib(*text, "VmRSS:");
}

std::optional<CpuSample> process_cpu(pid_t pid) {
    std::string dir = "/proc/" + std::to_string(pid);
    auto stat = slurp(dir + "/stat");
    if (!stat) return std::nullopt;
    // The command name is in parentheses and may hold spaces: fields count
    // from the last ')'. utime and stime are fields 14 and 15.
    auto close = stat->rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream fields(stat->substr(close + 2));
    std::string word;
    unsigned long long utime = 0, stime = 0;
    for (int field = 3; field <= 15 && fields >> word; ++field) {
        if (field == 14) utime = std::strtoull(word.c_str(), nullptr, 10);
        if (field == 15) stime = std::strtoull(word.c_str(), nullptr, 10);
    }
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
            if (!schedstat) continue;
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

std::optional<std::uint64_t> udp_socket_drops(std::uint16_t port) {
    auto v4 = drops_in("/proc/net/udp", port);
    auto v6 = drops_in("/proc/net/udp6", port);
    if (!v4 && !v6) return std::nullopt;
    return v4.value_or(0) + v6.value_or(0);
}

std::optional<std::uint64_t> slab_bytes() {
    auto text = slurp("/proc/meminfo");
    if (!text) return std::nullopt;
    return field_kib(*text, "\nSlab:");
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
