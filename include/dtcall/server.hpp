// dtcall::Server: the whole signaling server on one libevent event_base — its
// own, or one the embedding program already runs. Not thread-safe: call it
// from the thread that runs its event_base (Config::media_threads relay
// threads are internal and never call back). Several Servers may share a
// process, and even a base; none has global state.
//
// From callbacks (observer, policy, log sink, directory answers) a program
// may call every method of this Server except its destructor: stop(),
// kick(), end_call(), online_users()... take effect in order and never free
// anything the Server is still using. Destroying the Server (or another
// Server on the same base) from a callback is not allowed; do it from the
// stop() completion callback's caller's next step, or after the loop returns.
#pragma once

#include <dtcall/config.hpp>
#include <dtcall/events.hpp>
#include <dtcall/export.hpp>
#include <dtcall/log.hpp>
#include <dtcall/result.hpp>
#include <dtcall/user_directory.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

struct event_base;

namespace dtcall {

// Counters since start(); gauges are "now". Each field says exactly what it counts.
struct ServerStats {
    // --- gauges ---
    std::size_t connections = 0;     // command connections open, logged in or not
    std::size_t logged_in = 0;       // users online
    std::size_t calls_ringing = 0;   // calls rung and not yet accepted
    std::size_t calls_accepted = 0;  // accepted, waiting for both `ready`s
    std::size_t calls_in_progress = 0;  // `start` queued for both (frames are paced)
    std::size_t media_registered = 0;   // users with a media address
    // --- logins and calls (counters) ---
    std::uint64_t logins = 0;             // successful login2s
    std::uint64_t login_failures = 0;     // login attempts that failed (any LoginFailure)
    // Calls that ended, for any EndReason: those that rang, and those refused
    // at once (busy, refused by the policy) that never rang.
    std::uint64_t calls_ended = 0;
    // --- media (counters) ---
    std::uint64_t media_packets_relayed = 0;
    std::uint64_t media_packets_relayed_by_threads = 0;  // of those, by relay threads (Config::media_threads)
    std::uint64_t media_bytes_relayed = 0;               // datagram bytes handed to the kernel
    // Datagrams neither relayed nor an acked registration: the sum of
    // media_rate_limited, media_too_large, media_unroutable,
    // registrations_refused and registrations_replayed.
    std::uint64_t media_packets_dropped = 0;
    // Not routable (unknown source, or a call that cannot relay yet), from a
    // source over Config::unregistered_packets_per_second.
    std::uint64_t media_rate_limited = 0;
    std::uint64_t media_too_large = 0;          // over Config::max_datagram
    // Not routable and not shaped like a registration (empty, or of another
    // size: a registered user's media while its peer has no address, junk),
    // or lost inside the relay (a relay thread's hand-off queue full, a
    // batched send the kernel refused; a single datagram's refused send is
    // not seen and counts as relayed).
    std::uint64_t media_unroutable = 0;
    // Registration-sized datagrams that were not accepted: did not open, bad
    // or stale time, unknown session key, no call, address held by another call.
    std::uint64_t registrations_refused = 0;
    std::uint64_t registrations_acked = 0;      // registrations answered with an ack (retransmissions included)
    std::uint64_t registrations_replayed = 0;   // a registration datagram seen before, from another address (dropped)
    std::uint64_t commands_replayed = 0;        // command frames seen before, or too old (dropped)
    std::uint64_t media_table_publishes = 0;    // route tables built for relay threads
    // --- cluster (counters; zero on a single node) ---
    std::uint64_t node_packets_sent = 0;      // clients' datagrams sent on to another node
    std::uint64_t node_packets_received = 0;  // from other nodes, authenticated and sent on to a user here
    std::uint64_t node_packets_forged = 0;    // on the node-to-node leg with a tag that does not verify (dropped)
    // On the node-to-node leg and dropped, forged aside: malformed, replayed
    // or stale, for a user not in a call here, or refused by the kernel.
    std::uint64_t node_packets_dropped = 0;
    // --- limits (counters), indexed by Limit ---
    std::array<std::uint64_t, limit_count> limit_hits{};
    std::uint64_t limit_hit(Limit limit) const { return limit_hits[static_cast<std::size_t>(limit)]; }
};

// A logged-in user, as Server::online_users() lists it.
struct OnlineUser {
    std::string user;
    std::string address;  // "ip:port" of the command connection
    std::chrono::system_clock::time_point since;  // this connection's login
    unsigned keepudp_reconnects = 0;  // logins with keepudp since the user's last plain login
    CallPhase phase = CallPhase::idle;
    std::string peer;  // the other party of the call; empty when idle
    std::string node;  // in a cluster, this node's name; empty on a single node
};

class DTCALL_API Server {
public:
    // `users` must outlive the Server. With `base == nullptr` the Server makes
    // and owns an event_base; run() then dispatches it.
    Server(Config config, UserDirectory& users, event_base* base = nullptr);
    // Without stop(): every connection is closed at once (nothing is flushed,
    // nobody gets `end`), relay threads are joined, no observer is called.
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Observers are not owned; several may be added, each is called in the
    // order added. remove_observer() is safe from inside a callback.
    void add_observer(ServerObserver* observer);
    void remove_observer(ServerObserver* observer);
    void set_log(LogSink sink);
    void set_policy(CallPolicy policy);  // who may call whom; unset = anybody

    // Binds the TCP and UDP sockets and starts serving. Errors name the
    // address: ErrorCode::address_in_use, bad_address, permission; bad_key
    // when Config::server_keys is unset or its halves do not match;
    // invalid_state when already started, or stopped (a Server starts once;
    // a failed start() may be retried).
    Status start();
    // Runs the owned event_base until stop(). Not for an embedder's base.
    void run();
    // Stops politely, in this order: listeners close (no new connections);
    // every call ends for both parties (`end`, observers' call_ended with
    // EndReason::server_stopping); every connection is flushed and closed
    // (observers' logged_out with LogoutReason::server_stopping), at most
    // ~2 s for clients that do not read; relay sockets close; then `done`
    // runs (from the event loop, never from inside stop()) and a base the
    // Server owns leaves its loop. A second call does nothing but replace
    // nothing: `done` of the first call still runs once.
    void stop(std::function<void()> done = nullptr);
    // Drains before a restart: from now on no new call is placed (callers
    // get `end`, EndReason::busy) and no new login is taken, except a keepudp
    // return of a user whose call goes on; calls in progress go on. When the
    // last call has ended, or after `limit` (the rest end with
    // EndReason::server_stopping), the server stops as stop(done) does. A
    // second drain() shortens the limit if its own is shorter (its `done`
    // runs too); during or after a stop it is stop(done).
    void drain(std::chrono::seconds limit, std::function<void()> done = nullptr);
    bool draining() const;
    // Re-reads the user directory; logged-in users stay connected, except
    // those no longer in it (LogoutReason::revoked, their calls end).
    Status reload_users();

    // --- control (the event-loop thread) ---
    std::vector<OnlineUser> online_users() const;
    std::vector<CallInfo> calls() const;  // ringing, accepted and in progress
    // Closes the user's connection at once; its call ends for the peer as if
    // the user vanished (no grace period). ErrorCode::not_found when offline.
    Status kick(const std::string& user);
    // Ends the user's call for both parties, as a hang-up would (`end` to
    // both, EndReason::ended_by_server). ErrorCode::not_found without a call.
    Status end_call(const std::string& user);

    std::uint16_t command_port() const;  // the bound ports (useful with port 0)
    std::uint16_t media_port() const;
    event_base* base() const;
    ServerStats stats() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace dtcall
