// Reading a small configuration file without trusting it: only regular files,
// never more than `max_bytes` (a FIFO, /dev/zero or a huge file cannot hang
// the caller or exhaust memory). Errors name the path.
#pragma once

#include <dtcall/result.hpp>

#include <cstddef>
#include <string>

namespace dtcall {

Result<std::string> read_bounded(const std::string& path, std::size_t max_bytes, const char* what);

}  // namespace dtcall
