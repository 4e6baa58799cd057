#include "process_figures.hpp"

#include <charconv>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace dtcalld::metrics {
namespace {

// A small /proc file in one read loop; empty when it cannot be read.
std::string slurp(const char* path) {
    std::string text;
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return text;
    char buffer[4096];
    for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n <= 0) break;
        text.append(buffer, std::size_t(n));
        if (text.size() > (1u << 20)) break;
    }
    ::close(fd);
    return text;
}

std::optional<std::uint64_t> number(std::string_view word) {
    std::uint64_t n = 0;
    auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), n);
    if (ec != std::errc() || end != word.data() + word.size() || word.empty()) return std::nullopt;
    return n;
}

std::vector<std::string_view> words(std::string_view text) {
    std::vector<std::string_view> out;
    std::size_t at = 0;
    while (at < text.size()) {
        std::size_t start = text.find_first_not_of(" \n", at);
        if (start == std::string_view::npos) break;
        std::size_t end = text.find_first_of(" \n", start);
        if (end == std::string_view::npos) end = text.size();
        out.push_back(text.substr(start, end - start));
        at = end;
    }
    return out;
}

std::optional<std::uint64_t> count_open_fds() {
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) return std::nullopt;
    std::uint64_t n = 0;
    while (dirent* entry = ::readdir(dir)) {
        if (entry->d_name[0] != '.') ++n;
    }
    ::closedir(dir);
    return n > 0 ? n - 1 : 0;  // not the one readdir used
}

}  // namespace

void parse_proc_stat(std::string_view stat, long ticks, long page, std::optional<double> boot_time,
                     ProcessFigures& out) {
    // "pid (comm) state ppid ...": comm may hold blanks and ')', so the
    // fields start after the last ')'. Field N of proc(5) is at N - 3 here.
    std::size_t paren = stat.rfind(')');
    if (paren == std::string_view::npos) return;
    auto fields = words(stat.substr(paren + 1));
    auto field = [&](std::size_t n) -> std::optional<std::uint64_t> {
        if (n < 3 || n - 3 >= fields.size()) return std::nullopt;
        return number(fields[n - 3]);
    };
    auto utime = field(14), stime = field(15), start = field(22), vsize = field(23), rss = field(24);
    if (ticks > 0 && utime && stime) out.cpu_seconds = double(*utime + *stime) / double(ticks);
    if (ticks > 0 && start && boot_time) out.start_time_seconds = *boot_time + double(*start) / double(ticks);
    if (vsize) out.virtual_bytes = *vsize;
    if (page > 0 && rss) out.resident_bytes = *rss * std::uint64_t(page);
}

double boot_time_from_clocks(const timespec& realtime, const timespec& boottime) {
    auto seconds = [](const timespec& t) { return double(t.tv_sec) + double(t.tv_nsec) / 1e9; };
    return seconds(realtime) - seconds(boottime);
}

std::optional<double> process_start_time() {
    // Once, the first time (dtcalld asks at start): the clocks and
    // /proc/self/stat stay readable under ProcSubset=pid, /proc/stat not.
    static const std::optional<double> start = [] {
        timespec realtime{}, boottime{};
        if (::clock_gettime(CLOCK_REALTIME, &realtime) != 0 || ::clock_gettime(CLOCK_BOOTTIME, &boottime) != 0) {
            return std::optional<double>{};
        }
        ProcessFigures figures;
        parse_proc_stat(slurp("/proc/self/stat"), ::sysconf(_SC_CLK_TCK), ::sysconf(_SC_PAGESIZE),
                        boot_time_from_clocks(realtime, boottime), figures);
        return figures.start_time_seconds;
    }();
    return start;
}

std::optional<std::uint64_t> cached_open_fds(std::chrono::steady_clock::time_point now) {
    // Listing /proc/self/fd takes 15-30 ms at 19 000 descriptors: a burst of
    // scrapes must not load the event loop with it.
    static std::optional<std::uint64_t> count;
    static std::optional<std::chrono::steady_clock::time_point> counted_at;
    if (!counted_at || now - *counted_at >= open_fds_cache_time || now < *counted_at) {
        count = count_open_fds();
        counted_at = now;
    }
    return count;
}

ProcessFigures read_process_figures() {
    ProcessFigures out;
    parse_proc_stat(slurp("/proc/self/stat"), ::sysconf(_SC_CLK_TCK), ::sysconf(_SC_PAGESIZE), std::nullopt, out);
    out.start_time_seconds = process_start_time();
    out.open_fds = cached_open_fds(std::chrono::steady_clock::now());
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) out.max_fds = limit.rlim_cur;
    return out;
}

}  // namespace dtcalld::metrics
