// MediaRelay: the UDP socket of PROTOCOL.md section 9. Sealed registrations
// bind a user's media address; datagrams from a user in call go, unchanged
// and never decrypted, to the peer's address. Call state lives in the
// CallRouter; the relay keeps the address table and, per user, where its
// media goes: worked out again only when the router says so (routes_changed
// after a `ready`, release when a call ends), never checked per packet.
//
// Per relayed packet: one lookup of a binary address key in a flat hash
// table, no allocation, no string; datagrams are read with recvmmsg and sent
// with sendmmsg in batches. With Config::media_threads > 0, that many
// threads relay too, each from its own SO_REUSEPORT sockets, reading a
// snapshot of the routes this class publishes from the event-loop thread.
#pragma once

#include "relay/address.hpp"
#include "relay/flow_figures.hpp"
#include "cluster/cluster_key.hpp"
#include "relay/relay_core.hpp"
#include <dtcall/config.hpp>
#include "session/replay_guard.hpp"
#include <dtcall/result.hpp>

#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/socket.h>

struct event;
struct event_base;

namespace dtcall {

class MediaRelay {
public:
    class Host {
    public:
        virtual ~Host() = default;
        struct KeyOwner {
            std::string user;
            const std::uint8_t* tcp_key;  // for the ack
            ReplayGuard* registrations;   // registrations already accepted for this key
        };
        // The logged-in user whose live connection holds session key `sk`.
        virtual std::optional<KeyOwner> owner_of_session_key(const std::string& sk) = 0;
        // Has the user a call (ringing, accepted or in call)?
        virtual bool has_call(const std::string& user) = 0;
        // The user registered media from `address`; false if it has no call.
        virtual bool media_registered(const std::string& user, const std::string& address) = 0;
        // Whom media from `user` goes to, or null when `user` is not in call.
        virtual const std::string* relay_peer(const std::string& user) = 0;
        // A source went over Config::unregistered_packets_per_second (once per
        // window per source). `address`: "ip:port".
        virtual void unregistered_limit_hit(const std::string& address) { (void)address; }
        virtual std::time_t now() = 0;
        // A monotonic clock in milliseconds, for rate limits.
        virtual std::int64_t now_ms() = 0;
        // Cluster: `user` is not on this node, and media for it goes to the
        // node at this "IP:PORT" (its node_address). nullopt: a user of this
        // node (or nobody's).
        virtual std::optional<std::string> remote_node_address(const std::string& user) {
            (void)user;
            return std::nullopt;
        }
    };

    // Every datagram that is not relayed is dropped (counted in exactly one
    // of the drop kinds) or an accepted registration.
    struct Stats {
        std::uint64_t relayed_packets = 0;
        std::uint64_t relayed_by_threads = 0;  // of relayed_packets (Config::media_threads)
        std::uint64_t relayed_bytes = 0;
        std::uint64_t dropped_packets = 0;          // the sum of the five kinds below
        std::uint64_t rate_limited_packets = 0;     // not routable, from a source over the unregistered rate
        std::uint64_t too_large = 0;                // over Config::max_datagram (or truncated)
        std::uint64_t unroutable = 0;               // empty, not registration-shaped, queue full, kernel refused
        std::uint64_t refused_registrations = 0;    // registration-sized, and not accepted (replays aside)
        std::uint64_t replayed_registrations = 0;   // a registration seen before, from another address
        std::uint64_t registrations = 0;            // acked (retransmissions included)
        std::uint64_t limit_hits = 0;               // sources over the unregistered rate, once per window
        std::uint64_t table_publishes = 0;  // forward tables built for relay threads
        // The node-to-node leg (cluster; see open_node_leg). Sent and
        // received ones are in relayed_packets too.
        std::uint64_t node_sent = 0;      // clients' datagrams wrapped for another node
        std::uint64_t node_received = 0;  // from other nodes, accepted and sent to a user here
        std::uint64_t node_forged = 0;    // tag did not verify
        std::uint64_t node_dropped = 0;   // malformed, replayed, stale, for nobody here, too large to wrap
    };

    // One user's media in the current call: what it sent, from where.
    using FlowFigures = dtcall::FlowFigures;

    MediaRelay(event_base* base, const Config& config, Host& host);
    ~MediaRelay();
    MediaRelay(const MediaRelay&) = delete;
    MediaRelay& operator=(const MediaRelay&) = delete;

    Status open();  // bind every Config::listen_addresses entry : Config::media_port
    // Cluster, after open(): take node-to-node media at `address` ("IP:PORT";
    // port 0 = any free one; the media port itself shares the media sockets)
    // as node `node`, tagged with `media_key`. Returns the address bound.
    Result<std::string> open_node_leg(const std::string& node, const cluster::ClusterKey& media_key,
                                      const std::string& address);
    void close();
    // A node left the cluster (lost, or said goodbye): its place among the
    // senders the node leg remembers is freed.
    void forget_node(const std::string& node);
    std::uint16_t port() const { return port_; }
    // Forget the user's media address and figures (its call is over). Every
    // change of Host::relay_peer()'s answer that takes a user out of a call
    // must come here (CallRouter::Outbox::media_released).
    void release(const std::string& user);
    // Host::relay_peer(user) changed (its `ready`): the user's route is worked
    // out again, and relay threads get a fresh table, once per loop iteration.
    void routes_changed(const std::string& user);
    // The user's figures since its call's first registration (zero when none).
    FlowFigures flow(const std::string& user) const;
    // One datagram as if it had arrived from `from` (tests and fuzzers; the
    // socket path batches with recvmmsg/sendmmsg instead).
    void handle_datagram(const std::uint8_t* data, std::size_t size, const sockaddr* from, int from_len);
    const Stats& stats() const;  // the relay threads' counts included
    std::size_t registered() const;

    struct State;

private:
    static void on_readable(int, short, void*);
    static void on_publish(int, short, void*);
    static void on_handoff(int, short, void*);
    static void on_more_handoffs(int, short, void*);
    static void on_node_readable(int, short, void*);
    bool read_node_batches(int fd);  // true: drained
    // A node-to-node datagram: where its payload goes (offset and size in
    // `data`; `to.flow` null when no figures take it), or false (dropped,
    // counted).
    struct NodeDelivery {
        std::size_t offset, size;
        RelayTarget to;
    };
    bool node_delivery(const std::uint8_t* data, std::size_t size, NodeDelivery& out);
    void make_remote(std::uint32_t index);
    Status start_threads(std::vector<std::vector<int>> thread_sockets);
    void publish();
    void schedule_publish();
    void drain_handoffs();
    void add_thread_counts(Stats& into) const;
    void routes_changed();
    struct Path;
    bool read_batch(int fd, unsigned socket_index);  // true: drained
    // A datagram that is not relayed by a batch: forward it or treat it as a
    // registration attempt. `socket_index`: the listen address it came in on.
    void dispatch(const std::uint8_t* data, std::size_t size, const sockaddr* from, int from_len,
                  unsigned socket_index);
    // Where media from `from` goes; false when nowhere (the datagram is then
    // a registration attempt).
    bool forward_target(const sockaddr* from, RelayTarget& to);
    // `socket_index`: the listen address it came in on (answers and later media leave from there).
    void unrouted(const std::uint8_t* data, std::size_t size, const sockaddr* from, int from_len,
                  unsigned socket_index);
    void registration_attempt(const std::uint8_t* data, std::size_t size, const sockaddr* from, int from_len,
                              unsigned socket_index);
    enum class Registration { acked, refused, replayed };
    Registration try_register(const std::uint8_t* data, std::size_t size, const sockaddr* from, int from_len,
                              unsigned socket_index);

    event_base* base_;
    const Config& config_;
    Host& host_;
    std::uint16_t port_ = 0;
    Stats stats_;
    mutable Stats reported_;
    std::unique_ptr<State> state_;
};

}  // namespace dtcall
