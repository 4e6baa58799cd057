#include "server/keepalive.hpp"

#include <algorithm>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace dtcall {

namespace {
constexpr int probe_interval_seconds = 10;
constexpr int probe_count = 6;
// The kernel's limit for TCP_KEEPIDLE and TCP_KEEPINTVL (MAX_TCP_KEEPIDLE).
constexpr long max_kernel_seconds = 32767;
}  // namespace

KeepalivePlan keepalive_plan(std::chrono::seconds idle) {
    KeepalivePlan plan;
    if (idle.count() <= 0) return plan;
    plan.on = true;
    plan.idle_seconds = int(std::min<long>(idle.count(), max_kernel_seconds));
    plan.interval_seconds = std::min(probe_interval_seconds, plan.idle_seconds);
    plan.probes = probe_count;
    return plan;
}

bool apply_keepalive(int fd, const KeepalivePlan& plan) {
    int on = plan.on ? 1 : 0;
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) != 0) return false;
    if (!plan.on) return true;
    return setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &plan.idle_seconds, sizeof plan.idle_seconds) == 0 &&
           setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &plan.interval_seconds, sizeof plan.interval_seconds) == 0 &&
           setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &plan.probes, sizeof plan.probes) == 0;
}

}  // namespace dtcall
