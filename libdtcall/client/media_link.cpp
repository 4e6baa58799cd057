#include "client/media_link.hpp"

#include <event2/event.h>
#include <event2/util.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <unistd.h>

namespace dtcall::client_side {
namespace {

// Larger than any datagram the server relays by default (its max_datagram),
// so nothing arrives truncated.
constexpr std::size_t max_datagram = 65536;
// Datagrams read per wakeup: enough to drain a burst, small enough that one
// busy socket cannot starve the rest of the loop.
constexpr int reads_per_event = 64;

}  // namespace

MediaLink::~MediaLink() { close(); }

Status MediaLink::open(const sockaddr* server, int length) {
    if (length <= 0 || std::size_t(length) > sizeof server_) return Error{ErrorCode::bad_address, "bad media address"};
    if (fd_ >= 0 && server->sa_family != server_.ss_family) close();
    std::memcpy(&server_, server, std::size_t(length));
    server_length_ = socklen_t(length);
    if (fd_ >= 0) return Done{};

    fd_ = ::socket(server->sa_family, SOCK_DGRAM, 0);
    if (fd_ < 0) return Error{ErrorCode::io, std::string("cannot open a UDP socket: ") + std::strerror(errno)};
    evutil_make_socket_nonblocking(fd_);
    evutil_make_socket_closeonexec(fd_);
    read_event_ = event_new(base_, fd_, EV_READ | EV_PERSIST, on_readable, this);
    if (!read_event_ || event_add(read_event_, nullptr) != 0) {
        close();
        return Error{ErrorCode::io, "cannot watch the UDP socket"};
    }
    buffer_.resize(max_datagram);
    return Done{};
}

bool MediaLink::send(const Bytes& datagram) {
    if (fd_ < 0) return false;
    return ::sendto(fd_, datagram.data(), datagram.size(), 0, reinterpret_cast<const sockaddr*>(&server_),
                    server_length_) == ssize_t(datagram.size());
}

void MediaLink::close() {
    if (read_event_) event_free(read_event_);
    read_event_ = nullptr;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

void MediaLink::on_readable(int, short, void* arg) {
    auto& self = *static_cast<MediaLink*>(arg);
    for (int i = 0; i < reads_per_event && self.fd_ >= 0; ++i) {
        ssize_t got = ::recv(self.fd_, self.buffer_.data(), self.buffer_.size(), 0);
        if (got < 0) {
            // An ICMP error from an earlier send surfaces here; it is not fatal.
            if (errno == EINTR || errno == ECONNREFUSED) continue;
            return;
        }
        // The source is not checked: only datagrams that authenticate under
        // our keys mean anything, the rest are dropped by the receiver.
        self.receiver_(self.buffer_.data(), std::size_t(got));
    }
}

}  // namespace dtcall::client_side
