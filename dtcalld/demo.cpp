// The demo is a script of callbacks: each protocol event prints a line and
// triggers the next step, so the output reads like the call itself. Every
// failure path (a closed connection, a refused login, a lost packet, the
// overall timer) ends the loop with a message and a non-zero result.
#include "demo.hpp"

#include <dtcall/client.hpp>
#include <dtcall/server.hpp>

#include <event2/event.h>

#include <chrono>
#include <memory>
#include <set>
#include <string>

namespace dtcalld {
namespace {

using namespace std::chrono_literals;

constexpr int packets_each_way = 25;
constexpr timeval overall_timeout{10, 0};
// Faster than the real clients' 60 ms Opus frames, to keep the demo short.
constexpr timeval packet_interval{0, 20 * 1000};

class Demo final : public dtcall::ServerObserver {
public:
    explicit Demo(std::ostream& out) : out_(out) {}

    ~Demo() override {
        // Clients and server hold events on the base: free them before it.
        for (auto& side : sides_) side.client.reset();
        server_.reset();
        if (media_timer_) event_free(media_timer_);
        if (timeout_) event_free(timeout_);
        if (base_) event_base_free(base_);
    }

    int run() {
        if (!dtcall::crypto_init()) return fail("libsodium cannot start"), 1;
        base_ = event_base_new();
        if (!base_) return fail("cannot create an event loop"), 1;

        dtcall::Config config;
        config.listen_addresses = {"127.0.0.1"};
        config.command_port = 0;
        config.media_port = 0;
        config.server_keys = dtcall::KeyPair::generate();
        config.frame_gap = 20ms;
        server_ = std::make_unique<dtcall::Server>(config, users_, base_);
        server_->add_observer(this);
        for (Side& side : sides_) {
            side.keys = dtcall::KeyPair::generate();
            users_.add(side.name, side.keys.public_key);
        }
        auto started = server_->start();
        if (!started) return fail(started.error()), 1;
        say("server listening on 127.0.0.1, TCP port " + std::to_string(server_->command_port()) +
            ", UDP port " + std::to_string(server_->media_port()) + ", users alice and bob");

        for (Side& side : sides_) make_client(side, config.server_keys.public_key);
        timeout_ = evtimer_new(base_, on_timeout, this);
        media_timer_ = event_new(base_, -1, EV_PERSIST, on_media_tick, this);
        evtimer_add(timeout_, &overall_timeout);

        step_ = "alice logs in";
        if (auto connected = alice().client->connect(); !connected) return fail(connected.error()), 1;
        event_base_dispatch(base_);
        return result_;
    }

private:
    struct Side {
        explicit Side(std::string n) : name(std::move(n)) {}
        std::string name;
        std::string peer;
        dtcall::KeyPair keys;
        std::unique_ptr<dtcall::Client> client;
        bool started = false;
        int sent = 0;
        std::uint64_t sent_bytes = 0;
        std::set<std::uint32_t> received;
    };

    Side& alice() { return sides_[0]; }
    Side& bob() { return sides_[1]; }

    void make_client(Side& side, const dtcall::PublicKey& server_key) {
        dtcall::ClientConfig c;
        c.host = "127.0.0.1";
        c.command_port = server_->command_port();
        c.media_port = server_->media_port();
        c.server_key = server_key;
        c.user = side.name;
        c.user_key = side.keys.secret_key;

        const std::string& who = side.name;
        dtcall::ClientEvents e;
        e.logged_in = [this, &side] { logged_in(side); };
        e.login_failed = [this, who](const std::string& why) { fail(who + "'s login failed: " + why); };
        e.available = [this, who](const std::string& callee) { say(callee + " is ringing (" + who + " got `available`)"); };
        e.incoming = [this](const std::string& caller) { incoming(caller); };
        e.prepare = [this, &side](const std::string& peer, const dtcall::PublicKey& key) { prepare(side, peer, key); };
        e.voice_key = [this, &side](const std::string&) { voice_key(side); };
        e.media_registered = [this, &side](const std::string&) {
            say(side.name + " registered its media address (acked after " +
                std::to_string(side.client->stats().registration_attempts) + " attempt(s)), sent `ready`");
        };
        e.media_failed = [this, who](const std::string&) { fail(who + "'s media registration was never acked"); };
        e.started = [this, &side](const std::string&) { started(side); };
        e.ended = [this, &side](const std::string& peer) { ended(side, peer); };
        e.invalid = [this, who] { fail("the server answered `invalid` to " + who); };
        e.media = [this, &side](std::uint32_t sequence, const std::string&) { media(side, sequence); };
        e.closed = [this, who](const std::string& reason) { fail(who + "'s connection closed: " + reason); };
        side.client = std::make_unique<dtcall::Client>(base_, c, std::move(e));
    }

    // --- the script, one step per event ------------------------------------

    void logged_in(Side& side) {
        say(side.name + " logged in");
        if (&side == &alice()) {
            step_ = "bob logs in";
            if (auto connected = bob().client->connect(); !connected) fail(connected.error());
        } else {
            step_ = "alice calls bob";
            say("alice calls bob");
            if (auto called = alice().client->call("bob"); !called) fail("alice cannot call: " + called.error());
        }
    }

    void incoming(const std::string& caller) {
        say("bob: incoming call from " + caller + "; bob accepts");
        step_ = "bob accepts";
        if (auto accepted = bob().client->accept(caller); !accepted) fail("bob cannot accept: " + accepted.error());
    }

    void prepare(Side& side, const std::string& peer, const dtcall::PublicKey& key) {
        side.peer = peer;
        auto expected = users_.find(peer);
        if (!expected || *expected != key) return fail(side.name + " got a key for " + peer + " that is not theirs");
        say(side.name + " got `prepare` with " + peer + "'s public key (matches the directory)");
        step_ = "voice key and media registration";
    }

    void voice_key(Side& side) {
        if (&side == &alice()) {
            say("alice generated the call's voice key and sent it to bob (`passthrough`, 228 digits)");
        } else {
            say("bob opened the voice key from `direct`");
        }
    }

    void started(Side& side) {
        side.started = true;
        say(side.name + " got `start`");
        if (!alice().started || !bob().started) return;
        step_ = "media both ways";
        say("call started: sending " + std::to_string(packets_each_way) + " media packets each way");
        evtimer_add(media_timer_, &packet_interval);
    }

    // One packet per side per tick, each a little longer than the last, like
    // Opus frames of varying size.
    void send_media_tick() {
        bool done = true;
        for (Side& side : sides_) {
            if (side.sent == packets_each_way) continue;
            done = false;
            std::string payload = side.name + "-frame-" + std::to_string(side.sent + 1) + ":";
            payload.resize(payload.size() + 40 + std::size_t(side.sent), '*');
            // An error here is the callee's voice key not having arrived yet
            // (`direct` may follow `start`): try again next tick.
            if (!side.client->send_media(payload)) continue;
            ++side.sent;
            side.sent_bytes += payload.size();
        }
        if (done) event_del(media_timer_);
    }

    void media(Side& side, std::uint32_t sequence) {
        if (sequence < 1 || sequence > packets_each_way || !side.received.insert(sequence).second) {
            return fail(side.name + " got an unexpected media sequence number " + std::to_string(sequence));
        }
        if (alice().received.size() < packets_each_way || bob().received.size() < packets_each_way) return;
        for (Side* to : {&bob(), &alice()}) {
            Side& from = to == &bob() ? alice() : bob();
            auto received = to->client->stats().media_received_bytes;
            say(from.name + " -> " + to->name + ": " + std::to_string(to->received.size()) + " packets, sequences 1-" +
                std::to_string(packets_each_way) + ", " + std::to_string(received) + " payload bytes (sent " +
                std::to_string(from.sent_bytes) + ")");
            if (received != from.sent_bytes) return fail("byte counts differ");
        }
        step_ = "alice hangs up";
        say("alice hangs up");
        if (auto ended = alice().client->end("bob"); !ended) fail("alice cannot hang up: " + ended.error());
    }

    void ended(Side& side, const std::string& peer) {
        if (&side != &bob() || step_ != "alice hangs up") {
            return fail(side.name + " got `end` from " + peer + " during: " + step_);
        }
        say("bob sees the call end");
        auto stats = server_->stats();
        say("server relayed " + std::to_string(stats.media_packets_relayed) + " packets (" +
            std::to_string(stats.media_bytes_relayed) + " bytes), dropped " +
            std::to_string(stats.media_packets_dropped));
        finish(0, "success");
    }

    // --- ServerObserver: what the embedded server saw ----------------------

    void logged_in(const std::string& user, const std::string& address) override {
        server_says(user + " logged in from " + address);
    }
    void call_rung(const std::string& caller, const std::string& callee) override {
        server_says(caller + " rings " + callee);
    }
    void call_accepted(const std::string& caller, const std::string& callee) override {
        server_says(callee + " accepted " + caller + "'s call");
    }
    void call_started(const std::string& caller, const std::string& callee) override {
        server_says("call " + caller + " -> " + callee + " started");
    }
    void call_ended(const dtcall::CallReport& report) override {
        server_says("call " + report.call.caller + " -> " + report.call.callee + " ended (" +
                    dtcall::to_string(report.reason) + ")");
    }
    void media_registered(const std::string& user, const std::string& address) override {
        server_says(user + "'s media address is " + address);
    }

    // --- output and ending -------------------------------------------------

    void say(const std::string& line) {
        if (!finished_) out_ << "[demo] " << line << std::endl;
    }
    void server_says(const std::string& line) {
        if (!finished_) out_ << "[server] " << line << std::endl;
    }
    void fail(const std::string& why) {
        if (!finished_) finish(1, "FAILED at \"" + step_ + "\": " + why);
    }
    void finish(int result, const std::string& line) {
        out_ << "[demo] " << line << std::endl;
        finished_ = true;
        result_ = result;
        if (base_) event_base_loopbreak(base_);
    }

    static void on_timeout(evutil_socket_t, short, void* arg) {
        static_cast<Demo*>(arg)->fail("the demo did not finish within 10 s");
    }
    static void on_media_tick(evutil_socket_t, short, void* arg) { static_cast<Demo*>(arg)->send_media_tick(); }

    std::ostream& out_;
    event_base* base_ = nullptr;
    dtcall::InMemoryUserDirectory users_;
    std::unique_ptr<dtcall::Server> server_;
    Side sides_[2] = {Side("alice"), Side("bob")};
    event* timeout_ = nullptr;
    event* media_timer_ = nullptr;
    std::string step_ = "start the server";
    bool finished_ = false;
    int result_ = 1;
};

}  // namespace

int run_demo(std::ostream& out) {
    Demo demo(out);
    return demo.run();
}

}  // namespace dtcalld
