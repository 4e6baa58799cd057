// Loads ../shared/vectors/VECTORS.txt (path from $DTCALL_VECTORS) as name -> value.
#pragma once

#include "crypto/crypto.hpp"

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

namespace test_support {

inline std::string vectors_dir() {
    const char* dir = std::getenv("DTCALL_VECTORS");
    return dir ? dir : "../shared/vectors";
}

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

inline std::map<std::string, std::string> load_vectors() {
    std::map<std::string, std::string> out;
    std::istringstream in(read_file(vectors_dir() + "/VECTORS.txt"));
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        auto colon = line.find(": ");
        if (colon == std::string::npos) continue;
        out[line.substr(0, colon)] = line.substr(colon + 2);
    }
    return out;
}

inline dtcall::Bytes hex(const std::string& text) {
    dtcall::Bytes out;
    for (std::size_t i = 0; i + 1 < text.size(); i += 2) out.push_back(std::uint8_t(std::stoi(text.substr(i, 2), nullptr, 16)));
    return out;
}

inline std::string as_text(const dtcall::Bytes& b) { return std::string(b.begin(), b.end()); }

}  // namespace test_support
