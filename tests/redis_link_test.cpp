// The Redis link (libdtcall/cluster/redis_link.*) against a real redis-server
// started by the test on a Unix socket in a temp dir (support/redis_server.*).
// Every wait is bounded by run_until; every test stops what it started.
//
//   test            RedisLink            redis-server
//    | command(SET) --->|------ SET ------->|
//    |<-- handler(OK) --|<----- +OK --------|
//    |     (redis stopped: EOF) ----------- X
//    |                  |-- retry 20, 40, 80 ms ... (one log line)
//    |     (redis started again)            |
//    |                  |------ connect --->|  (SUBSCRIBE again)
#include "cluster/redis_link.hpp"

#include <doctest/doctest.h>

#include "redis_server.hpp"
#include "temp_dir.hpp"

#include <event2/event.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using dtcall::cluster::RedisLink;
using dtcall::cluster::RedisReply;

namespace {

// A loop with a 5 ms tick, so run_until checks its condition often and
// never waits past its limit.
struct Loop {
    event_base* base = event_base_new();
    event* tick = nullptr;
    Loop() {
        REQUIRE(base != nullptr);
        tick = event_new(base, -1, EV_PERSIST, [](int, short, void*) {}, nullptr);
        timeval every{0, 5000};
        event_add(tick, &every);
    }
    ~Loop() {
        event_free(tick);
        event_base_free(base);
    }
    bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (!done()) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            event_base_loop(base, EVLOOP_ONCE);
        }
        return true;
    }
};

struct Logs {
    std::vector<std::string> lines;
    dtcall::LogSink sink() {
        return [this](dtcall::LogLevel, const std::string& line) { lines.push_back(line); };
    }
    int count(const std::string& part) const {
        int n = 0;
        for (const auto& l : lines) n += l.find(part) != std::string::npos;
        return n;
    }
};

RedisLink::Options options_for(const test_support::RedisServer& redis, Logs& logs, const std::string& name = "redis") {
    RedisLink::Options o;
    o.address.unix_path = redis.socket_path();
    o.name = name;
    o.first_retry = 20ms;
    o.max_retry = 160ms;
    o.log = logs.sink();
    return o;
}

// Sends a command and runs the loop until its reply.
RedisReply call(Loop& loop, RedisLink& link, const std::vector<std::string>& args) {
    std::optional<RedisReply> reply;
    REQUIRE(link.command(args, [&](const RedisReply& r) { reply = r; }));
    REQUIRE(loop.run_until([&] { return reply.has_value(); }));
    return *reply;
}

}  // namespace

TEST_CASE("the round-trip histogram: each time in the first bucket whose bound it does not exceed") {
    using dtcall::cluster::RoundTripHistogram;
    using dtcall::cluster::round_trip_bounds;
    RoundTripHistogram h;
    CHECK(h.count == 0);
    h.observe(0us);      // 0: the first bucket
    h.observe(100us);    // exactly 0.0001: still the first (le)
    h.observe(101us);    // 0.00025
    h.observe(3ms);      // 0.005
    h.observe(1s);       // exactly the last bound
    h.observe(2500ms);   // over every bound: counted, in no bucket
    h.observe(-5us);     // a clock that went back: 0
    CHECK(h.buckets[0] == 3);
    CHECK(h.buckets[1] == 1);
    CHECK(round_trip_bounds[5] == 0.005);
    CHECK(h.buckets[5] == 1);
    CHECK(h.buckets[round_trip_bounds.size() - 1] == 1);
    std::uint64_t in_buckets = 0;
    for (std::uint64_t b : h.buckets) in_buckets += b;
    CHECK(in_buckets == 6);
    CHECK(h.count == 7);
    CHECK(h.sum_seconds == doctest::Approx(0.0001 + 0.000101 + 0.003 + 1 + 2.5));
}

TEST_CASE("a command round trip: status, string (binary), integer, nil, error, array") {
    test_support::TempDir dir;
    test_support::RedisServer redis(dir.path);
    REQUIRE_MESSAGE(redis.start() == "", "redis-server did not start");
    Loop loop;
    Logs logs;
    RedisLink link(loop.base, options_for(redis, logs));
    CHECK_FALSE(link.command({"PING"}, [](const RedisReply&) { FAIL("not connected: never called"); }));
    link.start();
    REQUIRE(loop.run_until([&] { return link.connected(); }));
    CHECK(logs.count("redis (unix:" + redis.socket_path() + "): connected") == 1);

    RedisReply set = call(loop, link, {"SET", "k", std::string("v\0w", 3)});
    CHECK(set.type == RedisReply::Type::status);
    CHECK(set.text == "OK");
    RedisReply get = call(loop, link, {"GET", "k"});
    CHECK(get.type == RedisReply::Type::string);
    CHECK(get.text == std::string("v\0w", 3));
    CHECK(call(loop, link, {"INCR", "n"}).integer == 1);
    CHECK(call(loop, link, {"GET", "missing"}).type == RedisReply::Type::nil);
    RedisReply error = call(loop, link, {"NOSUCHCOMMAND"});
    CHECK(error.type == RedisReply::Type::error);
    CHECK_FALSE(error.ok());
    call(loop, link, {"RPUSH", "l", "a", "b"});
    RedisReply list = call(loop, link, {"LRANGE", "l", "0", "-1"});
    REQUIRE(list.type == RedisReply::Type::array);
    REQUIRE(list.elements.size() == 2);
    CHECK(list.elements[1].text == "b");
    // Many in flight at once: answered in order.
    std::vector<long long> seen;
    for (int i = 0; i < 100; ++i) {
        REQUIRE(link.command({"INCR", "many"}, [&](const RedisReply& r) { seen.push_back(r.integer); }));
    }
    REQUIRE(loop.run_until([&] { return seen.size() == 100; }));
    CHECK(seen.front() == 1);
    CHECK(seen.back() == 100);
    // Every answered command was timed (the error reply too): 7 one by one, 100 at once.
    const auto& times = link.round_trips();
    CHECK(times.count == 107);
    CHECK(times.sum_seconds > 0);
    CHECK(times.sum_seconds < 107 * 5.0);  // each within run_until's limit
    std::uint64_t in_buckets = 0;
    for (std::uint64_t b : times.buckets) in_buckets += b;
    CHECK(in_buckets > 0);  // those over 1 s (a very loaded machine) are in count only
    CHECK(in_buckets <= 107);
    link.stop();
    CHECK(link.state() == RedisLink::State::stopped);
}

TEST_CASE("pub/sub between two links; a subscribing link sends no commands") {
    test_support::TempDir dir;
    test_support::RedisServer redis(dir.path);
    REQUIRE(redis.start() == "");
    Loop loop;
    Logs logs;
    RedisLink subscriber(loop.base, options_for(redis, logs, "sub"));
    RedisLink publisher(loop.base, options_for(redis, logs, "pub"));
    std::vector<std::string> received;
    subscriber.subscribe("node.n2", [&](std::string_view m) { received.emplace_back(m); });
    subscriber.start();
    publisher.start();
    REQUIRE(loop.run_until([&] { return subscriber.connected() && publisher.connected(); }));
    CHECK_FALSE(subscriber.command({"PING"}, [](const RedisReply&) {}));

    // PUBLISH answers how many received it: repeat until the SUBSCRIBE is in.
    long long receivers = 0;
    REQUIRE(loop.run_until([&] {
        receivers = call(loop, publisher, {"PUBLISH", "node.n2", std::string("first\0", 6)}).integer;
        return receivers == 1;
    }));
    REQUIRE(loop.run_until([&] { return !received.empty(); }));
    CHECK(received.back() == std::string("first\0", 6));
    call(loop, publisher, {"PUBLISH", "node.other", "not for us"});
    call(loop, publisher, {"PUBLISH", "node.n2", "second"});
    REQUIRE(loop.run_until([&] { return received.back() == "second"; }));
    for (const auto& m : received) CHECK(m != "not for us");
}

TEST_CASE("Redis stopped: the link notices, retries with backoff, logs once; restarted: it reconnects and works") {
    test_support::TempDir dir;
    test_support::RedisServer redis(dir.path);
    REQUIRE(redis.start() == "");
    Loop loop;
    Logs logs;
    int ups = 0, downs = 0;
    auto command_options = options_for(redis, logs, "cmd");
    command_options.on_connected = [&] { ++ups; };
    command_options.on_disconnected = [&] { ++downs; };
    RedisLink link(loop.base, command_options);
    RedisLink subscriber(loop.base, options_for(redis, logs, "sub"));
    std::vector<std::string> received;
    subscriber.subscribe("c", [&](std::string_view m) { received.emplace_back(m); });
    link.start();
    subscriber.start();
    REQUIRE(loop.run_until([&] { return link.connected() && subscriber.connected(); }));
    CHECK(ups == 1);
    CHECK(call(loop, link, {"SET", "k", "1"}).ok());

    redis.stop();
    REQUIRE(loop.run_until([&] { return !link.connected() && !subscriber.connected(); }));
    CHECK(downs == 1);
    CHECK_FALSE(link.command({"PING"}, [](const RedisReply&) {}));
    // Several failed retries pass (20, 40, 80, 160, 160 ms ...): one line per link.
    loop.run_until([] { return false; }, 600ms);
    CHECK(link.next_retry() == 160ms);
    CHECK(logs.count("cmd (unix:" + redis.socket_path() + "): connection lost") == 1);
    CHECK(logs.count("sub (unix:") == 2);  // "connected", "connection lost"
    CHECK(logs.count("cannot connect") == 0);

    REQUIRE(redis.start() == "");
    REQUIRE(loop.run_until([&] { return link.connected() && subscriber.connected(); }));
    CHECK(ups == 2);
    CHECK(link.connects() == 2);
    CHECK(link.next_retry() == 20ms);  // backoff starts over
    CHECK(logs.count("cmd (unix:" + redis.socket_path() + "): connected again after ") == 1);
    // No persistence: the key is gone, but commands work again.
    CHECK(call(loop, link, {"GET", "k"}).type == RedisReply::Type::nil);
    // And the subscription was made again.
    REQUIRE(loop.run_until([&] { return call(loop, link, {"PUBLISH", "c", "back"}).integer == 1; }));
    REQUIRE(loop.run_until([&] { return !received.empty() && received.back() == "back"; }));
}

TEST_CASE("Redis absent at start: the link keeps retrying, logs once, and connects when it appears") {
    test_support::TempDir dir;
    test_support::RedisServer redis(dir.path);
    Loop loop;
    Logs logs;
    RedisLink link(loop.base, options_for(redis, logs));
    link.start();
    CHECK_FALSE(link.connected());
    loop.run_until([] { return false; }, 300ms);
    CHECK(link.state() == RedisLink::State::waiting_to_retry);
    CHECK(logs.count("cannot connect") == 1);
    REQUIRE(redis.start() == "");
    REQUIRE(loop.run_until([&] { return link.connected(); }));
    CHECK(logs.count("connected again after ") == 1);
    CHECK(call(loop, link, {"PING"}).text == "PONG");
}

TEST_CASE("a command in flight when Redis goes: its handler gets 'lost'; stop() drops pending handlers") {
    test_support::TempDir dir;
    test_support::RedisServer redis(dir.path);
    REQUIRE(redis.start() == "");
    Loop loop;
    Logs logs;
    {
        RedisLink link(loop.base, options_for(redis, logs));
        link.start();
        REQUIRE(loop.run_until([&] { return link.connected(); }));
        std::optional<RedisReply> reply;
        // BLPOP waits 5 s for a list nobody fills: still pending when Redis stops.
        REQUIRE(link.command({"BLPOP", "empty", "5"}, [&](const RedisReply& r) { reply = r; }));
        loop.run_until([] { return false; }, 50ms);
        redis.stop();
        REQUIRE(loop.run_until([&] { return reply.has_value(); }));
        CHECK(reply->type == RedisReply::Type::lost);
        CHECK(link.round_trips().count == 0);  // a lost command has no round trip
    }
    REQUIRE(redis.start() == "");
    bool called = false;
    {
        RedisLink link(loop.base, options_for(redis, logs));
        link.start();
        REQUIRE(loop.run_until([&] { return link.connected(); }));
        REQUIRE(link.command({"BLPOP", "empty", "5"}, [&](const RedisReply&) { called = true; }));
        loop.run_until([] { return false; }, 20ms);
    }  // destroyed with the command pending
    loop.run_until([] { return false; }, 50ms);
    CHECK_FALSE(called);
}
