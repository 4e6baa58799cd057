#pragma once

#include <dtcall/export.hpp>

namespace dtcall {
// "0.1.0": the library's version, also printed by `dtcalld --version`.
DTCALL_API const char* version();
}  // namespace dtcall
