// dtcall-bench: load generator and measuring tool for dtcalld and any server
// speaking the DT Call protocol. See dtcall-bench(1).
#include "bench.hpp"

#include <dtcall/version.hpp>

#include <cstdio>
#include <exception>
#include <iostream>

int main(int argc, char** argv) {
    try {
        auto options = dtbench::parse_options(std::vector<std::string>(argv + 1, argv + argc));
        if (!options) {
            std::fprintf(stderr, "dtcall-bench: %s\n", options.error().c_str());
            return 2;
        }
        if (options->help) {
            std::cout << dtbench::usage_text();
            return 0;
        }
        if (options->version) {
            std::cout << "dtcall-bench " << dtcall::version() << '\n';
            return 0;
        }
        auto report = dtbench::run(*options);
        if (!report) {
            std::fprintf(stderr, "dtcall-bench: %s\n", report.error().c_str());
            return 1;
        }
        std::cout << (options->json ? dtbench::render_json(*report) : dtbench::render_table(*report)) << std::flush;
        if (!options->plot_file.empty())
            for (auto& note : report->notes)
                if (note.compare(0, 7, "--plot ") == 0) std::fprintf(stderr, "dtcall-bench: %s\n", note.c_str());
        if (report->measured_nothing) {
            std::fprintf(stderr, "dtcall-bench: nothing succeeded; see the report\n");
            return 1;
        }
        if (options->strict && !report->failures.empty()) {
            std::fprintf(stderr, "dtcall-bench: %zu failure(s); see the report\n", report->failures.size());
            return 1;
        }
        return 0;
    } catch (const std::exception& e) {
        // The library reports errors as values; this is for std::bad_alloc and the like.
        std::fprintf(stderr, "dtcall-bench: %s\n", e.what());
        return 1;
    }
}
