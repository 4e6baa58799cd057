// dtcall::Client: the protocol from the phone's side, on libevent — what the
// Android/GTK clients do, scriptable for tests, the demo and load tools.
//
// It follows the real clients: after `prepare` it registers its media
// address over UDP (retrying every 100 ms, 10 times, until an ack decrypts)
// and then sends `ready`; the caller also generates the call's voice key and
// sends it with `passthrough`; the callee opens it from `direct`. Media frames
// are secretbox frames under the voice key carrying a 32-bit sequence number.
#pragma once

#include <dtcall/export.hpp>
#include <dtcall/keys.hpp>
#include <dtcall/result.hpp>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>

struct event_base;

namespace dtcall {

struct ClientConfig {
    std::string host = "127.0.0.1";  // IPv4 or IPv6 literal ("::1" or "[::1]"); never resolved
    std::uint16_t command_port = 1991;
    std::uint16_t media_port = 1961;
    PublicKey server_key;             // pinned
    std::string user;
    SecretKey user_key;               // the user's private key
    std::time_t timestamp_window = 300;
    // Handshake + login must finish within this, or the attempt is closed.
    std::chrono::milliseconds login_timeout{15000};
    // `D` while logged in, like the real clients (every 5 minutes); 0 = never.
    std::chrono::milliseconds heartbeat_interval{300000};
};

struct ClientEvents {
    std::function<void()> logged_in;
    // `invalid` during login, or a challenge our key cannot open (wrong key).
    // The client has closed that connection itself; no `closed` follows.
    std::function<void()> login_failed;
    std::function<void(const std::string& callee)> available;
    std::function<void(const std::string& caller)> incoming;
    std::function<void(const std::string& peer, const PublicKey& peer_key)> prepare;
    // The call's voice key is known: generated and sent (caller), or opened
    // from `direct` (callee). Media can flow once this and `started` happened.
    std::function<void(const std::string& peer)> voice_key;
    std::function<void(const std::string& peer)> media_registered;  // ack decrypted
    // No ack after all registration attempts; the call stays up at the server.
    std::function<void(const std::string& peer)> media_failed;
    std::function<void(const std::string& peer)> started;
    std::function<void(const std::string& peer)> ended;
    std::function<void()> invalid;                     // `invalid` outside login
    std::function<void(std::uint32_t sequence, const std::string& payload)> media;
    // The command connection ended other than by disconnect() or a refused
    // login: the server closed it, an error, a timeout, or hostile input.
    std::function<void(const std::string& reason)> closed;
};

struct ClientStats {
    std::uint64_t media_sent_packets = 0;
    std::uint64_t media_sent_bytes = 0;      // payload bytes
    std::uint64_t media_received_packets = 0;
    std::uint64_t media_received_bytes = 0;  // payload bytes
    std::uint64_t registration_attempts = 0;
};

class DTCALL_API Client {
public:
    // Callbacks may call any method of this Client, but must not destroy it.
    Client(event_base* base, ClientConfig config, ClientEvents events);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Connects, does the handshake and logs in; `logged_in` or `login_failed`
    // / `closed` follow. keepudp = reconnect during a call (the call stays).
    // An open connection is dropped first. Errors: bad host literal or user.
    Status connect(bool keepudp = false);
    // Commands are ignored unless logged in; call() and accept() also while
    // in a call with someone else.
    void call(const std::string& callee);
    void accept(const std::string& caller);
    void end(const std::string& peer);
    void heartbeat();
    // Sends one media frame to the peer (after `started`); returns its sequence
    // number (1, 2, ... per call), or 0 when there is no started call to send to.
    std::uint32_t send_media(const std::string& payload);
    // Closes the command connection only: like a dropped mobile link, the call
    // and the media socket stay so that connect(true) can carry on.
    void disconnect();

    bool is_logged_in() const;
    const std::string& peer() const;  // empty when not in a call
    const ClientStats& stats() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace dtcall
