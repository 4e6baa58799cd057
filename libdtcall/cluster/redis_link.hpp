// One connection to the cluster's Redis on an event_base (internal): hiredis's
// asynchronous API with its libevent adapter, so nothing here ever blocks the
// loop. The link connects by itself, notices a lost connection (EOF, a reset,
// TCP keepalive on TCP links), reconnects with backoff (first_retry doubling
// up to max_retry) and logs once per outage: one line when it is lost, one
// when it is back.
//
// A link either sends commands or subscribes, never both: a Redis connection
// that subscribes cannot run other commands (RESP2). A node opens one of each.
// Subscriptions are made again after each reconnect; messages published while
// the link was down are lost (Redis pub/sub keeps nothing), which the
// presence layer must allow for (it re-announces and re-reads on reconnect).
//
// Every command with a reply is timed, from sending to its reply (steady
// clock), into round_trips(): fixed buckets, nothing allocated for it.
//
// Host names in the address are resolved by hiredis with a blocking
// getaddrinfo: give the link an IP literal or a Unix socket (dtcalld resolves
// a name once before its loop runs).
#pragma once

#include "cluster/cluster_stats.hpp"
#include "cluster/redis_address.hpp"

#include <dtcall/log.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct event_base;
struct event;
struct redisAsyncContext;

namespace dtcall::cluster {

// A reply, copied out of hiredis's (which it frees after the callback).
struct RedisReply {
    enum class Type { string, status, error, integer, nil, array, lost };
    Type type = Type::lost;  // lost: the connection went before an answer came
    std::string text;        // string, status, error
    long long integer = 0;
    std::vector<RedisReply> elements;
    bool ok() const { return type != Type::error && type != Type::lost; }
};

class RedisLink {
public:
    enum class State { idle, connecting, connected, waiting_to_retry, closing, stopped };

    struct Options {
        RedisAddress address;
        std::string name = "redis";  // in log lines: "NAME (ADDRESS): ..."
        std::chrono::milliseconds first_retry{100};
        std::chrono::milliseconds max_retry{5000};
        std::chrono::milliseconds connect_timeout{2000};
        LogSink log;                             // may be empty
        std::function<void()> on_connected;      // each time, reconnects included
        std::function<void()> on_disconnected;   // each loss of a connection that was up
    };
    using ReplyHandler = std::function<void(const RedisReply&)>;
    using MessageHandler = std::function<void(std::string_view message)>;

    RedisLink(event_base* base, Options options);
    ~RedisLink();  // pending command handlers are dropped, not called
    RedisLink(const RedisLink&) = delete;
    RedisLink& operator=(const RedisLink&) = delete;

    void start();  // begins connecting; returns at once
    void stop();   // disconnects and stops retrying; handlers are not called after
    // Stops retrying, and lets the commands already sent go out and be
    // answered before the connection closes (their handlers are called),
    // within `limit` (then as stop()). Never blocks: it writes what the
    // socket takes at once, the rest is the loop's. Not connected: stop().
    void stop_politely(std::chrono::milliseconds limit);
    State state() const { return state_; }
    bool connected() const { return state_ == State::connected; }

    // Sends a command (arguments binary-safe). False, and the handler is not
    // called, when not connected or when this link subscribes. Otherwise the
    // handler is called once: with the reply, or with Type::lost if the
    // connection goes first.
    bool command(const std::vector<std::string>& args, ReplyHandler handler);
    // Subscribes to `channel` now (when connected) and after every reconnect.
    void subscribe(const std::string& channel, MessageHandler handler);

    // How many times it connected, and the delay before the next attempt
    // (tests and metrics).
    std::uint64_t connects() const { return connects_; }
    std::chrono::milliseconds next_retry() const { return retry_; }
    // Send-to-reply times of the commands answered (not of those lost).
    const RoundTripHistogram& round_trips() const { return round_trips_; }

private:
    // hiredis's privdata for a command: its handler and when it was sent.
    struct Pending {
        ReplyHandler handler;
        std::chrono::steady_clock::time_point sent;
    };
    static void on_connect(const redisAsyncContext* ac, int status);
    static void on_disconnect(const redisAsyncContext* ac, int status);
    static void on_reply(redisAsyncContext* ac, void* reply, void* privdata);
    static void on_message(redisAsyncContext* ac, void* reply, void* privdata);
    static void on_timer(int, short, void* self);

    void connect_now();
    void lost(const std::string& why);
    void schedule_retry();
    void send_subscribe(const std::string& channel);
    void log(LogLevel level, const std::string& line) const;

    event_base* base_;
    Options options_;
    State state_ = State::idle;
    redisAsyncContext* context_ = nullptr;
    event* timer_ = nullptr;  // the retry delay, or the connect timeout
    std::chrono::milliseconds retry_;
    std::uint64_t connects_ = 0;
    std::uint64_t failed_attempts_ = 0;  // in this outage
    std::chrono::steady_clock::time_point outage_began_;
    RoundTripHistogram round_trips_;
    std::map<std::string, MessageHandler> subscriptions_;  // stable addresses: privdata for hiredis
};

}  // namespace dtcall::cluster
