// `promtool check metrics` on a body, when promtool is on PATH (CI installs
// the prometheus package); otherwise the check is skipped with a message.
#pragma once

#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/wait.h>

namespace test_support {

inline bool promtool_found() { return std::system("command -v promtool >/dev/null 2>&1") == 0; }

// Checks that promtool accepts `body` with nothing to say (no lint warning).
inline void check_with_promtool(const std::string& body) {
    if (!promtool_found()) {
        MESSAGE("SKIPPED: promtool not on PATH (install prometheus to run `promtool check metrics`)");
        return;
    }
    TempDir dir;
    write_file(dir / "metrics.txt", body);
    std::string command = "promtool check metrics < '" + (dir / "metrics.txt") + "' 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::string output;
    char buffer[4096];
    while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
    int status = ::pclose(pipe);
    CHECK_MESSAGE(WIFEXITED(status), output);
    CHECK_MESSAGE(WEXITSTATUS(status) == 0, output);
    CHECK_MESSAGE(output.empty(), output);
}

}  // namespace test_support
