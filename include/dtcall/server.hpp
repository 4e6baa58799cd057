// dtcall::Server: the whole signaling server on one libevent event_base — its
// own, or one the embedding program already runs. Not thread-safe: call it
// from the thread that runs its event_base. Several Servers may share a
// process (and even a base); none has global state.
#pragma once

#include <dtcall/call_router.hpp>
#include <dtcall/config.hpp>
#include <dtcall/result.hpp>
#include <dtcall/user_directory.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

struct event_base;

namespace dtcall {

// Callbacks for what happens on the server. Override what you need; all run
// on the event-loop thread. Names are user names; addresses are "ip:port".
class ServerObserver {
public:
    virtual ~ServerObserver() = default;
    virtual void logged_in(const std::string& user, const std::string& address) { (void)user; (void)address; }
    virtual void logged_out(const std::string& user) { (void)user; }
    virtual void call_rung(const std::string& caller, const std::string& callee) { (void)caller; (void)callee; }
    virtual void call_accepted(const std::string& caller, const std::string& callee) { (void)caller; (void)callee; }
    virtual void call_started(const std::string& caller, const std::string& callee) { (void)caller; (void)callee; }
    virtual void call_ended(const std::string& caller, const std::string& callee, EndReason reason) {
        (void)caller; (void)callee; (void)reason;
    }
    virtual void media_registered(const std::string& user, const std::string& address) { (void)user; (void)address; }
};

enum class LogLevel { debug, info, warning, error };
// One line per event, already censored: the library never passes session
// keys, challenges, TCP keys or key blobs to the log.
using LogSink = std::function<void(LogLevel, const std::string& line)>;

struct ServerStats {
    std::size_t connections = 0;
    std::size_t logged_in = 0;
    std::size_t calls = 0;
    std::uint64_t media_packets_relayed = 0;
    std::uint64_t media_packets_relayed_by_threads = 0;  // of those (Config::media_threads)
    std::uint64_t media_bytes_relayed = 0;
    std::uint64_t media_packets_dropped = 0;
    std::uint64_t registrations_acked = 0;
    std::uint64_t media_table_publishes = 0;  // tables built for relay threads (Config::media_threads)
};

class Server {
public:
    // `users` must outlive the Server. With `base == nullptr` the Server makes
    // and owns an event_base; run() then dispatches it.
    Server(Config config, UserDirectory& users, event_base* base = nullptr);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    void set_observer(ServerObserver* observer);  // not owned; may be null
    void set_log(LogSink sink);
    void set_policy(CallRouter::Policy policy);   // who may call whom

    // Binds the TCP and UDP sockets and starts serving. Errors name the address.
    Status start();
    // Runs the owned event_base until stop(). Not for an embedder's base.
    void run();
    // Stops politely: closes the listeners, sends `end` to both parties of
    // every call, flushes and closes every connection (at most ~2 s), then
    // ends the loop of a base the Server owns. Safe to call twice.
    void stop();
    // Re-reads the user directory; logged-in users stay connected.
    Status reload_users();

    std::uint16_t command_port() const;  // the bound ports (useful with port 0)
    std::uint16_t media_port() const;
    event_base* base() const;
    ServerStats stats() const;
    const CallRouter& router() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace dtcall
