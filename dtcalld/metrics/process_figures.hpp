// The standard process_* figures, read from /proc/self the way Prometheus's
// own client libraries do. A file that cannot be read or parsed leaves its
// figures out (nullopt); nothing here throws or aborts.
#pragma once

#include "snapshot.hpp"

#include <chrono>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string_view>

namespace dtcalld::metrics {

// The parts of /proc/self/stat we use. `ticks` is sysconf(_SC_CLK_TCK),
// `page` the page size, `boot_time` when the system booted, in seconds
// since the epoch (nullopt: no start time). Pure, so a test can feed it any
// text.
void parse_proc_stat(std::string_view stat, long ticks, long page, std::optional<double> boot_time,
                     ProcessFigures& out);

// The boot time from two clock readings taken together: CLOCK_REALTIME
// minus CLOCK_BOOTTIME (what /proc/self/stat's starttime counts from).
// Not /proc/stat's btime: systemd's ProcSubset=pid hides /proc/stat.
double boot_time_from_clocks(const timespec& realtime, const timespec& boottime);

// This process's start time (seconds since the epoch), worked out the first
// time it is asked for and remembered; dtcalld asks at start.
std::optional<double> process_start_time();

// process_open_fds is counted by listing /proc/self/fd, which grows with the
// connections: the count is reused for this long.
constexpr std::chrono::seconds open_fds_cache_time{5};

// The open-fds count at `now`, listed again when the last is older than
// open_fds_cache_time.
std::optional<std::uint64_t> cached_open_fds(std::chrono::steady_clock::time_point now);

// Everything, from this process's /proc/self and getrlimit(); the open fds
// may be up to open_fds_cache_time old.
ProcessFigures read_process_figures();

}  // namespace dtcalld::metrics
