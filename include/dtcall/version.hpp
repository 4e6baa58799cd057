#pragma once

namespace dtcall {
// "0.1.0": the library's version, also printed by `dtcalld --version`.
const char* version();
}  // namespace dtcall
