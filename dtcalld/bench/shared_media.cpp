#include "shared_media.hpp"

#include <event2/event.h>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace dtbench {
namespace {

constexpr std::uint32_t first_address = 0x7F400001;  // 127.64.0.1
constexpr int datagrams_per_wakeup = 256;

}  // namespace

SharedMedia::~SharedMedia() {
    stop_events();
    if (event_) event_free(event_);
    if (fd_ >= 0) ::close(fd_);
}

in_addr SharedMedia::address_of(std::size_t party) {
    in_addr address;
    address.s_addr = htonl(first_address + std::uint32_t(party));
    return address;
}

std::size_t SharedMedia::party_of(in_addr address) {
    std::uint32_t host = ntohl(address.s_addr);
    if (host < first_address || host - first_address >= max_parties) return ~std::size_t(0);
    return host - first_address;
}

std::size_t SharedMedia::control_size() { return CMSG_SPACE(sizeof(in_pktinfo)); }

std::size_t SharedMedia::put_source(void* buffer, std::size_t party) {
    std::memset(buffer, 0, control_size());
    auto* header = static_cast<cmsghdr*>(buffer);
    header->cmsg_level = IPPROTO_IP;
    header->cmsg_type = IP_PKTINFO;
    header->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
    in_pktinfo info{};
    info.ipi_spec_dst = address_of(party);
    std::memcpy(CMSG_DATA(header), &info, sizeof info);
    return control_size();
}

bool SharedMedia::destination(const msghdr& message, in_addr& address) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(const_cast<msghdr*>(&message), c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            in_pktinfo info;
            std::memcpy(&info, CMSG_DATA(c), sizeof info);
            address = info.ipi_addr;
            return true;
        }
    }
    return false;
}

dtcall::Status SharedMedia::open(const sockaddr_in& relay) {
    relay_ = relay;
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return dtcall::Error{std::string("cannot open a UDP socket: ") + std::strerror(errno)};
    int one = 1;
    setsockopt(fd_, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    // Every party's replies queue here: as much room as the relay's own socket.
    int buffer_size = 8 * 1024 * 1024;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buffer_size, sizeof buffer_size);
    setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &buffer_size, sizeof buffer_size);
    sockaddr_in any{};
    any.sin_family = AF_INET;
    any.sin_addr.s_addr = htonl(INADDR_ANY);  // to receive for every 127.64.x.y
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0)
        return dtcall::Error{std::string("cannot bind the shared media socket: ") + std::strerror(errno)};
    return dtcall::Done{};
}

void SharedMedia::aim_parties(std::vector<sockaddr_in> relays, std::function<std::size_t(std::size_t)> node_of) {
    relays_ = std::move(relays);
    node_of_ = std::move(node_of);
}

dtcall::Status SharedMedia::watch(event_base* base, Receiver receiver) {
    receiver_ = std::move(receiver);
    buffer_.resize(65536);
    if (!event_) event_ = event_new(base, fd_, EV_READ | EV_PERSIST, on_readable, this);
    if (!event_ || event_add(event_, nullptr) != 0) return dtcall::Error{"cannot watch the shared media socket"};
    return dtcall::Done{};
}

void SharedMedia::stop_events() {
    if (event_) event_del(event_);
}

bool SharedMedia::send_from(std::size_t party, const std::uint8_t* data, std::size_t size) {
    alignas(cmsghdr) unsigned char control[64];
    iovec iov{const_cast<std::uint8_t*>(data), size};
    msghdr message{};
    sockaddr_in to = relay_of(party);
    message.msg_name = &to;
    message.msg_namelen = sizeof to;
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = put_source(control, party);
    return ::sendmsg(fd_, &message, MSG_DONTWAIT) == ssize_t(size);
}

void SharedMedia::on_readable(int, short, void* self) {
    auto& shared = *static_cast<SharedMedia*>(self);
    shared.drain(shared.receiver_);
}

void SharedMedia::drain(const Receiver& receiver) {
    if (buffer_.size() < 65536) buffer_.resize(65536);
    for (int i = 0; i < datagrams_per_wakeup; ++i) {
        alignas(cmsghdr) unsigned char control[64];
        iovec iov{buffer_.data(), buffer_.size()};
        msghdr message{};
        message.msg_iov = &iov;
        message.msg_iovlen = 1;
        message.msg_control = control;
        message.msg_controllen = sizeof control;
        ssize_t got = ::recvmsg(fd_, &message, MSG_DONTWAIT);
        if (got < 0) {
            if (errno == EINTR) continue;
            return;
        }
        in_addr to;
        if (!destination(message, to)) continue;
        std::size_t party = party_of(to);
        if (party == ~std::size_t(0)) continue;
        receiver(party, buffer_.data(), std::size_t(got));
    }
}

}  // namespace dtbench
