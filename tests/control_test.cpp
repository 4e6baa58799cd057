// The embedder's control surface on a real Server over loopback sockets:
// what online_users() and calls() show, kick and end_call, drain, the order
// of events on stop(), several observers, and which Server methods a
// callback may call.
#include <doctest/doctest.h>

#include "harness.hpp"

#include <dtcall/server.hpp>

#include <algorithm>
#include <string>
#include <vector>

using namespace dtcall;
using namespace test_support;

namespace {

// Records what observers see, one line per event.
struct Recorder : ServerObserver {
    std::vector<std::string> seen;
    std::function<void(const std::string&)> on_logged_in, on_started;
    std::function<void(const CallReport&)> on_ended;
    void logged_in(const std::string& u, const std::string&) override {
        seen.push_back("login " + u);
        if (on_logged_in) on_logged_in(u);
    }
    void logged_out(const std::string& u, LogoutReason r) override {
        seen.push_back("logout " + u + " " + to_string(r));
    }
    void call_started(const std::string& a, const std::string& b) override {
        seen.push_back("started " + a + " " + b);
        if (on_started) on_started(a);
    }
    void call_ended(const CallReport& r) override {
        seen.push_back("ended " + r.call.caller + " " + r.call.callee + " " + to_string(r.reason));
        if (on_ended) on_ended(r);
    }
    bool has(const std::string& line) const { return std::find(seen.begin(), seen.end(), line) != seen.end(); }
    std::size_t index(const std::string& line) const {
        return std::size_t(std::find(seen.begin(), seen.end(), line) - seen.begin());
    }
};

const OnlineUser* find_user(const std::vector<OnlineUser>& users, const std::string& name) {
    for (const OnlineUser& u : users)
        if (u.user == name) return &u;
    return nullptr;
}

}  // namespace

TEST_CASE("online_users: address, since, call phase and peer, keepudp returns counted") {
    TestServer s;
    auto before = std::chrono::system_clock::now() - std::chrono::seconds(1);
    CallPair call(s);
    REQUIRE(call.established);
    RawPeer carol(s);
    REQUIRE_FALSE(carol.login("carol").empty());
    auto users = s.server->online_users();
    CHECK(users.size() == 3);
    const OnlineUser* alice = find_user(users, "alice");
    REQUIRE(alice);
    CHECK(alice->phase == CallPhase::in_call);
    CHECK(alice->peer == "bob");
    CHECK(alice->address.rfind("127.0.0.1:", 0) == 0);
    CHECK(alice->since >= before);
    CHECK(alice->keepudp_reconnects == 0);
    const OnlineUser* idle = find_user(users, "carol");
    REQUIRE(idle);
    CHECK(idle->phase == CallPhase::idle);
    CHECK(idle->peer.empty());

    // alice's phone drops and comes back into the call with keepudp.
    call.alice.drop();
    s.pump(100ms);
    CHECK_FALSE(find_user(s.server->online_users(), "alice"));
    CHECK(phase_of(*s.server, "alice") == CallPhase::in_call);  // the call waits for her
    RawPeer back(s);
    REQUIRE_FALSE(back.login("alice", true).empty());
    users = s.server->online_users();
    REQUIRE(find_user(users, "alice"));
    CHECK(find_user(users, "alice")->keepudp_reconnects == 1);
    CHECK(find_user(users, "alice")->phase == CallPhase::in_call);
}

TEST_CASE("kick and end_call: errors when there is nothing to act on") {
    TestServer s;
    RawPeer alice(s);
    REQUIRE_FALSE(alice.login("alice").empty());
    CHECK(s.server->kick("bob").code() == ErrorCode::not_found);
    CHECK(s.server->end_call("alice").code() == ErrorCode::not_found);
    CHECK(s.server->kick("alice"));
    CHECK(alice.closed());
    CHECK(s.server->online_users().empty());
}

TEST_CASE("end_call ends the call for both, reported as ended by the server") {
    TestServer s;
    Recorder events;
    s.server->add_observer(&events);
    CallPair call(s);
    REQUIRE(call.established);
    REQUIRE(s.server->end_call("bob"));
    CHECK(call.alice.next_body() == "end|bob");
    CHECK(call.bob.next_body() == "end|alice");
    CHECK(events.has("ended alice bob ended by server"));
    CHECK(s.server->calls().empty());
    CHECK(s.server->online_users().size() == 2);  // nobody was disconnected
}

TEST_CASE("stop(done): calls end, then connections close, then done runs; again after the stop, done still runs") {
    TestServer s;
    Recorder events;
    s.server->add_observer(&events);
    CallPair call(s);
    REQUIRE(call.established);
    int done = 0;
    s.server->stop([&] { events.seen.push_back("done"); ++done; });
    CHECK(done == 0);  // never from inside stop()
    for (int i = 0; i < 100 && done == 0; ++i) s.pump(20ms);
    REQUIRE(done == 1);
    CHECK(call.alice.next_body() == "end|bob");
    CHECK(call.bob.next_body() == "end|alice");
    std::size_t ended = events.index("ended alice bob server stopping");
    std::size_t alice_out = events.index("logout alice server stopping");
    std::size_t bob_out = events.index("logout bob server stopping");
    std::size_t finished = events.index("done");
    REQUIRE(finished < events.seen.size());
    CHECK(ended < alice_out);
    CHECK(ended < bob_out);
    CHECK(alice_out < finished);
    CHECK(bob_out < finished);
    CHECK(call.alice.closed());
    s.server->stop([&] { ++done; });
    CHECK(done == 1);
    s.pump(50ms);
    CHECK(done == 2);
}

TEST_CASE("drain: the call goes on, new calls and logins are refused, the server stops when it ends") {
    TestServer s({"alice", "bob", "carol", "dave"});
    CallPair call(s);
    REQUIRE(call.established);
    RawPeer carol(s);
    REQUIRE_FALSE(carol.login("carol").empty());
    bool done = false;
    s.server->drain(std::chrono::seconds(30), [&] { done = true; });
    CHECK(s.server->draining());
    carol.command(wire::Verb::call, {"alice"});
    CHECK(carol.next_body() == "end|alice");  // no new call
    RawPeer dave(s);
    CHECK(dave.login("dave").empty());  // no new login
    s.pump(300ms);
    CHECK_FALSE(done);
    CHECK(s.server->calls().size() == 1);  // the call is still up
    call.alice.command(wire::Verb::end, {"bob"});
    CHECK(call.bob.next_body() == "end|alice");
    for (int i = 0; i < 100 && !done; ++i) s.pump(20ms);
    CHECK(done);
    CHECK(carol.closed());
}

TEST_CASE("drain with a time limit ends what is left") {
    TestServer s;
    Recorder events;
    s.server->add_observer(&events);
    CallPair call(s);
    REQUIRE(call.established);
    bool done = false;
    s.server->drain(std::chrono::seconds(1), [&] { done = true; });
    for (int i = 0; i < 200 && !done; ++i) s.pump(20ms);
    CHECK(done);
    CHECK(events.has("ended alice bob server stopping"));
}

TEST_CASE("several observers; one removes itself from its own callback") {
    TestServer s;
    Recorder first, second;
    struct Leaver : ServerObserver {
        Server* server = nullptr;
        int calls = 0;
        void logged_in(const std::string&, const std::string&) override {
            ++calls;
            server->remove_observer(this);
        }
    } leaver;
    leaver.server = s.server.get();
    s.server->add_observer(&first);
    s.server->add_observer(&leaver);
    s.server->add_observer(&second);
    s.server->add_observer(&first);  // twice is once
    RawPeer alice(s), bob(s);
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE_FALSE(bob.login("bob").empty());
    CHECK(leaver.calls == 1);
    CHECK(first.seen == std::vector<std::string>{"login alice", "login bob"});
    CHECK(second.seen == first.seen);
}

TEST_CASE("callbacks may call the Server: kick from logged_in, end_call from call_started, stop from call_ended") {
    TestServer s;
    Recorder events;
    s.server->add_observer(&events);
    bool stopped = false;
    events.on_logged_in = [&](const std::string& user) {
        if (user == "carol") CHECK(s.server->kick("carol"));
    };
    events.on_started = [&](const std::string& caller) { CHECK(s.server->end_call(caller)); };
    events.on_ended = [&](const CallReport&) { s.server->stop([&] { stopped = true; }); };
    RawPeer carol(s);
    carol.login("carol");
    CHECK(carol.closed());
    CHECK(events.has("logout carol kicked"));
    CallPair call(s);  // ends as soon as it starts, and the server stops
    for (int i = 0; i < 100 && !stopped; ++i) s.pump(20ms);
    CHECK(events.has("ended alice bob ended by server"));
    CHECK(stopped);
}

TEST_CASE("a busy call to a user away in its grace period leaves that call and its grace alone") {
    TestServer s({"alice", "bob", "carol"}, [](Config& c) { c.call_grace = std::chrono::milliseconds(800); });
    CallPair call(s);
    REQUIRE(call.established);
    RawPeer carol(s);
    REQUIRE_FALSE(carol.login("carol").empty());
    call.bob.drop();  // bob's phone loses its network during the call
    s.pump(100ms);
    carol.command(wire::Verb::call, {"bob"});
    CHECK(carol.next_body() == "end|bob");  // bob is busy (and away)
    // The grace period still runs out and ends the call for alice.
    CHECK(call.alice.next_body(2000ms) == "end|bob");
    CHECK(s.server->calls().empty());
}

TEST_CASE("a busy caller's refused call does not disturb its own call's record") {
    TestServer s;
    Recorder events;
    s.server->add_observer(&events);
    CallPair call(s);
    REQUIRE(call.established);
    RawPeer carol(s);
    REQUIRE_FALSE(carol.login("carol").empty());
    call.alice.command(wire::Verb::call, {"carol"});  // D1: alice is in a call already
    CHECK(call.alice.next_body() == "end|carol");
    CHECK(events.has("ended alice carol busy"));
    auto calls = s.server->calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].rung_at != std::chrono::system_clock::time_point{});
    CHECK(calls[0].started_at != std::chrono::system_clock::time_point{});
    s.pump(20ms);
    REQUIRE(s.server->end_call("alice"));
    REQUIRE(events.has("ended alice bob ended by server"));
}

TEST_CASE("stop() during a drain runs the drain's done too; a stopped server does not start again") {
    TestServer s;
    CallPair call(s);
    REQUIRE(call.established);
    bool drained = false, stopped = false;
    s.server->drain(std::chrono::seconds(30), [&] { drained = true; });
    s.pump(50ms);
    s.server->stop([&] { stopped = true; });
    for (int i = 0; i < 100 && !(drained && stopped); ++i) s.pump(20ms);
    CHECK(drained);
    CHECK(stopped);
    CHECK(s.server->start().code() == ErrorCode::invalid_state);
}

TEST_CASE("a second drain can only shorten the time left") {
    TestServer s;
    Recorder events;
    s.server->add_observer(&events);
    CallPair call(s);
    REQUIRE(call.established);
    bool first = false, second = false;
    s.server->drain(std::chrono::seconds(60), [&] { first = true; });
    s.server->drain(std::chrono::seconds(1), [&] { second = true; });
    for (int i = 0; i < 200 && !(first && second); ++i) s.pump(20ms);
    CHECK(first);
    CHECK(second);
    CHECK(events.has("ended alice bob server stopping"));
}
