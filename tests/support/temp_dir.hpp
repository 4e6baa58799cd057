// A scratch directory for one test, removed with everything in it afterwards.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <unistd.h>

namespace test_support {

struct TempDir {
    std::string path;
    TempDir() {
        const char* tmp = std::getenv("TMPDIR");
        std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/dtcall-test-XXXXXX";
        path = mkdtemp(pattern.data()) ? pattern : std::string();
        REQUIRE_FALSE(path.empty());
    }
    ~TempDir() {
        std::string command = "rm -rf '" + path + "'";
        (void)std::system(command.c_str());
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string operator/(const std::string& name) const { return path + "/" + name; }
};

inline void write_file(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
    REQUIRE(out.good());
}

}  // namespace test_support
