// End-to-end test harness: a real dtcall::Server on 127.0.0.1 (ports 0) and
// raw peers that speak the protocol byte by byte, the way the Android/GTK
// clients do. Single-threaded: while a peer waits for bytes it runs the
// server's event loop, so every wait is bounded and nothing needs threads.
#pragma once

#include <dtcall/server.hpp>
#include "wire/reply.hpp"
#include "wire/wire.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct event_base;

namespace test_support {

using namespace std::chrono_literals;
using Millis = std::chrono::milliseconds;

// How long a peer waits for something that should come, and for something
// that should not.
constexpr Millis patience = 3000ms;
constexpr Millis quiet = 250ms;

struct TestServer {
    // `directory`: the one the server asks instead of `users` (which still
    // gets every name's key); it must outlive the TestServer.
    explicit TestServer(std::vector<std::string> names = {"alice", "bob", "carol"},
                        std::function<void(dtcall::Config&)> tweak = {}, const char* address = "127.0.0.1",
                        dtcall::UserDirectory* directory = nullptr, event_base* shared_base = nullptr,
                        std::function<void(dtcall::Server&)> before_start = {});
    ~TestServer();

    // Runs the event loop for about `time`.
    void pump(Millis time);
    void pump_once();
    std::string timestamp(long offset = 0) const;
    bool logged(const std::string& needle) const;

    event_base* base;
    bool owns_base = true;  // false: a base shared by several servers (a cluster test)
    dtcall::InMemoryUserDirectory users;
    dtcall::KeyPair keys;
    std::map<std::string, dtcall::KeyPair> user_keys;
    dtcall::Config config;
    std::unique_ptr<dtcall::Server> server;
    std::vector<std::string> log;
};

// Calls the server lists (any phase), and the phase of the call `user` is in
// (online or not; idle without one).
std::size_t calls_now(const dtcall::Server& server);
dtcall::CallPhase phase_of(const dtcall::Server& server, const std::string& user);

// One TCP command connection, driven by hand.
class RawPeer {
public:
    // `source`: a loopback address to connect from (127.0.0.2...), to act as
    // another host for per-IP limits.
    explicit RawPeer(TestServer& server, const char* address = "127.0.0.1", const char* source = nullptr);
    ~RawPeer();

    void send_bytes(const dtcall::Bytes& bytes);
    void send_bytes(const std::string& bytes);
    // The exact bytes of the last frame sent by send_text/command.
    const dtcall::Bytes& last_frame() const { return last_frame_; }
    // Ephemeral key sealed to the server, TCP key out of the reply. False on failure.
    bool handshake();
    void send_text(const std::string& plaintext);  // one symmetric frame
    void command(const std::string& fields);       // "ts|" + fields, as given (hostile tests)
    // A well-formed "ts|verb|args...|sk" with this peer's session key.
    void command(dtcall::wire::Verb verb, std::initializer_list<std::string_view> args);
    // The next frame's plaintext, or nullopt after `wait`.
    std::optional<std::string> next(Millis wait = patience);
    // The next frame without its timestamp, "" when nothing came or it did not open.
    std::string next_body(Millis wait = patience);
    // The next frame read as a client reads it (wire::parse_reply); nullopt
    // when nothing came or it is not a readable reply.
    std::optional<dtcall::wire::Reply> next_reply(Millis wait = patience);
    // True when the server closed the connection within `wait`.
    bool closed(Millis wait = patience);
    // Close our end, like a phone losing its network.
    void drop();
    // handshake + login1 + login2: returns the session key ("" on failure).
    std::string login(const std::string& user, bool keepudp = false);
    // Frames that arrived in the same read so far (pacing checks).
    int max_frames_in_one_read() const { return max_frames_in_one_read_; }

    std::string user;
    std::string sk;
    dtcall::Bytes tcp_key;

private:
    bool fill(Millis wait);  // read more bytes into in_
    TestServer& server_;
    int fd_ = -1;
    dtcall::Bytes in_;
    bool eof_ = false;
    int max_frames_in_one_read_ = 0;
    dtcall::Bytes last_frame_;
};

// A UDP media socket of a peer.
class RawMedia {
public:
    explicit RawMedia(TestServer& server, const char* address = "127.0.0.1");
    ~RawMedia();
    void send(const dtcall::Bytes& datagram);
    // Without running the server's loop: datagrams sent so reach it in one batch.
    void send_unpumped(const dtcall::Bytes& datagram);
    void send_registration(const std::string& sk, const std::string& ts);
    dtcall::Bytes registration(const std::string& sk, const std::string& ts) const;  // sealed "ts|sk"
    const dtcall::Bytes& last_sent() const { return last_sent_; }
    // Registers and waits for the ack; returns true when one opens under tcp_key.
    bool register_with(const RawPeer& peer);
    std::optional<dtcall::Bytes> receive(Millis wait = patience);

private:
    TestServer& server_;
    int fd_ = -1;
    std::uint16_t port_;
    dtcall::Bytes last_sent_;
};

// `caller` and `callee` log in as `caller_name` and `callee_name`, and the
// caller rings the callee; true when both got their notice (both are read).
bool log_in_and_ring(RawPeer& caller, const std::string& caller_name, RawPeer& callee,
                     const std::string& callee_name);

// Two logged-in peers, alice calling bob (or `caller` calling `callee`),
// through to `start` on both, with media registered. Used by tests that
// start from "in call".
struct CallPair {
    explicit CallPair(TestServer& server, const std::string& caller = "alice", const std::string& callee = "bob");
    RawPeer alice, bob;
    RawMedia alice_media, bob_media;
    bool established = false;
};

}  // namespace test_support
