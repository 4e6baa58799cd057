// One recvmmsg's worth of datagrams in, one sendmmsg's worth out: the
// buffers the relay's main loop and each relay thread own, one set each.
#pragma once

#include "relay/node_wrap.hpp"

#include <cstdint>
#include <cstring>
#include <memory>

#include <sys/socket.h>

namespace dtcall {

class DatagramBatch {
public:
    static constexpr unsigned size = 32;
    static constexpr std::size_t slot_size = 65536;  // whole datagrams, up to 64 KiB

    // Fill the batch from `fd` (non-blocking); the count read, 0 when none.
    unsigned receive(int fd) {
        for (unsigned i = 0; i < size; ++i) {
            in_iov_[i] = {buffers_.get() + i * slot_size, slot_size};
            in_[i].msg_hdr = {};
            in_[i].msg_hdr.msg_name = &from_[i];
            in_[i].msg_hdr.msg_namelen = sizeof from_[i];
            in_[i].msg_hdr.msg_iov = &in_iov_[i];
            in_[i].msg_hdr.msg_iovlen = 1;
        }
        outgoing_ = 0;
        int received = ::recvmmsg(fd, in_, size, MSG_DONTWAIT, nullptr);
        return received > 0 ? unsigned(received) : 0;  // EAGAIN or transient: the next event retries
    }

    std::uint8_t* data(unsigned i) { return buffers_.get() + std::size_t(i) * slot_size; }
    std::size_t length(unsigned i) const { return in_[i].msg_len; }
    bool truncated(unsigned i) const { return (in_[i].msg_hdr.msg_flags & MSG_TRUNC) != 0; }
    const sockaddr* from(unsigned i) const { return reinterpret_cast<const sockaddr*>(&from_[i]); }
    int from_length(unsigned i) const { return int(in_[i].msg_hdr.msg_namelen); }

    // Send received datagram `i` to `to` through `fd` at the next flush().
    // The address is copied: a registration later in the same batch may
    // move the table it came from.
    void forward(unsigned i, const sockaddr* to, socklen_t to_length, int fd) {
        forward_part(i, 0, length(i), to, to_length, fd);
    }

    // Only bytes [offset, offset + size) of datagram `i` (what another node
    // wrapped: the client's datagram inside).
    void forward_part(unsigned i, std::size_t offset, std::size_t size, const sockaddr* to, socklen_t to_length,
                      int fd) {
        unsigned o = next_out(to, to_length, fd);
        out_iov_[o][0] = {data(i) + offset, size};
        out_[o].msg_hdr.msg_iovlen = 1;
    }

    // Datagram `i` wrapped for another node (NodeWrap): false, and nothing
    // queued, when it would not fit one UDP datagram.
    bool forward_wrapped(unsigned i, const NodeWrap& wrap, const sockaddr* to, socklen_t to_length, int fd) {
        if (!wrap.fits(length(i))) return false;
        unsigned o = next_out(to, to_length, fd);
        wrap.seal(data(i), length(i), wrap_header_[o], wrap_tag_[o]);
        out_iov_[o][0] = {wrap_header_[o], wrap.header_size()};
        out_iov_[o][1] = {data(i), length(i)};
        out_iov_[o][2] = {wrap_tag_[o], cluster::tag_size};
        out_[o].msg_hdr.msg_iovlen = 3;
        return true;
    }

    // One sendmmsg per run of datagrams leaving through the same socket (one
    // run unless IPv4 and IPv6 sockets are both in play). Returns how many
    // the kernel refused (buffer full): UDP may lose them.
    unsigned flush() {
        unsigned refused = 0;
        for (unsigned run = 0; run < outgoing_;) {
            unsigned end = run + 1;
            while (end < outgoing_ && out_fd_[end] == out_fd_[run]) ++end;
            for (unsigned sent = run; sent < end;) {
                int n = ::sendmmsg(out_fd_[run], out_ + sent, end - sent, MSG_DONTWAIT);
                if (n <= 0) {
                    refused += end - sent;
                    break;
                }
                sent += unsigned(n);
            }
            run = end;
        }
        outgoing_ = 0;
        return refused;
    }

private:
    unsigned next_out(const sockaddr* to, socklen_t to_length, int fd) {
        unsigned o = outgoing_++;
        if (to_length > sizeof to_[o]) to_length = sizeof to_[o];
        std::memcpy(&to_[o], to, to_length);
        out_[o].msg_hdr = {};
        out_[o].msg_hdr.msg_name = &to_[o];
        out_[o].msg_hdr.msg_namelen = to_length;
        out_[o].msg_hdr.msg_iov = out_iov_[o];
        out_fd_[o] = fd;
        return o;
    }

    // 2 MiB of address space, but only the pages datagrams touch become resident.
    std::unique_ptr<std::uint8_t[]> buffers_{new std::uint8_t[size * slot_size]};
    mmsghdr in_[size];
    iovec in_iov_[size];
    sockaddr_storage from_[size];
    mmsghdr out_[size];
    iovec out_iov_[size][3];  // one, or three for a wrapped datagram
    std::uint8_t wrap_header_[size][NodeWrap::max_header];
    std::uint8_t wrap_tag_[size][cluster::tag_size];
    sockaddr_storage to_[size];
    int out_fd_[size];
    unsigned outgoing_ = 0;
};

}  // namespace dtcall
