// systemd's notify protocol as dtcalld speaks it (dtcalld/systemd/): where
// $NOTIFY_SOCKET points, the watchdog's period, the exact datagrams, and a
// NotifySocket delivering them to a socket of the test (a file and an
// abstract name). The daemon's use of it is in dtcalld_process_test.
#include "systemd/notify.hpp"
#include "systemd/notify_socket.hpp"

#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <cstddef>
#include <cstring>
#include <string>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

using namespace std::chrono_literals;
using dtcalld::systemd::NotifyAddress;
using dtcalld::systemd::NotifySocket;
using dtcalld::systemd::parse_notify_socket;
using dtcalld::systemd::StatusFigures;
using dtcalld::systemd::watchdog_interval;

namespace {

// A SOCK_DGRAM socket bound where systemd's would be; receives with a 2 s limit.
struct Listener {
    int fd = -1;
    explicit Listener(const NotifyAddress& address) {
        fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        sockaddr_un at{};
        at.sun_family = AF_UNIX;
        std::memcpy(at.sun_path, address.sun_path.data(), address.sun_path.size());
        auto length = socklen_t(offsetof(sockaddr_un, sun_path) + address.sun_path.size() + (address.abstract() ? 0 : 1));
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&at), length) == 0);
        timeval limit{2, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    }
    ~Listener() { ::close(fd); }
    std::string receive() const {
        char buffer[4096];
        ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        return n < 0 ? std::string("(nothing)") : std::string(buffer, std::size_t(n));
    }
};

}  // namespace

TEST_CASE("NOTIFY_SOCKET: unset or empty is off; a path or @abstract name; anything else an error") {
    CHECK(parse_notify_socket(nullptr).ok());
    CHECK_FALSE(parse_notify_socket(nullptr)->has_value());
    CHECK_FALSE(parse_notify_socket("")->has_value());

    auto path = parse_notify_socket("/run/systemd/notify");
    REQUIRE(path.ok());
    REQUIRE(path->has_value());
    CHECK((*path)->sun_path == "/run/systemd/notify");
    CHECK_FALSE((*path)->abstract());
    CHECK((*path)->text() == "/run/systemd/notify");

    // '@' stands for the leading NUL byte of Linux's abstract namespace.
    auto abstract = parse_notify_socket("@dtcall/notify");
    REQUIRE(abstract.ok());
    REQUIRE(abstract->has_value());
    CHECK((*abstract)->sun_path == std::string("\0dtcall/notify", 14));
    CHECK((*abstract)->abstract());
    CHECK((*abstract)->text() == "@dtcall/notify");

    CHECK(parse_notify_socket("run/notify").error() == "NOTIFY_SOCKET=run/notify: not a socket path or @name");
    CHECK_FALSE(parse_notify_socket("vsock:2:1234").ok());
    CHECK_FALSE(parse_notify_socket("@").ok());
    // sun_path holds 108 bytes: a path may use 107 (then its NUL), a name all 108.
    CHECK(parse_notify_socket(("/" + std::string(106, 'x')).c_str()).ok());
    CHECK_FALSE(parse_notify_socket(("/" + std::string(107, 'x')).c_str()).ok());
    CHECK(parse_notify_socket(("@" + std::string(107, 'x')).c_str()).ok());
    CHECK_FALSE(parse_notify_socket(("@" + std::string(108, 'x')).c_str()).ok());
}

TEST_CASE("the watchdog: half of WATCHDOG_USEC, only when WATCHDOG_PID is unset or ours") {
    CHECK(watchdog_interval("200000", nullptr, 42) == 100000us);
    CHECK(watchdog_interval("30000000", "", 42) == 15s);
    CHECK(watchdog_interval("30000000", "42", 42) == 15s);
    CHECK_FALSE(watchdog_interval("30000000", "41", 42).has_value());  // another process's watchdog
    CHECK_FALSE(watchdog_interval("30000000", "4x", 42).has_value());
    CHECK_FALSE(watchdog_interval(nullptr, nullptr, 42).has_value());
    CHECK_FALSE(watchdog_interval("0", nullptr, 42).has_value());
    CHECK_FALSE(watchdog_interval("-5", nullptr, 42).has_value());
    CHECK_FALSE(watchdog_interval("30s", nullptr, 42).has_value());
    CHECK(watchdog_interval("1", nullptr, 42) == 1us);  // never a zero period
}

TEST_CASE("the datagrams: READY with STATUS, STATUS, RELOADING with MONOTONIC_USEC, STOPPING, WATCHDOG") {
    StatusFigures f;
    f.users_online = 3;
    f.calls = 1;
    f.ringing = 0;
    f.connections = 5;
    CHECK(dtcalld::systemd::status_text(f) == "3 users online, 1 call (0 ringing), 5 connections");
    CHECK(dtcalld::systemd::ready_message(f) == "READY=1\nSTATUS=3 users online, 1 call (0 ringing), 5 connections");
    CHECK(dtcalld::systemd::status_message(StatusFigures{1, 2, 2, 1, true}) ==
          "STATUS=draining: 1 user online, 2 calls (2 ringing), 1 connection");
    CHECK(dtcalld::systemd::reloading_message(123456789) == "RELOADING=1\nMONOTONIC_USEC=123456789");
    CHECK(dtcalld::systemd::stopping_message("stopping (SIGTERM)") == "STOPPING=1\nSTATUS=stopping (SIGTERM)");
    CHECK(dtcalld::systemd::watchdog_message() == "WATCHDOG=1");
}

TEST_CASE("NotifySocket delivers one datagram per message to a socket file and to an abstract name") {
    test_support::TempDir dir;
    auto file = parse_notify_socket((dir / "notify").c_str());
    REQUIRE(file.ok());
    Listener at_file(**file);
    auto to_file = NotifySocket::open(**file);
    REQUIRE(to_file.ok());
    REQUIRE(to_file->send("READY=1\nSTATUS=x").ok());
    REQUIRE(to_file->send("WATCHDOG=1").ok());
    CHECK(at_file.receive() == "READY=1\nSTATUS=x");
    CHECK(at_file.receive() == "WATCHDOG=1");

    std::string name = "@dtcall-notify-test-" + std::to_string(::getpid());
    auto abstract = parse_notify_socket(name.c_str());
    REQUIRE(abstract.ok());
    Listener at_name(**abstract);
    auto to_name = NotifySocket::open(**abstract);
    REQUIRE(to_name.ok());
    REQUIRE(to_name->send("STOPPING=1").ok());
    CHECK(at_name.receive() == "STOPPING=1");

    // Nobody listening: an error naming the address, never a crash or a block.
    auto gone = parse_notify_socket((dir / "nobody").c_str());
    auto to_nobody = NotifySocket::open(**gone);
    REQUIRE(to_nobody.ok());
    auto sent = to_nobody->send("READY=1");
    CHECK_FALSE(sent.ok());
    CHECK(sent.error().rfind("NOTIFY_SOCKET=" + dir.path + "/nobody: ", 0) == 0);
}

TEST_CASE("NotifySocket::from_environment: nothing without NOTIFY_SOCKET, an error for a bad one") {
    ::unsetenv("NOTIFY_SOCKET");
    auto none = NotifySocket::from_environment();
    REQUIRE(none.ok());
    CHECK_FALSE(none->has_value());
    ::setenv("NOTIFY_SOCKET", "relative/path", 1);
    CHECK_FALSE(NotifySocket::from_environment().ok());
    ::setenv("NOTIFY_SOCKET", "/run/some/notify", 1);
    auto some = NotifySocket::from_environment();
    REQUIRE(some.ok());
    REQUIRE(some->has_value());
    CHECK((*some)->address().text() == "/run/some/notify");
    ::unsetenv("NOTIFY_SOCKET");
}
