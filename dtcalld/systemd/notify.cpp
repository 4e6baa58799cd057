#include "notify.hpp"

#include <charconv>
#include <cstring>

#include <sys/un.h>

namespace dtcalld::systemd {

dtcall::Result<std::optional<NotifyAddress>> parse_notify_socket(const char* value) {
    using Parsed = dtcall::Result<std::optional<NotifyAddress>>;
    if (value == nullptr || *value == '\0') return Parsed(std::nullopt);
    std::string text = value;
    NotifyAddress address;
    if (text[0] == '@') {
        address.sun_path = std::string(1, '\0') + text.substr(1);
    } else if (text[0] == '/') {
        address.sun_path = text;
    } else {
        return Parsed(dtcall::Error{"NOTIFY_SOCKET=" + text + ": not a socket path or @name"});
    }
    // A path needs its terminating NUL; an abstract name does not.
    std::size_t room = sizeof(sockaddr_un{}.sun_path) - (address.abstract() ? 0 : 1);
    if (address.sun_path.size() > room || address.sun_path.size() < 2)
        return Parsed(dtcall::Error{"NOTIFY_SOCKET=" + text + ": bad socket name length"});
    return Parsed(std::optional<NotifyAddress>(std::move(address)));
}

namespace {

std::optional<std::uint64_t> number(const char* text) {
    if (text == nullptr || *text == '\0') return std::nullopt;
    std::uint64_t n = 0;
    const char* end = text + std::strlen(text);
    auto [at, error] = std::from_chars(text, end, n);
    if (error != std::errc() || at != end) return std::nullopt;
    return n;
}

}  // namespace

std::optional<std::chrono::microseconds> watchdog_interval(const char* usec, const char* pid, pid_t self) {
    auto timeout = number(usec);
    if (!timeout || *timeout == 0) return std::nullopt;
    // Set for another process (a parent that spawned us and kept it): not ours.
    if (pid != nullptr && *pid != '\0') {
        auto owner = number(pid);
        if (!owner || *owner != std::uint64_t(self)) return std::nullopt;
    }
    return std::chrono::microseconds(*timeout / 2 > 0 ? *timeout / 2 : 1);
}

std::string status_text(const StatusFigures& f) {
    std::string text = f.draining ? "draining: " : "";
    text += std::to_string(f.users_online) + (f.users_online == 1 ? " user" : " users") + " online, ";
    text += std::to_string(f.calls) + (f.calls == 1 ? " call" : " calls");
    text += " (" + std::to_string(f.ringing) + " ringing), ";
    text += std::to_string(f.connections) + (f.connections == 1 ? " connection" : " connections");
    return text;
}

std::string ready_message(const StatusFigures& figures) { return "READY=1\nSTATUS=" + status_text(figures); }

std::string status_message(const StatusFigures& figures) { return "STATUS=" + status_text(figures); }

std::string reloading_message(std::uint64_t monotonic_usec) {
    return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec);
}

std::string stopping_message(const std::string& why) { return "STOPPING=1\nSTATUS=" + why; }

}  // namespace dtcalld::systemd
