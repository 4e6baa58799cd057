// Embedding dtcall::Server in your own program and your own libevent loop.
//
// The program owns the event_base and dispatches it; the Server only adds its
// sockets and timers to it. Users come from your own UserDirectory (here an
// in-memory one; a database in real life), and a ServerObserver tells you
// what happens. To be runnable as a test, the same loop also carries two
// dtcall::Clients through one call; the program exits 0 once the call ended.
//
// Against an installed libdtcall (tested by tests/install):
//   c++ -std=c++17 embed.cpp $(pkg-config --cflags --libs dtcall) -o embed
#include <dtcall/dtcall.hpp>

#include <event2/event.h>

#include <chrono>
#include <csignal>
#include <cstdio>

namespace {

// Your hooks into the server: log, bill, update presence...
class PrintingObserver : public dtcall::ServerObserver {
public:
    void logged_in(const std::string& user, const std::string& address) override {
        std::printf("[embed] %s logged in from %s\n", user.c_str(), address.c_str());
    }
    void call_rung(const std::string& caller, const std::string& callee) override {
        std::printf("[embed] %s rings %s\n", caller.c_str(), callee.c_str());
    }
    void call_started(const std::string& caller, const std::string& callee) override {
        std::printf("[embed] call %s -> %s started\n", caller.c_str(), callee.c_str());
    }
    void call_ended(const dtcall::CallReport& report) override {
        std::printf("[embed] call %s -> %s ended: %s\n", report.call.caller.c_str(), report.call.callee.c_str(),
                    dtcall::to_string(report.reason));
    }
};

}  // namespace

int main() {
    if (!dtcall::crypto_init()) return 1;
    std::signal(SIGPIPE, SIG_IGN);  // a client that vanished must not end the process
    event_base* base = event_base_new();  // your loop
    int result = 1;
    {
        // In real life: keys from files (dtcall::read_*_key_file) and a
        // directory backed by your user store.
        dtcall::KeyPair alice_keys = dtcall::KeyPair::generate(), bob_keys = dtcall::KeyPair::generate();
        dtcall::InMemoryUserDirectory users;
        users.add("alice", alice_keys.public_key);
        users.add("bob", bob_keys.public_key);

        dtcall::Config config;
        config.listen_addresses = {"127.0.0.1"};
        config.command_port = 0;  // any free port; ask the server which
        config.media_port = 0;
        config.server_keys = dtcall::KeyPair::generate();
        dtcall::Server server(config, users, base);
        PrintingObserver observer;
        server.add_observer(&observer);
        server.set_policy([](const dtcall::CallRequest&) { return dtcall::CallDecision::allow; });  // who may call whom
        if (auto started = server.start(); !started) {
            std::fprintf(stderr, "embed: %s\n", started.error().c_str());
            event_base_free(base);
            return 1;
        }

        // --- two phones on the same loop: alice calls bob, bob accepts, alice hangs up.
        auto phone_config = [&](const char* user, const dtcall::KeyPair& keys) {
            dtcall::ClientConfig c;
            c.command_port = server.command_port();
            c.media_port = server.media_port();
            c.server_key = config.server_keys.public_key;
            c.user = user;
            c.user_key = keys.secret_key;
            return c;
        };
        auto give_up = [&](const std::string&) { event_base_loopbreak(base); };
        std::unique_ptr<dtcall::Client> alice, bob;

        dtcall::ClientEvents bob_events;
        // Commands return a Status: an error (e.g. "not logged in") means
        // nothing was sent and no event will follow, so give up.
        auto check = [&](const dtcall::Status& status) {
            if (status) return;
            std::fprintf(stderr, "embed: %s\n", status.error().c_str());
            event_base_loopbreak(base);
        };
        bob_events.logged_in = [&] { check(alice->call("bob")); };
        bob_events.incoming = [&](const std::string& caller) { check(bob->accept(caller)); };
        bob_events.ended = [&](const std::string&) {
            result = 0;
            event_base_loopbreak(base);
        };
        bob_events.closed = give_up;
        bob = std::make_unique<dtcall::Client>(base, phone_config("bob", bob_keys), bob_events);

        dtcall::ClientEvents alice_events;
        alice_events.logged_in = [&] { check(bob->connect()); };
        alice_events.started = [&](const std::string& peer) { check(alice->end(peer)); };
        alice_events.closed = give_up;
        alice = std::make_unique<dtcall::Client>(base, phone_config("alice", alice_keys), alice_events);
        if (auto connected = alice->connect(); !connected) {
            std::fprintf(stderr, "embed: %s\n", connected.error().c_str());
            alice.reset();
            bob.reset();
            server.stop();
            event_base_free(base);
            return 1;
        }

        // Never hang: give up after 10 s.
        event* deadline = evtimer_new(base, [](evutil_socket_t, short, void* b) {
            std::fprintf(stderr, "embed: timed out\n");
            event_base_loopbreak(static_cast<event_base*>(b));
        }, base);
        timeval ten_seconds{10, 0};
        evtimer_add(deadline, &ten_seconds);

        event_base_dispatch(base);  // your loop runs the server (and here the phones)

        event_free(deadline);
        alice.reset();
        bob.reset();
        server.stop();
    }  // the Server goes before the base it lives on
    event_base_free(base);
    std::printf("[embed] %s\n", result == 0 ? "call ended, exiting" : "FAILED");
    return result;
}
