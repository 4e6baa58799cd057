// Peers that misbehave on purpose. After each attack a well-behaved pair
// still logs in and completes a call with media.
#include <doctest/doctest.h>

#include "harness.hpp"

#include "crypto/crypto.hpp"

#include <sodium.h>

using namespace test_support;
using namespace dtcall;

namespace {

Bytes random_bytes(std::size_t n) {
    Bytes b(n);
    if (n > 0) randombytes_buf(b.data(), n);
    return b;
}

void still_serves(TestServer& s) {
    CallPair call(s);
    REQUIRE(call.established);
    call.alice_media.send(Bytes(120, 0xab));
    CHECK(call.bob_media.receive() == Bytes(120, 0xab));
    call.bob.command("end|alice|" + call.bob.sk);
    CHECK(call.alice.next_body() == "end|bob");
}

}  // namespace

TEST_CASE("random bytes before the handshake") {
    TestServer s;
    for (std::size_t n : {1u, 79u, 80u, 81u, 500u, 5000u}) {
        RawPeer p(s);
        p.send_bytes(random_bytes(n));
        if (n >= 80) CHECK(p.closed());
    }
    still_serves(s);
}

TEST_CASE("random bytes and forged frames after the handshake") {
    TestServer s;
    RawPeer forger(s);
    REQUIRE(forger.handshake());
    // Forged frames with plausible lengths are dropped; the connection stays.
    for (int i = 0; i < 20; ++i) {
        Bytes f = random_bytes(44 + 30);
        f[24] = f[25] = f[26] = 0;
        f[27] = 30;
        forger.send_bytes(f);
    }
    CHECK_FALSE(forger.closed(quiet));
    forger.send_bytes(random_bytes(3000));  // almost surely announces too much
    CHECK(forger.closed());
    RawPeer other(s);
    REQUIRE(other.handshake());
    Bytes wrong_key_frame = seal_secret_frame(random_bytes(32).data(), s.timestamp() + "|login1|alice");
    other.send_bytes(wrong_key_frame);
    CHECK(other.next(quiet) == std::nullopt);
    still_serves(s);
}

TEST_CASE("a replayed command frame is harmless; a logged-in session is not taken over") {
    TestServer s;
    CallPair call(s);
    REQUIRE(call.established);
    RawPeer eve(s);
    REQUIRE(eve.handshake());
    // eve cannot produce frames under alice's TCP key; one sealed under her own
    // key with alice's session key is refused.
    eve.command("end|bob|" + call.alice.sk);
    CHECK(eve.next_body() == "invalid");
    CHECK(call.bob.next(quiet) == std::nullopt);
    CHECK(phase_of(*s.server, "bob") == CallPhase::in_call);
}

TEST_CASE("a logged-in client that never reads is dropped, others unaffected") {
    TestServer s({"alice", "bob", "carol"}, [](Config& c) {
        c.max_output_bytes = 4096;
        c.frame_gap = std::chrono::milliseconds(0);
        c.replay_memory = 100000;  // let one connection send 40000 commands in a second
    });
    RawPeer sink(s);
    REQUIRE_FALSE(sink.login("carol").empty());
    // carol never reads; make the server answer her again and again.
    Bytes many;
    for (int i = 0; i < 40000; ++i) {
        Bytes f = seal_secret_frame(sink.tcp_key.data(), s.timestamp() + "|call|nobody|" + sink.sk);
        many.insert(many.end(), f.begin(), f.end());
    }
    sink.send_bytes(many);
    s.pump(300ms);
    CHECK(s.logged("output limit reached"));
    still_serves(s);
}

TEST_CASE("a login storm with wrong challenges is rate limited per IP, logged once") {
    TestServer s;
    int refused = 0;
    for (int i = 0; i < 30; ++i) {
        RawPeer p(s, "127.0.0.1", "127.0.0.2");
        REQUIRE(p.handshake());
        p.command("login1|carol");
        if (p.next_body() == "invalid") {  // limited: refused before any challenge
            ++refused;
            CHECK(p.closed());
            continue;
        }
        p.command("login2|carol|" + random_token(200));
        CHECK(p.next_body() == "invalid");
    }
    // A burst of 10 failures, then refusals (a slow run may earn a token back).
    CHECK(refused >= 18);
    CHECK(refused <= 20);
    int lines = 0;
    for (const auto& line : s.log) lines += line.find("too many failed logins from 127.0.0.2") != std::string::npos;
    CHECK(lines == 1);
    still_serves(s);  // alice and bob, from 127.0.0.1
}

TEST_CASE("failed logins per user name: failing sources are refused, the real user is not locked out") {
    TestServer s;
    const char* sources[] = {"127.0.0.3", "127.0.0.4", "127.0.0.5"};
    for (int i = 0; i < 12; ++i) {
        RawPeer p(s, "127.0.0.1", sources[i % 3]);
        REQUIRE(p.handshake());
        p.command("login1|carol");
        if (p.next_body() != "invalid") {
            p.command("login2|carol|" + random_token(200));
            p.next_body();
        }
    }
    RawPeer failed_before(s, "127.0.0.1", "127.0.0.3");
    CHECK(failed_before.login("carol").empty());  // this source failed for carol: refused
    CHECK(s.logged("too many failed logins for user carol"));
    RawPeer carol(s, "127.0.0.1", "127.0.0.8");
    CHECK_FALSE(carol.login("carol").empty());  // a source that never failed: the real carol gets in
    still_serves(s);
}

TEST_CASE("connections that do not log in are capped per IP") {
    TestServer s({"alice", "bob", "carol"}, [](Config& c) { c.max_unauthenticated_per_ip = 5; });
    std::vector<std::unique_ptr<RawPeer>> held;
    for (int i = 0; i < 8; ++i) held.push_back(std::make_unique<RawPeer>(s, "127.0.0.1", "127.0.0.6"));
    int closed = 0;
    for (auto& p : held) closed += p->closed(50ms);
    CHECK(closed == 3);
    int lines = 0;
    for (const auto& line : s.log) lines += line.find("127.0.0.6 has too many connections") != std::string::npos;
    CHECK(lines == 1);  // once while at the cap, not once per refusal
    still_serves(s);
}

TEST_CASE("a replayed command frame on the same connection is dropped") {
    TestServer s;
    RawPeer alice(s), bob(s);
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE_FALSE(bob.login("bob").empty());
    alice.command("call|bob|" + alice.sk);
    Bytes call_frame = alice.last_frame();
    CHECK(alice.next_body() == "available|bob");
    CHECK(bob.next_body() == "incoming|alice");
    alice.command("end|bob|" + alice.sk);
    CHECK(bob.next_body() == "end|alice");
    alice.send_bytes(call_frame);  // the same bytes again
    CHECK(alice.next(quiet) == std::nullopt);
    CHECK(bob.next(quiet) == std::nullopt);
    CHECK(s.logged("replayed"));
    CHECK(s.server->stats().commands_replayed == 1);
    alice.command("call|bob|" + alice.sk);  // a fresh frame still works
    CHECK(alice.next_body() == "available|bob");
}

TEST_CASE("a replayed registration is refused, also from another address") {
    TestServer s;
    CallPair call(s);
    REQUIRE(call.established);
    RawMedia fresh(s);
    REQUIRE(fresh.register_with(call.bob));
    Bytes registration = fresh.last_sent();
    RawMedia thief(s);
    thief.send(registration);
    CHECK(thief.receive(quiet) == std::nullopt);
    CHECK(s.server->stats().media_packets_dropped > 0);
    call.alice_media.send(Bytes(70, 7));
    CHECK(fresh.receive() == Bytes(70, 7));  // the media address did not move
    CHECK(thief.receive(quiet) == std::nullopt);
}

TEST_CASE("unregistered sources are capped in packets per second; the call is untouched") {
    TestServer s;
    CallPair call(s);
    REQUIRE(call.established);
    RawMedia flood(s);
    for (int i = 0; i < 300; ++i) flood.send(random_bytes(118));
    // With relay threads the datagrams reach the event-loop thread a moment later.
    for (int i = 0; i < 100 && s.server->stats().media_packets_dropped < 300; ++i) s.pump(10ms);
    CHECK(s.server->stats().media_packets_dropped >= 300);
    call.alice_media.send(Bytes(20, 2));
    CHECK(call.bob_media.receive() == Bytes(20, 2));
    RawMedia other(s);
    CHECK(other.register_with(call.alice));
}

TEST_CASE("many idle connections do not stop logins (slowloris)") {
    TestServer s({"alice", "bob"}, [](Config& c) { c.login_timeout = std::chrono::milliseconds(500); });
    std::vector<std::unique_ptr<RawPeer>> idle;
    for (int i = 0; i < 200; ++i) {
        idle.push_back(std::make_unique<RawPeer>(s, "127.0.0.1", "127.0.0.7"));
        if (i % 2) idle.back()->send_bytes(Bytes(1, 0x55));  // one byte, then nothing
    }
    still_serves(s);
    CHECK(s.server->stats().connections <= 64 + 4);  // the per-IP cap held the rest off
    s.pump(700ms);
    CHECK(s.server->stats().connections <= 2);
}

TEST_CASE("hostile UDP: forged registrations and a replayed one from a spoofed-looking new port") {
    TestServer s;
    CallPair call(s);
    REQUIRE(call.established);
    RawMedia attacker(s);
    for (int i = 0; i < 50; ++i) attacker.send(random_bytes(118));
    for (int i = 0; i < 50; ++i) attacker.send(random_bytes(std::size_t(i) * 37));
    CHECK(attacker.receive(quiet) == std::nullopt);
    call.alice_media.send(Bytes(64, 1));
    CHECK(call.bob_media.receive() == Bytes(64, 1));
}

TEST_CASE("a registration cannot take over an address used by another call") {
    TestServer s({"alice", "bob", "carol", "dave"});
    CallPair call(s);
    REQUIRE(call.established);
    RawPeer carol(s), dave(s);
    REQUIRE(log_in_and_ring(carol, "carol", dave, "dave"));
    // carol registers from bob's media socket (as a spoofer on bob's address would).
    call.bob_media.send_registration(carol.sk, s.timestamp());
    CHECK(call.bob_media.receive(quiet) == std::nullopt);
    call.alice_media.send(Bytes(30, 3));
    CHECK(call.bob_media.receive() == Bytes(30, 3));  // bob's route is intact
}

TEST_CASE("a user whose public key X25519 refuses: invalid, closed, and counted as a failed login") {
    TestServer s({"alice", "bob"}, [](Config& c) { c.failed_login_burst = 2; });
    s.users.add("zero", PublicKey{});  // all zero: a low-order point
    for (int i = 0; i < 4; ++i) {
        RawPeer p(s, "127.0.0.1", "127.0.0.6");
        REQUIRE(p.handshake());
        p.command("login1|zero");
        CHECK(p.next_body() == "invalid");
        CHECK(p.closed());
    }
    CHECK(s.logged("has a public key X25519 refuses"));
    // Past the burst of 2 the source is refused before any X25519 work.
    CHECK(s.logged("too many failed logins"));
    still_serves(s);
}

TEST_CASE("a login whose login2resp overflows the output limit closes, and is never registered") {
    // Pre-login junk piles `invalid` replies behind the pacing; the login2resp
    // that crosses max_output_bytes closes the connection. It must not then
    // become the user's connection (a freed Session in the online table).
    for (int junk = 60; junk <= 72; ++junk) {
        TestServer s({"alice", "bob"}, [](Config& c) {
            c.max_output_bytes = 4096;
            c.frame_gap = std::chrono::milliseconds(5000);
            c.replay_memory = 1000;
            // One connection at a time may be unauthenticated: a closed
            // login that stayed counted would lock this address out.
            c.max_unauthenticated_per_ip = 1;
        });
        RawPeer p(s);
        REQUIRE(p.handshake());
        p.command("login1|alice");
        auto blob = p.next();
        REQUIRE(blob);
        auto fields = wire::parse_command(*blob, std::time(nullptr), 300);
        REQUIRE(fields.status == wire::ParseStatus::ok);
        auto sealed = unstringify(fields.command.fields[2]);
        REQUIRE(sealed);
        auto challenge =
            open_box_frame(s.user_keys["alice"].secret_key, s.keys.public_key, sealed->data(), sealed->size());
        REQUIRE(challenge);
        for (int i = 0; i < junk; ++i) p.command("call|bob|" + std::string(59, 'x'));
        p.command("login2|alice|" + *challenge);
        s.pump(50ms);
        bool closed = p.closed(200ms);
        if (closed) CHECK(s.server->stats().logged_in == 0);
        // Either way, the server is sound: alice logs in afresh (replacing
        // the first connection, if that one got in), bob too.
        RawPeer alice(s);
        REQUIRE_FALSE(alice.login("alice").empty());
        RawPeer bob(s);
        REQUIRE_FALSE(bob.login("bob").empty());
        CHECK(s.server->stats().logged_in == 2);
    }
}
