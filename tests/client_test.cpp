// dtcall::Client end to end: real Servers and Clients on loopback, one
// event_base, driven in bounded loops. Each case reads like a call:
//
//   alice                    server                     bob
//     |-- call|bob ----------->|-- incoming|alice ------->|
//     |<-- available|bob ------|<----------- accept|alice-|
//     |<-- prepare|bob --------|-- prepare|alice -------->|
//     |-- passthrough -------->|-- direct (held) -------->|
//     |== UDP register/ack ===>|<=== UDP register/ack ====|
//     |-- ready -------------->|<-------------- ready ----|
//     |<-- start|bob ----------|-- start|alice ---------->|
//     |=========== media (relayed, never decrypted) ======|
//     |-- end|bob ------------>|-- end|alice ------------>|
#include <dtcall/client.hpp>
#include <dtcall/server.hpp>
#include "wire/wire.hpp"

#include <doctest/doctest.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "wire/media_frame.hpp"  // media_frame: what a caller's phone sends

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Runs the loop until `done` or the deadline; true when `done` came first.
bool run_until(event_base* base, const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        event_base_loop(base, EVLOOP_ONCE);
    }
    return true;
}

// Keeps EVLOOP_ONCE from blocking past a deadline when nothing else fires.
class Ticker {
public:
    explicit Ticker(event_base* base) : ev_(event_new(base, -1, EV_PERSIST, [](int, short, void*) {}, nullptr)) {
        timeval tick{0, 10 * 1000};
        event_add(ev_, &tick);
    }
    ~Ticker() { event_free(ev_); }

private:
    event* ev_;
};

// Declared first in a test, so Servers and Clients go before their base.
struct Base {
    Base() : base(event_base_new()), ticker(std::make_unique<Ticker>(base)) {}
    ~Base() {
        ticker.reset();
        event_base_free(base);
    }
    event_base* base;
    std::unique_ptr<Ticker> ticker;
};

// A Server with its users (each with a fresh key pair) on 127.0.0.1, ports 0.
struct World {
    explicit World(event_base* base, std::vector<std::string> names = {"alice", "bob", "carol"},
                   std::string address = "127.0.0.1", bool fast = true) {
        REQUIRE(dtcall::crypto_init());
        dtcall::Config config;
        config.listen_addresses = {address};
        config.command_port = 0;
        config.media_port = 0;
        config.server_keys = dtcall::KeyPair::generate();
        if (fast) {
            config.frame_gap = 10ms;
            config.direct_hold = 200ms;
        }
        server_key = config.server_keys.public_key;
        for (auto& name : names) {
            keys[name] = dtcall::KeyPair::generate();
            users.add(name, keys[name].public_key);
        }
        server = std::make_unique<dtcall::Server>(config, users, base);
        started = server->start();
        this->address = address;
    }

    dtcall::ClientConfig client_config(const std::string& name) {
        dtcall::ClientConfig c;
        c.host = address;
        c.command_port = server->command_port();
        c.media_port = server->media_port();
        c.server_key = server_key;
        c.user = name;
        c.user_key = keys.count(name) ? keys[name].secret_key : dtcall::KeyPair::generate().secret_key;
        return c;
    }

    std::string address;
    dtcall::PublicKey server_key;
    std::map<std::string, dtcall::KeyPair> keys;
    dtcall::InMemoryUserDirectory users;
    std::unique_ptr<dtcall::Server> server;
    dtcall::Status started = dtcall::Done{};
};

// A Client and everything it has been told, as "event:argument" strings.
struct Phone {
    Phone(event_base* base, dtcall::ClientConfig config) : name(config.user) {
        dtcall::ClientEvents e;
        e.logged_in = [this] { note("logged_in"); };
        e.login_failed = [this](const std::string& why) { note("login_failed:" + why); };
        e.available = [this](const std::string& p) { note("available:" + p); };
        e.incoming = [this](const std::string& p) { note("incoming:" + p); };
        e.prepare = [this](const std::string& p, const dtcall::PublicKey& k) {
            note("prepare:" + p);
            peer_key = k;
        };
        e.voice_key = [this](const std::string& p) { note("voice_key:" + p); };
        e.media_registered = [this](const std::string& p) { note("media_registered:" + p); };
        e.media_failed = [this](const std::string& p) { note("media_failed:" + p); };
        e.started = [this](const std::string& p) { note("started:" + p); };
        e.ended = [this](const std::string& p) { note("ended:" + p); };
        e.invalid = [this] { note("invalid"); };
        e.media = [this](std::uint32_t seq, const std::string& payload) {
            sequences.push_back(seq);
            payloads.push_back(payload);
        };
        e.closed = [this](const std::string& reason) { note("closed:" + reason); };
        client = std::make_unique<dtcall::Client>(base, std::move(config), std::move(e));
    }

    void note(const std::string& what) {
        events.push_back(what);
        if (on_note) on_note(what);
    }
    bool saw(const std::string& what) const {
        for (auto& e : events)
            if (e == what) return true;
        return false;
    }
    bool saw_prefix(const std::string& prefix) const {
        for (auto& e : events)
            if (e.compare(0, prefix.size(), prefix) == 0) return true;
        return false;
    }
    std::size_t count(const std::string& what) const {
        std::size_t n = 0;
        for (auto& e : events) n += e == what;
        return n;
    }
    dtcall::Client* operator->() { return client.get(); }

    std::string name;  // the user it logs in as
    std::unique_ptr<dtcall::Client> client;
    std::vector<std::string> events;
    std::vector<std::uint32_t> sequences;
    std::vector<std::string> payloads;
    dtcall::PublicKey peer_key;
    // Runs inside the Client's callback, after the event is noted.
    std::function<void(const std::string&)> on_note;
};

// A command the test expects to go out; shows why when it did not.
void sent(const dtcall::Status& status) { REQUIRE_MESSAGE(status.ok(), status.error()); }

void log_in(event_base* base, Phone& phone, bool keepudp = false) {
    std::size_t before = phone.count("logged_in");
    REQUIRE(phone->connect(keepudp).ok());
    REQUIRE(run_until(base, [&] { return phone.count("logged_in") > before; }));
}

// Logs each phone in, one after the other.
void log_in_all(event_base* base, std::initializer_list<Phone*> phones) {
    for (Phone* p : phones) log_in(base, *p);
}

// The caller calls the callee; returns when the callee hears it ring.
void ring(event_base* base, Phone& caller, Phone& callee) {
    sent(caller->call(callee.name));
    REQUIRE(run_until(base, [&] { return callee.saw("incoming:" + caller.name); }));
}

// The caller rings the callee, who accepts; returns when both have `started`.
void set_up_call(event_base* base, Phone& caller, Phone& callee) {
    ring(base, caller, callee);
    CHECK(caller.saw("available:" + callee.name));
    sent(callee->accept(caller.name));
    REQUIRE(run_until(base, [&] {
        return caller.saw("started:" + callee.name) && callee.saw("started:" + caller.name);
    }));
    CHECK(caller.saw("media_registered:" + callee.name));
    CHECK(callee.saw("media_registered:" + caller.name));
}

// Sends `n` numbered payloads each way and waits for all of them.
void exchange_media(event_base* base, Phone& a, Phone& b, int n) {
    REQUIRE(run_until(base, [&] { return a.saw_prefix("voice_key:") && b.saw_prefix("voice_key:"); }));
    std::size_t a_before = a.sequences.size(), b_before = b.sequences.size();
    std::uint32_t a_first = 0, b_first = 0;
    for (int i = 0; i < n; ++i) {
        auto sa = a->send_media("from-a-" + std::to_string(i));
        auto sb = b->send_media("from-b-" + std::to_string(i));
        REQUIRE_MESSAGE(sa.ok(), sa.error());
        REQUIRE_MESSAGE(sb.ok(), sb.error());
        if (i == 0) a_first = *sa, b_first = *sb;
    }
    REQUIRE(run_until(base, [&] {
        return a.sequences.size() >= a_before + std::size_t(n) && b.sequences.size() >= b_before + std::size_t(n);
    }));
    for (int i = 0; i < n; ++i) {
        CHECK(b.sequences[b_before + std::size_t(i)] == a_first + std::uint32_t(i));
        CHECK(b.payloads[b_before + std::size_t(i)] == "from-a-" + std::to_string(i));
        CHECK(a.sequences[a_before + std::size_t(i)] == b_first + std::uint32_t(i));
        CHECK(a.payloads[a_before + std::size_t(i)] == "from-b-" + std::to_string(i));
    }
}

}  // namespace

TEST_CASE("a user logs in, sends a heartbeat and stays logged in") {
    Base b;
    World w(b.base);
    REQUIRE(w.started.ok());
    Phone alice(b.base, w.client_config("alice"));
    CHECK_FALSE(alice->is_logged_in());
    log_in(b.base, alice);
    CHECK(alice->is_logged_in());
    sent(alice->heartbeat());
    run_until(b.base, [] { return false; }, 100ms);
    CHECK(alice->is_logged_in());
    CHECK(alice.events == std::vector<std::string>{"logged_in"});
    CHECK(w.server->stats().logged_in == 1);
}

TEST_CASE("login fails with the wrong key or an unknown user") {
    Base b;
    World w(b.base);
    REQUIRE(w.started.ok());

    SUBCASE("wrong key") {
        auto config = w.client_config("alice");
        config.user_key = w.keys["bob"].secret_key;
        Phone alice(b.base, config);
        REQUIRE(alice->connect().ok());
        REQUIRE(run_until(b.base, [&] { return !alice.events.empty(); }));
        CHECK(alice.events.front() == "login_failed:the challenge did not open with our key");
        CHECK_FALSE(alice->is_logged_in());
    }
    SUBCASE("unknown user") {
        Phone mallory(b.base, w.client_config("mallory"));
        REQUIRE(mallory->connect().ok());
        REQUIRE(run_until(b.base, [&] { return !mallory.events.empty(); }));
        CHECK(mallory.events.front() == "login_failed:refused by the server");
        run_until(b.base, [] { return false; }, 100ms);
        CHECK(mallory.events.size() == 1);  // no `closed` after a refused login
    }
    SUBCASE("wrong pinned server key") {
        auto config = w.client_config("alice");
        config.server_key = dtcall::KeyPair::generate().public_key;
        Phone alice(b.base, config);
        REQUIRE(alice->connect().ok());
        REQUIRE(run_until(b.base, [&] { return !alice.events.empty(); }));
        // The server cannot open our hello and hangs up.
        CHECK(alice.saw_prefix("closed:"));
        CHECK_FALSE(alice->is_logged_in());
    }
}

TEST_CASE("connect refuses what it cannot send") {
    Base b;
    World w(b.base);
    auto config = w.client_config("alice");
    config.host = "localhost";  // names are never resolved
    Phone by_name(b.base, config);
    CHECK_FALSE(by_name->connect().ok());
    config = w.client_config("alice");
    config.user = "al|ice";
    Phone bad_user(b.base, config);
    CHECK_FALSE(bad_user->connect().ok());
}

TEST_CASE("a full call carries media both ways with sequence numbers intact") {
    Base b;
    World w(b.base);
    REQUIRE(w.started.ok());
    Phone alice(b.base, w.client_config("alice")), bob(b.base, w.client_config("bob"));
    log_in_all(b.base, {&alice, &bob});

    set_up_call(b.base, alice, bob);
    CHECK(alice.peer_key == w.keys["bob"].public_key);
    CHECK(bob.peer_key == w.keys["alice"].public_key);
    CHECK(alice->peer() == "bob");
    CHECK(bob->peer() == "alice");
    exchange_media(b.base, alice, bob, 25);

    const auto& as = alice->stats();
    const auto& bs = bob->stats();
    CHECK(as.media_sent_packets == bs.media_received_packets);
    CHECK(bs.media_sent_packets == as.media_received_packets);
    CHECK(as.media_sent_bytes == bs.media_received_bytes);
    CHECK(bs.media_sent_bytes == as.media_received_bytes);
    CHECK(as.registration_attempts >= 1);
    CHECK(w.server->stats().media_packets_relayed == as.media_sent_packets + bs.media_sent_packets);

    sent(alice->end("bob"));
    CHECK(alice->peer().empty());
    auto late = alice->send_media("late");
    REQUIRE_FALSE(late);
    CHECK(late.error() == "no call to send media to");
    REQUIRE(run_until(b.base, [&] { return bob.saw("ended:alice"); }));
    CHECK(bob->peer().empty());
    CHECK(w.server->calls().size() == 0);
}

TEST_CASE("a call at the server's default pacing (what the real clients get)") {
    Base b;
    World w(b.base, {"alice", "bob"}, "127.0.0.1", false);
    REQUIRE(w.started.ok());
    Phone alice(b.base, w.client_config("alice")), bob(b.base, w.client_config("bob"));
    log_in_all(b.base, {&alice, &bob});
    set_up_call(b.base, alice, bob);
    exchange_media(b.base, alice, bob, 25);
    // The caller's frames are sequence-numbered from 1 for each call.
    CHECK(bob.sequences.front() == 1);
    CHECK(alice.sequences.front() == 1);
    sent(alice->end("bob"));
    REQUIRE(run_until(b.base, [&] { return bob.saw("ended:alice"); }));
}

TEST_CASE("the callee declines a ringing call") {
    Base b;
    World w(b.base);
    REQUIRE(w.started.ok());
    Phone alice(b.base, w.client_config("alice")), bob(b.base, w.client_config("bob"));
    log_in_all(b.base, {&alice, &bob});
    ring(b.base, alice, bob);
    sent(bob->end("alice"));
    REQUIRE(run_until(b.base, [&] { return alice.saw("ended:bob"); }));
    CHECK_FALSE(alice.saw_prefix("prepare:"));
    CHECK(alice->peer().empty());
    CHECK(w.server->calls().size() == 0);
}

TEST_CASE("the caller cancels before the callee answers") {
    Base b;
    World w(b.base);
    REQUIRE(w.started.ok());
    Phone alice(b.base, w.client_config("alice")), bob(b.base, w.client_config("bob"));
    log_in_all(b.base, {&alice, &bob});
    ring(b.base, alice, bob);
    sent(alice->end("bob"));
    REQUIRE(run_until(b.base, [&] { return bob.saw("ended:alice"); }));
    CHECK(bob->peer().empty());
    // Accepting the cancelled call is now about a call that does not exist.
    sent(bob->accept("alice"));
    REQUIRE(run_until(b.base, [&] { return bob.saw("invalid"); }));
}

TEST_CASE("calling a busy, offline or unknown user ends at once") {
    Base b;
    World w(b.base);
    REQUIRE(w.started.ok());
    Phone alice(b.base, w.client_config("alice")), bob(b.base, w.client_config("bob")),
        carol(b.base, w.client_config("carol"));
    log_in_all(b.base, {&alice, &bob, &carol});

    SUBCASE("busy in a call") {
        set_up_call(b.base, alice, bob);
        sent(carol->call("bob"));
        REQUIRE(run_until(b.base, [&] { return carol.saw("ended:bob"); }));
        CHECK_FALSE(bob.saw("incoming:carol"));
        exchange_media(b.base, alice, bob, 3);  // the running call is untouched
    }
    SUBCASE("busy ringing") {
        ring(b.base, alice, bob);
        sent(carol->call("bob"));
        REQUIRE(run_until(b.base, [&] { return carol.saw("ended:bob"); }));
    }
    SUBCASE("offline") {
        bob->disconnect();
        REQUIRE(run_until(b.base, [&] { return w.server->stats().logged_in == 2; }));
        sent(carol->call("bob"));
        REQUIRE(run_until(b.base, [&] { return carol.saw("ended:bob"); }));
    }
    SUBCASE("unknown") {
        sent(carol->call("nobody"));
        REQUIRE(run_until(b.base, [&] { return carol.saw("ended:nobody"); }));
    }
    SUBCASE("oneself") {
        sent(carol->call("carol"));
        REQUIRE(run_until(b.base, [&] { return carol.saw("ended:carol"); }));
    }
    CHECK(carol->peer().empty());
}

TEST_CASE("commands about no call are answered with invalid") {
    Base b;
    World w(b.base);
    REQUIRE(w.started.ok());
    Phone alice(b.base, w.client_config("alice"));
    log_in(b.base, alice);
    sent(alice->accept("bob"));
    REQUIRE(run_until(b.base, [&] { return alice.saw("invalid"); }));
    CHECK(alice->is_logged_in());
}

TEST_CASE("a reconnect with keepudp during a call keeps the call and its media") {
    Base b;
    World w(b.base);
    REQUIRE(w.started.ok());
    Phone alice(b.base, w.client_config("alice")), bob(b.base, w.client_config("bob"));
    log_in_all(b.base, {&alice, &bob});
    set_up_call(b.base, alice, bob);
    exchange_media(b.base, alice, bob, 5);

    SUBCASE("reconnect over a live connection") { log_in(b.base, alice, true); }
    SUBCASE("the link dropped first") {
        alice->disconnect();
        CHECK_FALSE(alice->is_logged_in());
        exchange_media(b.base, alice, bob, 3);  // media does not need TCP
        log_in(b.base, alice, true);
    }
    CHECK(alice->peer() == "bob");
    CHECK_FALSE(bob.saw("ended:alice"));
    exchange_media(b.base, alice, bob, 5);
    // The new session key works for the rest of the call.
    sent(alice->end("bob"));
    REQUIRE(run_until(b.base, [&] { return bob.saw("ended:alice"); }));
}

TEST_CASE("a login without keepudp ends the call for the peer") {
    Base b;
    World w(b.base);
    REQUIRE(w.started.ok());
    Phone alice(b.base, w.client_config("alice")), bob(b.base, w.client_config("bob"));
    log_in_all(b.base, {&alice, &bob});
    set_up_call(b.base, alice, bob);
    log_in(b.base, alice, false);
    CHECK(alice->peer().empty());
    REQUIRE(run_until(b.base, [&] { return bob.saw("ended:alice"); }));
}

TEST_CASE("two Servers in one process carry a call each at the same time") {
    Base b;
    World w1(b.base), w2(b.base);
    REQUIRE(w1.started.ok());
    REQUIRE(w2.started.ok());
    Phone a1(b.base, w1.client_config("alice")), b1(b.base, w1.client_config("bob"));
    Phone a2(b.base, w2.client_config("alice")), b2(b.base, w2.client_config("bob"));
    log_in_all(b.base, {&a1, &b1, &a2, &b2});
    sent(a1->call("bob"));
    sent(a2->call("bob"));
    REQUIRE(run_until(b.base, [&] { return b1.saw("incoming:alice") && b2.saw("incoming:alice"); }));
    sent(b1->accept("alice"));
    sent(b2->accept("alice"));
    REQUIRE(run_until(b.base, [&] {
        return a1.saw("started:bob") && b1.saw("started:alice") && a2.saw("started:bob") &&
               b2.saw("started:alice");
    }));
    exchange_media(b.base, a1, b1, 10);
    exchange_media(b.base, a2, b2, 10);
    CHECK(w1.server->calls().size() == 1);
    CHECK(w2.server->calls().size() == 1);
    // Keys differ per server: a client of one cannot log in to the other.
    auto cross = w2.client_config("alice");
    cross.command_port = w1.server->command_port();
    Phone confused(b.base, cross);
    REQUIRE(confused->connect().ok());
    REQUIRE(run_until(b.base, [&] { return !confused.events.empty(); }));
    CHECK_FALSE(confused->is_logged_in());
}

TEST_CASE("a call over IPv6 loopback") {
    Base b;
    World w(b.base, {"alice", "bob"}, "::1");
    if (w.started.ok()) {
        auto bracketed = w.client_config("alice");
        bracketed.host = "[::1]";
        Phone alice(b.base, bracketed);
        log_in(b.base, alice);
        alice->disconnect();
    }
    if (!w.started.ok()) {
        MESSAGE("no IPv6 loopback here: " << w.started.error());
        return;
    }
    Phone alice(b.base, w.client_config("alice")), bob(b.base, w.client_config("bob"));
    log_in_all(b.base, {&alice, &bob});
    set_up_call(b.base, alice, bob);
    exchange_media(b.base, alice, bob, 5);
}

// --- a hostile "server": it answers the hello with whatever a case wants --

namespace {

// Listens on 127.0.0.1. Without a script it answers the client's hello with
// `raw`. With one, it does the handshake properly (TCP key 42,0,0...), sends
// `script(tcp_key)`, and then answers each decrypted client frame with
// `respond(text)`.
struct FakeServer {
    using Script = std::function<std::string(const std::uint8_t* tcp_key)>;
    using Responder = std::function<std::string(const std::string& text)>;

    FakeServer(event_base* base, std::string raw_reply, Script after_handshake = {}, Responder responder = {})
        : raw(std::move(raw_reply)), script(std::move(after_handshake)), respond(std::move(responder)),
          keys(dtcall::KeyPair::generate()), user(dtcall::KeyPair::generate()) {
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        listener = evconnlistener_new_bind(base, on_accept, this, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 8,
                                           reinterpret_cast<sockaddr*>(&sin), sizeof sin);
        REQUIRE(listener);
        sockaddr_in bound{};
        socklen_t len = sizeof bound;
        getsockname(evconnlistener_get_fd(listener), reinterpret_cast<sockaddr*>(&bound), &len);
        port = ntohs(bound.sin_port);
    }
    ~FakeServer() {
        if (conn) bufferevent_free(conn);
        evconnlistener_free(listener);
    }

    dtcall::ClientConfig client_config() const {
        dtcall::ClientConfig config;
        config.command_port = port;
        config.server_key = keys.public_key;
        config.user = "alice";
        config.user_key = user.secret_key;
        config.login_timeout = 300ms;
        return config;
    }

    static void on_accept(evconnlistener* l, evutil_socket_t fd, sockaddr*, int, void* arg) {
        auto& self = *static_cast<FakeServer*>(arg);
        if (self.conn) bufferevent_free(self.conn);
        self.conn = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
        bufferevent_setcb(self.conn, on_read, nullptr, nullptr, &self);
        bufferevent_enable(self.conn, EV_READ | EV_WRITE);
        self.shook_hands = false;
    }
    static void on_read(bufferevent* bev, void* arg) {
        auto& self = *static_cast<FakeServer*>(arg);
        evbuffer* in = bufferevent_get_input(bev);
        if (self.shook_hands) return self.answer(bev, in);
        if (evbuffer_get_length(in) < 80) return;
        std::uint8_t hello[80];
        evbuffer_remove(in, hello, sizeof hello);
        self.shook_hands = true;
        if (!self.script) {
            bufferevent_write(bev, self.raw.data(), self.raw.size());
            return;
        }
        auto ephemeral = dtcall::open_anonymous(self.keys, hello, sizeof hello);
        REQUIRE(ephemeral);
        dtcall::PublicKey client_key;
        std::memcpy(client_key.bytes.data(), ephemeral->data(), dtcall::key_size);
        auto reply = dtcall::seal_box_frame(self.keys.secret_key, client_key,
                                            std::string_view(reinterpret_cast<char*>(self.tcp_key), 32));
        std::string rest = self.script(self.tcp_key);
        bufferevent_write(bev, reply.data(), reply.size());
        bufferevent_write(bev, rest.data(), rest.size());
    }
    void answer(bufferevent* bev, evbuffer* in) {
        std::vector<std::uint8_t> bytes(evbuffer_get_length(in));
        evbuffer_remove(in, bytes.data(), bytes.size());
        decoder.feed(bytes.data(), bytes.size());
        dtcall::Bytes frame;
        while (decoder.next(frame) == dtcall::wire::FrameDecoder::Status::frame) {
            auto text = dtcall::open_secret_frame(tcp_key, frame.data(), frame.size());
            REQUIRE(text);
            received.push_back(*text);
            std::string out = respond ? respond(*text) : std::string();
            bufferevent_write(bev, out.data(), out.size());
        }
    }

    std::string raw;
    Script script;
    Responder respond;
    dtcall::KeyPair keys;  // the server's
    dtcall::KeyPair user;  // alice's
    std::uint8_t tcp_key[dtcall::key_size] = {42};
    dtcall::wire::FrameDecoder decoder{4096};
    std::vector<std::string> received;
    evconnlistener* listener = nullptr;
    bufferevent* conn = nullptr;
    std::uint16_t port = 0;
    bool shook_hands = false;
};

std::string frame_header(std::uint32_t length) {
    std::string h(24, 'n');
    h += char(length >> 24);
    h += char(length >> 16);
    h += char(length >> 8);
    h += char(length);
    return h;
}

std::string text_frame(const std::uint8_t* key, const std::string& text) {
    auto frame = dtcall::seal_secret_frame(key, text);
    return std::string(frame.begin(), frame.end());
}

std::string now_ts() { return std::to_string(static_cast<long long>(std::time(nullptr))); }

}  // namespace

TEST_CASE("hostile bytes before the handshake close the client with a reason") {
    Base b;
    struct Case {
        const char* what;
        std::string reply;
        std::string event;
    };
    std::vector<Case> cases = {
        {"huge length", frame_header(0x7fffffff), "closed:server frame too large"},
        {"zero length", frame_header(0), "closed:empty frame from server"},
        {"not from the pinned key", frame_header(32) + std::string(48, 'x'),
         "closed:handshake reply does not open with the pinned server key"},
        {"a stub, then silence", std::string(3, 'x'), "closed:login timed out"},
        {"nothing at all", std::string(), "closed:login timed out"},
    };
    for (auto& c : cases) {
        CAPTURE(c.what);
        FakeServer fake(b.base, c.reply);
        Phone alice(b.base, fake.client_config());
        REQUIRE(alice->connect().ok());
        REQUIRE(run_until(b.base, [&] { return !alice.events.empty(); }));
        CHECK(alice.events.front() == c.event);
        CHECK_FALSE(alice->is_logged_in());
    }
}

TEST_CASE("hostile replies after the handshake are refused, never trusted") {
    Base b;
    struct Case {
        const char* what;
        FakeServer::Script script;
        std::string event;
    };
    const std::uint8_t other_key[dtcall::key_size] = {7};
    std::vector<Case> cases = {
        {"frame under another key", [&](const std::uint8_t*) { return text_frame(other_key, now_ts() + "|x|y"); },
         "closed:frame from server does not authenticate"},
        {"stale timestamp", [](const std::uint8_t* k) { return text_frame(k, "1000|login1resp|000"); },
         "closed:unreadable reply during login"},
        {"login1resp with 4 fields",
         [](const std::uint8_t* k) { return text_frame(k, now_ts() + "|login1resp|000|000"); },
         "closed:login1resp must have 3 fields"},
        {"blob with a triple above 255",
         [](const std::uint8_t* k) { return text_frame(k, now_ts() + "|login1resp|999"); },
         "closed:login1resp blob is not stringified bytes"},
        {"blob that does not open", [](const std::uint8_t* k) { return text_frame(k, now_ts() + "|login1resp|001"); },
         "login_failed:the challenge did not open with our key"},
        {"invalid", [](const std::uint8_t* k) { return text_frame(k, now_ts() + "|invalid"); },
         "login_failed:refused by the server"},
        {"a notice instead of a reply",
         [](const std::uint8_t* k) { return text_frame(k, now_ts() + "|incoming|bob"); },
         "closed:expected login1resp, got incoming"},
        {"two frames at once, the second bad",
         [](const std::uint8_t* k) { return text_frame(k, now_ts() + "|login1resp|999") + frame_header(0); },
         "closed:login1resp blob is not stringified bytes"},
        {"an empty field", [](const std::uint8_t* k) { return text_frame(k, now_ts() + "||invalid"); },
         "closed:unreadable reply during login"},
    };
    for (auto& c : cases) {
        CAPTURE(c.what);
        FakeServer fake(b.base, "", c.script);
        Phone alice(b.base, fake.client_config());
        REQUIRE(alice->connect().ok());
        REQUIRE(run_until(b.base, [&] { return !alice.events.empty(); }));
        CHECK(alice.events.front() == c.event);
        CHECK(alice.events.size() == 1);
        CHECK_FALSE(alice->is_logged_in());
    }
}

TEST_CASE("nothing listening: the client reports the refused connection") {
    Base b;
    std::uint16_t port;
    {
        FakeServer fake(b.base, "");
        port = fake.port;
    }  // closed again, so the port refuses
    dtcall::ClientConfig config;
    config.command_port = port;
    config.user = "alice";
    Phone alice(b.base, config);
    auto status = alice->connect();
    if (!status.ok()) return;  // refused synchronously: also fine
    REQUIRE(run_until(b.base, [&] { return !alice.events.empty(); }));
    CHECK(alice.saw_prefix("closed:connection error"));
}

namespace {

// A fake server that logs alice in properly and then sends `after_login`
// coalesced with login2resp, as one write.
struct LoginScript {
    FakeServer* fake = nullptr;
    std::function<std::string(const std::uint8_t* tcp_key)> after_login;

    std::string operator()(const std::string& text) const {
        const std::uint8_t* k = fake->tcp_key;
        if (text.find("|login1|alice") != std::string::npos) {
            auto box = dtcall::seal_box_frame(fake->keys.secret_key, fake->user.public_key, std::string(200, 'C'));
            return text_frame(k, now_ts() + "|login1resp|" + dtcall::stringify(box));
        }
        if (text.find("|login2|alice|" + std::string(200, 'C')) != std::string::npos) {
            return text_frame(k, now_ts() + "|login2resp|" + std::string(59, 'S')) +
                   (after_login ? after_login(k) : std::string());
        }
        return {};
    }
};

}  // namespace

TEST_CASE("frames that arrive together are all read (the client reassembles)") {
    Base b;
    FakeServer fake(b.base, "", [](const std::uint8_t*) { return std::string(); });
    fake.respond = LoginScript{&fake, [](const std::uint8_t* k) {
                                   return text_frame(k, now_ts() + "|incoming|bob") +
                                          text_frame(k, now_ts() + "|end|bob");
                               }};
    Phone alice(b.base, fake.client_config());
    REQUIRE(alice->connect().ok());
    REQUIRE(run_until(b.base, [&] { return alice.saw("ended:bob"); }));
    CHECK(alice.events == std::vector<std::string>{"logged_in", "incoming:bob", "ended:bob"});
    REQUIRE(run_until(b.base, [&] { return fake.received.size() >= 3; }));
    CHECK(fake.received[1].substr(fake.received[1].find('|')) == "|login2|alice|" + std::string(200, 'C'));
    CHECK(fake.received[2] == "D");  // heartbeat right after login, like the real clients
}

TEST_CASE("notices a logged-in client cannot use are ignored, not fatal") {
    Base b;
    FakeServer fake(b.base, "", [](const std::uint8_t*) { return std::string(); });
    fake.respond = LoginScript{&fake, [](const std::uint8_t* k) {
                                   std::string ts = now_ts();
                                   return text_frame(k, ts + "|incoming|bob") +
                                          text_frame(k, ts + "|prepare|not a key dump|bob") +
                                          text_frame(k, ts + "|direct|999|bob") +
                                          text_frame(k, ts + "|start|mallory") +
                                          text_frame(k, "1000|end|bob") +  // stale
                                          text_frame(k, ts + "|no-such-notice|x") +
                                          text_frame(k, ts + "|start|bob|extra") +
                                          text_frame(k, ts + "|invalid") + text_frame(k, "D") +
                                          text_frame(k, std::string(3000, '|')) +
                                          text_frame(k, ts + "|available|x y\nz");
                               }};
    Phone alice(b.base, fake.client_config());
    REQUIRE(alice->connect().ok());
    REQUIRE(run_until(b.base, [&] { return alice.saw_prefix("available:"); }));
    CHECK(alice.events ==
          std::vector<std::string>{"logged_in", "incoming:bob", "invalid", "available:x y\nz"});
    CHECK(alice->is_logged_in());
    CHECK(alice->peer() == "bob");
    auto unstarted = alice->send_media("x");  // no start, no voice key
    REQUIRE_FALSE(unstarted);
    CHECK(unstarted.error() == "the call with bob has not started");
}

TEST_CASE("a logged-in client heartbeats on its own") {
    Base b;
    FakeServer fake(b.base, "", [](const std::uint8_t*) { return std::string(); });
    fake.respond = LoginScript{&fake, {}};
    auto config = fake.client_config();
    config.heartbeat_interval = 20ms;
    Phone alice(b.base, config);
    REQUIRE(alice->connect().ok());
    // login1, login2, the `D` after login, then at least three timed ones.
    REQUIRE(run_until(b.base, [&] { return fake.received.size() >= 6; }));
    for (std::size_t i = 2; i < fake.received.size(); ++i) CHECK(fake.received[i] == "D");
    CHECK(alice->is_logged_in());
}

// --- commands that cannot go out, early and undecryptable media, callbacks --

TEST_CASE("commands before login, or after disconnect, return an error and send nothing") {
    Base b;
    World w(b.base);
    REQUIRE(w.started.ok());
    Phone alice(b.base, w.client_config("alice")), bob(b.base, w.client_config("bob"));
    auto not_logged_in = [](const dtcall::Status& status) {
        REQUIRE_FALSE(status);
        CHECK(status.error() == "not logged in");
        CHECK(status.code() == dtcall::ErrorCode::not_logged_in);
    };
    not_logged_in(alice->call("bob"));
    not_logged_in(alice->accept("bob"));
    not_logged_in(alice->end("bob"));
    not_logged_in(alice->heartbeat());
    CHECK(alice->peer().empty());  // the refused call() left nothing behind
    auto media = alice->send_media("hello");
    REQUIRE_FALSE(media);
    CHECK(media.error() == "no call to send media to");

    log_in_all(b.base, {&alice, &bob});
    run_until(b.base, [] { return false; }, 100ms);
    CHECK_FALSE(bob.saw("incoming:alice"));  // the early call() really was not sent
    CHECK(alice.events == std::vector<std::string>{"logged_in"});

    auto bad_name = alice->call("bob|x");
    REQUIRE_FALSE(bad_name);
    CHECK(bad_name.error().find("is not a user name that can be sent") != std::string::npos);
    CHECK(alice->peer().empty());

    ring(b.base, alice, bob);
    auto again = alice->call("carol");
    REQUIRE_FALSE(again);
    CHECK(again.error() == "already in a call with bob");
    auto other = bob->accept("carol");
    REQUIRE_FALSE(other);
    CHECK(other.error() == "in a call with alice, not carol");
    auto unstarted = alice->send_media("x");
    REQUIRE_FALSE(unstarted);
    CHECK(unstarted.error() == "the call with bob has not started");

    // A dropped link: commands fail, and end() keeps the call for connect(true).
    bob->disconnect();
    not_logged_in(bob->accept("alice"));
    not_logged_in(bob->end("alice"));
    not_logged_in(bob->heartbeat());
    CHECK(bob->peer() == "alice");
}

namespace {

// The caller's side of a call, played by the test against one real Client
// (alice, the callee): a FakeServer for the commands and a UDP socket for
// media. It logs alice in, rings her from bob, acks her registration and
// starts the call, all without `direct`; the test then decides when media
// and the voice key arrive.
struct CalleeRig {
    explicit CalleeRig(event_base* b, std::chrono::milliseconds early_hold = 2000ms)
        : base(b), fake(b, "", [](const std::uint8_t*) { return std::string(); }),
          caller(dtcall::KeyPair::generate()) {
        randombytes(voice_key, sizeof voice_key);
        media_fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        REQUIRE(media_fd >= 0);
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(media_fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0);
        socklen_t len = sizeof sin;
        ::getsockname(media_fd, reinterpret_cast<sockaddr*>(&sin), &len);

        LoginScript login{&fake, [this](const std::uint8_t* k) {
                              std::string ts = now_ts();
                              return text_frame(k, ts + "|incoming|bob") +
                                     text_frame(k, ts + "|prepare|" +
                                                       dtcall::public_key_file_text(caller.public_key) + "|bob");
                          }};
        fake.respond = [this, login](const std::string& text) {
            if (text.find("|ready|bob|") != std::string::npos) return text_frame(fake.tcp_key, now_ts() + "|start|bob");
            return login(text);
        };
        auto config = fake.client_config();
        config.media_port = ntohs(sin.sin_port);
        config.early_media_hold = early_hold;
        alice = std::make_unique<Phone>(b, config);
        REQUIRE((*alice)->connect().ok());
        // Her registration datagram tells us where her media socket is.
        REQUIRE(run_until(base, [&] { return alice->saw("prepare:bob") && receive_registration(); }));
        send(ack());
        REQUIRE(run_until(base, [&] { return alice->saw("started:bob"); }));
        CHECK(alice->saw("media_registered:bob"));
        CHECK_FALSE(alice->saw_prefix("voice_key:"));
    }
    ~CalleeRig() { ::close(media_fd); }

    static void randombytes(std::uint8_t* out, std::size_t n) {
        auto pair = dtcall::KeyPair::generate();  // any 32 unpredictable bytes will do
        std::memcpy(out, pair.secret_key.data(), n);
    }

    bool receive_registration() {
        std::uint8_t buffer[2048];
        socklen_t len = sizeof alice_media;
        ssize_t got = ::recvfrom(media_fd, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&alice_media), &len);
        return got > 0;
    }
    void send(const dtcall::Bytes& datagram) {
        REQUIRE(::sendto(media_fd, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&alice_media),
                         sizeof alice_media) == ssize_t(datagram.size()));
    }
    dtcall::Bytes ack() const {
        return dtcall::seal_secret_frame(fake.tcp_key, now_ts());
    }
    dtcall::Bytes frame(std::uint32_t sequence, const std::string& payload) const {
        return dtcall::wire::media_frame(voice_key, sequence, payload);
    }
    void command(const std::string& text) {
        std::string f = text_frame(fake.tcp_key, now_ts() + "|" + text);
        bufferevent_write(fake.conn, f.data(), f.size());
    }
    void direct() {
        auto box = dtcall::seal_box_frame(caller.secret_key, fake.user.public_key,
                                          std::string_view(reinterpret_cast<const char*>(voice_key), sizeof voice_key));
        command("direct|" + dtcall::stringify(box) + "|bob");
    }
    const dtcall::ClientStats& stats() { return (*alice)->stats(); }
    void settle() { run_until(base, [] { return false; }, 50ms); }

    event_base* base;
    FakeServer fake;
    dtcall::KeyPair caller;  // bob's keys: he seals the voice key for alice
    std::uint8_t voice_key[dtcall::key_size];
    int media_fd = -1;
    sockaddr_in alice_media{};
    std::unique_ptr<Phone> alice;
};

}  // namespace

TEST_CASE("early media: what the caller sends before `direct` is delivered, in order, once the key comes") {
    Base b;
    CalleeRig rig(b.base);
    Phone& alice = *rig.alice;
    // A repeated registration ack is neither media nor undecryptable.
    rig.send(rig.ack());
    for (std::uint32_t i = 1; i <= 5; ++i) rig.send(rig.frame(i, "early-" + std::to_string(i)));
    rig.send(dtcall::Bytes(60, 0x55));  // garbage: kept too, it cannot be told apart yet
    REQUIRE(run_until(b.base, [&] { return rig.stats().media_early == 6; }));
    CHECK(alice.payloads.empty());
    CHECK(rig.stats().media_received_packets == 0);
    CHECK(rig.stats().media_undecryptable == 0);
    auto no_key = alice->send_media("too soon");
    REQUIRE_FALSE(no_key);
    CHECK(no_key.error() == "no voice key yet for the call with bob");

    rig.direct();
    REQUIRE(run_until(b.base, [&] { return alice.payloads.size() == 5; }));
    CHECK(alice.sequences == std::vector<std::uint32_t>{1, 2, 3, 4, 5});
    CHECK(alice.payloads.front() == "early-1");
    CHECK(alice.payloads.back() == "early-5");
    CHECK(alice.events.back() == "voice_key:bob");  // the key first, then its media
    CHECK(rig.stats().media_received_packets == 5);
    CHECK(rig.stats().media_received_bytes == 5 * 7);
    CHECK(rig.stats().media_undecryptable == 1);  // the garbage
    CHECK(rig.stats().media_early == 6);
    CHECK(rig.stats().media_early_dropped == 0);

    // Once the key is known: live media, and what does not open is counted.
    const std::uint8_t wrong_key[dtcall::key_size] = {9};
    rig.send(dtcall::wire::media_frame(wrong_key, 6, "wrong key"));
    rig.send(dtcall::Bytes(3, 1));
    rig.send(rig.frame(6, "live"));
    REQUIRE(run_until(b.base, [&] { return alice.payloads.size() == 6; }));
    CHECK(alice.payloads.back() == "live");
    REQUIRE(run_until(b.base, [&] { return rig.stats().media_undecryptable == 3; }));
    CHECK(rig.stats().media_early == 6);
    auto reply = alice->send_media("hello bob");
    REQUIRE_MESSAGE(reply.ok(), reply.error());
    CHECK(*reply == 1);

    // After the call: the old key no longer opens anything.
    rig.command("end|bob");
    REQUIRE(run_until(b.base, [&] { return alice.saw("ended:bob"); }));
    rig.send(rig.frame(7, "after the end"));
    REQUIRE(run_until(b.base, [&] { return rig.stats().media_undecryptable == 4; }));
    CHECK(alice.payloads.size() == 6);
    CHECK(rig.stats().media_early == 6);
}

TEST_CASE("early media is bounded: 32 datagrams, a hold time, and the call's end") {
    Base b;
    SUBCASE("more than 32 datagrams: the rest is dropped, the first 32 delivered") {
        CalleeRig rig(b.base);
        for (std::uint32_t i = 1; i <= 40; ++i) rig.send(rig.frame(i, "x"));
        REQUIRE(run_until(b.base, [&] { return rig.stats().media_early == 40; }));
        CHECK(rig.stats().media_early_dropped == 8);
        rig.direct();
        REQUIRE(run_until(b.base, [&] { return rig.alice->payloads.size() == 32; }));
        CHECK(rig.alice->sequences.front() == 1);
        CHECK(rig.alice->sequences.back() == 32);
        rig.settle();
        CHECK(rig.alice->payloads.size() == 32);
    }
    SUBCASE("more than 16 KiB: the store stops at its byte budget") {
        CalleeRig rig(b.base);
        for (std::uint32_t i = 1; i <= 6; ++i) rig.send(rig.frame(i, std::string(5000, 'v')));
        REQUIRE(run_until(b.base, [&] { return rig.stats().media_early == 6; }));
        CHECK(rig.stats().media_early_dropped == 3);  // 3 x 5048 bytes fit in 16 KiB, a 4th does not
        rig.direct();
        REQUIRE(run_until(b.base, [&] { return rig.alice->payloads.size() == 3; }));
    }
    SUBCASE("kept longer than early_media_hold: dropped, even without new datagrams") {
        CalleeRig rig(b.base, 100ms);
        for (std::uint32_t i = 1; i <= 3; ++i) rig.send(rig.frame(i, "stale"));
        REQUIRE(run_until(b.base, [&] { return rig.stats().media_early == 3; }));
        REQUIRE(run_until(b.base, [&] { return rig.stats().media_early_dropped == 3; }, 1s));
        rig.send(rig.frame(4, "fresh"));
        REQUIRE(run_until(b.base, [&] { return rig.stats().media_early == 4; }));
        rig.direct();
        REQUIRE(run_until(b.base, [&] { return rig.alice->payloads.size() == 1; }));
        CHECK(rig.alice->payloads.front() == "fresh");
    }
    SUBCASE("the call ends before the key: all of it dropped, none delivered") {
        CalleeRig rig(b.base);
        for (std::uint32_t i = 1; i <= 4; ++i) rig.send(rig.frame(i, "x"));
        REQUIRE(run_until(b.base, [&] { return rig.stats().media_early == 4; }));
        rig.command("end|bob");
        REQUIRE(run_until(b.base, [&] { return rig.alice->saw("ended:bob"); }));
        CHECK(rig.stats().media_early_dropped == 4);
        rig.direct();  // about a call that is over: ignored
        rig.settle();
        CHECK(rig.alice->payloads.empty());
        CHECK_FALSE(rig.alice->saw_prefix("voice_key:"));
    }
    SUBCASE("a `voice_key` callback that ends the call: the early media is dropped, not delivered") {
        CalleeRig rig(b.base);
        for (std::uint32_t i = 1; i <= 4; ++i) rig.send(rig.frame(i, "x"));
        REQUIRE(run_until(b.base, [&] { return rig.stats().media_early == 4; }));
        rig.alice->on_note = [&](const std::string& e) {
            if (e == "voice_key:bob") sent((*rig.alice)->end("bob"));
        };
        rig.direct();
        REQUIRE(run_until(b.base, [&] { return rig.alice->saw("voice_key:bob"); }));
        rig.settle();
        CHECK(rig.alice->payloads.empty());
        CHECK(rig.stats().media_early_dropped == 4);
    }
}

TEST_CASE("a caller talking from `start` on loses nothing at the callee, through a real server") {
    Base b;
    World w(b.base);
    REQUIRE(w.started.ok());
    Phone alice(b.base, w.client_config("alice")), bob(b.base, w.client_config("bob"));
    log_in_all(b.base, {&alice, &bob});
    alice.on_note = [&](const std::string& e) {
        if (e != "started:bob") return;
        for (int i = 1; i <= 10; ++i) {
            auto sequence = alice->send_media("at-start-" + std::to_string(i));
            REQUIRE_MESSAGE(sequence.ok(), sequence.error());
        }
    };
    set_up_call(b.base, alice, bob);
    REQUIRE(run_until(b.base, [&] { return bob.payloads.size() == 10; }));
    CHECK(bob.sequences.front() == 1);
    CHECK(bob.sequences.back() == 10);
    const auto& stats = bob->stats();
    MESSAGE("early at the callee: " << stats.media_early);
    CHECK(stats.media_early_dropped == 0);
    CHECK(stats.media_undecryptable == 0);
    CHECK(stats.media_received_packets == 10);
}

TEST_CASE("callbacks may disconnect and reconnect their own Client, and destroy another") {
    Base b;
    World w(b.base);
    REQUIRE(w.started.ok());
    Phone alice(b.base, w.client_config("alice")), bob(b.base, w.client_config("bob"));
    auto carol = std::make_unique<Phone>(b.base, w.client_config("carol"));
    log_in(b.base, *carol);
    log_in(b.base, bob);

    alice.on_note = [&](const std::string& e) {
        if (e == "logged_in" && alice.count("logged_in") == 1) {
            alice->disconnect();  // in the middle of reading the server's frames
            CHECK_FALSE(alice->is_logged_in());
            CHECK(alice->heartbeat().error() == "not logged in");
            sent(alice->connect());
        } else if (e == "available:bob") {
            carol.reset();  // another Client, gone from inside this one's callback
        }
    };
    bob.on_note = [&](const std::string& e) {
        if (e == "ended:alice") {
            bob->disconnect();
            sent(bob->connect());
        }
    };

    REQUIRE(alice->connect().ok());
    REQUIRE(run_until(b.base, [&] { return alice.count("logged_in") == 2 && alice->is_logged_in(); }));
    CHECK(alice.events == std::vector<std::string>{"logged_in", "logged_in"});  // no `closed`
    REQUIRE(run_until(b.base, [&] { return w.server->stats().logged_in == 3; }));

    set_up_call(b.base, alice, bob);
    CHECK(carol == nullptr);
    REQUIRE(run_until(b.base, [&] { return w.server->stats().logged_in == 2; }));
    exchange_media(b.base, alice, bob, 3);

    sent(alice->end("bob"));
    REQUIRE(run_until(b.base, [&] { return bob.count("logged_in") == 2 && bob->is_logged_in(); }));
    CHECK_FALSE(bob.saw_prefix("closed:"));
    CHECK(bob->peer().empty());
    // Both still work after all that.
    ring(b.base, bob, alice);
}
