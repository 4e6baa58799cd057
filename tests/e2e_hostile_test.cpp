// Peers that misbehave on purpose. After each attack a well-behaved pair
// still logs in and completes a call with media.
#include <doctest/doctest.h>

#include "harness.hpp"

#include <dtcall/crypto.hpp>

#include <sodium.h>

using namespace test_support;
using namespace dtcall;

namespace {

Bytes random_bytes(std::size_t n) {
    Bytes b(n);
    randombytes_buf(b.data(), n);
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
    CHECK(s.server->router().phase("bob") == CallPhase::in_call);
}

TEST_CASE("a logged-in client that never reads is dropped, others unaffected") {
    TestServer s({"alice", "bob", "carol"}, [](Config& c) {
        c.max_output_bytes = 4096;
        c.frame_gap = std::chrono::milliseconds(0);
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

TEST_CASE("a login storm with wrong challenges") {
    TestServer s;
    for (int i = 0; i < 40; ++i) {
        RawPeer p(s);
        REQUIRE(p.handshake());
        p.command("login1|alice");
        p.next_body();
        p.command("login2|alice|" + random_token(200));
        CHECK(p.next_body() == "invalid");
    }
    still_serves(s);
}

TEST_CASE("many idle connections do not stop logins (slowloris)") {
    TestServer s({"alice", "bob"}, [](Config& c) { c.login_timeout = std::chrono::milliseconds(500); });
    std::vector<std::unique_ptr<RawPeer>> idle;
    for (int i = 0; i < 200; ++i) {
        idle.push_back(std::make_unique<RawPeer>(s));
        if (i % 2) idle.back()->send_bytes(Bytes(1, 0x55));  // one byte, then nothing
    }
    still_serves(s);
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
