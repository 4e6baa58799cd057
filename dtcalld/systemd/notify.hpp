// systemd's readiness protocol (sd_notify(3)), the pure part: where
// $NOTIFY_SOCKET points, the messages dtcalld sends, and how often the
// watchdog wants to hear from us. No sockets here (notify_socket.hpp sends).
//
// We speak the protocol ourselves instead of linking libsystemd: it is one
// datagram of "KEY=VALUE" lines to an AF_UNIX socket, documented as a stable
// interface; doing it here costs ~60 lines, no new dependency (dtcalld also
// runs on hosts without systemd), and every byte is unit-tested.
#pragma once

#include <dtcall/result.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <sys/types.h>

namespace dtcalld::systemd {

// $NOTIFY_SOCKET as a socket address: "/run/systemd/notify" (a file) or
// "@name" (Linux's abstract namespace: a leading NUL byte instead of '@').
struct NotifyAddress {
    std::string sun_path;  // the bytes for sockaddr_un::sun_path, a NUL first when abstract
    bool abstract() const { return !sun_path.empty() && sun_path[0] == '\0'; }
    // What an operator would write: "@name" or the path.
    std::string text() const { return abstract() ? "@" + sun_path.substr(1) : sun_path; }
};

// nullopt when unset or empty (not started by systemd: nothing to tell).
// An error for what we cannot use: a relative path, another address family
// ("vsock:..."), or a name too long for sockaddr_un.
dtcall::Result<std::optional<NotifyAddress>> parse_notify_socket(const char* value);

// The watchdog as $WATCHDOG_USEC and $WATCHDOG_PID set it: how often to send
// WATCHDOG=1 (half the timeout, as sd_watchdog_enabled(3) advises), or
// nullopt when there is no watchdog for us (unset, 0 or unreadable usec, or a
// WATCHDOG_PID that is another process).
std::optional<std::chrono::microseconds> watchdog_interval(const char* usec, const char* pid, pid_t self);

// What STATUS= says, e.g. "3 users online, 1 call (0 ringing), 5 connections".
struct StatusFigures {
    std::size_t users_online = 0;
    std::size_t calls = 0;    // ringing, accepted and in progress
    std::size_t ringing = 0;  // of those, not yet answered
    std::size_t connections = 0;
    bool draining = false;
};
std::string status_text(const StatusFigures& figures);

// The datagrams dtcalld sends, one state change each.
std::string ready_message(const StatusFigures& figures);         // READY=1 + STATUS=
std::string status_message(const StatusFigures& figures);        // STATUS=
std::string reloading_message(std::uint64_t monotonic_usec);     // RELOADING=1 + MONOTONIC_USEC=
std::string stopping_message(const std::string& why);            // STOPPING=1 + STATUS=
inline std::string watchdog_message() { return "WATCHDOG=1"; }

}  // namespace dtcalld::systemd
