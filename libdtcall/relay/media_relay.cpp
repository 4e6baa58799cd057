#include "relay/media_relay.hpp"

#include "crypto/crypto.hpp"
#include "wire/registration.hpp"

#include "cluster/receiver.hpp"
#include "relay/node_wrap.hpp"

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
    // A user in a call as the relay knows it: its media address once it
    // registered, whom its media goes to (Host::relay_peer(), worked out when
    // the router says it changed), who sends to it, and its figures.
    // Slots are reused; an index stays valid until the user is released.
    struct User {
        std::string name;
        bool used = false;
        bool registered = false;  // key, address, length, socket_index are valid
        AddressKey key;
        sockaddr_storage address;
        socklen_t length = 0;
        unsigned socket_index = 0;  // the listen address it registered on: its media is sent from there
        std::uint32_t target = no_route;  // whom its media goes to
        std::uint32_t source = no_route;  // whose target it is
        std::shared_ptr<FlowCounters> flow;
        std::string address_text;  // of its last registration
        unsigned moves = 0;
        // On another node (cluster): `address` is that node's, media for it
        // is wrapped and leaves from remote_fd. A registration here ends it.
        bool remote = false;
        std::shared_ptr<const NodeWrap> wrap;
        int remote_fd = -1;
    };

    std::vector<User> users;
    std::vector<std::uint32_t> free_users;
    AddressTable by_address;  // registered address -> users index
    std::unordered_map<std::string, std::uint32_t> by_user;
    std::size_t registered = 0;
    unsigned flow_slots;  // the event-loop thread's and each relay thread's
    SourceLimiter unregistered;

    std::uint32_t find(const std::string& name) const {
        auto it = by_user.find(name);
        return it == by_user.end() ? no_route : it->second;
    }

    std::uint32_t find_or_add(const std::string& name) {
        std::uint32_t index = find(name);
        if (index != no_route) return index;
        if (!free_users.empty()) {
            index = free_users.back();
            free_users.pop_back();
        } else {
            index = std::uint32_t(users.size());
            users.emplace_back();
        }
        User& u = users[index];
        u = User{};
        u.name = name;
        u.used = true;
        u.flow = std::make_shared<FlowCounters>(flow_slots);
        by_user[name] = index;
        return index;
    }

    void set_target(std::uint32_t index, std::uint32_t target) {
        User& u = users[index];
        if (u.target != no_route && users[u.target].source == index) users[u.target].source = no_route;
        u.target = target;
        if (target != no_route) users[target].source = index;
    }

    void unregister(std::uint32_t index) {
        User& u = users[index];
        if (!u.registered) return;
        by_address.erase(u.key);
        u.registered = false;
        --registered;
    }

    void register_at(std::uint32_t index, const AddressKey& key, const sockaddr* from, int from_len,
                     unsigned socket_index) {
        unregister(index);
        User& u = users[index];
        u.remote = false;  // back on this node
        u.wrap.reset();
        u.key = key;
        std::memset(&u.address, 0, sizeof u.address);
        std::memcpy(&u.address, from, std::min<std::size_t>(std::size_t(from_len), sizeof u.address));
        u.length = socklen_t(from_len);
        u.socket_index = socket_index;
        u.registered = true;
        ++registered;
        by_address.insert(key, index);
    }

    void remove(std::uint32_t index) {
        unregister(index);
        set_target(index, no_route);
        User& u = users[index];
        if (u.source != no_route && users[u.source].target == index) users[u.source].target = no_route;
        by_user.erase(u.name);
        u = User{};
        free_users.push_back(index);
    }

    State(double unregistered_per_second, unsigned threads)
        : flow_slots(threads + 1), unregistered(unregistered_per_second) {}

    DatagramBatch batch;

    // One UDP socket per listen address.
    struct Socket {
        MediaRelay* relay;
        int fd;
        unsigned index;  // in `sockets`: the listen address
        event* ev;
        bool in_epoll = true;  // see keep_reading()
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

    // The node-to-node leg (cluster), after open_node_leg().
    std::unique_ptr<NodeSender> node;
    std::unique_ptr<cluster::MediaReceiver> node_receiver;
    int node_fd = -1;  // its own socket; -1 when it shares the media sockets
    event* node_ev = nullptr;
    bool node_in_epoll = true;

    // The socket node-to-node media leaves from, for a node at `to`.
    int node_socket_for(const sockaddr* to) const {
        if (node_fd >= 0) return node_fd;
        for (const auto& socket : sockets) {
            sockaddr_storage local;
            socklen_t length = sizeof local;
            if (::getsockname(socket->fd, reinterpret_cast<sockaddr*>(&local), &length) == 0 &&
                local.ss_family == to->sa_family)
                return socket->fd;
        }
        return sockets.empty() ? -1 : sockets[0]->fd;
    }

};

MediaRelay::MediaRelay(event_base* base, const Config& config, Host& host)
    : base_(base), config_(config), host_(host),
      state_(std::make_unique<State>(config.unregistered_packets_per_second, config.media_threads)) {}

MediaRelay::~MediaRelay() { close(); }

std::size_t MediaRelay::registered() const { return state_->registered; }

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
        unsigned flow_slot = unsigned(s.threads.size()) + 1;
        auto thread = std::make_unique<RelayThread>(std::move(fds), s.publication, config_.max_datagram,
                                                    config_.unregistered_packets_per_second, s.handoff_fd,
                                                    flow_slot);
        bool started = thread->start();
        s.threads.push_back(std::move(thread));
        if (!started) {
            // Sockets not yet handed to a thread would stay in the port's
            // group, unread, taking their share of the traffic.
            for (auto& rest : thread_sockets)
                for (int fd : rest) ::close(fd);
            return Error{ErrorCode::other, "media: cannot start relay thread " + std::to_string(s.threads.size())};
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
    if (s.node_ev) event_free(s.node_ev);
    s.node_ev = nullptr;
    if (s.node_fd >= 0) ::close(s.node_fd);
    s.node_fd = -1;
    for (auto& socket : s.sockets) {
        event_free(socket->ev);
        ::close(socket->fd);
    }
    s.sockets.clear();
}

void MediaRelay::release(const std::string& user) {
    std::uint32_t index = state_->find(user);
    if (index == no_route) return;
    state_->remove(index);
    routes_changed();
}

void MediaRelay::routes_changed(const std::string& user) {
    State& s = *state_;
    std::uint32_t index = s.find(user);
    // Not registered yet: its registration works the route out.
    if (index == no_route) return;
    const std::string* peer = host_.relay_peer(user);
    std::uint32_t target = peer ? s.find_or_add(*peer) : no_route;
    if (target != no_route && !s.users[target].registered && !s.users[target].remote) make_remote(target);
    s.set_target(index, target);
    routes_changed();
}

// A peer with no address here may be on another node: its media goes there.
// Worked out once per route; kept while the call lasts (a Redis outage does
// not take routes away from calls already up).
void MediaRelay::make_remote(std::uint32_t index) {
    State& s = *state_;
    if (!s.node) return;
    State::User& u = s.users[index];
    auto where = host_.remote_node_address(u.name);
    if (!where) return;
    sockaddr_storage address{};
    socklen_t length = 0;
    if (!parse_address(*where, address, length)) return;
    std::shared_ptr<const NodeWrap> wrap = NodeWrap::make(*s.node, u.name);
    if (!wrap) return;
    u.remote = true;
    u.wrap = std::move(wrap);
    u.remote_fd = s.node_socket_for(reinterpret_cast<const sockaddr*>(&address));
    // An IPv4 node through a dual-stack media socket: its mapped address.
    sockaddr_storage local{};
    socklen_t local_length = sizeof local;
    if (u.remote_fd >= 0 && ::getsockname(u.remote_fd, reinterpret_cast<sockaddr*>(&local), &local_length) == 0 &&
        local.ss_family == AF_INET6)
        map_to_v6(address, length);
    std::memcpy(&u.address, &address, sizeof address);
    u.length = socklen_t(length);
}

MediaRelay::FlowFigures MediaRelay::flow(const std::string& user) const {
    const State& s = *state_;
    std::uint32_t index = s.find(user);
    if (index == no_route) return {};
    const State::User& u = s.users[index];
    return {u.flow->total(), {u.address_text, u.moves}};
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
    table->by_source.reserve(s.registered);
    table->targets.reserve(s.registered);
    table->flows.reserve(s.registered);
    for (const State::User& from : s.users) {
        if (!from.used || !from.registered || from.target == no_route) continue;
        const State::User& to = s.users[from.target];
        if (!to.registered && !to.remote) continue;
        table->by_source.insert(from.key, std::uint32_t(table->targets.size()));
        table->targets.push_back({CompactAddress::of(to.address, to.length), to.socket_index, from.flow.get(),
                                  to.remote ? to.remote_fd : -1, to.wrap.get()});
        table->flows.push_back(from.flow);
        if (to.wrap) table->wraps.push_back(to.wrap);
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
        if (h.limit_hit) {  // counted by the thread; the observers hear of it from here
            host_.unregistered_limit_hit(format_address(reinterpret_cast<const sockaddr*>(&h.from),
                                                        int(h.from_length)));
            continue;
        }
        dispatch(h.data, h.size, reinterpret_cast<const sockaddr*>(&h.from), int(h.from_length), h.socket_index);
    }
    // More may be waiting: come back after the next poll (a zero timeout
    // runs after it; event_active would run again before it), so sessions and
    // timers get their turn between slices.
    timeval now{0, 0};
    evtimer_add(s.handoff_more_ev, &now);
}

bool MediaRelay::forward_target(const sockaddr* from, RelayTarget& to) {
    State& s = *state_;
    AddressKey key;
    if (!make_address_key(from, key)) return false;
    std::uint32_t index = s.by_address.find(key);
    if (index == no_route) return false;
    State::User& sender = s.users[index];
    if (sender.target == no_route) return false;
    // A peer not yet routable may be on a node whose address was not known
    // when the route was made: looked again (this thread only; the relay
    // threads get the route with the next table).
    if (!s.users[sender.target].registered && !s.users[sender.target].remote && s.node) {
        make_remote(sender.target);
        if (s.users[sender.target].remote) routes_changed();
    }
    const State::User& peer = s.users[sender.target];
    if (peer.remote) {
        to = {reinterpret_cast<const sockaddr*>(&peer.address), peer.length, peer.remote_fd, &sender.flow->slot(0),
              peer.wrap.get()};
        return true;
    }
    if (!peer.registered) return false;
    int fd = peer.socket_index < s.sockets.size() ? s.sockets[peer.socket_index]->fd : -1;
    to = {reinterpret_cast<const sockaddr*>(&peer.address), peer.length, fd, &sender.flow->slot(0)};
    return true;
}

void MediaRelay::on_readable(int fd, short, void* arg) {
    auto* socket = static_cast<State::Socket*>(arg);
    keep_reading(socket->ev, socket->in_epoll, socket->relay->read_batch(fd, socket->index));
}

// The relay core's view of the event-loop thread: its own users table, plain
// counters, and registration attempts for what it cannot route.
struct MediaRelay::Path {
    MediaRelay& relay;
    unsigned socket_index;
    std::int64_t now = 0;

    void begin_batch() { now = coarse_now_ms(); }
    std::int64_t now_ms() const { return now; }
    bool find(const sockaddr* from, RelayTarget& to) { return relay.forward_target(from, to); }
    void fallback(DatagramBatch& batch, unsigned i) {
        relay.unrouted(batch.data(i), batch.length(i), batch.from(i), batch.from_length(i),
                                   socket_index);
    }
    void counted(const BatchCounts& c) {
        Stats& s = relay.stats_;
        s.relayed_packets += c.relayed;
        s.relayed_bytes += c.bytes;
        s.too_large += c.too_large;
        s.unroutable += c.empty;
        s.node_sent += c.wrapped;
        s.node_dropped += c.unwrappable;
    }
    void refused(unsigned n) {
        relay.stats_.relayed_packets -= n;
        relay.stats_.unroutable += n;
    }
};

bool MediaRelay::read_batch(int fd, unsigned socket_index) {
    Path path{*this, socket_index};
    return relay_batches(state_->batch, fd, config_.max_datagram, batches_per_wakeup, path);
}

void MediaRelay::handle_datagram(const std::uint8_t* data, std::size_t size, const sockaddr* from,
                                 int from_len) {
    switch (check_size(size, false, config_.max_datagram)) {
    case SizeCheck::ok: break;
    case SizeCheck::empty: ++stats_.unroutable; return;
    case SizeCheck::too_large: ++stats_.too_large; return;
    }
    dispatch(data, size, from, from_len, 0);
}

void MediaRelay::dispatch(const std::uint8_t* data, std::size_t size, const sockaddr* from, int from_len,
                          unsigned socket_index) {
    RelayTarget to;
    if (!forward_target(from, to)) {
        unrouted(data, size, from, from_len, socket_index);
        return;
    }
    if (to.wrap) {
        if (!to.wrap->fits(size)) {
            ++stats_.node_dropped;
            return;
        }
        std::uint8_t header[NodeWrap::max_header];
        std::uint8_t tag[cluster::tag_size];
        to.wrap->seal(data, size, header, tag);
        iovec parts[3] = {{header, to.wrap->header_size()}, {const_cast<std::uint8_t*>(data), size}, {tag, sizeof tag}};
        msghdr message{};
        message.msg_name = const_cast<sockaddr*>(to.address);
        message.msg_namelen = to.length;
        message.msg_iov = parts;
        message.msg_iovlen = 3;
        if (to.fd >= 0) ::sendmsg(to.fd, &message, MSG_DONTWAIT);
        ++stats_.node_sent;
    } else if (to.fd >= 0) {
        ::sendto(to.fd, data, size, MSG_DONTWAIT, to.address, to.length);
    }
    to.flow->count(size, coarse_now_ms());
    ++stats_.relayed_packets;
    stats_.relayed_bytes += size;
}

// ---- the node-to-node leg (cluster) ----

Result<std::string> MediaRelay::open_node_leg(const std::string& node, const cluster::ClusterKey& media_key,
                                               const std::string& address) {
    State& s = *state_;
    if (s.sockets.empty()) return Error{ErrorCode::invalid_state, "node_address: the media sockets are not open"};
    sockaddr_storage bind_to{};
    socklen_t length = 0;
    if (!parse_address(address, bind_to, length))
        return Error{ErrorCode::bad_address, "node_address " + address + ": not IP:PORT"};
    auto sender = std::make_unique<NodeSender>();
    sender->name = node;
    sender->key = media_key;
    if (!NodeWrap::make(*sender, "probe"))
        return Error{ErrorCode::invalid_argument, "node name " + node + ": not 1-64 of [A-Za-z0-9._-]"};
    std::uint16_t port = ntohs(bind_to.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bind_to)->sin6_port
                                                             : reinterpret_cast<sockaddr_in*>(&bind_to)->sin_port);
    // The media port itself, on an address a media socket is bound to (or a
    // wildcard media socket covers): the node leg shares the media sockets.
    bool shared = false;
    if (port == port_) {
        for (const auto& socket : s.sockets) {
            sockaddr_storage local{};
            socklen_t local_length = sizeof local;
            if (::getsockname(socket->fd, reinterpret_cast<sockaddr*>(&local), &local_length) != 0) continue;
            // A dual-stack [::] socket (IPV6_V6ONLY off) takes IPv4 too.
            int v6only = 1;
            socklen_t v6only_length = sizeof v6only;
            bool dual_stack = local.ss_family == AF_INET6 && bind_to.ss_family == AF_INET &&
                              ::getsockopt(socket->fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &v6only_length) == 0 &&
                              v6only == 0 &&
                              format_ip(reinterpret_cast<sockaddr*>(&local), int(local_length)) == "::";
            if (dual_stack) {
                shared = true;
                continue;
            }
            if (local.ss_family != bind_to.ss_family) continue;
            if (format_ip(reinterpret_cast<sockaddr*>(&local), int(local_length)) ==
                    format_ip(reinterpret_cast<sockaddr*>(&bind_to), int(length)) ||
                format_ip(reinterpret_cast<sockaddr*>(&local), int(local_length)) == "0.0.0.0" ||
                format_ip(reinterpret_cast<sockaddr*>(&local), int(local_length)) == "::")
                shared = true;
        }
    }
    std::string bound = address;
    if (!shared) {
        // A socket of its own, read by this thread only.
        int fd = ::socket(bind_to.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return Error{ErrorCode::io, "node_address " + address + ": " + std::strerror(errno)};
        int buffer_size = 8 * 1024 * 1024;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_size, sizeof buffer_size);
        if (::bind(fd, reinterpret_cast<sockaddr*>(&bind_to), length) != 0) {
            int err = errno;
            ::close(fd);
            return Error{err == EADDRINUSE ? ErrorCode::address_in_use
                         : err == EACCES  ? ErrorCode::permission
                                          : ErrorCode::bad_address,
                         "node_address " + address + ": cannot bind UDP: " + std::strerror(err)};
        }
        sockaddr_storage local{};
        socklen_t local_length = sizeof local;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length);
        bound = format_address(reinterpret_cast<sockaddr*>(&local), int(local_length));
        s.node_fd = fd;
        s.node_ev = event_new(base_, fd, EV_READ | EV_PERSIST, &MediaRelay::on_node_readable, this);
        event_add(s.node_ev, nullptr);
    }
    s.node_receiver = std::make_unique<cluster::MediaReceiver>(media_key);
    s.node = std::move(sender);
    return bound;
}

void MediaRelay::forget_node(const std::string& node) {
    if (state_->node_receiver) state_->node_receiver->forget(node);
}

bool MediaRelay::node_delivery(const std::uint8_t* data, std::size_t size, NodeDelivery& out) {
    State& s = *state_;
    if (!s.node_receiver) {
        ++stats_.node_dropped;
        return false;
    }
    cluster::MediaDatagram m;
    cluster::Verdict verdict = s.node_receiver->receive(data, size, m);
    if (verdict == cluster::Verdict::forged) ++stats_.node_forged;
    if (verdict != cluster::Verdict::accepted) {
        if (verdict != cluster::Verdict::forged) ++stats_.node_dropped;
        return false;
    }
    // Only to a user of this node with an address: the relay knows a user
    // only while it has a call (released when the call ends), as on the
    // local path, so no call check per packet.
    std::uint32_t index = s.find(std::string(m.target));
    if (index == no_route || !s.users[index].registered) {
        ++stats_.node_dropped;
        return false;
    }
    State::User& to = s.users[index];
    // Counted as the remote peer's media once this user's route points at
    // it (its `ready`); before that, in nobody's figures.
    FlowSlot* flow = nullptr;
    if (to.target != no_route && s.users[to.target].remote) flow = &s.users[to.target].flow->slot(0);
    int fd = to.socket_index < s.sockets.size() ? s.sockets[to.socket_index]->fd : -1;
    out.offset = std::size_t(reinterpret_cast<const std::uint8_t*>(m.payload.data()) - data);
    out.size = m.payload.size();
    out.to = {reinterpret_cast<const sockaddr*>(&to.address), to.length, fd, flow};
    ++stats_.node_received;
    ++stats_.relayed_packets;
    stats_.relayed_bytes += out.size;
    return true;
}

void MediaRelay::on_node_readable(int fd, short, void* self) {
    auto* relay = static_cast<MediaRelay*>(self);
    keep_reading(relay->state_->node_ev, relay->state_->node_in_epoll, relay->read_node_batches(fd));
}

bool MediaRelay::read_node_batches(int fd) {
    DatagramBatch& batch = state_->batch;
    for (int round = 0; round < batches_per_wakeup; ++round) {
        unsigned received = batch.receive(fd);
        if (received == 0) return true;
        std::int64_t now = coarse_now_ms();
        for (unsigned i = 0; i < received; ++i) {
            NodeDelivery d;
            if (batch.truncated(i) || !node_delivery(batch.data(i), batch.length(i), d)) {
                if (batch.truncated(i)) ++stats_.node_dropped;
                continue;
            }
            batch.forward_part(i, d.offset, d.size, d.to.address, d.to.length, d.to.fd);
            if (d.to.flow) d.to.flow->count(d.size, now);
        }
        if (unsigned refused = batch.flush()) {
            stats_.relayed_packets -= refused;
            stats_.node_received -= refused;
            stats_.node_dropped += refused;
        }
        if (received < DatagramBatch::size) return true;
    }
    return false;
}

void MediaRelay::add_thread_counts(Stats& into) const {
    for (const auto& thread : state_->threads) {
        const RelayThread::Counters& c = thread->counters();
        std::uint64_t relayed = c.relayed_packets.load(std::memory_order_relaxed);
        into.relayed_packets += relayed;
        into.relayed_by_threads += relayed;
        into.relayed_bytes += c.relayed_bytes.load(std::memory_order_relaxed);
        into.too_large += c.too_large.load(std::memory_order_relaxed);
        into.unroutable += c.unroutable.load(std::memory_order_relaxed);
        into.rate_limited_packets += c.rate_limited.load(std::memory_order_relaxed);
        into.limit_hits += c.limit_hits.load(std::memory_order_relaxed);
        into.node_sent += c.node_sent.load(std::memory_order_relaxed);
        into.node_dropped += c.node_dropped.load(std::memory_order_relaxed);
    }
}

const MediaRelay::Stats& MediaRelay::stats() const {
    const Stats& retired = state_->retired_threads;
    reported_ = stats_;
    reported_.relayed_packets += retired.relayed_packets;
    reported_.relayed_by_threads += retired.relayed_by_threads;
    reported_.relayed_bytes += retired.relayed_bytes;
    reported_.too_large += retired.too_large;
    reported_.unroutable += retired.unroutable;
    reported_.rate_limited_packets += retired.rate_limited_packets;
    reported_.limit_hits += retired.limit_hits;
    reported_.node_sent += retired.node_sent;
    reported_.node_dropped += retired.node_dropped;
    add_thread_counts(reported_);
    reported_.dropped_packets = reported_.rate_limited_packets + reported_.too_large + reported_.unroutable +
                                reported_.refused_registrations + reported_.replayed_registrations;
    return reported_;
}

// A datagram no route takes: with the node leg on the media port, another
// node's media (authenticated by its tag, not by a registration); else a
// registration attempt.
void MediaRelay::unrouted(const std::uint8_t* data, std::size_t size, const sockaddr* from, int from_len,
                          unsigned socket_index) {
    if (!state_->node || state_->node_fd >= 0 || !looks_like_node_media(data, size))
        return registration_attempt(data, size, from, from_len, socket_index);
    NodeDelivery d;
    if (!node_delivery(data, size, d)) return;
    if (d.to.flow) d.to.flow->count(d.size, coarse_now_ms());
    if (d.to.fd >= 0) ::sendto(d.to.fd, data + d.offset, d.size, MSG_DONTWAIT, d.to.address, d.to.length);
}

// PROTOCOL.md 9: from an unknown address or a user not yet in call, a
// datagram is a registration attempt. Most such datagrams are dropped here
// without allocating or logging (counted only); opening one costs an X25519
// operation, so each source gets only so many attempts per second.
void MediaRelay::registration_attempt(const std::uint8_t* data, std::size_t size, const sockaddr* from,
                                      int from_len, unsigned socket_index) {
    AddressKey key;
    if (!make_address_key(from, key)) {
        ++stats_.unroutable;
        return;
    }
    bool first_refusal = false;
    if (!state_->unregistered.take(key, host_.now_ms(), &first_refusal)) {
        ++stats_.rate_limited_packets;
        if (first_refusal) {
            ++stats_.limit_hits;
            host_.unregistered_limit_hit(format_address(from, from_len));
        }
        return;
    }
    if (size < min_registration || size > max_registration) {
        ++stats_.unroutable;
        return;
    }
    switch (try_register(data, size, from, from_len, socket_index)) {
    case Registration::acked: ++stats_.registrations; break;
    case Registration::refused: ++stats_.refused_registrations; break;
    case Registration::replayed: ++stats_.replayed_registrations; break;
    }
}

MediaRelay::Registration MediaRelay::try_register(const std::uint8_t* data, std::size_t size, const sockaddr* from,
                                                 int from_len, unsigned socket_index) {
    auto registration =
        wire::open_registration(config_.server_keys, data, size, host_.now(), config_.timestamp_window);
    if (!registration) return Registration::refused;
    auto owner = host_.owner_of_session_key(registration->session_key);
    long long timestamp = registration->timestamp;
    registration.reset();  // wipes the session key
    if (!owner) return Registration::refused;
    // Not in a call: dropped, no ack, and nothing in the table changes.
    if (!host_.has_call(owner->user)) return Registration::refused;
    AddressKey key;
    make_address_key(from, key);
    State& s = *state_;
    std::uint32_t current = s.find(owner->user);
    bool same_address = current != no_route && s.users[current].registered && s.users[current].key == key;
    // A sealed box starts with its one-time public key: it names the datagram.
    // The same registration again is a replay, unless it comes from where the
    // user is registered already: then it is a retransmission whose ack was
    // lost, and it gets its ack again with nothing changed.
    if (!owner->registrations->fresh(data, timestamp, config_.timestamp_window)) {
        if (!same_address) return Registration::replayed;
    } else if (!same_address) {
        // An address in use by someone else's call is not taken over.
        std::uint32_t holder = s.by_address.find(key);
        if (holder != no_route && host_.has_call(s.users[holder].name)) return Registration::refused;
        if (holder != no_route) s.unregister(holder);
        // NAT rebinding and reconnects: a new address replaces the old one,
        // the user's figures go on (a move).
        std::uint32_t index = s.find_or_add(owner->user);
        s.register_at(index, key, from, from_len, socket_index);
        std::string address = format_address(from, from_len);
        State::User& user = s.users[index];
        if (!user.address_text.empty() && user.address_text != address) ++user.moves;
        user.address_text = address;
        if (!host_.media_registered(owner->user, address)) {
            release(owner->user);
            return Registration::refused;
        }
        routes_changed(owner->user);  // by name: an observer may have ended the call meanwhile
    }
    Bytes ack = wire::registration_ack(owner->tcp_key, host_.now());
    if (socket_index < state_->sockets.size())
        ::sendto(state_->sockets[socket_index]->fd, ack.data(), ack.size(), MSG_DONTWAIT, from,
                 socklen_t(from_len));
    return Registration::acked;
}

}  // namespace dtcall
