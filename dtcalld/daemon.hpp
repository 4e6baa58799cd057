// dtcalld's normal job: read the settings directory, run a dtcall::Server in
// the foreground until SIGTERM/SIGINT. No forking: systemd and friends manage
// the process.
#pragma once

#include "command_line.hpp"

namespace dtcalld {

// Returns the process exit status: 0 after a clean stop, 1 when the settings,
// the log directory or the sockets are unusable (one line on stderr says why).
int run_daemon(const Options& options);

}  // namespace dtcalld
