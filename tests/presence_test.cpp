// Presence without sockets: given who is online or away, when a notice comes
// or a user leaves or returns, then these messages reach these connections.
// The grace timer runs on a real event_base with nothing but timers on it.
#include <doctest/doctest.h>

#include "presence/local_presence.hpp"

#include <event2/event.h>

#include <memory>
#include <string>
#include <vector>

using namespace dtcall;
using namespace std::chrono_literals;

namespace {

struct Phone : Presence::Connection {
    std::vector<std::string> got;  // "name|args..."
    std::string where = "127.0.2.1:5000";
    const std::string& address() const override { return where; }
    void send(const wire::Message& m) override {
        std::string s(wire::name_of(m.kind));
        for (const std::string& a : m.args) s += "|" + a;
        got.push_back(s);
    }
};

struct Expired : Presence::Events {
    std::vector<std::string> users;
    void grace_expired(const std::string& user) override { users.push_back(user); }
};

struct Fixture {
    std::unique_ptr<event_base, void (*)(event_base*)> base{event_base_new(), event_base_free};
    Expired expired;
    LocalPresence presence{base.get(), 50ms, expired};
    PublicKey alice_key = KeyPair::generate().public_key;
    PublicKey bob_key = KeyPair::generate().public_key;
    Phone alice, bob;

    void run_for(std::chrono::milliseconds time) {
        timeval tv{0, static_cast<long>(time.count() * 1000)};
        event_base_loopexit(base.get(), &tv);
        event_base_dispatch(base.get());
    }
};

}  // namespace

TEST_CASE_FIXTURE(Fixture, "notices reach the online user's connection; prepare carries the peer's key") {
    presence.arrived("alice", alice, alice_key, false);
    presence.arrived("bob", bob, bob_key, false);
    CHECK(presence.online("alice"));
    CHECK_FALSE(presence.online("carol"));
    presence.deliver("alice", {Notice::Kind::available, "bob", {}});
    presence.deliver("alice", {Notice::Kind::prepare, "bob", {}});
    REQUIRE(alice.got.size() == 2);
    CHECK(alice.got[0] == "available|bob");
    CHECK(alice.got[1] == "prepare|" + public_key_file_text(bob_key) + "|bob");
    presence.deliver("carol", {Notice::Kind::end, "bob", {}});  // offline, not away: dropped
    CHECK(presence.online_count() == 2);
}

TEST_CASE_FIXTURE(Fixture, "a second login replaces the first connection") {
    Phone second;
    CHECK(presence.arrived("alice", alice, alice_key, false) == nullptr);
    CHECK(presence.arrived("alice", second, alice_key, false) == &alice);
    presence.left("alice", alice, true);  // the replaced one closing changes nothing
    CHECK(presence.online("alice"));
    presence.deliver("alice", {Notice::Kind::start, "bob", {}});
    CHECK(second.got == std::vector<std::string>{"start|bob"});
    CHECK(alice.got.empty());
}

TEST_CASE_FIXTURE(Fixture, "away in a call: notices kept and handed over on a keepudp return, key still known") {
    presence.arrived("alice", alice, alice_key, false);
    presence.arrived("bob", bob, bob_key, false);
    presence.left("alice", alice, true);
    CHECK_FALSE(presence.online("alice"));
    CHECK(presence.key_of("alice") == alice_key);  // bob's prepare can still name it
    presence.deliver("alice", {Notice::Kind::start, "bob", {}});
    Phone back;
    presence.arrived("alice", back, alice_key, true);
    CHECK(back.got == std::vector<std::string>{"start|bob"});
    CHECK(presence.entry("alice")->keepudp_reconnects == 1);
    run_for(100ms);
    CHECK(expired.users.empty());  // it came back: no grace expiry
}

TEST_CASE_FIXTURE(Fixture, "away too long: the owner is told once, what was kept is dropped") {
    presence.arrived("alice", alice, alice_key, false);
    presence.left("alice", alice, true);
    presence.deliver("alice", {Notice::Kind::end, "bob", {}});
    run_for(120ms);
    CHECK(expired.users == std::vector<std::string>{"alice"});
    CHECK_FALSE(presence.key_of("alice"));
    Phone back;
    presence.arrived("alice", back, alice_key, true);
    CHECK(back.got.empty());
}

TEST_CASE_FIXTURE(Fixture, "leaving without a call, or a call that ended, starts no grace period") {
    presence.arrived("alice", alice, alice_key, false);
    presence.left("alice", alice, false);
    CHECK(presence.away_count() == 0);
    presence.arrived("bob", bob, bob_key, false);
    presence.left("bob", bob, true);
    presence.deliver("bob", {Notice::Kind::end, "alice", {}});  // the call ends while bob is away
    presence.call_over("bob");
    Phone back;
    presence.arrived("bob", back, bob_key, true);
    CHECK(back.got == std::vector<std::string>{"end|alice"});  // the end it missed
    run_for(120ms);
    CHECK(expired.users.empty());
}

TEST_CASE_FIXTURE(Fixture, "forget: a kicked or revoked user is offline at once, with nothing kept") {
    presence.arrived("alice", alice, alice_key, false);
    CHECK(presence.forget("alice") == &alice);
    CHECK_FALSE(presence.online("alice"));
    CHECK(presence.forget("alice") == nullptr);
    presence.arrived("bob", bob, bob_key, false);
    presence.left("bob", bob, true);
    CHECK(presence.forget("bob") == nullptr);
    run_for(120ms);
    CHECK(expired.users.empty());
}
