// UDP registration, ack and relay (PROTOCOL.md section 9, defect D8).
//   client -> seal("ts|sk")   (118 bytes)      server -> secretbox(tcp key, ts)  (54 bytes)
//   in call: datagram from A's address -> unchanged to B's address
#include <doctest/doctest.h>

#include "harness.hpp"

#include "crypto/crypto.hpp"

using namespace test_support;
using namespace dtcall;

namespace {

// alice and bob logged in, alice ringing bob, accepted.
struct Accepted {
    TestServer& s;
    RawPeer alice, bob;
    Accepted(TestServer& server) : s(server), alice(server), bob(server) {
        REQUIRE_FALSE(alice.login("alice").empty());
        REQUIRE_FALSE(bob.login("bob").empty());
        alice.command("call|bob|" + alice.sk);
        REQUIRE(alice.next_body() == "available|bob");
        REQUIRE(bob.next_body() == "incoming|alice");
        bob.command("accept|alice|" + bob.sk);
        REQUIRE(alice.next_body().rfind("prepare|", 0) == 0);
        REQUIRE(bob.next_body().rfind("prepare|", 0) == 0);
    }
};

}  // namespace

TEST_CASE("registration: 118 bytes in, a 54-byte ack under the TCP key out") {
    TestServer s;
    Accepted call(s);
    RawMedia media(s);
    media.send_registration(call.alice.sk, s.timestamp());
    auto ack = media.receive();
    REQUIRE(ack);
    CHECK(ack->size() == 54);
    auto ts = open_secret_frame(call.alice.tcp_key.data(), ack->data(), ack->size());
    REQUIRE(ts);
    CHECK(wire::timestamp_in_window(*ts, std::time(nullptr), 5));
    CHECK(s.server->stats().registrations_acked == 1);
}

TEST_CASE("a retransmitted registration (same bytes, same address) is acked again; elsewhere it is refused") {
    TestServer s;
    Accepted call(s);
    RawMedia media(s), other(s);
    REQUIRE(media.register_with(call.alice));
    Bytes registration = media.last_sent();
    media.send(registration);  // the ack was lost; the client sends the same datagram again
    auto ack = media.receive();
    REQUIRE(ack);
    CHECK(open_secret_frame(call.alice.tcp_key.data(), ack->data(), ack->size()));
    other.send(registration);
    CHECK(other.receive(quiet) == std::nullopt);
    ServerStats stats = s.server->stats();
    CHECK(stats.registrations_acked == 2);
    CHECK(stats.registrations_replayed == 1);
    CHECK(stats.media_packets_dropped == 1);
}

TEST_CASE("registrations that get no ack: no call, unknown key, stale key (D8), bad time, junk") {
    TestServer s;
    RawPeer carol(s);
    REQUIRE_FALSE(carol.login("carol").empty());
    RawMedia media(s);
    media.send_registration(carol.sk, s.timestamp());  // carol has no call
    CHECK(media.receive(quiet) == std::nullopt);
    Accepted call(s);
    media.send_registration(std::string(59, 'Z'), s.timestamp());
    media.send_registration(call.alice.sk, s.timestamp(-1000));
    media.send_registration(call.alice.sk + "|x", s.timestamp());
    std::string no_bar = s.timestamp() + call.alice.sk;
    media.send(seal_anonymous(s.keys.public_key, reinterpret_cast<const std::uint8_t*>(no_bar.data()), no_bar.size()));
    media.send(Bytes(118, 0));
    media.send(Bytes(1, 0));
    media.send(Bytes(2000, 0xff));
    CHECK(media.receive(quiet) == std::nullopt);
    std::string stale = call.bob.sk;
    call.bob.drop();  // bob's connection (and key) is gone; the call stays for a keepudp reconnect
    s.pump(20ms);
    media.send_registration(stale, s.timestamp());
    CHECK(media.receive(quiet) == std::nullopt);
    CHECK(s.server->stats().media_packets_dropped >= 8);
    RawMedia good(s);
    CHECK(good.register_with(call.alice));  // still serving
}

TEST_CASE("relay: both ways, unchanged, up to 64 KiB; nothing before ready") {
    TestServer s;
    Accepted call(s);
    RawMedia a(s), b(s);
    REQUIRE(a.register_with(call.alice));
    REQUIRE(b.register_with(call.bob));
    a.send(Bytes(100, 1));  // alice has not sent ready: a (failed) registration attempt
    CHECK(b.receive(quiet) == std::nullopt);
    std::uint64_t tables = s.server->stats().media_table_publishes;
    call.alice.command("ready|bob|" + call.alice.sk);
    call.bob.command("ready|alice|" + call.bob.sk);
    REQUIRE(call.alice.next_body() == "start|bob");
    REQUIRE(call.bob.next_body() == "start|alice");
    // With relay threads, a thread hands what it cannot route yet to the
    // main thread only up to 1500 bytes (a real client sends at most 1400);
    // a 9000-byte datagram must find the call in the thread's own table.
    // Both readies are in (both got start): every table they call for is
    // published within the pacing bound (250 ms); run the loop past it.
    if (s.config.media_threads > 0) {
        s.pump(400ms);
        REQUIRE(s.server->stats().media_table_publishes > tables);
    }
    for (std::size_t size : {1u, 100u, 1200u, 1400u, 9000u, 65000u}) {
        Bytes payload(size);
        for (std::size_t i = 0; i < size; ++i) payload[i] = std::uint8_t(i * 31 + size);
        a.send(payload);
        CHECK(b.receive() == payload);
        b.send(payload);
        CHECK(a.receive() == payload);
    }
    CHECK(s.server->stats().media_packets_relayed == 12);
}

TEST_CASE("a new registration from a new address replaces the old one") {
    TestServer s;
    CallPair call(s);
    REQUIRE(call.established);
    RawMedia moved(s);  // bob's phone rebinds (new port)
    REQUIRE(moved.register_with(call.bob));
    call.alice_media.send(Bytes(80, 3));
    CHECK(moved.receive() == Bytes(80, 3));
    CHECK(call.bob_media.receive(quiet) == std::nullopt);
    call.bob_media.send(Bytes(80, 4));  // the old address is no longer bob's
    CHECK(call.alice_media.receive(quiet) == std::nullopt);
    moved.send(Bytes(80, 5));
    CHECK(call.alice_media.receive() == Bytes(80, 5));
}

TEST_CASE("after end, the media mappings are gone") {
    TestServer s;
    CallPair call(s);
    REQUIRE(call.established);
    call.alice.command("end|bob|" + call.alice.sk);
    REQUIRE(call.bob.next_body() == "end|alice");
    call.alice_media.send(Bytes(90, 1));
    CHECK(call.bob_media.receive(quiet) == std::nullopt);
    call.alice_media.send_registration(call.alice.sk, s.timestamp());  // no call: no ack
    CHECK(call.alice_media.receive(quiet) == std::nullopt);
}

TEST_CASE("junk datagrams of every size do not disturb a call") {
    TestServer s;
    CallPair call(s);
    REQUIRE(call.established);
    RawMedia junk(s);
    for (std::size_t size = 0; size < 300; size += 7) junk.send(Bytes(size, std::uint8_t(size)));
    junk.send(Bytes(60000, 1));
    call.alice_media.send(Bytes(33, 3));
    CHECK(call.bob_media.receive() == Bytes(33, 3));
    CHECK(junk.receive(quiet) == std::nullopt);
}

TEST_CASE("media between two calls never crosses") {
    TestServer s({"alice", "bob", "carol", "dave"});
    CallPair one(s);
    REQUIRE(one.established);
    CallPair two(s, "carol", "dave");
    REQUIRE(two.established);
    one.alice_media.send(Bytes(10, 1));
    two.alice_media.send(Bytes(10, 2));
    CHECK(one.bob_media.receive() == Bytes(10, 1));
    CHECK(two.bob_media.receive() == Bytes(10, 2));
    CHECK(one.bob_media.receive(quiet) == std::nullopt);
}

TEST_CASE("media and a new registration in one batch: the queued media still goes to the right address") {
    // alice and bob hold the relay's two route slots; carol's registration in
    // the same recvmmsg batch as alice's media adds a third and may move the
    // route table while alice's datagram waits for sendmmsg (a use-after-free
    // under ASan before the batch copied destinations).
    TestServer s({"alice", "bob", "carol", "dave"});
    CallPair call(s);
    REQUIRE(call.established);
    RawPeer carol(s), dave(s);
    REQUIRE(log_in_and_ring(carol, "carol", dave, "dave"));
    RawMedia carol_media(s);
    for (int i = 0; i < 5; ++i) call.alice_media.send_unpumped(Bytes(80, std::uint8_t(i)));
    carol_media.send_unpumped(carol_media.registration(carol.sk, s.timestamp()));
    for (int i = 5; i < 10; ++i) call.alice_media.send_unpumped(Bytes(80, std::uint8_t(i)));
    for (int i = 0; i < 10; ++i) CHECK(call.bob_media.receive() == Bytes(80, std::uint8_t(i)));
    auto ack = carol_media.receive();
    REQUIRE(ack);
    CHECK(ack->size() == 54);
}

TEST_CASE("datagrams over max_datagram are dropped, the call goes on") {
    TestServer s({"alice", "bob"}, [](Config& c) { c.max_datagram = 1400; });
    CallPair call(s);
    REQUIRE(call.established);
    call.alice_media.send(Bytes(1401, 1));
    CHECK(call.bob_media.receive(quiet) == std::nullopt);
    call.alice_media.send(Bytes(1400, 2));
    CHECK(call.bob_media.receive() == Bytes(1400, 2));
    ServerStats stats = s.server->stats();
    CHECK(stats.media_too_large == 1);
    CHECK(stats.media_packets_dropped == 1);
    CHECK(stats.media_packets_relayed == 1);
}

namespace {

struct Reports : ServerObserver {
    std::vector<CallReport> ended;
    std::vector<std::pair<Limit, std::string>> limits;
    void call_ended(const CallReport& r) override { ended.push_back(r); }
    void limit_hit(Limit limit, const std::string& address) override { limits.emplace_back(limit, address); }
};

}  // namespace

TEST_CASE("per-call figures: packets and bytes each way, media addresses, a move; the end report carries them") {
    TestServer s;
    Reports reports;
    s.server->add_observer(&reports);
    CallPair call(s);
    REQUIRE(call.established);
    s.pump(50ms);  // relay threads (if any) have their table
    for (int i = 0; i < 5; ++i) {
        call.alice_media.send(Bytes(100, std::uint8_t(i)));
        CHECK(call.bob_media.receive() == Bytes(100, std::uint8_t(i)));
    }
    for (int i = 0; i < 3; ++i) {
        call.bob_media.send(Bytes(40, std::uint8_t(i)));
        CHECK(call.alice_media.receive() == Bytes(40, std::uint8_t(i)));
    }
    auto calls = s.server->calls();
    REQUIRE(calls.size() == 1);
    CallInfo c = calls[0];
    CHECK(c.phase == CallPhase::in_call);
    CHECK(c.caller_to_callee.packets == 5);
    CHECK(c.caller_to_callee.bytes == 500);
    CHECK(c.callee_to_caller.packets == 3);
    CHECK(c.callee_to_caller.bytes == 120);
    CHECK(c.caller_media.address.rfind("127.0.0.1:", 0) == 0);
    CHECK(c.callee_media.address.rfind("127.0.0.1:", 0) == 0);
    CHECK(c.caller_media.address != c.callee_media.address);
    CHECK(c.caller_media.moves == 0);
    CHECK(c.callee_media.moves == 0);
    CHECK(c.rung_at.time_since_epoch().count() != 0);
    CHECK(c.started_at >= c.rung_at);

    RawMedia moved(s);  // bob's NAT rebinds
    REQUIRE(moved.register_with(call.bob));
    moved.send(Bytes(60, 7));
    CHECK(call.alice_media.receive() == Bytes(60, 7));
    calls = s.server->calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].callee_media.moves == 1);
    CHECK(calls[0].callee_media.address != c.callee_media.address);
    CHECK(calls[0].callee_to_caller.packets == 4);
    CHECK(calls[0].callee_to_caller.bytes == 180);
    CHECK(calls[0].caller_media.moves == 0);
    CHECK(s.server->stats().media_registered == 2);

    call.alice.command("end|bob|" + call.alice.sk);
    REQUIRE(call.bob.next_body() == "end|alice");
    REQUIRE(reports.ended.size() == 1);
    const CallReport& r = reports.ended[0];
    CHECK(r.reason == EndReason::hangup);
    CHECK(r.call.caller == "alice");
    CHECK(r.call.callee == "bob");
    CHECK(r.call.phase == CallPhase::in_call);
    CHECK(r.call.caller_to_callee.packets == 5);
    CHECK(r.call.caller_to_callee.bytes == 500);
    CHECK(r.call.callee_to_caller.packets == 4);
    CHECK(r.call.callee_to_caller.bytes == 180);
    CHECK(r.call.callee_media.moves == 1);
    CHECK(r.call.callee_media.address == calls[0].callee_media.address);
    CHECK(r.call.caller_media.address == c.caller_media.address);
    CHECK(r.call.rung_at == c.rung_at);
    CHECK(r.call.started_at == c.started_at);
    CHECK(r.ended_at >= r.call.started_at);
    CHECK(r.setup_time == std::chrono::duration_cast<Millis>(r.call.started_at - r.call.rung_at));
    CHECK(r.duration == std::chrono::duration_cast<Millis>(r.ended_at - r.call.started_at));
    CHECK(r.duration >= 50ms);
    CHECK(s.server->stats().media_registered == 0);

    // A new call starts from zero.
    call.alice.command("call|bob|" + call.alice.sk);
    REQUIRE(call.alice.next_body() == "available|bob");
    REQUIRE(call.bob.next_body() == "incoming|alice");
    calls = s.server->calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].phase == CallPhase::ringing);
    CHECK(calls[0].caller_to_callee.packets == 0);
    CHECK(calls[0].callee_media.address.empty());
    CHECK(calls[0].callee_media.moves == 0);
    CHECK(calls[0].started_at.time_since_epoch().count() == 0);
}

TEST_CASE("per-call figures: the longest gap between packets of one direction") {
    TestServer s;
    CallPair call(s);
    REQUIRE(call.established);
    s.pump(50ms);  // relay threads (if any) have their table
    call.alice_media.send(Bytes(20, 1));
    REQUIRE(call.bob_media.receive() == Bytes(20, 1));
    call.alice_media.send(Bytes(20, 2));
    REQUIRE(call.bob_media.receive() == Bytes(20, 2));
    s.pump(300ms);
    call.alice_media.send(Bytes(20, 3));
    REQUIRE(call.bob_media.receive() == Bytes(20, 3));
    call.bob_media.send(Bytes(20, 4));
    REQUIRE(call.alice_media.receive() == Bytes(20, 4));
    auto calls = s.server->calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].caller_to_callee.packets == 3);
    CHECK(calls[0].caller_to_callee.longest_gap >= 250ms);
    CHECK(calls[0].caller_to_callee.longest_gap < 3000ms);
    CHECK(calls[0].callee_to_caller.longest_gap == 0ms);  // one packet: no gap
}

TEST_CASE("drop counters: rate limited, unroutable and refused registrations add up; one limit_hit per window") {
    TestServer s({"alice", "bob"}, [](Config& c) { c.unregistered_packets_per_second = 5; });
    Reports reports;
    s.server->add_observer(&reports);
    CallPair call(s);
    REQUIRE(call.established);
    ServerStats before = s.server->stats();
    RawMedia stranger(s), sealed_junk(s);
    // 20 at once from one source: 5 get past the limit (not registration
    // sized: unroutable), 15 are refused by it, reported once.
    for (int i = 0; i < 20; ++i) stranger.send_unpumped(Bytes(50, std::uint8_t(i)));
    sealed_junk.send(Bytes(118, 9));  // registration sized, does not open
    ServerStats after;
    for (int i = 0; i < 100; ++i) {
        s.pump(10ms);
        after = s.server->stats();
        if (after.media_packets_dropped - before.media_packets_dropped >= 21 && !reports.limits.empty()) break;
    }
    CHECK(after.media_rate_limited - before.media_rate_limited == 15);
    CHECK(after.media_unroutable - before.media_unroutable == 5);
    CHECK(after.registrations_refused - before.registrations_refused == 1);
    CHECK(after.media_packets_dropped - before.media_packets_dropped == 21);
    CHECK(after.media_packets_dropped == after.media_rate_limited + after.media_too_large + after.media_unroutable +
                                             after.registrations_refused + after.registrations_replayed);
    CHECK(after.limit_hit(Limit::unregistered_datagrams) == 1);
    REQUIRE(reports.limits.size() == 1);
    CHECK(reports.limits[0].first == Limit::unregistered_datagrams);
    CHECK(reports.limits[0].second.rfind("127.0.0.1:", 0) == 0);
    CHECK(after.media_packets_relayed == 0);
    CHECK(after.registrations_acked == 2);
}
