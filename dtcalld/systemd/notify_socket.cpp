#include "notify_socket.hpp"

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace dtcalld::systemd {

dtcall::Result<std::optional<NotifySocket>> NotifySocket::from_environment() {
    using Found = dtcall::Result<std::optional<NotifySocket>>;
    auto parsed = parse_notify_socket(std::getenv("NOTIFY_SOCKET"));
    if (!parsed) return Found(parsed.failure());
    if (!*parsed) return Found(std::nullopt);
    auto opened = open(**parsed);
    if (!opened) return Found(opened.failure());
    return Found(std::optional<NotifySocket>(std::move(*opened)));
}

dtcall::Result<NotifySocket> NotifySocket::open(const NotifyAddress& address) {
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return dtcall::Error{"NOTIFY_SOCKET: cannot make a socket: " + std::string(std::strerror(errno))};
    return NotifySocket(fd, address);
}

NotifySocket::~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
}

NotifySocket::NotifySocket(NotifySocket&& other) noexcept : fd_(other.fd_), address_(std::move(other.address_)) {
    other.fd_ = -1;
}

NotifySocket& NotifySocket::operator=(NotifySocket&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = other.fd_;
        address_ = std::move(other.address_);
        other.fd_ = -1;
    }
    return *this;
}

dtcall::Status NotifySocket::send(const std::string& message) const {
    sockaddr_un to{};
    to.sun_family = AF_UNIX;
    std::memcpy(to.sun_path, address_.sun_path.data(), address_.sun_path.size());
    // An abstract name is exactly its bytes long; a path ends at its NUL.
    auto length = socklen_t(offsetof(sockaddr_un, sun_path) + address_.sun_path.size() + (address_.abstract() ? 0 : 1));
    ssize_t sent = ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&to), length);
    if (sent < 0) return dtcall::Error{"NOTIFY_SOCKET=" + address_.text() + ": " + std::strerror(errno)};
    return dtcall::Done{};
}

}  // namespace dtcalld::systemd
