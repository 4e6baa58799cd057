// TCP keepalive on command connections (libdtcall/server/keepalive.*): the
// plan built from Config::tcp_keepalive, and the options it sets on a real
// TCP socket. That the Server sets them on every accepted connection is in
// e2e_login_test.
#include "server/keepalive.hpp"

#include <dtcall/config.hpp>

#include <doctest/doctest.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace std::chrono_literals;
using dtcall::keepalive_plan;

namespace {

int option(int fd, int level, int name) {
    int value = -1;
    socklen_t length = sizeof value;
    REQUIRE(getsockopt(fd, level, name, &value, &length) == 0);
    return value;
}

}  // namespace

TEST_CASE("the default: probes after 60 s of silence, every 10 s, 6 of them: a dead host is gone at 2 minutes") {
    auto plan = keepalive_plan(dtcall::Config{}.tcp_keepalive);
    CHECK(plan.on);
    CHECK(plan.idle_seconds == 60);
    CHECK(plan.interval_seconds == 10);
    CHECK(plan.probes == 6);
    CHECK(plan.detection_time() == 120s);
    // Well before idle_timeout: keepalive is what notices a vanished host.
    CHECK(plan.detection_time() < dtcall::Config{}.idle_timeout);
}

TEST_CASE("0 is off; a short idle shortens the interval; the kernel's limit caps it") {
    CHECK_FALSE(keepalive_plan(0s).on);
    auto quick = keepalive_plan(5s);
    CHECK(quick.idle_seconds == 5);
    CHECK(quick.interval_seconds == 5);
    CHECK(quick.detection_time() == 35s);
    CHECK(keepalive_plan(100000s).idle_seconds == 32767);
}

TEST_CASE("apply_keepalive sets SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT; off clears it") {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    REQUIRE(dtcall::apply_keepalive(fd, keepalive_plan(60s)));
    CHECK(option(fd, SOL_SOCKET, SO_KEEPALIVE) == 1);
    CHECK(option(fd, IPPROTO_TCP, TCP_KEEPIDLE) == 60);
    CHECK(option(fd, IPPROTO_TCP, TCP_KEEPINTVL) == 10);
    CHECK(option(fd, IPPROTO_TCP, TCP_KEEPCNT) == 6);
    REQUIRE(dtcall::apply_keepalive(fd, keepalive_plan(0s)));
    CHECK(option(fd, SOL_SOCKET, SO_KEEPALIVE) == 0);
    ::close(fd);
}
