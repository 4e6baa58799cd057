// examples/cluster/call.cpp: one call across two nodes of a cluster, by hand.
//
//   call SHARED_DIR CALLER@HOST:COMMAND:MEDIA CALLEE@HOST:COMMAND:MEDIA [--timeout SECONDS]
//
// e.g., with the cluster run-cluster.sh starts (base port 20000):
//
//   call /tmp/dtcall-cluster-1000/shared alice@127.0.0.1:20001:20101 bob@127.0.0.1:20002:20102
//
// Two phones (dtcall::Client, the library's client) log in, the caller on
// the first node and the callee on the second; the caller calls, the callee
// accepts, each sends five media frames through its own node (the media
// crosses from node to node), the caller hangs up. Every notice is printed
// as it arrives, then the media counts. SHARED_DIR holds the server's public
// key (server_public.na, the one clients pin) and USER_private.na for both
// users, as run-cluster.sh makes them.
//
// Exit status 0 when the call went through and media went both ways; 1,
// with one line saying what went wrong, otherwise or after the timeout
// (default 15 s). HOST is an IPv4 or IPv6 literal ([::1] or ::1).
//
// Build against an installed libdtcall:
//   c++ -std=c++17 call.cpp $(pkg-config --cflags --libs dtcall) -o call
#include <dtcall/dtcall.hpp>

#include <event2/event.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>

namespace {

constexpr int frames = 5;  // media frames each way

struct Phone {
    std::string user;
    dtcall::ClientConfig config;
    std::unique_ptr<dtcall::Client> client;
    bool logged_in = false;
    bool started = false;
    bool have_key = false;
    bool sent = false;
    int received = 0;
};

// "alice@127.0.0.1:20001:20101" or "bob@[::1]:20002:20102".
bool parse_phone(const std::string& text, Phone& phone, std::string& why) {
    std::size_t at = text.find('@');
    std::size_t media = text.rfind(':');
    std::size_t command = media == std::string::npos || media == 0 ? std::string::npos : text.rfind(':', media - 1);
    if (at == std::string::npos || at == 0 || command == std::string::npos || command <= at + 1) {
        why = "\"" + text + "\" is not USER@HOST:COMMAND:MEDIA (such as alice@127.0.0.1:20001:20101)";
        return false;
    }
    auto port = [&](const std::string& digits, std::uint16_t& out) {
        char* end = nullptr;
        unsigned long n = digits.empty() ? 0 : std::strtoul(digits.c_str(), &end, 10);
        if (digits.empty() || *end != '\0' || n == 0 || n > 65535) return false;
        out = std::uint16_t(n);
        return true;
    };
    phone.user = text.substr(0, at);
    phone.config.host = text.substr(at + 1, command - at - 1);
    if (!port(text.substr(command + 1, media - command - 1), phone.config.command_port) ||
        !port(text.substr(media + 1), phone.config.media_port)) {
        why = "\"" + text + "\": the ports must be numbers 1-65535 (USER@HOST:COMMAND:MEDIA)";
        return false;
    }
    phone.config.user = phone.user;
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    std::string usage = std::string("usage: ") + argv[0] +
                        " SHARED_DIR CALLER@HOST:COMMAND:MEDIA CALLEE@HOST:COMMAND:MEDIA [--timeout SECONDS]";
    if (argc != 4 && argc != 6) {
        std::fprintf(stderr, "%s\n", usage.c_str());
        return 1;
    }
    long timeout = 15;
    if (argc == 6) {
        char* end = nullptr;
        timeout = std::strtol(argv[5], &end, 10);
        if (std::string(argv[4]) != "--timeout" || *end != '\0' || timeout < 1 || timeout > 3600) {
            std::fprintf(stderr, "%s\n", usage.c_str());
            return 1;
        }
    }
    if (!dtcall::crypto_init()) {
        std::fprintf(stderr, "call: libsodium cannot start\n");
        return 1;
    }
    std::string shared = argv[1];
    Phone caller, callee;
    std::string why;
    if (!parse_phone(argv[2], caller, why) || !parse_phone(argv[3], callee, why)) {
        std::fprintf(stderr, "call: %s\n", why.c_str());
        return 1;
    }
    auto server_key = dtcall::read_public_key_file(shared + "/server_public.na");
    if (!server_key) {
        std::fprintf(stderr, "call: %s\n", server_key.error().c_str());
        return 1;
    }
    for (Phone* phone : {&caller, &callee}) {
        auto key = dtcall::read_private_key_file(shared + "/" + phone->user + "_private.na");
        if (!key) {
            std::fprintf(stderr, "call: %s\n", key.error().c_str());
            return 1;
        }
        phone->config.server_key = *server_key;
        phone->config.user_key = *key;
    }

    event_base* base = event_base_new();
    std::string failure;
    bool hung_up = false, done = false;
    int call_attempts = 0;
    auto fail = [&](const std::string& what) {
        if (failure.empty() && !done) failure = what;
        event_base_loopbreak(base);
    };
    auto say = [](const Phone& phone, const std::string& what) {
        std::printf("[%s] %s\n", phone.user.c_str(), what.c_str());
        std::fflush(stdout);
    };
    auto ring = [&] {
        ++call_attempts;
        say(caller, "calling " + callee.user);
        if (auto rang = caller.client->call(callee.user); !rang) fail("call: " + rang.error());
    };
    // The callee's presence reaches the caller's node through Redis a moment
    // after its login: an `end` instead of `available` right after the login
    // means "not online (yet)", so the caller tries again a few times.
    std::function<void()> ring_again = [&] { ring(); };
    event* retry = evtimer_new(base, [](evutil_socket_t, short, void* f) { (*static_cast<std::function<void()>*>(f))(); },
                               &ring_again);
    bool ringing = false;

    auto send_frames = [&](Phone& me) {
        if (me.sent || !me.started || !me.have_key) return;
        me.sent = true;
        for (int i = 1; i <= frames; ++i) {
            std::string payload = "hello " + std::to_string(i) + " from " + me.user;
            if (auto sent = me.client->send_media(payload); !sent) return fail(me.user + ": send_media: " + sent.error());
        }
        say(me, "sent " + std::to_string(frames) + " media frames");
    };
    auto maybe_hang_up = [&] {
        if (hung_up || caller.received < frames || callee.received < frames) return;
        hung_up = true;
        say(caller, "hanging up");
        if (auto ended = caller.client->end(callee.user); !ended) fail("end: " + ended.error());
    };

    for (Phone* phone : {&caller, &callee}) {
        // Each callback names its own phone (`me`) and the other one.
        Phone& me = *phone;
        Phone& other = phone == &caller ? callee : caller;
        dtcall::ClientEvents e;
        e.logged_in = [&, &me = me] {
            me.logged_in = true;
            say(me, "logged in to " + me.config.host + ":" + std::to_string(me.config.command_port));
            if (caller.logged_in && callee.logged_in) ring();
        };
        e.login_failed = [&, &me = me](const std::string& reason) { fail(me.user + " could not log in: " + reason); };
        e.available = [&, &me = me](const std::string& peer) {
            ringing = true;
            say(me, "available: " + peer + " is being rung");
        };
        e.incoming = [&, &me = me](const std::string& peer) {
            say(me, "incoming: " + peer + " is calling; accepting");
            if (auto accepted = me.client->accept(peer); !accepted) fail("accept: " + accepted.error());
        };
        e.prepare = [&, &me = me](const std::string& peer, const dtcall::PublicKey&) { say(me, "prepare: " + peer); };
        e.voice_key = [&, &me = me](const std::string& peer) {
            say(me, "voice key for the call with " + peer);
            me.have_key = true;
            send_frames(me);
        };
        e.media_registered = [&, &me = me](const std::string&) { say(me, "media registered with its node"); };
        e.media_failed = [&, &me = me](const std::string&) { fail(me.user + ": the node never acknowledged the media registration"); };
        e.started = [&, &me = me](const std::string& peer) {
            say(me, "start: in a call with " + peer);
            me.started = true;
            send_frames(me);
        };
        e.media = [&, &me = me](std::uint32_t sequence, const std::string& payload) {
            ++me.received;
            say(me, "media #" + std::to_string(sequence) + ": \"" + payload + "\"");
            maybe_hang_up();
        };
        e.ended = [&, &me = me, &other = other](const std::string& peer) {
            say(me, "end: " + peer);
            if (hung_up) {
                if (&me == &callee) {
                    done = true;
                    event_base_loopbreak(base);
                }
                return;
            }
            if (&me == &caller && !ringing && !me.started) {
                // Not online (yet), or busy: try again, up to 10 times.
                if (call_attempts >= 10) return fail(other.user + " is not online for " + me.user + "'s node (or busy)");
                say(me, other.user + " is not online for this node (yet?) or busy: calling again in 0.5 s");
                timeval half_second{0, 500000};
                evtimer_add(retry, &half_second);
                return;
            }
            fail("the call ended before the media went both ways");
        };
        e.invalid = [&, &me = me] { fail(me.user + ": the node answered `invalid`"); };
        e.closed = [&, &me = me](const std::string& reason) { fail(me.user + ": disconnected: " + reason); };
        me.client = std::make_unique<dtcall::Client>(base, me.config, std::move(e));
    }
    for (Phone* phone : {&caller, &callee}) {
        if (auto connected = phone->client->connect(); !connected) {
            std::fprintf(stderr, "call: %s: %s\n", phone->user.c_str(), connected.error().c_str());
            return 1;
        }
    }

    event* deadline = evtimer_new(base, [](evutil_socket_t, short, void* b) {
        event_base_loopbreak(static_cast<event_base*>(b));
    }, base);
    timeval limit{timeout, 0};
    evtimer_add(deadline, &limit);
    event_base_dispatch(base);
    if (!done && failure.empty()) {
        failure = "timed out after " + std::to_string(timeout) + " s (" +
                  (!caller.logged_in || !callee.logged_in ? "not both logged in"
                   : !caller.started || !callee.started   ? "the call did not start"
                                                          : "the media did not go both ways") +
                  ")";
    }
    std::printf("media: %s sent %d and received %d, %s sent %d and received %d\n", caller.user.c_str(),
                caller.sent ? frames : 0, caller.received, callee.user.c_str(), callee.sent ? frames : 0,
                callee.received);
    caller.client->disconnect();
    callee.client->disconnect();
    caller.client.reset();
    callee.client.reset();
    event_free(deadline);
    event_free(retry);
    event_base_free(base);
    if (!done) {
        std::fprintf(stderr, "call: FAILED: %s\n", failure.c_str());
        return 1;
    }
    std::printf("call: OK: %s on one node called %s on another; media went both ways\n", caller.user.c_str(),
                callee.user.c_str());
    return 0;
}
