// TCP keepalive on command connections (Config::tcp_keepalive): a phone that
// vanished without closing (network lost, battery out) is noticed by the
// kernel, which probes a silent connection and resets it when nobody
// answers; the session then closes as if the peer had gone, and the user is
// no longer online. The plan is pure (tested as such); apply() sets it.
#pragma once

#include <chrono>

namespace dtcall {

struct KeepalivePlan {
    bool on = false;
    int idle_seconds = 0;      // TCP_KEEPIDLE: silence before the first probe
    int interval_seconds = 0;  // TCP_KEEPINTVL: between probes
    int probes = 0;            // TCP_KEEPCNT: unanswered probes before the reset
    // Time from the last byte to the reset of a dead peer's connection.
    std::chrono::seconds detection_time() const {
        return std::chrono::seconds(idle_seconds + interval_seconds * probes);
    }
};

// `idle` = 0: off. Otherwise probes every 10 s (or `idle` when shorter),
// 6 of them: 60 s of silence -> the connection is gone at 120 s.
KeepalivePlan keepalive_plan(std::chrono::seconds idle);

// Sets SO_KEEPALIVE and, when on, TCP_KEEPIDLE/KEEPINTVL/KEEPCNT on a TCP
// socket. False when the kernel refused one of them (the connection is
// served anyway, without the probes).
bool apply_keepalive(int fd, const KeepalivePlan& plan);

}  // namespace dtcall
