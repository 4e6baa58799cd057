// Writing a file that must not exist yet (key files): created with exactly
// `mode`, whatever the umask or an inherited ACL, never overwriting, and
// removed again if the write fails half-way.
#pragma once

#include <dtcall/result.hpp>

#include <string>
#include <sys/types.h>

namespace dtcall {

Status write_new_file(const std::string& path, const std::string& text, mode_t mode);

}  // namespace dtcall
