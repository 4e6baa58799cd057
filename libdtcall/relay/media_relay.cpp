#include "relay/media_relay.hpp"

#include "crypto/crypto.hpp"
#include "wire/registration.hpp"

#include "address_table.hpp"
#include "datagram_batch.hpp"
#include "forward_table.hpp"
#include "relay_thread.hpp"
#include "server/bound_socket.hpp"
#include "source_limiter.hpp"

#include <event2/event.h>
#include <event2/util.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

namespace dtcall {
namespace {

// Registrations carry "ts|sk": a 59-character key and a 10-digit time make 118
// bytes sealed; anything far off that cannot be one.
constexpr std::size_t min_registration = seal_overhead + 3;
constexpr std::size_t max_registration = seal_overhead + 128;
static_assert(max_registration <= Handoff::max_size, "relay threads must hand every registration over");
constexpr std::uint32_t no_route = AddressTable::none;
// recvmmsg calls per readiness event before yielding to the rest of the loop.
constexpr int batches_per_wakeup = 8;

// SO_REUSEPORT lets any socket of the same user join the port: a second
// server on the same media port would silently take part of the traffic, and
// an ephemeral port (0) may even be handed out while another group holds it.
// So first take the port without SO_REUSEPORT, on every address: that fails
// while anybody holds it. The reuse-port sockets bind right after the probe
// closes; only a bind in that instant can still come between.
Result<std::uint16_t> probe_free_port(const std::vector<ListenAddress>& plan, std::uint16_t port) {
    std::vector<int> probes;
    auto close_probes = [&] {
        for (int fd : probes) ::close(fd);
    };
    for (const ListenAddress& address : plan) {
        auto fd = open_bound_socket(address, port, SOCK_DGRAM, 0, "media");
        if (!fd) {
            close_probes();
            return fd.failure();
        }
        probes.push_back(*fd);
        if (port == 0) port = bound_port(*fd);
    }
    close_probes();
    return port;
}

}  // namespace

struct MediaRelay::State {
    // A registered media address and where its media goes.
    struct Route {
        std::string user;
        AddressKey key;
        sockaddr_storage address;
        socklen_t length;
        unsigned socket_index;  // the listen address it registered on: its media is sent from there
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

    DatagramBatch batch;

    // One UDP socket per listen address.
    struct Socket {
        MediaRelay* relay;
        int fd;
        unsigned index;  // in `sockets`: the listen address
        event* ev;
    };
    std::vector<std::unique_ptr<Socket>> sockets;

    // Relay threads (Config::media_threads) and what they read. Declared in
    // this order so the threads stop before the table they read goes away.
    ForwardTablePublication publication;
    bool publish_pending = false;
    event* publish_ev = nullptr;
    // Rebuilding the table costs O(routes) on this thread: after a rebuild
    // that took d, the next waits 4 d, so rebuilds take at most a fifth of
    // the loop however fast calls change (and threads' tables are at most
    // that stale; what they cannot route meanwhile is handed over).
    std::chrono::steady_clock::time_point next_publish{};
    int handoff_fd = -1;  // eventfd: a thread queued datagrams for this thread
    event* handoff_ev = nullptr;
    event* handoff_more_ev = nullptr;  // the next slice of hand-offs
    std::vector<Handoff> handed_off;  // taken from one thread, dispatched in slices
    std::size_t handoff_next = 0;
    std::size_t handoff_thread = 0;  // round robin over the threads' queues
    std::vector<std::unique_ptr<RelayThread>> threads;
    MediaRelay::Stats retired_threads;  // counts of threads stopped by close()

    void drop(std::uint32_t index) {
        Route& r = routes[index];
        by_address.erase(r.key);
        by_user.erase(r.user);
        r.used = false;
        r.user.clear();
        free_routes.push_back(index);
        ++table_generation;
    }

    std::uint32_t add(const std::string& user, const AddressKey& key, const sockaddr* from, int from_len,
                      unsigned socket_index) {
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
        r.socket_index = socket_index;
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
    if (!plan) return plan.failure();
    bool threaded = config_.media_threads > 0;
    std::uint16_t port = config_.media_port;
    if (threaded) {
        auto free = probe_free_port(*plan, port);
        if (!free) return free.failure();
        port = *free;
    }
    auto open_socket = [&](const ListenAddress& address) -> Result<int> {
        auto fd = open_bound_socket(address, port, SOCK_DGRAM, 0, "media", threaded);
        if (!fd) return fd;
        if (port == 0) port = bound_port(*fd);  // the same port on every address
        // Voice comes in bursts; a roomy buffer keeps them (best effort: the
        // kernel caps it at net.core.rmem_max).
        int buffer_size = 8 * 1024 * 1024;
        setsockopt(*fd, SOL_SOCKET, SO_RCVBUF, &buffer_size, sizeof buffer_size);
        return fd;
    };
    for (const ListenAddress& address : *plan) {
        auto fd = open_socket(address);
        if (!fd) {
            close();
            return fd.failure();
        }
        auto socket = std::make_unique<State::Socket>(
            State::Socket{this, *fd, unsigned(state_->sockets.size()), nullptr});
        socket->ev = event_new(base_, *fd, EV_READ | EV_PERSIST, &MediaRelay::on_readable, socket.get());
        event_add(socket->ev, nullptr);
        state_->sockets.push_back(std::move(socket));
    }
    port_ = port;
    if (!threaded) return Done{};
    // Each thread's sockets join the same SO_REUSEPORT groups, one per listen address.
    std::vector<std::vector<int>> thread_sockets;
    for (unsigned t = 0; t < config_.media_threads; ++t) {
        thread_sockets.emplace_back();
        for (const ListenAddress& address : *plan) {
            auto fd = open_socket(address);
            if (!fd) {
                for (auto& fds : thread_sockets)
                    for (int open_fd : fds) ::close(open_fd);
                close();
                return fd.failure();
            }
            thread_sockets.back().push_back(*fd);
        }
    }
    Status started = start_threads(std::move(thread_sockets));
    if (!started) close();
    return started;
}

Status MediaRelay::start_threads(std::vector<std::vector<int>> thread_sockets) {
    State& s = *state_;
    s.handoff_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s.handoff_fd < 0) {
        for (auto& fds : thread_sockets)
            for (int fd : fds) ::close(fd);
        return Error{std::string("media: cannot create an eventfd: ") + std::strerror(errno)};
    }
    s.handoff_ev = event_new(base_, s.handoff_fd, EV_READ | EV_PERSIST, &MediaRelay::on_handoff, this);
    s.publish_ev = evtimer_new(base_, &MediaRelay::on_publish, this);
    s.handoff_more_ev = evtimer_new(base_, &MediaRelay::on_more_handoffs, this);
    event_add(s.handoff_ev, nullptr);
    publish();  // the threads start with an empty table, never none
    for (auto& fds : thread_sockets) {
        // The thread owns its sockets from here, started or not.
        auto thread = std::make_unique<RelayThread>(std::move(fds), s.publication, config_.max_datagram,
                                                    config_.unregistered_packets_per_second, s.handoff_fd);
        bool started = thread->start();
        s.threads.push_back(std::move(thread));
        if (!started) {
            // Sockets not yet handed to a thread would stay in the port's
            // group, unread, taking their share of the traffic.
            for (auto& rest : thread_sockets)
                for (int fd : rest) ::close(fd);
            return Error{"media: cannot start relay thread " + std::to_string(s.threads.size())};
        }
    }
    return Done{};
}

void MediaRelay::close() {
    State& s = *state_;
    // Their counts outlive them: stats() must not go backwards after stop.
    add_thread_counts(s.retired_threads);
    s.threads.clear();  // joins them
    for (event* ev : {s.handoff_ev, s.publish_ev, s.handoff_more_ev})
        if (ev) event_free(ev);
    s.handoff_ev = s.publish_ev = s.handoff_more_ev = nullptr;
    if (s.handoff_fd >= 0) ::close(s.handoff_fd);
    s.handoff_fd = -1;
    s.publish_pending = false;
    s.handed_off.clear();
    s.handoff_next = 0;
    for (auto& socket : s.sockets) {
        event_free(socket->ev);
        ::close(socket->fd);
    }
    s.sockets.clear();
}

void MediaRelay::release(const std::string& user) {
    auto it = state_->by_user.find(user);
    if (it == state_->by_user.end()) return;
    state_->drop(it->second);
    routes_changed();
}

void MediaRelay::routes_changed() {
    State& s = *state_;
    if (s.threads.empty() || s.publish_pending) return;
    // Once per loop iteration at most, however many calls changed in it, and
    // no sooner than the last rebuild's cost allows (State::next_publish).
    s.publish_pending = true;
    auto wait = std::chrono::duration_cast<std::chrono::microseconds>(s.next_publish - std::chrono::steady_clock::now());
    timeval delay{0, 0};
    if (wait.count() > 0) {
        delay.tv_sec = long(wait.count() / 1000000);
        delay.tv_usec = long(wait.count() % 1000000);
    }
    evtimer_add(s.publish_ev, &delay);
}

void MediaRelay::on_publish(int, short, void* self) { static_cast<MediaRelay*>(self)->publish(); }

void MediaRelay::publish() {
    State& s = *state_;
    s.publish_pending = false;
    auto started = std::chrono::steady_clock::now();
    auto table = std::make_shared<ForwardTable>();
    std::size_t routes = s.by_user.size();
    table->by_source.reserve(routes);
    table->targets.reserve(routes);
    for (const State::Route& route : s.routes) {
        if (!route.used) continue;
        const std::string* peer = host_.relay_peer(route.user);
        if (!peer) continue;
        auto target = s.by_user.find(*peer);
        if (target == s.by_user.end()) continue;
        const State::Route& to = s.routes[target->second];
        table->by_source.insert(route.key, std::uint32_t(table->targets.size()));
        table->targets.push_back({CompactAddress::of(to.address, to.length), to.socket_index});
    }
    s.publication.publish(std::move(table));
    ++stats_.table_publishes;
    auto finished = std::chrono::steady_clock::now();
    // Capped, so that one rebuild slowed by a busy machine cannot leave the
    // threads on an old table for long.
    s.next_publish = finished + std::min<std::chrono::steady_clock::duration>(4 * (finished - started),
                                                                            std::chrono::milliseconds(250));
}

void MediaRelay::on_handoff(int fd, short, void* self) {
    std::uint64_t count;
    [[maybe_unused]] ssize_t n = ::read(fd, &count, sizeof count);
    static_cast<MediaRelay*>(self)->drain_handoffs();
}

void MediaRelay::on_more_handoffs(int, short, void* self) { static_cast<MediaRelay*>(self)->drain_handoffs(); }

void MediaRelay::drain_handoffs() {
    State& s = *state_;
    // Each hand-off may cost an X25519 operation (a registration): take a
    // slice, then let the rest of the loop run before the next one.
    constexpr int slice = 64;
    for (int done = 0; done < slice; ++done) {
        if (s.handoff_next == s.handed_off.size()) {
            s.handed_off.clear();
            s.handoff_next = 0;
            for (std::size_t tried = 0; tried < s.threads.size() && s.handed_off.empty(); ++tried)
                s.threads[s.handoff_thread++ % s.threads.size()]->handoffs().take(s.handed_off);
            if (s.handed_off.empty()) return;
        }
        const Handoff& h = s.handed_off[s.handoff_next++];
        dispatch(h.data, h.size, reinterpret_cast<const sockaddr*>(&h.from), int(h.from_length), h.socket_index);
    }
    // More may be waiting: come back after the next poll (a zero timeout
    // runs after it; event_active would run again before it), so sessions and
    // timers get their turn between slices.
    timeval now{0, 0};
    evtimer_add(s.handoff_more_ev, &now);
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
    auto* socket = static_cast<State::Socket*>(arg);
    socket->relay->read_batch(fd, socket->index);
}

void MediaRelay::read_batch(int fd, unsigned socket_index) {
    State& s = *state_;
    DatagramBatch& batch = s.batch;
    for (int round = 0; round < batches_per_wakeup; ++round) {
        unsigned received = batch.receive(fd);
        for (unsigned i = 0; i < received; ++i) {
            std::size_t size = batch.length(i);
            if (size == 0 || size > config_.max_datagram || batch.truncated(i)) {
                ++stats_.dropped_packets;
                continue;
            }
            std::uint32_t target = forward_target(batch.from(i));
            if (target == no_route) {
                registration_attempt(batch.data(i), size, batch.from(i), batch.from_length(i), socket_index);
                continue;
            }
            const State::Route& to = s.routes[target];
            batch.forward(i, reinterpret_cast<const sockaddr*>(&to.address), to.length,
                          s.sockets[to.socket_index]->fd);
            ++stats_.relayed_packets;
            stats_.relayed_bytes += size;
        }
        unsigned refused = batch.flush();
        stats_.relayed_packets -= refused;
        stats_.dropped_packets += refused;
        if (received < DatagramBatch::size) return;
    }
}

void MediaRelay::handle_datagram(const std::uint8_t* data, std::size_t size, const sockaddr* from,
                                 int from_len) {
    if (size == 0 || size > config_.max_datagram) {
        ++stats_.dropped_packets;
        return;
    }
    dispatch(data, size, from, from_len, 0);
}

void MediaRelay::dispatch(const std::uint8_t* data, std::size_t size, const sockaddr* from, int from_len,
                          unsigned socket_index) {
    std::uint32_t target = forward_target(from);
    if (target == no_route) {
        registration_attempt(data, size, from, from_len, socket_index);
        return;
    }
    const State::Route& to = state_->routes[target];
    if (to.socket_index < state_->sockets.size())
        ::sendto(state_->sockets[to.socket_index]->fd, data, size, MSG_DONTWAIT,
                 reinterpret_cast<const sockaddr*>(&to.address), to.length);
    ++stats_.relayed_packets;
    stats_.relayed_bytes += size;
}

void MediaRelay::add_thread_counts(Stats& into) const {
    for (const auto& thread : state_->threads) {
        const RelayThread::Counters& c = thread->counters();
        std::uint64_t relayed = c.relayed_packets.load(std::memory_order_relaxed);
        into.relayed_packets += relayed;
        into.relayed_by_threads += relayed;
        into.relayed_bytes += c.relayed_bytes.load(std::memory_order_relaxed);
        into.dropped_packets += c.dropped_packets.load(std::memory_order_relaxed);
        into.rate_limited_packets += c.rate_limited_packets.load(std::memory_order_relaxed);
    }
}

const MediaRelay::Stats& MediaRelay::stats() const {
    const Stats& retired = state_->retired_threads;
    reported_ = stats_;
    reported_.relayed_packets += retired.relayed_packets;
    reported_.relayed_by_threads += retired.relayed_by_threads;
    reported_.relayed_bytes += retired.relayed_bytes;
    reported_.dropped_packets += retired.dropped_packets;
    reported_.rate_limited_packets += retired.rate_limited_packets;
    add_thread_counts(reported_);
    return reported_;
}

// PROTOCOL.md 9: from an unknown address or a user not yet in call, a
// datagram is a registration attempt. Most such datagrams are dropped here
// without allocating or logging (counted only); opening one costs an X25519
// operation, so each source gets only so many attempts per second.
void MediaRelay::registration_attempt(const std::uint8_t* data, std::size_t size, const sockaddr* from,
                                      int from_len, unsigned socket_index) {
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
    if (size < min_registration || size > max_registration || !try_register(data, size, from, from_len, socket_index))
        ++stats_.dropped_packets;
}

bool MediaRelay::try_register(const std::uint8_t* data, std::size_t size, const sockaddr* from, int from_len,
                              unsigned socket_index) {
    auto registration =
        wire::open_registration(config_.server_keys, data, size, host_.now(), config_.timestamp_window);
    if (!registration) return false;
    auto owner = host_.owner_of_session_key(registration->session_key);
    long long timestamp = registration->timestamp;
    registration.reset();  // wipes the session key
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
        state_->add(owner->user, key, from, from_len, socket_index);
        if (!host_.media_registered(owner->user, format_address(from, from_len))) {
            release(owner->user);
            return false;
        }
        routes_changed();
    }
    Bytes ack = wire::registration_ack(owner->tcp_key, host_.now());
    if (socket_index < state_->sockets.size())
        ::sendto(state_->sockets[socket_index]->fd, ack.data(), ack.size(), MSG_DONTWAIT, from,
                 socklen_t(from_len));
    ++stats_.registrations;
    return true;
}

}  // namespace dtcall
