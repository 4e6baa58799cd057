// The user directory as the Server sees it: asked asynchronously at login1,
// told back when users leave it (revocation); and what observers hear about
// logins, logouts and limits. Sequence of a login with a slow directory:
//   client -> ts|login1|alice        server: looking_up, asks the directory
//                                    ... the directory answers (a timer) ...
//                                    server -> ts|login1resp|<blob>   (awaiting_login2)
//   client -> ts|login2|alice|<ch>   server -> ts|login2resp|<sk>     (logged_in)
// Revocation: the directory drops alice -> alice's connection closes at once,
// her peer gets `end|alice`, and a new login as alice is `invalid`.
#include <doctest/doctest.h>

#include "harness.hpp"
#include "temp_dir.hpp"

#include "crypto/crypto.hpp"

#include <event2/event.h>

using namespace test_support;
using namespace dtcall;

namespace {

// Keeps every question; answers them when told, or after a libevent timer,
// with what `table` says, or with an error while `failing`.
struct SlowDirectory : UserDirectory {
    const InMemoryUserDirectory* table = nullptr;
    event_base* base = nullptr;   // set: answer ~100 ms after being asked
    bool failing = false;
    int asked = 0;
    std::vector<std::pair<std::string, Answer>> held;

    void lookup(const std::string& user, Answer answer) override {
        ++asked;
        held.emplace_back(user, std::move(answer));
        if (base) {
            timeval later{0, 100000};
            event_base_once(base, -1, EV_TIMEOUT, [](int, short, void* self) {
                static_cast<SlowDirectory*>(self)->answer_all();
            }, this, &later);
        }
    }
    void answer_all() {
        auto now = std::move(held);
        held.clear();
        for (auto& [user, answer] : now) {
            if (failing) answer(UserLookup(Error{ErrorCode::unavailable, "the store is down"}));
            else answer(UserLookup(table->find(user)));
        }
    }
};

// What observers hear, one line per event.
struct Heard : ServerObserver {
    std::vector<std::string> lines;
    void logged_in(const std::string& u, const std::string&) override { lines.push_back("login " + u); }
    void logged_out(const std::string& u, LogoutReason r) override {
        lines.push_back("logout " + u + " " + to_string(r));
    }
    void login_failed(const std::string& name, const std::string& address, LoginFailure r) override {
        lines.push_back("failed " + name + " " + to_string(r) + (address.rfind("127.0.0.", 0) == 0 ? "" : " BAD ADDRESS"));
    }
    void limit_hit(Limit limit, const std::string& address) override {
        lines.push_back("limit " + std::string(to_string(limit)) + " " + address.substr(0, address.find(':')));
    }
    void call_ended(const CallReport& r) override {
        lines.push_back("ended " + r.call.caller + " " + r.call.callee + " " + to_string(r.reason));
    }
    bool has(const std::string& line) const { return std::find(lines.begin(), lines.end(), line) != lines.end(); }
    std::string all() const {
        std::string out;
        for (const auto& l : lines) out += l + "\n";
        return out;
    }
};

void pump_until(TestServer& s, const std::function<bool()>& done, Millis limit = patience) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < until) s.pump(10ms);
}

}  // namespace

TEST_CASE("a directory that answers after a timer: the login waits for it, then works") {
    SlowDirectory dir;
    TestServer s({"alice", "bob"}, {}, "127.0.0.1", &dir);
    dir.table = &s.users;
    dir.base = s.base;
    RawPeer alice(s);
    CHECK_FALSE(alice.login("alice").empty());
    CHECK(dir.asked == 1);
    CHECK(s.server->stats().logins == 1);
    CHECK(s.logged("awaiting login1 -> looking up"));
    CHECK(s.logged("looking up -> awaiting login2"));
    CHECK(s.logged("awaiting login2 -> logged in"));
    // Unknown users are answered late too, and still refused.
    RawPeer mallory(s);
    REQUIRE(mallory.handshake());
    mallory.command("login1|mallory");
    CHECK(mallory.next_body() == "invalid");
    CHECK(mallory.closed());
}

TEST_CASE("bytes sent while the directory is asked wait, and are read after its answer") {
    SlowDirectory dir;
    TestServer s({"alice"}, {}, "127.0.0.1", &dir);
    dir.table = &s.users;
    RawPeer p(s);
    REQUIRE(p.handshake());
    p.command("login1|alice");
    s.pump(50ms);
    REQUIRE(dir.held.size() == 1);
    p.command("login1|alice");  // a second login1 meanwhile: read only after the answer
    CHECK(p.next(quiet) == std::nullopt);
    CHECK(dir.asked == 1);
    dir.answer_all();
    CHECK(p.next_body().rfind("login1resp|", 0) == 0);
    s.pump(50ms);
    CHECK(dir.asked == 2);  // the waiting login1 was read: a new lookup
    dir.answer_all();
    CHECK(p.next_body().rfind("login1resp|", 0) == 0);
}

TEST_CASE("an answer for a session that has gone, or a Server that has gone, does nothing") {
    SlowDirectory dir;
    TestServer s({"alice"}, {}, "127.0.0.1", &dir);
    dir.table = &s.users;
    Heard heard;
    s.server->add_observer(&heard);
    SUBCASE("the client dropped") {
        {
            RawPeer p(s);
            REQUIRE(p.handshake());
            p.command("login1|alice");
            CHECK(p.next(quiet) == std::nullopt);
            REQUIRE(dir.held.size() == 1);
            p.drop();
        }
        pump_until(s, [&] { return s.server->stats().connections == 0; });
        REQUIRE(s.server->stats().connections == 0);
        dir.answer_all();
        s.pump(100ms);
        CHECK(s.server->stats().logins == 0);
        CHECK(s.server->stats().login_failures == 0);
        CHECK(heard.lines.empty());
        // Still serving: a login answered at once.
        RawPeer again(s);
        REQUIRE(again.handshake());
        again.command("login1|alice");
        s.pump(50ms);
        dir.answer_all();
        CHECK(again.next_body().rfind("login1resp|", 0) == 0);
    }
    SUBCASE("the Server was destroyed") {
        RawPeer p(s);
        REQUIRE(p.handshake());
        p.command("login1|alice");
        CHECK(p.next(quiet) == std::nullopt);
        REQUIRE(dir.held.size() == 1);
        s.server.reset();
        dir.answer_all();  // nothing to answer to, nothing touched
        CHECK(heard.lines.empty());
    }
}

TEST_CASE("a directory error: invalid, login_failed(directory_error), the server stays up") {
    SlowDirectory dir;
    TestServer s({"alice", "bob"}, {}, "127.0.0.1", &dir);
    dir.table = &s.users;
    dir.base = s.base;
    Heard heard;
    s.server->add_observer(&heard);
    dir.failing = true;
    RawPeer p(s);
    REQUIRE(p.handshake());
    p.command("login1|alice");
    CHECK(p.next_body() == "invalid");
    CHECK(p.closed());
    CHECK_MESSAGE(heard.has("failed alice directory error"), heard.all());
    CHECK(s.server->stats().login_failures == 1);
    CHECK(s.logged("the user directory could not answer for alice: the store is down"));
    dir.failing = false;
    RawPeer alice(s);
    CHECK_FALSE(alice.login("alice").empty());
    CHECK(heard.has("login alice"));
}

TEST_CASE("a directory that never answers: the login deadline closes the session") {
    SlowDirectory dir;
    TestServer s({"alice"}, [](Config& c) { c.login_timeout = 300ms; }, "127.0.0.1", &dir);
    dir.table = &s.users;
    RawPeer p(s);
    REQUIRE(p.handshake());
    p.command("login1|alice");
    CHECK(p.closed());
    CHECK(s.logged("no login within the deadline"));
    pump_until(s, [&] { return s.server->stats().connections == 0; });
    CHECK(s.server->stats().connections == 0);
    dir.answer_all();  // far too late: ignored
    s.pump(50ms);
    CHECK(s.server->stats().logins == 0);
}

TEST_CASE("login failures and limits reach observers and the stats") {
    TestServer s;
    Heard heard;
    s.server->add_observer(&heard);
    RawPeer mallory(s);
    REQUIRE(mallory.handshake());
    mallory.command("login1|mallory");
    CHECK(mallory.next_body() == "invalid");
    CHECK(heard.has("failed mallory unknown user"));

    RawPeer wrong(s);
    REQUIRE(wrong.handshake());
    wrong.command("login1|carol");
    REQUIRE(wrong.next_body().rfind("login1resp|", 0) == 0);
    wrong.command("login2|carol|" + random_token(200));
    CHECK(wrong.next_body() == "invalid");
    CHECK(heard.has("failed carol bad response"));

    bool refused = false;
    for (int i = 0; i < 15 && !refused; ++i) {
        RawPeer p(s, "127.0.0.1", "127.0.0.2");
        REQUIRE(p.handshake());
        p.command("login1|carol");
        if (p.next_body() == "invalid") {
            refused = true;
            break;
        }
        p.command("login2|carol|" + random_token(200));
        p.next_body();
    }
    CHECK(refused);
    CHECK_MESSAGE(heard.has("failed carol rate limited"), heard.all());
    CHECK(heard.has("limit failed logins 127.0.0.2"));
    CHECK(s.server->stats().limit_hit(Limit::failed_logins) >= 1);

    RawPeer alice(s);
    REQUIRE_FALSE(alice.login("alice").empty());
    ServerStats stats = s.server->stats();
    CHECK(stats.logins == 1);
    std::size_t failures = 0;
    for (const auto& line : heard.lines) failures += line.rfind("failed ", 0) == 0;
    CHECK(failures >= 4);  // unknown, bad response, carol's burst from .2, the refusal
    CHECK(stats.login_failures == failures);
}

TEST_CASE("logged_out tells the true reason") {
    TestServer s({"alice", "bob", "carol"}, [](Config& c) { c.idle_timeout = 400ms; });
    Heard heard;
    s.server->add_observer(&heard);
    SUBCASE("closed by peer") {
        RawPeer alice(s);
        REQUIRE_FALSE(alice.login("alice").empty());
        alice.drop();
        pump_until(s, [&] { return heard.has("logout alice closed by peer"); });
        CHECK_MESSAGE(heard.has("logout alice closed by peer"), heard.all());
    }
    SUBCASE("kicked, and the call ends for the peer at once") {
        CallPair call(s);
        REQUIRE(call.established);
        REQUIRE(s.server->kick("alice"));
        CHECK(call.alice.closed());
        CHECK(call.bob.next_body() == "end|alice");
        CHECK_MESSAGE(heard.has("logout alice kicked"), heard.all());
        CHECK(heard.has("ended alice bob peer vanished"));
    }
    SUBCASE("replaced") {
        RawPeer first(s), second(s);
        REQUIRE_FALSE(first.login("alice").empty());
        REQUIRE_FALSE(second.login("alice").empty());
        CHECK(first.closed());
        CHECK_MESSAGE(heard.has("logout alice replaced"), heard.all());
    }
    SUBCASE("idle") {
        RawPeer alice(s);
        REQUIRE_FALSE(alice.login("alice").empty());
        CHECK(alice.closed());
        CHECK_MESSAGE(heard.has("logout alice idle"), heard.all());
    }
    SUBCASE("server stopping") {
        RawPeer alice(s);
        REQUIRE_FALSE(alice.login("alice").empty());
        s.server->stop();
        CHECK(alice.closed());
        CHECK_MESSAGE(heard.has("logout alice server stopping"), heard.all());
    }
    SUBCASE("an oversized frame: protocol error and a frame_size limit hit") {
        RawPeer alice(s);
        REQUIRE_FALSE(alice.login("alice").empty());
        alice.send_text(s.timestamp() + "|call|bob|" + std::string(70000, 'a'));
        CHECK(alice.closed());
        CHECK_MESSAGE(heard.has("logout alice protocol error"), heard.all());
        CHECK(heard.has("limit frame size 127.0.0.1"));
        CHECK(s.server->stats().limit_hit(Limit::frame_size) == 1);
    }
}

TEST_CASE("a client that does not read: output_overflow and an output_bytes limit hit") {
    TestServer s({"alice", "bob", "carol"}, [](Config& c) {
        c.max_output_bytes = 4096;
        c.frame_gap = std::chrono::milliseconds(0);
        c.replay_memory = 100000;
    });
    Heard heard;
    s.server->add_observer(&heard);
    RawPeer sink(s);
    REQUIRE_FALSE(sink.login("carol").empty());
    Bytes many;
    for (int i = 0; i < 40000; ++i) {
        Bytes f = seal_secret_frame(sink.tcp_key.data(), s.timestamp() + "|call|nobody|" + sink.sk);
        many.insert(many.end(), f.begin(), f.end());
    }
    sink.send_bytes(many);
    pump_until(s, [&] { return heard.has("logout carol output overflow"); });
    CHECK_MESSAGE(heard.has("logout carol output overflow"), heard.all());
    CHECK(heard.has("limit output bytes 127.0.0.1"));
    CHECK(s.server->stats().limit_hit(Limit::output_bytes) == 1);
}

TEST_CASE("InMemoryUserDirectory::remove revokes: disconnected, the call ends, no new login or call") {
    TestServer s;
    Heard heard;
    s.server->add_observer(&heard);
    CallPair call(s);
    REQUIRE(call.established);
    s.users.remove("alice");
    CHECK(call.alice.closed(1000ms));
    CHECK(call.bob.next_body() == "end|alice");
    CHECK_MESSAGE(heard.has("logout alice revoked"), heard.all());
    CHECK(heard.has("ended alice bob peer vanished"));
    CHECK(phase_of(*s.server, "bob") == CallPhase::idle);
    CHECK(s.logged("alice is no longer in the user directory"));

    RawPeer again(s);
    REQUIRE(again.handshake());
    again.command("login1|alice");
    CHECK(again.next_body() == "invalid");
    CHECK(heard.has("failed alice unknown user"));
    // bob cannot ring her either: she is not online.
    call.bob.command("call|alice|" + call.bob.sk);
    s.pump(100ms);
    CHECK(phase_of(*s.server, "bob") == CallPhase::idle);
    CHECK(calls_now(*s.server) == 0);
}

TEST_CASE("a new key for a user revokes the old one's connection and login under way") {
    TestServer s;
    Heard heard;
    s.server->add_observer(&heard);
    RawPeer alice(s);
    REQUIRE_FALSE(alice.login("alice").empty());
    RawPeer halfway(s);
    REQUIRE(halfway.handshake());
    halfway.command("login1|bob");
    REQUIRE(halfway.next_body().rfind("login1resp|", 0) == 0);

    KeyPair fresh = KeyPair::generate();
    s.users.add("alice", s.user_keys["alice"].public_key);  // the same key: nothing happens
    CHECK(alice.next(quiet) == std::nullopt);
    s.users.add("alice", fresh.public_key);
    CHECK(alice.closed(1000ms));
    CHECK(heard.has("logout alice revoked"));
    s.users.add("bob", KeyPair::generate().public_key);
    CHECK(halfway.closed(1000ms));  // its challenge was sealed to the old key

    RawPeer old_key(s);
    CHECK(old_key.login("alice").empty());
    s.user_keys["alice"] = fresh;
    RawPeer new_key(s);
    CHECK_FALSE(new_key.login("alice").empty());
}

TEST_CASE("UsersFile::reload revokes users who left the file or whose key changed") {
    TempDir dir;
    UsersFile file(dir / "users");
    TestServer s({"alice", "bob", "carol"}, {}, "127.0.0.1", &file);
    Heard heard;
    s.server->add_observer(&heard);
    for (const char* name : {"alice", "bob", "carol"})
        REQUIRE(write_key_files(s.user_keys[name], dir / (std::string(name) + "_public.na"),
                                dir / (std::string(name) + "_private.na"))
                    .ok());
    write_file(dir / "users", "alice > alice_public.na\nbob > bob_public.na\ncarol > carol_public.na\n");
    REQUIRE(s.server->reload_users());

    RawPeer alice(s), bob(s), carol(s);
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE_FALSE(bob.login("bob").empty());
    REQUIRE_FALSE(carol.login("carol").empty());

    // alice leaves the file; bob gets a new key file; carol is untouched.
    KeyPair bob_now = KeyPair::generate();
    REQUIRE(write_key_files(bob_now, dir / "bob2_public.na", dir / "bob2_private.na").ok());
    write_file(dir / "users", "bob > bob2_public.na\ncarol > carol_public.na\n");
    REQUIRE(s.server->reload_users());
    CHECK(alice.closed(1000ms));
    CHECK(bob.closed(1000ms));
    CHECK(carol.next(quiet) == std::nullopt);
    CHECK_MESSAGE(heard.has("logout alice revoked"), heard.all());
    CHECK(heard.has("logout bob revoked"));
    CHECK_FALSE(heard.has("logout carol revoked"));
    CHECK(s.server->online_users().size() == 1);

    RawPeer alice_again(s);
    CHECK(alice_again.login("alice").empty());
    s.user_keys["bob"] = bob_now;
    RawPeer bob_again(s);
    CHECK_FALSE(bob_again.login("bob").empty());
}
