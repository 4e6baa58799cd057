// A call end to end (PROTOCOL.md sections 6 and 8, defects D1/D2), byte-exact
// message bodies, on real sockets:
//   A: call|B|skA            -> A: available|B       B: incoming|A
//   B: accept|A|skB          -> A: prepare|keyB|B    B: prepare|keyA|A
//   A: passthrough|B|blob    -> B: direct|blob|A   (held until B's media registers)
//   A, B: ready|other|sk     -> A: start|B           B: start|A
//   A: end|B|skA             -> B: end|A
#include <doctest/doctest.h>

#include "harness.hpp"

#include "crypto/crypto.hpp"

#include <event2/event.h>

#include <algorithm>

using namespace test_support;
using namespace dtcall;

namespace {

struct Events : ServerObserver {
    std::vector<std::string> seen;
    void logged_in(const std::string& u, const std::string&) override { seen.push_back("login " + u); }
    void logged_out(const std::string& u, LogoutReason) override { seen.push_back("logout " + u); }
    void call_rung(const std::string& a, const std::string& b) override { seen.push_back("rung " + a + " " + b); }
    void call_accepted(const std::string& a, const std::string& b) override { seen.push_back("accepted " + a + " " + b); }
    void call_started(const std::string& a, const std::string& b) override { seen.push_back("started " + a + " " + b); }
    void call_ended(const CallReport& r) override {
        seen.push_back("ended " + r.call.caller + " " + r.call.callee + " " + to_string(r.reason));
    }
    void media_registered(const std::string& u, const std::string&) override { seen.push_back("media " + u); }
};

}  // namespace

TEST_CASE("the whole call, message by message") {
    TestServer s;
    Events events;
    s.server->add_observer(&events);
    RawPeer alice(s), bob(s);
    RawMedia alice_media(s), bob_media(s);
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE_FALSE(bob.login("bob").empty());

    alice.command("call|bob|" + alice.sk);
    CHECK(alice.next_body() == "available|bob");
    CHECK(bob.next_body() == "incoming|alice");

    bob.command("accept|alice|" + bob.sk);
    CHECK(alice.next_body() == "prepare|" + public_key_file_text(s.user_keys["bob"].public_key) + "|bob");
    CHECK(bob.next_body() == "prepare|" + public_key_file_text(s.user_keys["alice"].public_key) + "|alice");

    // The real voice key: box from alice's secret to bob's public, stringified.
    Bytes voice_key(32, 0x5a);
    Bytes boxed = seal_box_frame(s.user_keys["alice"].secret_key, s.user_keys["bob"].public_key,
                                 std::string(voice_key.begin(), voice_key.end()));
    std::string blob = stringify(boxed);
    alice.command("passthrough|bob|" + blob + "|" + alice.sk);
    CHECK(bob.next(quiet) == std::nullopt);  // held: bob's media is not registered yet
    REQUIRE(bob_media.register_with(bob));
    CHECK(bob.next_body() == "direct|" + blob + "|alice");
    auto opened = open_box_frame(s.user_keys["bob"].secret_key, s.user_keys["alice"].public_key,
                                 unstringify(blob)->data(), boxed.size());
    REQUIRE(opened);
    CHECK(*opened == std::string(voice_key.begin(), voice_key.end()));

    REQUIRE(alice_media.register_with(alice));
    alice.command("ready|bob|" + alice.sk);
    CHECK(alice.next(quiet) == std::nullopt);  // start waits for both
    bob.command("ready|alice|" + bob.sk);
    CHECK(alice.next_body() == "start|bob");
    CHECK(bob.next_body() == "start|alice");

    Bytes voice = seal_secret_frame(voice_key.data(), std::string("\0\0\0\1opus", 8));
    alice_media.send(voice);
    CHECK(bob_media.receive() == voice);
    bob_media.send(voice);
    CHECK(alice_media.receive() == voice);

    alice.command("end|bob|" + alice.sk);
    CHECK(bob.next_body() == "end|alice");
    CHECK(alice.next(quiet) == std::nullopt);
    CHECK(calls_now(*s.server) == 0);

    std::vector<std::string> want = {"login alice", "login bob", "rung alice bob", "accepted alice bob",
                                     "media bob", "media alice", "started alice bob", "ended alice bob hangup"};
    CHECK(events.seen == want);
    for (const auto& line : s.log) CHECK(line.find(blob.substr(0, 60)) == std::string::npos);
}

TEST_CASE("direct goes out after the hold even if the callee never registers") {
    TestServer s({"alice", "bob"}, [](Config& c) { c.direct_hold = 800ms; });
    RawPeer alice(s), bob(s);
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE_FALSE(bob.login("bob").empty());
    alice.command("call|bob|" + alice.sk);
    bob.next_body();
    bob.command("accept|alice|" + bob.sk);
    bob.next_body();
    alice.command("passthrough|bob|777|" + alice.sk);
    CHECK(bob.next(300ms) == std::nullopt);
    CHECK(bob.next_body() == "direct|777|alice");
}

TEST_CASE("calls that cannot be placed end at once: offline, self, busy callee, busy caller (D1)") {
    TestServer s;
    RawPeer alice(s), bob(s), carol(s);
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE_FALSE(bob.login("bob").empty());
    REQUIRE_FALSE(carol.login("carol").empty());
    alice.command("call|dave|" + alice.sk);
    CHECK(alice.next_body() == "end|dave");
    alice.command("call|alice|" + alice.sk);
    CHECK(alice.next_body() == "end|alice");
    alice.command("call|bob|" + alice.sk);
    CHECK(alice.next_body() == "available|bob");
    CHECK(bob.next_body() == "incoming|alice");
    carol.command("call|bob|" + carol.sk);
    CHECK(carol.next_body() == "end|bob");
    alice.command("call|carol|" + alice.sk);  // D1: the caller is busy too
    CHECK(alice.next_body() == "end|carol");
    CHECK(carol.next(quiet) == std::nullopt);
}

TEST_CASE("invalid replies: D2 roles, commands about calls that do not exist") {
    TestServer s;
    RawPeer alice(s), bob(s), carol(s);
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE_FALSE(bob.login("bob").empty());
    REQUIRE_FALSE(carol.login("carol").empty());
    bob.command("accept|alice|" + bob.sk);  // no call
    CHECK(bob.next_body() == "invalid");
    alice.command("call|bob|" + alice.sk);
    alice.next_body();
    bob.next_body();
    alice.command("accept|bob|" + alice.sk);  // D2: the caller accepting its own call
    CHECK(alice.next_body() == "invalid");
    carol.command("end|alice|" + carol.sk);
    CHECK(carol.next_body() == "invalid");
    carol.command("ready|bob|" + carol.sk);
    CHECK(carol.next_body() == "invalid");
    alice.command("passthrough|bob|123|" + alice.sk);  // not accepted yet
    CHECK(alice.next_body() == "invalid");
    bob.command("accept|alice|" + bob.sk);
    alice.next_body();
    bob.next_body();
    bob.command("passthrough|alice|123|" + bob.sk);  // D2: only the caller
    CHECK(bob.next_body() == "invalid");
}

TEST_CASE("decline and cancel while ringing") {
    TestServer s;
    RawPeer alice(s), bob(s);
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE_FALSE(bob.login("bob").empty());
    alice.command("call|bob|" + alice.sk);
    alice.next_body();
    bob.next_body();
    bob.command("end|alice|" + bob.sk);
    CHECK(alice.next_body() == "end|bob");
    alice.command("call|bob|" + alice.sk);
    CHECK(alice.next_body() == "available|bob");
    CHECK(bob.next_body() == "incoming|alice");
    alice.command("end|bob|" + alice.sk);
    CHECK(bob.next_body() == "end|alice");
    CHECK(s.logged("ended: declined"));
    CHECK(s.logged("ended: cancelled"));
}

TEST_CASE("pacing: two notices for one client never arrive in one read") {
    TestServer s({"alice", "bob"}, [](Config& c) { c.frame_gap = 150ms; });
    RawPeer alice(s), bob(s);
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE_FALSE(bob.login("bob").empty());
    auto t0 = std::chrono::steady_clock::now();
    // incoming and end are produced back to back for bob.
    alice.send_bytes([&] {
        Bytes both = seal_secret_frame(alice.tcp_key.data(), s.timestamp() + "|call|bob|" + alice.sk);
        Bytes end = seal_secret_frame(alice.tcp_key.data(), s.timestamp() + "|end|bob|" + alice.sk);
        both.insert(both.end(), end.begin(), end.end());
        return both;
    }());
    CHECK(bob.next_body() == "incoming|alice");
    CHECK(bob.next_body() == "end|alice");
    CHECK(std::chrono::steady_clock::now() - t0 >= 150ms);
    CHECK(bob.max_frames_in_one_read() == 1);
    CHECK(alice.next_body() == "available|bob");
}

TEST_CASE("pacing: a client writing (a heartbeat, a racing accept) is no proof it read") {
    TestServer s({"alice", "bob"}, [](Config& c) { c.frame_gap = 200ms; });
    RawPeer alice(s), bob(s);
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE_FALSE(bob.login("bob").empty());
    alice.command("call|bob|" + alice.sk);
    s.pump(20ms);            // incoming is now in bob's socket, unread
    bob.send_text("D");      // bob writes without reading
    bob.command("accept|alice|" + bob.sk);  // races alice's cancel below
    alice.command("end|bob|" + alice.sk);
    s.pump(20ms);
    CHECK(bob.next_body() == "incoming|alice");
    std::vector<std::string> rest = {bob.next_body(), bob.next_body()};
    std::sort(rest.begin(), rest.end());
    // Which of accept and end the server handled first is up to the loop.
    std::string prepare = "prepare|" + public_key_file_text(s.user_keys["alice"].public_key) + "|alice";
    bool accept_first = rest == std::vector<std::string>{"end|alice", prepare};
    bool end_first = rest == std::vector<std::string>{"end|alice", "invalid"};
    CHECK((accept_first || end_first));
    CHECK(bob.max_frames_in_one_read() == 1);
}

TEST_CASE("pacing: the login replies are proven read and go out without waiting") {
    TestServer s({"alice"}, [](Config& c) { c.frame_gap = 2000ms; });
    RawPeer alice(s);
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE_FALSE(alice.login("alice").empty());  // handshake reply, login1resp, login2resp
    CHECK(std::chrono::steady_clock::now() - t0 < 1500ms);
}

TEST_CASE("re-login without keepudp during a call ends it for the peer; with keepudp the call stays") {
    TestServer s;
    SUBCASE("without keepudp") {
        CallPair call(s);
        REQUIRE(call.established);
        RawPeer again(s);
        REQUIRE_FALSE(again.login("alice").empty());
        CHECK(call.bob.next_body() == "end|alice");
        CHECK(call.alice.closed());
        CHECK(calls_now(*s.server) == 0);
    }
    SUBCASE("with keepudp: media keeps flowing, end still works") {
        CallPair call(s);
        REQUIRE(call.established);
        RawPeer again(s);
        REQUIRE_FALSE(again.login("alice", true).empty());
        CHECK(call.alice.closed());
        CHECK(call.bob.next(quiet) == std::nullopt);
        call.alice_media.send(Bytes(100, 7));
        CHECK(call.bob_media.receive() == Bytes(100, 7));
        again.command("end|bob|" + again.sk);
        CHECK(call.bob.next_body() == "end|alice");
    }
}

TEST_CASE("a client that drops during a call and is back within the grace period keeps it") {
    TestServer s({"alice", "bob"}, [](Config& c) { c.call_grace = 1500ms; });
    CallPair call(s);
    REQUIRE(call.established);
    call.alice.drop();  // the phone loses its connection
    s.pump(100ms);
    CHECK(phase_of(*s.server, "alice") == CallPhase::in_call);
    RawPeer back(s);
    REQUIRE_FALSE(back.login("alice", true).empty());
    CHECK(call.bob.next(2000ms) == std::nullopt);  // grace cancelled by the keepudp login
    CHECK(phase_of(*s.server, "alice") == CallPhase::in_call);
    call.alice_media.send(Bytes(60, 9));
    CHECK(call.bob_media.receive() == Bytes(60, 9));
}

namespace {
// alice's phone loses its connection mid-call, and bob hangs up meanwhile.
void hang_up_while_caller_away(TestServer& s, CallPair& call) {
    REQUIRE(call.established);
    call.alice.drop();
    s.pump(100ms);
    call.bob.command("end|alice|" + call.bob.sk);
    s.pump(100ms);
}
}  // namespace

TEST_CASE("what a client missed while away during a call reaches it when it is back with keepudp") {
    TestServer s({"alice", "bob"}, [](Config& c) { c.call_grace = 3000ms; });
    SUBCASE("the peer hung up meanwhile: the returning client hears `end`") {
        CallPair call(s);
        hang_up_while_caller_away(s, call);
        CHECK(calls_now(*s.server) == 0);
        RawPeer back(s);
        REQUIRE_FALSE(back.login("alice", true).empty());
        CHECK(back.next_body() == "end|bob");
        CHECK(back.next(quiet) == std::nullopt);  // once
    }
    SUBCASE("the peer sent ready meanwhile: the returning client hears `start`") {
        RawPeer alice(s), bob(s);
        RawMedia alice_media(s), bob_media(s);
        REQUIRE_FALSE(alice.login("alice").empty());
        REQUIRE_FALSE(bob.login("bob").empty());
        alice.command("call|bob|" + alice.sk);
        REQUIRE(bob.next_body() == "incoming|alice");
        bob.command("accept|alice|" + bob.sk);
        REQUIRE(bob.next_body().rfind("prepare|", 0) == 0);
        REQUIRE(bob_media.register_with(bob));
        REQUIRE(alice.next_body() == "available|bob");
        REQUIRE(alice.next_body().rfind("prepare|", 0) == 0);
        REQUIRE(alice_media.register_with(alice));
        alice.command("ready|bob|" + alice.sk);
        s.pump(100ms);
        alice.drop();
        s.pump(100ms);
        bob.command("ready|alice|" + bob.sk);
        CHECK(bob.next_body() == "start|alice");
        RawPeer back(s);
        REQUIRE_FALSE(back.login("alice", true).empty());
        CHECK(back.next_body() == "start|bob");
        alice_media.send(Bytes(30, 4));
        CHECK(bob_media.receive() == Bytes(30, 4));
    }
    SUBCASE("back without keepudp: nothing of the old call") {
        CallPair call(s);
        hang_up_while_caller_away(s, call);
        RawPeer back(s);
        REQUIRE_FALSE(back.login("alice").empty());
        CHECK(back.next(quiet) == std::nullopt);
    }
}

TEST_CASE("a client back after its grace period hears nothing of the call that ended meanwhile") {
    TestServer s({"alice", "bob"}, [](Config& c) { c.call_grace = 400ms; });
    RawPeer alice(s), bob(s);
    RawMedia alice_media(s), bob_media(s);
    REQUIRE(log_in_and_ring(alice, "alice", bob, "bob"));
    bob.command("accept|alice|" + bob.sk);
    REQUIRE(bob.next_body().rfind("prepare|", 0) == 0);
    REQUIRE(alice.next_body().rfind("prepare|", 0) == 0);
    REQUIRE(bob_media.register_with(bob));
    REQUIRE(alice_media.register_with(alice));
    alice.command("ready|bob|" + alice.sk);
    s.pump(100ms);
    alice.drop();
    s.pump(100ms);
    bob.command("ready|alice|" + bob.sk);  // `start` for alice is kept...
    CHECK(bob.next_body() == "start|alice");
    CHECK(bob.next_body(1500ms) == "end|alice");  // ...until her grace period ends the call
    RawPeer back(s);
    REQUIRE_FALSE(back.login("alice", true).empty());
    CHECK(back.next(quiet) == std::nullopt);  // no stale `start` for a call that is gone
}

TEST_CASE("missed notices expire with the grace period") {
    TestServer s({"alice", "bob"}, [](Config& c) { c.call_grace = 300ms; });
    CallPair call(s);
    hang_up_while_caller_away(s, call);
    s.pump(400ms);  // past alice's grace period
    RawPeer back(s);
    REQUIRE_FALSE(back.login("alice", true).empty());
    CHECK(back.next(quiet) == std::nullopt);
}

TEST_CASE("grace expiry: the peer is told") {
    TestServer s({"alice", "bob"}, [](Config& c) { c.call_grace = 300ms; });
    RawPeer bob(s);
    RawMedia bob_media(s);
    REQUIRE_FALSE(bob.login("bob").empty());
    {
        RawPeer alice(s);
        REQUIRE_FALSE(alice.login("alice").empty());
        alice.command("call|bob|" + alice.sk);
        CHECK(bob.next_body() == "incoming|alice");
        bob.command("accept|alice|" + bob.sk);
        CHECK(bob.next_body().rfind("prepare|", 0) == 0);
    }  // alice's connection is gone
    CHECK(bob.next(100ms) == std::nullopt);
    CHECK(bob.next_body(1500ms) == "end|alice");
    CHECK(calls_now(*s.server) == 0);
    CHECK(s.logged("grace period"));
}

TEST_CASE("two Servers in one process carry calls at the same time") {
    TestServer one, two;
    CHECK(one.server->command_port() != two.server->command_port());
    CallPair a(one), b(two);
    REQUIRE(a.established);
    REQUIRE(b.established);
    a.alice_media.send(Bytes(50, 1));
    b.alice_media.send(Bytes(50, 2));
    CHECK(a.bob_media.receive() == Bytes(50, 1));
    CHECK(b.bob_media.receive() == Bytes(50, 2));
    // alice's key on one server means nothing on the other.
    RawPeer stranger(two);
    REQUIRE_FALSE(stranger.login("carol").empty());
    stranger.command("call|bob|" + a.alice.sk);
    CHECK(stranger.next_body() == "invalid");
}

TEST_CASE("policy hook refuses a call with end") {
    TestServer s;
    s.server->set_policy([](const CallRequest& r) {
        return r.callee != "carol" ? CallDecision::allow : CallDecision::refuse;
    });
    RawPeer alice(s), carol(s);
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE_FALSE(carol.login("carol").empty());
    alice.command("call|carol|" + alice.sk);
    CHECK(alice.next_body() == "end|carol");
    CHECK(carol.next(quiet) == std::nullopt);
}

TEST_CASE("Server runs on an embedder's event_base and stops cleanly") {
    event_base* base = event_base_new();
    InMemoryUserDirectory users;
    Config config;
    config.listen_addresses = {"127.0.0.1"};
    config.command_port = 0;
    config.media_port = 0;
    config.server_keys = KeyPair::generate();
    {
        Server server(config, users, base);
        REQUIRE(server.start());
        CHECK(server.base() == base);
        CHECK(server.command_port() != 0);
        CHECK(server.media_port() != 0);
        CHECK_FALSE(server.start());  // already started
        server.stop();
        server.stop();
    }
    event_base_free(base);
}

TEST_CASE("start errors name the address") {
    TestServer s;
    InMemoryUserDirectory users;
    Config config;
    config.listen_addresses = {"not-an-address"};
    config.server_keys = KeyPair::generate();
    Server bad(config, users);
    auto r = bad.start();
    CHECK_FALSE(r);
    CHECK(r.error().find("not-an-address") != std::string::npos);
    config.listen_addresses = {"127.0.0.1"};
    config.command_port = s.server->command_port();  // taken
    Server clash(config, users);
    auto r2 = clash.start();
    CHECK_FALSE(r2);
    CHECK(r2.error().find(std::to_string(s.server->command_port())) != std::string::npos);
}

TEST_CASE("stop(): calls end politely for both parties, connections close, nothing is left") {
    TestServer s;
    Events events;
    s.server->add_observer(&events);
    CallPair call(s);
    REQUIRE(call.established);
    RawPeer idle(s);
    REQUIRE_FALSE(idle.login("carol").empty());
    s.server->stop();
    CHECK(call.alice.next_body() == "end|bob");
    CHECK(call.bob.next_body() == "end|alice");
    CHECK(call.alice.closed());
    CHECK(call.bob.closed());
    CHECK(idle.closed());
    s.pump(50ms);
    CHECK(s.server->stats().connections == 0);
    CHECK(calls_now(*s.server) == 0);
    CHECK(std::count(events.seen.begin(), events.seen.end(), "ended alice bob server stopping") == 1);
    s.server->stop();  // twice is fine
    RawPeer late(s);
    CHECK(late.closed(500ms));  // nobody listens any more
}

TEST_CASE("no ghosts: a logged-in peer in a call that falls silent is dropped after idle_timeout, its call ended for the other") {
    // alice's phone vanishes without closing (no FIN, no RST): she just
    // stops sending. bob goes on with his heartbeats.
    TestServer s({"alice", "bob"}, [](Config& c) {
        c.idle_timeout = 1000ms;
        c.call_grace = 300ms;
    });
    CallPair call(s);
    REQUIRE(call.established);
    auto online = [&](const std::string& user) {
        for (const auto& u : s.server->online_users())
            if (u.user == user) return true;
        return false;
    };
    CHECK(online("alice"));
    auto silent_since = std::chrono::steady_clock::now();
    bool alice_closed = false;
    for (int i = 0; i < 20 && !alice_closed; ++i) {
        call.bob.send_text("D");
        alice_closed = call.alice.closed(150ms);
    }
    REQUIRE(alice_closed);
    auto silent_for = std::chrono::steady_clock::now() - silent_since;
    CHECK(silent_for >= 900ms);  // not before idle_timeout
    CHECK(s.logged("closed: idle timeout"));
    CHECK_FALSE(online("alice"));
    CHECK(online("bob"));  // his heartbeats kept him
    // The call is ended for bob once alice's grace period is over.
    CHECK(call.bob.next_body(2000ms) == "end|alice");
    CHECK(calls_now(*s.server) == 0);
    CHECK(s.server->stats().logged_in == 1);
    CHECK_FALSE(call.bob.closed(100ms));
}

TEST_CASE("idle_timeout and tcp_keepalive defaults: above two heartbeat periods; keepalive notices a dead host within ~2 minutes") {
    Config defaults;
    CHECK(defaults.idle_timeout == 660s);
    CHECK(defaults.idle_timeout > 2 * 300s);
    CHECK(defaults.tcp_keepalive == 60s);
}
