// dtcall-bench as a library: the tool's main() and the smoke test both call
// run(). Everything a run needs hangs off its arguments; nothing is global.
#pragma once

#include "options.hpp"
#include "report.hpp"

#include <dtcall/result.hpp>

namespace dtbench {

// Runs one mode. Raises RLIMIT_NOFILE to its hard limit, ignores SIGPIPE and,
// with --pin, pins this process for the run (the previous CPU mask and
// SIGPIPE disposition are restored before returning). --plot is handled here.
dtcall::Result<Report> run(const Options& options);

}  // namespace dtbench
