// dtcalld --demo: the whole product in one command, with nothing to set up.
#pragma once

#include <ostream>

namespace dtcalld {

// Runs an in-process server on 127.0.0.1 (throwaway keys, users alice and
// bob, free ports) and drives a scripted call between two built-in clients
// through it: login, ring, accept, voice key, media registration, media both
// ways, hang-up. Prints one line per step to `out`. Returns 0 when every step
// happened and all media arrived intact, 1 otherwise (or after 10 s).
int run_demo(std::ostream& out);

}  // namespace dtcalld
