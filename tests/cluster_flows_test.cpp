// The call flows of e2e_call_test.cpp on a cluster of three nodes (issue
// #11: "every call flow of the end-to-end suite passes with caller and callee
// on different nodes, media byte for byte both ways"). The caller's node owns
// the call (its CallRouter), so the call's observer events (rung, accepted,
// started, ended with its EndReason) come from there; logins, logouts and
// media registrations from each user's own node. Each client gets exactly
// the notices, in the order, that it gets on one node.
#include "test_cluster.hpp"

#include "crypto/crypto.hpp"

#include <algorithm>
#include <array>

using namespace test_support;
using namespace dtcall;

namespace {

struct Events : ServerObserver {
    std::vector<std::string> seen;
    void logged_in(const std::string& u, const std::string&) override { seen.push_back("login " + u); }
    void logged_out(const std::string& u, LogoutReason why) override {
        seen.push_back("logout " + u + " " + to_string(why));
    }
    void call_rung(const std::string& a, const std::string& b) override { seen.push_back("rung " + a + " " + b); }
    void call_accepted(const std::string& a, const std::string& b) override { seen.push_back("accepted " + a + " " + b); }
    void call_started(const std::string& a, const std::string& b) override { seen.push_back("started " + a + " " + b); }
    void call_ended(const CallReport& r) override {
        seen.push_back("ended " + r.call.caller + " " + r.call.callee + " " + to_string(r.reason));
    }
    void media_registered(const std::string& u, const std::string&) override { seen.push_back("media " + u); }
    bool has(const std::string& line) const { return std::find(seen.begin(), seen.end(), line) != seen.end(); }
};

using Strings = std::vector<std::string>;

// "a; b; c": compared as one string, a failed check shows both sides.
std::string lines(const Strings& seen) {
    std::string out;
    for (const auto& line : seen) out += (out.empty() ? "" : "; ") + line;
    return out;
}
// The call events only (rung, accepted, started, ended).
Strings call_events(const Events& e) {
    Strings out;
    for (const auto& line : e.seen)
        if (line.rfind("rung ", 0) == 0 || line.rfind("accepted ", 0) == 0 || line.rfind("started ", 0) == 0 ||
            line.rfind("ended ", 0) == 0)
            out.push_back(line);
    return out;
}

// Three nodes, an observer on each (declared first: it outlives the servers).
struct Nodes {
    std::array<Events, 3> events;
    Cluster c;
    explicit Nodes(std::function<void(Config&)> tweak = {}) : c(3, std::move(tweak)) {
        for (int i = 1; i <= 3; ++i) c.server(i).server->add_observer(&events[std::size_t(i - 1)]);
        REQUIRE(c.until([&] { return c.link(1).available() && c.link(2).available() && c.link(3).available(); }));
    }
    Events& on(int node) { return events[std::size_t(node - 1)]; }
    TestServer& server(int node) { return c.server(node); }
    // `peer` logs in as `name` on `node`, and every node knows it.
    void in(RawPeer& peer, const std::string& name, int node, bool keepudp = false) {
        REQUIRE_FALSE(peer.login(name, keepudp).empty());
        REQUIRE(c.known(name, node));
    }
    std::string key(int node, const std::string& user) { return key_text(c.server(node), user); }
};

// alice on node `a` calls bob on node `b`; both log in, alice rings bob.
struct Ringing {
    Nodes& n;
    int a, b;
    RawPeer alice, bob;
    RawMedia alice_media, bob_media;
    Ringing(Nodes& nodes, int caller_node, int callee_node)
        : n(nodes), a(caller_node), b(callee_node), alice(n.server(a)), bob(n.server(b)), alice_media(n.server(a)),
          bob_media(n.server(b)) {
        n.in(alice, "alice", a);
        n.in(bob, "bob", b);
        alice.command("call|bob|" + alice.sk);
        REQUIRE(alice.next_body() == "available|bob");
        REQUIRE(bob.next_body() == "incoming|alice");
    }
    void accept() {
        bob.command("accept|alice|" + bob.sk);
        REQUIRE(alice.next_body() == "prepare|" + n.key(b, "bob") + "|bob");
        REQUIRE(bob.next_body() == "prepare|" + n.key(a, "alice") + "|alice");
    }
    // Through to `start` on both, media registered (CallPair across nodes).
    void establish() {
        accept();
        REQUIRE(bob_media.register_with(bob));
        REQUIRE(alice_media.register_with(alice));
        alice.command("passthrough|bob|123456|" + alice.sk);
        REQUIRE(bob.next_body() == "direct|123456|alice");
        alice.command("ready|bob|" + alice.sk);
        bob.command("ready|alice|" + bob.sk);
        REQUIRE(alice.next_body() == "start|bob");
        REQUIRE(bob.next_body() == "start|alice");
    }
    void media_both_ways(std::uint8_t seed) {
        alice_media.send(Bytes(100, seed));
        CHECK(bob_media.receive() == Bytes(100, seed));
        bob_media.send(Bytes(90, std::uint8_t(seed + 1)));
        CHECK(alice_media.receive() == Bytes(90, std::uint8_t(seed + 1)));
    }
};

struct Pair {
    int a, b;
};
constexpr std::array<Pair, 3> pairs{{{1, 2}, {2, 3}, {3, 1}}};

bool online_here(TestServer& s, const std::string& user) {
    for (const auto& u : s.server->online_users())
        if (u.user == user) return true;
    return false;
}

}  // namespace

TEST_CASE("across nodes: the whole call, message by message, media byte for byte both ways") {
    for (Pair p : pairs) {
        CAPTURE(p.a);
        CAPTURE(p.b);
        Nodes n;
        TestServer& sa = n.server(p.a);
        TestServer& sb = n.server(p.b);
        RawPeer alice(sa), bob(sb);
        RawMedia alice_media(sa), bob_media(sb);
        n.in(alice, "alice", p.a);
        n.in(bob, "bob", p.b);

        alice.command("call|bob|" + alice.sk);
        CHECK(alice.next_body() == "available|bob");
        CHECK(bob.next_body() == "incoming|alice");

        bob.command("accept|alice|" + bob.sk);
        CHECK(alice.next_body() == "prepare|" + n.key(p.b, "bob") + "|bob");
        CHECK(bob.next_body() == "prepare|" + n.key(p.a, "alice") + "|alice");

        // The real voice key: box from alice's secret to bob's public (the key
        // bob's node announced), stringified.
        Bytes voice_key(32, 0x5a);
        Bytes boxed = seal_box_frame(sa.user_keys["alice"].secret_key, sb.user_keys["bob"].public_key,
                                     std::string(voice_key.begin(), voice_key.end()));
        std::string blob = stringify(boxed);
        alice.command("passthrough|bob|" + blob + "|" + alice.sk);
        CHECK(bob.next(quiet) == std::nullopt);  // held on bob's node: his media is not registered yet
        REQUIRE(bob_media.register_with(bob));
        CHECK(bob.next_body() == "direct|" + blob + "|alice");
        auto opened = open_box_frame(sb.user_keys["bob"].secret_key, sa.user_keys["alice"].public_key,
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
        for (std::size_t size : {1u, 1400u, 9000u}) {
            Bytes there(size, std::uint8_t(size)), back(size, std::uint8_t(size + 1));
            alice_media.send(there);
            CHECK(bob_media.receive() == there);
            bob_media.send(back);
            CHECK(alice_media.receive() == back);
        }

        alice.command("end|bob|" + alice.sk);
        CHECK(bob.next_body() == "end|alice");
        CHECK(alice.next(quiet) == std::nullopt);
        CHECK(calls_now(*sa.server) == 0);
        CHECK(calls_now(*sb.server) == 0);

        // The call's events on the owner (alice's node), bob's own on his.
        CHECK(lines(n.on(p.a).seen) == lines({"login alice", "rung alice bob", "accepted alice bob", "media alice",
                                        "started alice bob", "ended alice bob hangup"}));
        CHECK(lines(n.on(p.b).seen) == lines({"login bob", "media bob"}));
        int third = 6 - p.a - p.b;
        CHECK(n.on(third).seen.empty());
        for (int i = 1; i <= 3; ++i)
            for (const auto& line : n.server(i).log) CHECK(line.find(blob.substr(0, 60)) == std::string::npos);
    }
}

TEST_CASE("across nodes: direct goes out after the hold even if the callee never registers") {
    Nodes n([](Config& c) { c.direct_hold = 800ms; });
    Ringing call(n, 2, 3);
    call.accept();
    call.alice.command("passthrough|bob|777|" + call.alice.sk);
    CHECK(call.bob.next(300ms) == std::nullopt);
    CHECK(call.bob.next_body() == "direct|777|alice");
}

TEST_CASE("across nodes: calls that cannot be placed end at once: offline, busy callee, busy caller (D1)") {
    Nodes n;
    RawPeer alice(n.server(1)), bob(n.server(2)), carol(n.server(3));
    n.in(alice, "alice", 1);
    n.in(bob, "bob", 2);
    n.in(carol, "carol", 3);
    alice.command("call|dave|" + alice.sk);  // offline everywhere
    CHECK(alice.next_body() == "end|dave");
    alice.command("call|alice|" + alice.sk);
    CHECK(alice.next_body() == "end|alice");
    alice.command("call|bob|" + alice.sk);
    CHECK(alice.next_body() == "available|bob");
    CHECK(bob.next_body() == "incoming|alice");
    carol.command("call|bob|" + carol.sk);  // bob rings for alice (node1's call)
    CHECK(carol.next_body() == "end|bob");
    carol.command("call|alice|" + carol.sk);  // alice is the caller of that call
    CHECK(carol.next_body() == "end|alice");
    alice.command("call|carol|" + alice.sk);  // D1: the caller is busy too
    CHECK(alice.next_body() == "end|carol");
    bob.command("call|carol|" + bob.sk);  // D1 for the callee, whose node forwards
    CHECK(bob.next_body() == "end|carol");
    CHECK(carol.next(quiet) == std::nullopt);
    CHECK(alice.next(quiet) == std::nullopt);
    CHECK(bob.next(quiet) == std::nullopt);
    // The ringing call is untouched.
    bob.command("accept|alice|" + bob.sk);
    CHECK(alice.next_body() == "prepare|" + n.key(2, "bob") + "|bob");
    CHECK(bob.next_body() == "prepare|" + n.key(1, "alice") + "|alice");
    // Refused calls are reported by the caller's node, as calls that lasted no time.
    CHECK(lines(n.on(1).seen) == lines({"login alice", "ended alice dave busy", "ended alice alice busy", "rung alice bob",
                                  "ended alice carol busy", "accepted alice bob"}));
    CHECK(lines(n.on(3).seen) == lines({"login carol", "ended carol bob busy", "ended carol alice busy"}));
    CHECK(lines(n.on(2).seen) == lines({"login bob", "ended bob carol busy"}));
}

TEST_CASE("across nodes: invalid replies (D2 roles, calls that do not exist) change nothing") {
    Nodes n;
    RawPeer alice(n.server(3)), bob(n.server(1)), carol(n.server(2));
    RawMedia alice_media(n.server(3)), bob_media(n.server(1));
    n.in(alice, "alice", 3);
    n.in(bob, "bob", 1);
    n.in(carol, "carol", 2);
    bob.command("accept|alice|" + bob.sk);  // no call
    CHECK(bob.next_body() == "invalid");
    alice.command("call|bob|" + alice.sk);
    CHECK(alice.next_body() == "available|bob");
    CHECK(bob.next_body() == "incoming|alice");
    alice.command("accept|bob|" + alice.sk);  // D2: the caller accepting its own call
    CHECK(alice.next_body() == "invalid");
    carol.command("end|alice|" + carol.sk);  // a call carol is not in, owned by another node
    CHECK(carol.next_body() == "invalid");
    carol.command("ready|bob|" + carol.sk);
    CHECK(carol.next_body() == "invalid");
    bob.command("ready|alice|" + bob.sk);  // not accepted yet
    CHECK(bob.next_body() == "invalid");
    bob.command("accept|carol|" + bob.sk);  // not the caller ringing him
    CHECK(bob.next_body() == "invalid");
    alice.command("passthrough|bob|123|" + alice.sk);  // not accepted yet
    CHECK(alice.next_body() == "invalid");
    bob.command("accept|alice|" + bob.sk);
    CHECK(alice.next_body() == "prepare|" + n.key(1, "bob") + "|bob");
    CHECK(bob.next_body() == "prepare|" + n.key(3, "alice") + "|alice");
    bob.command("passthrough|alice|123|" + bob.sk);  // D2: only the caller
    CHECK(bob.next_body() == "invalid");
    bob.command("accept|alice|" + bob.sk);  // accepted already
    CHECK(bob.next_body() == "invalid");
    CHECK(alice.next(quiet) == std::nullopt);
    CHECK(carol.next(quiet) == std::nullopt);
    // The call goes on as if nothing happened.
    REQUIRE(bob_media.register_with(bob));
    REQUIRE(alice_media.register_with(alice));
    alice.command("passthrough|bob|42|" + alice.sk);
    CHECK(bob.next_body() == "direct|42|alice");
    alice.command("ready|bob|" + alice.sk);
    bob.command("ready|alice|" + bob.sk);
    CHECK(alice.next_body() == "start|bob");
    CHECK(bob.next_body() == "start|alice");
    alice_media.send(Bytes(64, 1));
    CHECK(bob_media.receive() == Bytes(64, 1));
    bob_media.send(Bytes(64, 2));
    CHECK(alice_media.receive() == Bytes(64, 2));
}

TEST_CASE("across nodes: decline and cancel while ringing") {
    Nodes n;
    RawPeer alice(n.server(1)), bob(n.server(2));
    n.in(alice, "alice", 1);
    n.in(bob, "bob", 2);
    alice.command("call|bob|" + alice.sk);
    CHECK(alice.next_body() == "available|bob");
    CHECK(bob.next_body() == "incoming|alice");
    bob.command("end|alice|" + bob.sk);
    CHECK(alice.next_body() == "end|bob");
    CHECK(bob.next(quiet) == std::nullopt);
    alice.command("call|bob|" + alice.sk);
    CHECK(alice.next_body() == "available|bob");
    CHECK(bob.next_body() == "incoming|alice");
    alice.command("end|bob|" + alice.sk);
    CHECK(bob.next_body() == "end|alice");
    CHECK(alice.next(quiet) == std::nullopt);
    CHECK(lines(n.on(1).seen) == lines({"login alice", "rung alice bob", "ended alice bob declined", "rung alice bob",
                                  "ended alice bob cancelled"}));
    CHECK(calls_now(*n.server(1).server) == 0);
    CHECK(calls_now(*n.server(2).server) == 0);
}

TEST_CASE("across nodes: hang-up in the accepted phase, from either side") {
    Nodes n;
    for (bool caller_hangs_up : {true, false}) {
        CAPTURE(caller_hangs_up);
        n.on(2).seen.clear();
        {
            Ringing call(n, 2, 3);
            call.accept();
            if (caller_hangs_up) {
                call.alice.command("end|bob|" + call.alice.sk);
                CHECK(call.bob.next_body() == "end|alice");
                CHECK(call.alice.next(quiet) == std::nullopt);
            } else {
                call.bob.command("end|alice|" + call.bob.sk);
                CHECK(call.alice.next_body() == "end|bob");
                CHECK(call.bob.next(quiet) == std::nullopt);
            }
            CHECK(calls_now(*n.server(2).server) == 0);
            CHECK(calls_now(*n.server(3).server) == 0);
        }
        CHECK(lines(call_events(n.on(2))) == lines({"rung alice bob", "accepted alice bob", "ended alice bob hangup"}));
        // Both gone before the next round logs in again.
        REQUIRE(n.c.until([&] { return !n.c.link(1).remote("alice") && !n.c.link(1).remote("bob"); }));
    }
}

TEST_CASE("across nodes: pacing: two notices for one client never arrive in one read") {
    Nodes n([](Config& c) { c.frame_gap = 150ms; });
    Ringing call(n, 3, 1);
    call.accept();
    REQUIRE(call.bob_media.register_with(call.bob));
    // direct and end are produced back to back for bob, on alice's node.
    auto t0 = std::chrono::steady_clock::now();
    call.alice.send_bytes([&] {
        Bytes both = seal_secret_frame(call.alice.tcp_key.data(),
                                       n.server(3).timestamp() + "|passthrough|bob|777|" + call.alice.sk);
        Bytes end = seal_secret_frame(call.alice.tcp_key.data(), n.server(3).timestamp() + "|end|bob|" + call.alice.sk);
        both.insert(both.end(), end.begin(), end.end());
        return both;
    }());
    CHECK(call.bob.next_body() == "direct|777|alice");
    CHECK(call.bob.next_body() == "end|alice");
    CHECK(std::chrono::steady_clock::now() - t0 >= 150ms);
    CHECK(call.bob.max_frames_in_one_read() == 1);
    CHECK(call.alice.max_frames_in_one_read() == 1);
}

TEST_CASE("across nodes: pacing: call and end in one write, as on one node") {
    // A regression test: this flow once differed across nodes (ClusterCalls).
    Nodes n([](Config& c) { c.frame_gap = 150ms; });
    RawPeer alice(n.server(1)), bob(n.server(2));
    n.in(alice, "alice", 1);
    n.in(bob, "bob", 2);
    alice.send_bytes([&] {
        Bytes both = seal_secret_frame(alice.tcp_key.data(), n.server(1).timestamp() + "|call|bob|" + alice.sk);
        Bytes end = seal_secret_frame(alice.tcp_key.data(), n.server(1).timestamp() + "|end|bob|" + alice.sk);
        both.insert(both.end(), end.begin(), end.end());
        return both;
    }());
    CHECK(bob.next_body() == "incoming|alice");
    CHECK(bob.next_body() == "end|alice");
    CHECK(bob.max_frames_in_one_read() == 1);
    CHECK(alice.next_body() == "available|bob");
    CHECK(alice.next(quiet) == std::nullopt);
}

TEST_CASE("across nodes: re-login without keepudp during a call ends it for the peer, on the same node") {
    for (bool caller_relogs : {true, false}) {
        CAPTURE(caller_relogs);
        Nodes n;
        Ringing call(n, 1, 2);
        call.establish();
        int node = caller_relogs ? 1 : 2;
        RawPeer again(n.server(node));
        REQUIRE_FALSE(again.login(caller_relogs ? "alice" : "bob").empty());
        if (caller_relogs) {
            CHECK(call.bob.next_body() == "end|alice");
            CHECK(call.alice.closed());
        } else {
            CHECK(call.alice.next_body() == "end|bob");
            CHECK(call.bob.closed());
        }
        CHECK(again.next(quiet) == std::nullopt);
        CHECK(n.c.until([&] { return calls_now(*n.server(1).server) + calls_now(*n.server(2).server) == 0; }));
        CHECK(n.on(1).has("ended alice bob relogin"));
        // Still known on its node, and callable again.
        CHECK(n.c.known(caller_relogs ? "alice" : "bob", node));
    }
}

namespace {
void relogin_with_keepudp(bool caller_relogs) {
    {
        Nodes n;
        Ringing call(n, 2, 3);
        call.establish();
        int node = caller_relogs ? 2 : 3;
        RawPeer again(n.server(node));
        REQUIRE_FALSE(again.login(caller_relogs ? "alice" : "bob", true).empty());
        CHECK((caller_relogs ? call.alice : call.bob).closed());
        CHECK(call.alice.next_body(quiet) == "");
        CHECK(call.bob.next_body(quiet) == "");
        call.media_both_ways(7);
        again.command(caller_relogs ? "end|bob|" + again.sk : "end|alice|" + again.sk);
        CHECK((caller_relogs ? call.bob : call.alice).next_body() == (caller_relogs ? "end|alice" : "end|bob"));
        CHECK(n.on(2).has("ended alice bob hangup"));
    }
}

}  // namespace

TEST_CASE("across nodes: re-login with keepudp during a call keeps it: the caller, on its (owner) node") {
    relogin_with_keepudp(true);
}

TEST_CASE("across nodes: re-login with keepudp during a call keeps it: the callee, on its node") {
    // A regression test: this flow once differed across nodes (ClusterCalls).
    relogin_with_keepudp(false);
}

namespace {
void drop_and_back(bool caller_drops) {
    {
        Nodes n([](Config& c) { c.call_grace = 1500ms; });
        Ringing call(n, 3, 1);
        call.establish();
        int node = caller_drops ? 3 : 1;
        (caller_drops ? call.alice : call.bob).drop();
        n.server(1).pump(100ms);
        CHECK(phase_of(*n.server(3).server, "alice") == CallPhase::in_call);
        RawPeer back(n.server(node));
        REQUIRE_FALSE(back.login(caller_drops ? "alice" : "bob", true).empty());
        RawPeer& other = caller_drops ? call.bob : call.alice;
        CHECK(other.next_body(2000ms) == "");  // grace cancelled by the keepudp login
        CHECK(back.next_body(quiet) == "");
        CHECK(phase_of(*n.server(3).server, "alice") == CallPhase::in_call);
        call.media_both_ways(9);
        back.command(caller_drops ? "end|bob|" + back.sk : "end|alice|" + back.sk);
        CHECK(other.next_body() == (caller_drops ? "end|alice" : "end|bob"));
        CHECK(n.on(3).has("ended alice bob hangup"));
    }
}

}  // namespace

TEST_CASE("across nodes: a client that drops during a call and is back within the grace period keeps it: the caller") {
    drop_and_back(true);
}

TEST_CASE("across nodes: a client that drops during a call and is back within the grace period keeps it: the callee") {
    // A regression test: this flow once differed across nodes (ClusterCalls).
    drop_and_back(false);
}

namespace {
// alice (node2) calls bob (node1); one of them sends ready and drops, the
// other sends ready; the one away is back with keepudp on its node.
void ready_while_away(bool caller_away) {
    Nodes n([](Config& c) { c.call_grace = 3000ms; });
    Ringing call(n, 2, 1);
    call.accept();
    REQUIRE(call.bob_media.register_with(call.bob));
    REQUIRE(call.alice_media.register_with(call.alice));
    RawPeer& away = caller_away ? call.alice : call.bob;
    RawPeer& stays = caller_away ? call.bob : call.alice;
    away.command(caller_away ? "ready|bob|" + away.sk : "ready|alice|" + away.sk);
    n.server(1).pump(100ms);
    away.drop();
    n.server(1).pump(100ms);
    stays.command(caller_away ? "ready|alice|" + stays.sk : "ready|bob|" + stays.sk);
    CHECK(stays.next_body() == (caller_away ? "start|alice" : "start|bob"));
    RawPeer back(n.server(caller_away ? 2 : 1));
    REQUIRE_FALSE(back.login(caller_away ? "alice" : "bob", true).empty());
    CHECK(back.next_body() == (caller_away ? "start|bob" : "start|alice"));
    CHECK(back.next_body(quiet) == "");
    CHECK(stays.next_body(quiet) == "");
    call.media_both_ways(4);
    CHECK(phase_of(*n.server(2).server, "alice") == CallPhase::in_call);
}
}  // namespace

TEST_CASE("across nodes: what a client missed while away reaches it when it is back with keepudp") {
    SUBCASE("the peer hung up meanwhile: the returning client hears `end` (caller away, then callee away)") {
        for (bool caller_away : {true, false}) {
            CAPTURE(caller_away);
            Nodes n([](Config& c) { c.call_grace = 3000ms; });
            Ringing call(n, 1, 3);
            call.establish();
            int node = caller_away ? 1 : 3;
            (caller_away ? call.alice : call.bob).drop();
            n.server(1).pump(100ms);
            if (caller_away) call.bob.command("end|alice|" + call.bob.sk);
            else call.alice.command("end|bob|" + call.alice.sk);
            n.server(1).pump(200ms);
            CHECK(n.c.until([&] { return calls_now(*n.server(1).server) + calls_now(*n.server(3).server) == 0; }));
            RawPeer back(n.server(node));
            REQUIRE_FALSE(back.login(caller_away ? "alice" : "bob", true).empty());
            CHECK(back.next_body() == (caller_away ? "end|bob" : "end|alice"));
            CHECK(back.next(quiet) == std::nullopt);  // once
        }
    }
    SUBCASE("the peer sent ready meanwhile: the returning caller hears `start`") { ready_while_away(true); }
}

TEST_CASE("across nodes: the peer sent ready while the callee was away: it hears `start` and the call goes on") {
    // A regression test: this flow once differed across nodes (ClusterCalls).
    ready_while_away(false);
}

TEST_CASE("across nodes: grace expiry: the peer is told") {
    for (bool caller_vanishes : {true, false}) {
        CAPTURE(caller_vanishes);
        Nodes n([](Config& c) { c.call_grace = 300ms; });
        Ringing call(n, 2, 3);
        call.accept();
        RawPeer& gone = caller_vanishes ? call.alice : call.bob;
        RawPeer& left = caller_vanishes ? call.bob : call.alice;
        gone.drop();
        CHECK(left.next(100ms) == std::nullopt);
        CHECK(left.next_body(1500ms) == (caller_vanishes ? "end|alice" : "end|bob"));
        CHECK(left.next(quiet) == std::nullopt);
        CHECK(calls_now(*n.server(2).server) == 0);
        CHECK(calls_now(*n.server(3).server) == 0);
        CHECK(n.server(caller_vanishes ? 2 : 3).logged("grace period"));
        CHECK(n.on(2).has("ended alice bob peer vanished"));
        // The one who vanished is withdrawn once its call is over.
        CHECK(n.c.until([&] { return n.c.link(1).remote(caller_vanishes ? "alice" : "bob") == nullptr; }));
    }
}

TEST_CASE("across nodes: the caller's node policy refuses a call with end; the callee is free again") {
    Nodes n;
    n.server(1).server->set_policy([](const CallRequest& r) {
        return r.callee != "bob" ? CallDecision::allow : CallDecision::refuse;
    });
    RawPeer alice(n.server(1)), bob(n.server(2)), carol(n.server(3));
    n.in(alice, "alice", 1);
    n.in(bob, "bob", 2);
    n.in(carol, "carol", 3);
    alice.command("call|bob|" + alice.sk);
    CHECK(alice.next_body() == "end|bob");
    CHECK(bob.next(quiet) == std::nullopt);
    CHECK(n.on(1).has("ended alice bob refused"));
    // Nothing stays claimed: carol (node3) and alice again can ring.
    carol.command("call|bob|" + carol.sk);
    CHECK(carol.next_body() == "available|bob");
    CHECK(bob.next_body() == "incoming|carol");
    carol.command("end|bob|" + carol.sk);
    CHECK(bob.next_body() == "end|carol");
    alice.command("call|carol|" + alice.sk);
    CHECK(alice.next_body() == "available|carol");
    CHECK(carol.next_body() == "incoming|alice");
}

TEST_CASE("across nodes: Server::end_call() on the owner node ends it for both, named by either party") {
    for (const char* named : {"alice", "bob"}) {
        CAPTURE(named);
        Nodes n;
        Ringing call(n, 3, 2);
        call.establish();
        REQUIRE(n.server(3).server->end_call(named));
        CHECK(call.alice.next_body() == "end|bob");
        CHECK(call.bob.next_body() == "end|alice");
        CHECK(call.alice.next(quiet) == std::nullopt);
        CHECK(call.bob.next(quiet) == std::nullopt);
        CHECK(n.on(3).has("ended alice bob ended by server"));
        CHECK(calls_now(*n.server(2).server) == 0);
        CHECK(calls_now(*n.server(3).server) == 0);
        // Both stay logged in and can call again.
        call.alice.command("call|bob|" + call.alice.sk);
        CHECK(call.alice.next_body() == "available|bob");
        CHECK(call.bob.next_body() == "incoming|alice");
    }
}

TEST_CASE("across nodes: Server::end_call() on the callee's node, as on one node") {
    // A regression test: this flow once differed across nodes (ClusterCalls).
    Nodes n;
    Ringing call(n, 3, 2);
    call.establish();
    CHECK(n.server(2).server->end_call("bob"));
    CHECK(call.alice.next_body() == "end|bob");
    CHECK(call.bob.next_body() == "end|alice");
    CHECK(calls_now(*n.server(2).server) == 0);
    CHECK(calls_now(*n.server(3).server) == 0);
}

TEST_CASE("across nodes: kick() of either party on its node ends the call for the other") {
    for (bool kick_callee : {true, false}) {
        CAPTURE(kick_callee);
        Nodes n;
        Ringing call(n, 1, 2);
        call.establish();
        int node = kick_callee ? 2 : 1;
        REQUIRE(n.server(node).server->kick(kick_callee ? "bob" : "alice"));
        CHECK((kick_callee ? call.bob : call.alice).closed());
        RawPeer& left = kick_callee ? call.alice : call.bob;
        CHECK(left.next_body() == (kick_callee ? "end|bob" : "end|alice"));
        CHECK(left.next(quiet) == std::nullopt);
        CHECK(n.c.until([&] { return calls_now(*n.server(1).server) + calls_now(*n.server(2).server) == 0; }));
        CHECK(n.on(1).has("ended alice bob peer vanished"));
        CHECK(n.on(node).has(kick_callee ? "logout bob kicked" : "logout alice kicked"));
        CHECK(n.c.until([&] { return n.c.link(3).remote(kick_callee ? "bob" : "alice") == nullptr; }));
        // The media route is gone on both nodes.
        (kick_callee ? call.alice_media : call.bob_media).send(Bytes(40, 1));
        CHECK((kick_callee ? call.bob_media : call.alice_media).receive(quiet) == std::nullopt);
    }
}

TEST_CASE("across nodes: stop() of the owner (caller's) node: both get end, the callee's node is clean") {
    Nodes n;
    Ringing call(n, 1, 3);
    call.establish();
    n.server(1).server->stop();
    CHECK(call.alice.next_body() == "end|bob");
    CHECK(call.bob.next_body() == "end|alice");
    CHECK(call.alice.closed());
    CHECK_FALSE(call.bob.closed(quiet));
    CHECK(n.on(1).has("ended alice bob server stopping"));
    CHECK(n.on(1).has("logout alice server stopping"));
    CHECK(calls_now(*n.server(3).server) == 0);
    CHECK(phase_of(*n.server(3).server, "bob") == CallPhase::idle);
    // alice's polite logout is a withdrawal: the other nodes see her offline.
    CHECK(n.c.until([&] { return !n.c.link(2).remote("alice") && !n.c.link(3).remote("alice"); }));
    // bob is free for another call (from node 2).
    RawPeer carol(n.server(2));
    n.in(carol, "carol", 2);
    carol.command("call|bob|" + carol.sk);
    CHECK(carol.next_body() == "available|bob");
    CHECK(call.bob.next_body() == "incoming|carol");
}

TEST_CASE("across nodes: stop() of the callee's node mid-call: its users get end, the caller's node ends the call") {
    // A regression test: this flow once differed across nodes (ClusterCalls).
    Nodes n;
    Ringing call(n, 1, 2);
    call.establish();
    n.server(2).server->stop();
    CHECK(call.bob.next_body() == "end|alice");
    CHECK(call.bob.closed());
    CHECK(call.alice.next_body() == "end|bob");
    CHECK(n.c.until([&] { return calls_now(*n.server(1).server) == 0; }));
    CHECK(phase_of(*n.server(1).server, "alice") == CallPhase::idle);
    CHECK(n.c.until([&] { return !n.c.link(1).remote("bob") && !n.c.link(3).remote("bob"); }));
    CHECK(n.on(2).has("logout bob server stopping"));
}

TEST_CASE("across nodes: a polite logout outside a call withdraws the user everywhere; a call to it ends at once") {
    Nodes n;
    RawPeer alice(n.server(1));
    n.in(alice, "alice", 1);
    {
        RawPeer bob(n.server(2));
        n.in(bob, "bob", 2);
        CHECK(online_here(n.server(2), "bob"));
    }  // bob closes his connection
    CHECK(n.c.until([&] { return !n.c.link(1).remote("bob") && !n.c.link(3).remote("bob"); }));
    CHECK(n.on(2).has("logout bob closed by peer"));
    alice.command("call|bob|" + alice.sk);
    CHECK(alice.next_body() == "end|bob");
    CHECK(n.on(1).has("ended alice bob busy"));
}

TEST_CASE("across nodes: a second login on a third node during a call ends it; with keepudp both get end") {
    for (bool keepudp : {false, true}) {
        CAPTURE(keepudp);
        Nodes n;
        Ringing call(n, 1, 2);
        call.establish();
        // bob's phone moves to node3 (the directory is shared in a real cluster).
        n.server(3).user_keys["bob"] = n.server(2).user_keys["bob"];
        n.server(3).users.add("bob", n.server(2).user_keys["bob"].public_key);
        RawPeer moved(n.server(3));
        REQUIRE_FALSE(moved.login("bob", keepudp).empty());
        CHECK(call.alice.next_body() == "end|bob");
        CHECK(call.bob.closed());
        if (keepudp) CHECK(moved.next_body() == "end|alice");  // the call could not follow it
        CHECK(moved.next(quiet) == std::nullopt);
        CHECK(n.c.until([&] { return calls_now(*n.server(1).server) == 0 && calls_now(*n.server(2).server) == 0; }));
        CHECK(n.on(1).has("ended alice bob relogin"));
        // bob is free again, on node3.
        call.alice.command("call|bob|" + call.alice.sk);
        CHECK(call.alice.next_body() == "available|bob");
        CHECK(moved.next_body() == "incoming|alice");
    }
}

TEST_CASE("across nodes: a callee busy in a call Redis never saw (placed while it was away) gets the caller end") {
    Nodes n;
    RawPeer alice(n.server(1)), bob(n.server(2)), carol(n.server(2));
    n.in(alice, "alice", 1);
    n.in(bob, "bob", 2);
    n.in(carol, "carol", 2);
    n.c.redis.stop();
    REQUIRE(n.c.until([&] { return !n.c.link(2).available(); }));
    carol.command("call|bob|" + carol.sk);  // local: no claim in Redis
    CHECK(carol.next_body() == "available|bob");
    CHECK(bob.next_body() == "incoming|carol");
    REQUIRE(n.c.redis.start() == "");
    REQUIRE(n.c.until([&] { return n.c.link(1).available() && n.c.link(2).available(); }));
    REQUIRE(n.c.known("bob", 2));
    alice.command("call|bob|" + alice.sk);
    CHECK(alice.next_body() == "available|bob");  // Redis said free
    CHECK(alice.next_body() == "end|bob");        // bob's node knew better
    CHECK(bob.next(quiet) == std::nullopt);
    CHECK(n.c.until([&] { return calls_now(*n.server(1).server) == 0; }));
    CHECK(phase_of(*n.server(2).server, "bob") == CallPhase::ringing);  // carol's call is untouched
}

TEST_CASE("across nodes: a draining node rings none of its users; its calls in progress count for the drain") {
    Nodes n;
    Ringing call(n, 1, 2);
    call.establish();
    RawPeer carol(n.server(1)), dave(n.server(2));
    n.in(carol, "carol", 1);
    n.in(dave, "dave", 2);
    bool drained = false;
    n.server(2).server->drain(std::chrono::seconds(30), [&] { drained = true; });
    carol.command("call|dave|" + carol.sk);
    CHECK(carol.next_body() == "available|dave");
    CHECK(carol.next_body() == "end|dave");
    CHECK(dave.next(quiet) == std::nullopt);
    // bob's call (owned by node1) keeps node2 from stopping until it ends.
    n.server(2).pump(600ms);
    CHECK_FALSE(drained);
    call.alice.command("end|bob|" + call.alice.sk);
    CHECK(call.bob.next_body() == "end|alice");
    CHECK(n.c.until([&] { return drained; }));
}
