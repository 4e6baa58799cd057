// dtcalld: the DT Call signaling server, wire-compatible with dtoperator.
// See dtcalld(8).
#include "command_line.hpp"
#include "daemon.hpp"
#include "demo.hpp"

#include <dtcall/version.hpp>

#include <cstdio>
#include <exception>
#include <iostream>

int main(int argc, char** argv) {
    try {
        auto options = dtcalld::parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
        if (!options) {
            std::fprintf(stderr, "dtcalld: %s\n", options.error().c_str());
            return 2;
        }
        switch (options->action) {
        case dtcalld::Options::Action::help: std::cout << dtcalld::usage_text(); return 0;
        case dtcalld::Options::Action::version: std::cout << "dtcalld " << dtcall::version() << '\n'; return 0;
        case dtcalld::Options::Action::demo: return dtcalld::run_demo(std::cout);
        case dtcalld::Options::Action::run: return dtcalld::run_daemon(*options);
        }
        return 2;
    } catch (const std::exception& e) {
        // The library returns errors as values; this is for std::bad_alloc and
        // the like, so that even then the operator gets one line, not abort().
        std::fprintf(stderr, "dtcalld: %s\n", e.what());
        return 1;
    }
}
