// Many media parties on one UDP socket. Party i is the address
// 127.64.0.0 + i + 1 on one port: the socket is bound to 0.0.0.0:port, sends
// with IP_PKTINFO naming the party's source address, and learns from
// IP_PKTINFO which party a datagram arrived for. Every loopback address is
// local on Linux (127.0.0.0/8), so no setup is needed.
//
// Why: one socket per party costs the generator one send and one receive
// system call per packet, and on a virtual machine system calls dominate: the
// generator, not the relay, would be the limit. Here sendmmsg and recvmmsg
// carry 64 parties' packets per call. The relay sees what it would see from
// real clients: a distinct address per party (distinct IPs, as behind
// different NATs, rather than distinct ports of one IP).
//
// Only for an IPv4 loopback relay (in-process, or --host 127.x.y.z).
#pragma once

#include <dtcall/result.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <netinet/in.h>
#include <vector>

struct event;
struct event_base;

namespace dtbench {

class SharedMedia {
public:
    using Receiver = std::function<void(std::size_t party, const std::uint8_t* data, std::size_t size)>;

    // Most parties one socket can stand for (127.64.0.1 ... 127.127.255.254).
    static constexpr std::size_t max_parties = (std::size_t(1) << 22) - 2;

    SharedMedia() = default;
    ~SharedMedia();
    SharedMedia(const SharedMedia&) = delete;
    SharedMedia& operator=(const SharedMedia&) = delete;

    // Binds the socket and aims it at `relay` (an IPv4 address).
    dtcall::Status open(const sockaddr_in& relay);
    // --nodes: party i sends to relays[node_of(i)] instead (its own node).
    void aim_parties(std::vector<sockaddr_in> relays, std::function<std::size_t(std::size_t party)> node_of);
    const sockaddr_in& relay_of(std::size_t party) const {
        return relays_.empty() ? relay_ : relays_[node_of_(party)];
    }
    // Reads datagrams from the loop and hands each to `receiver` (setup:
    // registration acks). stop_events() before a generator takes the socket.
    dtcall::Status watch(event_base* base, Receiver receiver);
    void stop_events();

    bool send_from(std::size_t party, const std::uint8_t* data, std::size_t size);
    // Reads what is waiting (at most 256 datagrams) and hands each to
    // `receiver`; for callers that poll the socket themselves.
    void drain(const Receiver& receiver);

    int fd() const { return fd_; }
    const sockaddr_in& relay() const { return relay_; }
    const std::vector<sockaddr_in>& relays() const { return relays_; }
    // The party's source address (network byte order), and back.
    static in_addr address_of(std::size_t party);
    // ~0 when `address` is not one of ours.
    static std::size_t party_of(in_addr address);

    // IP_PKTINFO control message for sendmsg/sendmmsg; `buffer` must hold
    // control_size() bytes. Returns the length to put in msg_controllen.
    static std::size_t control_size();
    static std::size_t put_source(void* buffer, std::size_t party);
    // The destination address of a received datagram, from its control data.
    static bool destination(const msghdr& message, in_addr& address);

private:
    static void on_readable(int fd, short what, void* self);

    int fd_ = -1;
    sockaddr_in relay_{};
    std::vector<sockaddr_in> relays_;
    std::function<std::size_t(std::size_t)> node_of_;
    event* event_ = nullptr;
    Receiver receiver_;
    std::vector<std::uint8_t> buffer_;
};

}  // namespace dtbench
