// The sending half of sd_notify(3): one AF_UNIX datagram socket, opened once,
// that sends each message to $NOTIFY_SOCKET. Never blocks (a full queue at
// systemd's end loses the message, as libsystemd's sd_notify would).
#pragma once

#include "notify.hpp"

#include <dtcall/result.hpp>

#include <optional>
#include <string>

namespace dtcalld::systemd {

class NotifySocket {
public:
    // nullopt when $NOTIFY_SOCKET is unset (nothing to tell); an error when
    // it is set to something unusable or no socket can be made.
    static dtcall::Result<std::optional<NotifySocket>> from_environment();
    static dtcall::Result<NotifySocket> open(const NotifyAddress& address);

    ~NotifySocket();
    NotifySocket(NotifySocket&& other) noexcept;
    NotifySocket& operator=(NotifySocket&& other) noexcept;
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;

    // One datagram; the error names the address and the reason.
    dtcall::Status send(const std::string& message) const;
    const NotifyAddress& address() const { return address_; }

private:
    NotifySocket(int fd, NotifyAddress address) : fd_(fd), address_(std::move(address)) {}
    int fd_ = -1;
    NotifyAddress address_;
};

}  // namespace dtcalld::systemd
