// libevent wants a timeval; we think in std::chrono.
#pragma once

#include <chrono>
#include <sys/time.h>

namespace dtcall {

inline timeval to_timeval(std::chrono::milliseconds ms) {
    timeval tv;
    tv.tv_sec = static_cast<long>(ms.count() / 1000);
    tv.tv_usec = static_cast<long>(ms.count() % 1000 * 1000);
    return tv;
}

}  // namespace dtcall
