#include <dtcall/version.hpp>

#include "dtcall_version.h"

namespace dtcall {
const char* version() { return DTCALL_VERSION; }
}  // namespace dtcall
