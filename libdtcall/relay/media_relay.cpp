#include <dtcall/media_relay.hpp>

#include <dtcall/crypto.hpp>
#include <dtcall/wire.hpp>

#include "address_table.hpp"
#include "server/bound_socket.hpp"
#include "source_limiter.hpp"

#include <event2/event.h>
#include <event2/util.h>

#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

namespace dtcall {
namespace {

// Registrations carry "ts|sk": a 59-character key and a 10-digit time make 118
// bytes sealed; anything far off that cannot be one.
constexpr std::size_t min_registration = seal_overhead + 3;
constexpr std::size_t max_registration = seal_overhead + 128;
constexpr std::uint32_t no_route = AddressTable::none;
// Datagrams per recvmmsg, and recvmmsg calls per readiness event before
// yielding to the rest of the loop.
constexpr unsigned batch_size = 32;
constexpr int batches_per_wakeup = 8;
constexpr std::size_t slot_size = 65536;  // whole datagrams, up to 64 KiB

}  // namespace

struct MediaRelay::State {
    // A registered media address and where its media goes.
    struct Route {
        std::string user;
        AddressKey key;
        sockaddr_storage address;
        socklen_t length;
        int fd;  // the socket it registered on: its media is sent from there
        bool used;
        // Cached answer of "where does media from here go", valid while both
        // generations are unchanged.
        std::uint64_t router_generation;
        std::uint64_t table_generation;
        std::uint32_t target;
    };

    std::vector<Route> routes;
    std::vector<std::uint32_t> free_routes;
    AddressTable by_address;
    std::unordered_map<std::string, std::uint32_t> by_user;
    std::uint64_t table_generation = 1;
    SourceLimiter unregistered;

    explicit State(double unregistered_per_second) : unregistered(unregistered_per_second) {}

    // recvmmsg/sendmmsg buffers. 2 MiB of address space, but only the pages
    // that datagrams touch become resident.
    std::unique_ptr<std::uint8_t[]> buffers{new std::uint8_t[batch_size * slot_size]};
    mmsghdr in[batch_size];
    iovec in_iov[batch_size];
    sockaddr_storage in_from[batch_size];
    mmsghdr out[batch_size];
    iovec out_iov[batch_size];
    int out_fd[batch_size];

    // One UDP socket per listen address.
    struct Socket {
        MediaRelay* relay;
        int fd;
        event* ev;
    };
    std::vector<std::unique_ptr<Socket>> sockets;

    void drop(std::uint32_t index) {
        Route& r = routes[index];
        by_address.erase(r.key);
        by_user.erase(r.user);
        r.used = false;
        r.user.clear();
        free_routes.push_back(index);
        ++table_generation;
    }

    std::uint32_t add(const std::string& user, const AddressKey& key, const sockaddr* from, int from_len, int fd) {
        std::uint32_t index;
        if (!free_routes.empty()) {
            index = free_routes.back();
            free_routes.pop_back();
        } else {
            index = std::uint32_t(routes.size());
            routes.emplace_back();
        }
        Route& r = routes[index];
        r.user = user;
        r.key = key;
        std::memset(&r.address, 0, sizeof r.address);
        std::memcpy(&r.address, from, std::min<std::size_t>(std::size_t(from_len), sizeof r.address));
        r.length = socklen_t(from_len);
        r.fd = fd;
        r.used = true;
        r.router_generation = r.table_generation = 0;
        r.target = no_route;
        by_address.insert(key, index);
        by_user[user] = index;
        ++table_generation;
        return index;
    }
};

MediaRelay::MediaRelay(event_base* base, const Config& config, Host& host)
    : base_(base), config_(config), host_(host),
      state_(std::make_unique<State>(config.unregistered_packets_per_second)) {}

MediaRelay::~MediaRelay() { close(); }

std::size_t MediaRelay::registered() const { return state_->by_user.size(); }

Status MediaRelay::open() {
    auto plan = plan_listen_addresses(config_.listen_addresses);
    if (!plan) return Error{plan.error()};
    std::uint16_t port = config_.media_port;
    for (const ListenAddress& address : *plan) {
        auto fd = open_bound_socket(address, port, SOCK_DGRAM, 0, "media");
        if (!fd) {
            close();
            return Error{fd.error()};
        }
        if (port == 0) port = bound_port(*fd);  // the same port on every address
        // Voice comes in bursts; a roomy buffer keeps them (best effort: the
        // kernel caps it at net.core.rmem_max).
        int buffer_size = 8 * 1024 * 1024;
        setsockopt(*fd, SOL_SOCKET, SO_RCVBUF, &buffer_size, sizeof buffer_size);
        auto socket = std::make_unique<State::Socket>(State::Socket{this, *fd, nullptr});
        socket->ev = event_new(base_, *fd, EV_READ | EV_PERSIST, &MediaRelay::on_readable, socket.get());
        event_add(socket->ev, nullptr);
        state_->sockets.push_back(std::move(socket));
    }
    port_ = port;
    return Done{};
}

void MediaRelay::close() {
    for (auto& socket : state_->sockets) {
        event_free(socket->ev);
        ::close(socket->fd);
    }
    state_->sockets.clear();
}

void MediaRelay::release(const std::string& user) {
    auto it = state_->by_user.find(user);
    if (it != state_->by_user.end()) state_->drop(it->second);
}

std::uint32_t MediaRelay::forward_target(const sockaddr* from) {
    AddressKey key;
    if (!make_address_key(from, key)) return no_route;
    std::uint32_t index = state_->by_address.find(key);
    if (index == no_route) return no_route;
    State::Route& route = state_->routes[index];
    std::uint64_t router_generation = host_.routing_generation();
    if (route.router_generation != router_generation || route.table_generation != state_->table_generation) {
        // Something changed since this route was worked out: ask the router again.
        route.target = no_route;
        if (const std::string* peer = host_.relay_peer(route.user)) {
            auto target = state_->by_user.find(*peer);
            if (target != state_->by_user.end()) route.target = target->second;
        }
        route.router_generation = router_generation;
        route.table_generation = state_->table_generation;
    }
    return route.target;
}

void MediaRelay::on_readable(int fd, short, void* arg) {
    static_cast<State::Socket*>(arg)->relay->read_batch(fd);
}

void MediaRelay::read_batch(int fd) {
    State& s = *state_;
    for (int round = 0; round < batches_per_wakeup; ++round) {
        for (unsigned i = 0; i < batch_size; ++i) {
            s.in_iov[i] = {s.buffers.get() + i * slot_size, slot_size};
            s.in[i].msg_hdr = {};
            s.in[i].msg_hdr.msg_name = &s.in_from[i];
            s.in[i].msg_hdr.msg_namelen = sizeof s.in_from[i];
            s.in[i].msg_hdr.msg_iov = &s.in_iov[i];
            s.in[i].msg_hdr.msg_iovlen = 1;
        }
        int received = ::recvmmsg(fd, s.in, batch_size, MSG_DONTWAIT, nullptr);
        if (received <= 0) return;  // EAGAIN, or a transient error: the next event retries
        unsigned outgoing = 0;
        for (int i = 0; i < received; ++i) {
            std::uint8_t* data = s.buffers.get() + std::size_t(i) * slot_size;
            std::size_t size = s.in[i].msg_len;
            auto* from = reinterpret_cast<const sockaddr*>(&s.in_from[i]);
            if (size == 0 || size > config_.max_datagram || (s.in[i].msg_hdr.msg_flags & MSG_TRUNC)) {
                ++stats_.dropped_packets;
                continue;
            }
            std::uint32_t target = forward_target(from);
            if (target == no_route) {
                registration_attempt(data, size, from, int(s.in[i].msg_hdr.msg_namelen), fd);
                continue;
            }
            State::Route& to = s.routes[target];
            s.out_iov[outgoing] = {data, size};
            s.out[outgoing].msg_hdr = {};
            s.out[outgoing].msg_hdr.msg_name = &to.address;
            s.out[outgoing].msg_hdr.msg_namelen = to.length;
            s.out[outgoing].msg_hdr.msg_iov = &s.out_iov[outgoing];
            s.out[outgoing].msg_hdr.msg_iovlen = 1;
            s.out_fd[outgoing] = to.fd;
            ++outgoing;
            ++stats_.relayed_packets;
            stats_.relayed_bytes += size;
        }
        // One sendmmsg per run of datagrams leaving through the same socket
        // (one run unless IPv4 and IPv6 sockets are both in play).
        for (unsigned run = 0; run < outgoing;) {
            unsigned end = run + 1;
            while (end < outgoing && s.out_fd[end] == s.out_fd[run]) ++end;
            for (unsigned sent = run; sent < end;) {
                int n = ::sendmmsg(s.out_fd[run], s.out + sent, end - sent, MSG_DONTWAIT);
                if (n <= 0) {
                    // The kernel refused the rest (buffer full): UDP may lose them.
                    stats_.dropped_packets += end - sent;
                    break;
                }
                sent += unsigned(n);
            }
            run = end;
        }
        if (unsigned(received) < batch_size) return;
    }
}

void MediaRelay::handle_datagram(const std::uint8_t* data, std::size_t size, const sockaddr* from,
                                 int from_len) {
    int fd = state_->sockets.empty() ? -1 : state_->sockets.front()->fd;
    if (size == 0 || size > config_.max_datagram) {
        ++stats_.dropped_packets;
        return;
    }
    std::uint32_t target = forward_target(from);
    if (target == no_route) {
        registration_attempt(data, size, from, from_len, fd);
        return;
    }
    const State::Route& to = state_->routes[target];
    ::sendto(to.fd, data, size, MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&to.address), to.length);
    ++stats_.relayed_packets;
    stats_.relayed_bytes += size;
}

// PROTOCOL.md 9: from an unknown address or a user not yet in call, a
// datagram is a registration attempt. Most such datagrams are dropped here
// without allocating or logging (counted only); opening one costs an X25519
// operation, so each source gets only so many attempts per second.
void MediaRelay::registration_attempt(const std::uint8_t* data, std::size_t size, const sockaddr* from,
                                      int from_len, int fd) {
    AddressKey key;
    if (!make_address_key(from, key)) {
        ++stats_.dropped_packets;
        return;
    }
    if (!state_->unregistered.take(key, host_.now_ms())) {
        ++stats_.rate_limited_packets;
        ++stats_.dropped_packets;
        return;
    }
    if (size < min_registration || size > max_registration || !try_register(data, size, from, from_len, fd))
        ++stats_.dropped_packets;
}

bool MediaRelay::try_register(const std::uint8_t* data, std::size_t size, const sockaddr* from, int from_len,
                              int fd) {
    auto plain = open_anonymous(config_.server_keys, data, size);
    if (!plain) return false;
    std::string text(plain->begin(), plain->end());
    wipe(*plain);
    std::size_t bar = text.find('|');
    bool shaped = wire::allowed_command_text(text) && bar != std::string::npos && bar > 0 &&
                  bar + 1 < text.size() && text.find('|', bar + 1) == std::string::npos;
    if (!shaped || !wire::timestamp_in_window(std::string_view(text).substr(0, bar), host_.now(),
                                              config_.timestamp_window)) {
        wipe(text);
        return false;
    }
    std::string session_key = text.substr(bar + 1);
    auto owner = host_.owner_of_session_key(session_key);
    wipe(session_key);
    long long timestamp = std::stoll(text.substr(0, bar));
    wipe(text);
    if (!owner) return false;
    // Not in a call: dropped, no ack, and nothing in the table changes.
    if (!host_.has_call(owner->user)) return false;
    AddressKey key;
    make_address_key(from, key);
    auto current = state_->by_user.find(owner->user);
    bool same_address = current != state_->by_user.end() && state_->routes[current->second].key == key;
    // A sealed box starts with its one-time public key: it names the datagram.
    // The same registration again is a replay, unless it comes from where the
    // user is registered already: then it is a retransmission whose ack was
    // lost, and it gets its ack again with nothing changed.
    if (!owner->registrations->fresh(data, timestamp, config_.timestamp_window)) {
        if (!same_address) {
            ++stats_.replayed_registrations;
            return false;
        }
    } else if (!same_address) {
        // An address in use by someone else's call is not taken over.
        std::uint32_t holder = state_->by_address.find(key);
        if (holder != no_route && host_.has_call(state_->routes[holder].user)) return false;
        if (holder != no_route) state_->drop(holder);
        // NAT rebinding and reconnects: a new address replaces the old one.
        release(owner->user);
        state_->add(owner->user, key, from, from_len, fd);
        if (!host_.media_registered(owner->user, format_address(from, from_len))) {
            release(owner->user);
            return false;
        }
    }
    Bytes ack = seal_secret_frame(owner->tcp_key, std::to_string(static_cast<long long>(host_.now())));
    ::sendto(fd, ack.data(), ack.size(), MSG_DONTWAIT, from, socklen_t(from_len));
    ++stats_.registrations;
    return true;
}

}  // namespace dtcall
