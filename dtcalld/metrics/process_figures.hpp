// The standard process_* figures, read from /proc/self the way Prometheus's
// own client libraries do. A file that cannot be read or parsed leaves its
// figures out (nullopt); nothing here throws or aborts.
#pragma once

#include "snapshot.hpp"

#include <string_view>

namespace dtcalld::metrics {

// The parts of /proc/self/stat we use. `ticks` is sysconf(_SC_CLK_TCK),
// `page` the page size, `boot_time` btime from /proc/stat (nullopt: no
// start time). Pure, so a test can feed it any text.
void parse_proc_stat(std::string_view stat, long ticks, long page, std::optional<double> boot_time,
                     ProcessFigures& out);

// btime (seconds since the epoch the system booted) from /proc/stat's text.
std::optional<double> parse_boot_time(std::string_view proc_stat);

// Everything, from this process's /proc/self and getrlimit().
ProcessFigures read_process_figures();

}  // namespace dtcalld::metrics
