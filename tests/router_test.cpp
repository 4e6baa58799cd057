// The call state machine (PROTOCOL.md sections 7, 8 and defects D1, D2),
// without sockets: given this state, when this command arrives, then these
// notices go to these users.
#include <doctest/doctest.h>

#include "router/call_router.hpp"

#include <algorithm>
#include <functional>
#include <set>
#include <utility>
#include <vector>

using namespace dtcall;

namespace {

struct Recorder : CallRouter::Outbox {
    std::set<std::string> on;
    std::vector<std::string> sent;  // "user<-kind|other[|blob]"
    std::vector<std::string> held, released, events, peer_changed;

    bool online(const std::string& u) override { return on.count(u) != 0; }
    void deliver(const std::string& u, const Notice& n) override {
        static const char* names[] = {"available", "incoming", "prepare", "direct", "start", "end"};
        std::string s = u + "<-" + names[int(n.kind)] + "|" + n.other;
        if (!n.blob.empty()) s += "|" + n.blob;
        sent.push_back(s);
    }
    void direct_held(const std::string& u) override { held.push_back(u); }
    void media_released(const std::string& u) override { released.push_back(u); }
    void relay_peer_changed(const std::string& u) override { peer_changed.push_back(u); }
    void call_rung(const std::string& a, const std::string& b) override { events.push_back("rung " + a + " " + b); }
    void call_accepted(const std::string& a, const std::string& b) override { events.push_back("accepted " + a + " " + b); }
    void call_started(const std::string& a, const std::string& b) override { events.push_back("started " + a + " " + b); }
    void call_ended(const std::string& a, const std::string& b, EndReason r) override {
        events.push_back("ended " + a + " " + b + " " + to_string(r));
    }
    void call_refused(const std::string& a, const std::string& b, EndReason r) override {
        events.push_back("ended " + a + " " + b + " " + to_string(r));
    }
    std::vector<std::string> take() { return std::exchange(sent, {}); }
};

using Sent = std::vector<std::string>;

struct Fixture {
    Recorder out;
    CallRouter router{out};
    Fixture() { out.on = {"alice", "bob", "carol"}; }
    void ring() {
        REQUIRE(router.call("alice", "bob"));
        out.take();
    }
    void accepted() {
        ring();
        REQUIRE(router.accept("bob", "alice"));
        out.take();
    }
    void in_call() {
        accepted();
        REQUIRE(router.media_registered("bob"));
        REQUIRE(router.passthrough("alice", "bob", "123"));
        REQUIRE(router.ready("alice", "bob"));
        REQUIRE(router.ready("bob", "alice"));
        out.take();
    }
};

}  // namespace

TEST_CASE_FIXTURE(Fixture, "call rings both sides") {
    CHECK(router.call("alice", "bob"));
    CHECK(out.take() == Sent{"alice<-available|bob", "bob<-incoming|alice"});
    CHECK(router.phase("alice") == CallPhase::ringing);
    CHECK(router.phase("bob") == CallPhase::ringing);
    CHECK(out.events == std::vector<std::string>{"rung alice bob"});
}

TEST_CASE_FIXTURE(Fixture, "call to an offline user, to oneself, or refused by policy ends at once") {
    CHECK(router.call("alice", "dave"));
    CHECK(router.call("alice", "alice"));
    router.set_policy([](const std::string&, const std::string& callee) {
        return callee != "carol" ? CallDecision::allow : CallDecision::refuse;
    });
    CHECK(router.call("alice", "carol"));
    CHECK(out.take() == Sent{"alice<-end|dave", "alice<-end|alice", "alice<-end|carol"});
    CHECK(router.phase("alice") == CallPhase::idle);
    CHECK(router.calls() == 0);
}

TEST_CASE_FIXTURE(Fixture, "busy callee, and D1: a busy caller cannot ring a third user") {
    ring();
    CHECK(router.call("carol", "bob"));
    CHECK(out.take() == Sent{"carol<-end|bob"});
    CHECK(router.call("alice", "carol"));  // alice is ringing bob
    CHECK(out.take() == Sent{"alice<-end|carol"});
    CHECK(router.call("bob", "carol"));
    CHECK(out.take() == Sent{"bob<-end|carol"});
    CHECK(router.peer("alice") == "bob");
    CHECK(router.peer("bob") == "alice");
}

TEST_CASE_FIXTURE(Fixture, "accept sends prepare to both; D2: the caller cannot accept") {
    ring();
    CHECK_FALSE(router.accept("alice", "bob"));
    CHECK_FALSE(router.accept("bob", "carol"));
    CHECK_FALSE(router.accept("carol", "alice"));
    CHECK(out.take().empty());
    CHECK(router.accept("bob", "alice"));
    CHECK(out.take() == Sent{"alice<-prepare|bob", "bob<-prepare|alice"});
    CHECK_FALSE(router.accept("bob", "alice"));  // only once
}

TEST_CASE_FIXTURE(Fixture, "passthrough: caller only, after accept; direct held until the callee's media") {
    ring();
    CHECK_FALSE(router.passthrough("alice", "bob", "123"));  // still ringing
    REQUIRE(router.accept("bob", "alice"));
    out.take();
    CHECK_FALSE(router.passthrough("bob", "alice", "123"));  // D2
    CHECK(router.passthrough("alice", "bob", "123"));
    CHECK(out.take().empty());
    CHECK(out.held == std::vector<std::string>{"bob"});
    CHECK(router.media_registered("bob"));
    CHECK(out.take() == Sent{"bob<-direct|alice|123"});
    CHECK(router.media_registered("bob"));  // again: nothing more to send
    CHECK(out.take().empty());
}

TEST_CASE_FIXTURE(Fixture, "direct goes at once when the callee registered first; or when the hold runs out") {
    accepted();
    CHECK(router.media_registered("bob"));
    CHECK(router.passthrough("alice", "bob", "456"));
    CHECK(out.take() == Sent{"bob<-direct|alice|456"});
    CHECK(out.held.empty());
    CHECK(router.passthrough("alice", "bob", "789"));  // media known: immediate again
    CHECK(out.take() == Sent{"bob<-direct|alice|789"});
}

TEST_CASE_FIXTURE(Fixture, "held direct is released by the timer path") {
    accepted();
    CHECK(router.passthrough("alice", "bob", "123"));
    router.release_held_direct("bob");
    CHECK(out.take() == Sent{"bob<-direct|alice|123"});
    router.release_held_direct("bob");
    CHECK(out.take().empty());
}

TEST_CASE_FIXTURE(Fixture, "ready from both starts the call once; media relays after ready") {
    accepted();
    CHECK(router.relay_peer("alice") == nullptr);
    CHECK_FALSE(router.ready("alice", "carol"));
    CHECK(router.ready("alice", "bob"));
    CHECK(out.take().empty());
    REQUIRE(router.relay_peer("alice"));
    CHECK(*router.relay_peer("alice") == "bob");
    CHECK(router.relay_peer("bob") == nullptr);
    CHECK(router.ready("alice", "bob"));  // repeated: harmless
    CHECK(router.ready("bob", "alice"));
    CHECK(out.take() == Sent{"bob<-start|alice", "alice<-start|bob"});
    CHECK(router.phase("alice") == CallPhase::in_call);
    CHECK(router.ready("bob", "alice"));
    CHECK(out.take().empty());
    CHECK(out.events.back() == "started alice bob");
    // Once per user, at its first ready: repeats change no route.
    CHECK(out.peer_changed == std::vector<std::string>{"alice", "bob"});
}

TEST_CASE_FIXTURE(Fixture, "ready while ringing is invalid") {
    ring();
    CHECK_FALSE(router.ready("alice", "bob"));
    CHECK_FALSE(router.ready("bob", "alice"));
}

TEST_CASE_FIXTURE(Fixture, "end: hang up, decline, cancel; media mappings released") {
    SUBCASE("hang up in call") {
        in_call();
        CHECK(router.end("bob", "alice"));
        CHECK(out.take() == Sent{"alice<-end|bob"});
        CHECK(out.events.back() == "ended alice bob hangup");
    }
    SUBCASE("callee declines while ringing") {
        ring();
        CHECK(router.end("bob", "alice"));
        CHECK(out.take() == Sent{"alice<-end|bob"});
        CHECK(out.events.back() == "ended alice bob declined");
    }
    SUBCASE("caller cancels while ringing") {
        ring();
        CHECK(router.end("alice", "bob"));
        CHECK(out.take() == Sent{"bob<-end|alice"});
        CHECK(out.events.back() == "ended alice bob cancelled");
    }
    CHECK(router.phase("alice") == CallPhase::idle);
    CHECK(router.phase("bob") == CallPhase::idle);
    CHECK(out.released == std::vector<std::string>{out.released[0], out.released[1]});
    CHECK(std::set<std::string>(out.released.begin(), out.released.end()) == std::set<std::string>{"alice", "bob"});
    CHECK_FALSE(router.end("alice", "bob"));  // nothing left to end
    CHECK_FALSE(router.media_registered("alice"));
}

TEST_CASE_FIXTURE(Fixture, "end naming the wrong user is invalid and changes nothing") {
    ring();
    CHECK_FALSE(router.end("alice", "carol"));
    CHECK_FALSE(router.end("carol", "alice"));
    CHECK(router.phase("alice") == CallPhase::ringing);
}

TEST_CASE_FIXTURE(Fixture, "login without keepudp ends the call for the peer; with keepudp it stays") {
    in_call();
    router.logged_in("alice", true);
    CHECK(out.take().empty());
    CHECK(router.phase("alice") == CallPhase::in_call);
    router.logged_in("alice", false);
    CHECK(out.take() == Sent{"bob<-end|alice"});
    CHECK(router.phase("bob") == CallPhase::idle);
    CHECK(out.events.back() == "ended alice bob relogin");
    router.logged_in("carol", false);  // idle user: nothing happens
    CHECK(out.take().empty());
}

TEST_CASE_FIXTURE(Fixture, "vanished user: the peer gets end") {
    in_call();
    router.vanished("bob");
    CHECK(out.take() == Sent{"alice<-end|bob"});
    CHECK(router.calls() == 0);
    router.vanished("bob");
    CHECK(out.take().empty());
}

TEST_CASE_FIXTURE(Fixture, "registration without a call is refused") {
    CHECK_FALSE(router.media_registered("alice"));
    ring();
    CHECK(router.media_registered("alice"));  // ringing counts as having a call
}

TEST_CASE_FIXTURE(Fixture, "policy says busy: the caller gets end, reported as busy, not refused") {
    router.set_policy([](const std::string&, const std::string&) { return CallDecision::busy; });
    CHECK(router.call("alice", "bob"));
    CHECK(out.take() == Sent{"alice<-end|bob"});
    CHECK(out.events == std::vector<std::string>{"ended alice bob busy"});
    CHECK(router.phase("alice") == CallPhase::idle);
}

TEST_CASE_FIXTURE(Fixture, "the server ends a call: both parties get end, as a hang-up") {
    in_call();
    CHECK(router.end_by_server("bob"));
    CHECK(out.take() == Sent{"bob<-end|alice", "alice<-end|bob"});
    CHECK(out.events.back() == "ended alice bob ended by server");
    CHECK(router.phase("alice") == CallPhase::idle);
    CHECK_FALSE(router.end_by_server("bob"));  // no call any more
    CHECK(out.take().empty());
}

TEST_CASE_FIXTURE(Fixture, "the policy is asked only about calls that could ring") {
    int asked = 0;
    router.set_policy([&](const std::string&, const std::string&) {
        ++asked;
        return CallDecision::allow;
    });
    CHECK(router.call("alice", "dave"));   // offline
    CHECK(router.call("alice", "alice"));  // oneself
    CHECK(asked == 0);
    CHECK(out.events == std::vector<std::string>{"ended alice dave busy", "ended alice alice busy"});
    CHECK(router.call("alice", "bob"));
    CHECK(asked == 1);
}

TEST_CASE("every change of relay_peer() reaches the outbox: relay_peer_changed or media_released") {
    // The relay caches routes and never polls: whatever changes an answer of
    // relay_peer() must say so. Each step is checked against a snapshot.
    const std::vector<std::string> users = {"alice", "bob", "carol"};
    auto answers = [&](const CallRouter& router) {
        std::vector<std::string> a;
        for (const auto& u : users) a.push_back(router.relay_peer(u) ? *router.relay_peer(u) : "-");
        return a;
    };
    auto check_step = [&](Fixture& f, const std::function<void()>& step) {
        auto before = answers(f.router);
        f.out.peer_changed.clear();
        f.out.released.clear();
        step();
        auto after = answers(f.router);
        for (std::size_t i = 0; i < users.size(); ++i) {
            if (before[i] == after[i]) continue;
            bool told = std::count(f.out.peer_changed.begin(), f.out.peer_changed.end(), users[i]) ||
                        std::count(f.out.released.begin(), f.out.released.end(), users[i]);
            CAPTURE(users[i]);
            CHECK(told);
        }
    };
    using Step = std::function<void(Fixture&)>;
    std::vector<std::pair<const char*, Step>> endings = {
        {"end", [](Fixture& f) { f.router.end("bob", "alice"); }},
        {"relogin", [](Fixture& f) { f.router.logged_in("alice", false); }},
        {"vanished", [](Fixture& f) { f.router.vanished("bob"); }},
        {"end_by_server", [](Fixture& f) { f.router.end_by_server("alice"); }},
        {"end_all", [](Fixture& f) { f.router.end_all(); }},
    };
    for (auto& named : endings) {
        // Not a structured binding: clang 14 cannot capture one in a lambda.
        const char* name = named.first;
        Step& ending = named.second;
        CAPTURE(name);
        Fixture f;
        check_step(f, [&] { f.accepted(); });
        check_step(f, [&] { f.router.ready("alice", "bob"); });
        check_step(f, [&] { f.router.ready("bob", "alice"); });
        check_step(f, [&] { ending(f); });
        CHECK(answers(f.router) == std::vector<std::string>{"-", "-", "-"});
        check_step(f, [&] { f.router.call("carol", "alice"); });
        check_step(f, [&] { f.router.accept("alice", "carol"); });
        check_step(f, [&] { f.router.ready("carol", "alice"); });
        check_step(f, [&] { f.router.end("alice", "carol"); });
    }
}

TEST_CASE_FIXTURE(Fixture, "calls are counted by phase as they move, and ended ones once each") {
    auto counts = [&] {
        auto p = router.phase_counts();
        return std::vector<std::size_t>{p.ringing, p.accepted, p.in_call};
    };
    CHECK(router.call("alice", "dave"));  // refused: ends at once
    CHECK(router.calls_ended() == 1);
    ring();
    CHECK(counts() == std::vector<std::size_t>{1, 0, 0});
    REQUIRE(router.accept("bob", "alice"));
    CHECK(counts() == std::vector<std::size_t>{0, 1, 0});
    REQUIRE(router.ready("alice", "bob"));
    REQUIRE(router.ready("bob", "alice"));
    CHECK(counts() == std::vector<std::size_t>{0, 0, 1});
    REQUIRE(router.end("alice", "bob"));
    CHECK(counts() == std::vector<std::size_t>{0, 0, 0});
    CHECK(router.calls_ended() == 2);
}
