// dtcall::Client: the protocol from the phone's side, on libevent — what the
// Android/GTK clients do, scriptable for tests, the demo and load tools.
//
// It follows the real clients: after `prepare` it registers its media
// address over UDP (retrying every 100 ms, 10 times, until an ack decrypts)
// and then sends `ready`; the caller also generates the call's voice key and
// sends it with `passthrough`; the callee opens it from `direct`. Media frames
// are secretbox frames under the voice key carrying a 32-bit sequence number.
//
// Early media: the caller may start talking at `start` while the callee's
// voice key (from `direct`) is still on its way. The callee keeps such
// datagrams (at most 32 and 16 KiB, each for ClientConfig::early_media_hold,
// and only for the call they arrived in) and delivers them through `media`,
// in arrival order, right after `voice_key`; ClientStats counts the rest.
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
    // How long media that arrives before the voice key is kept for it (see
    // above); 0 = not kept (counted in media_early_dropped at once).
    std::chrono::milliseconds early_media_hold{2000};
};

struct ClientEvents {
    std::function<void()> logged_in;
    // The login failed; the client has closed that connection itself and no
    // `closed` follows. `why`: "refused by the server" (`invalid`: an unknown
    // user, too many failed logins, a directory that could not answer, a
    // draining server — the server's observers get the exact LoginFailure),
    // or "the challenge did not open with our key" (a wrong user key: the
    // server only sees the connection close). A wrong pinned server key shows
    // as `closed`: the server cannot open the handshake and hangs up.
    std::function<void(const std::string& why)> login_failed;
    std::function<void(const std::string& callee)> available;
    std::function<void(const std::string& caller)> incoming;
    std::function<void(const std::string& peer, const PublicKey& peer_key)> prepare;
    // The call's voice key is known: generated and sent (caller, at
    // `prepare`), or opened from `direct` (callee). send_media() needs this
    // and our own `started`. The peer's media is delivered once we have this,
    // whether or not our `started` has come: the caller may talk from its
    // `started`, which can reach it up to Config::frame_gap (300 ms) before
    // the callee's, and a callee keeps media that comes before this (early
    // media, above).
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
    // Media frames handed to the socket by send_media() (not those it refused).
    std::uint64_t media_sent_packets = 0;
    std::uint64_t media_sent_bytes = 0;      // their payload bytes
    // Media frames that opened under the voice key and went to `media`,
    // early ones included once delivered.
    std::uint64_t media_received_packets = 0;
    std::uint64_t media_received_bytes = 0;  // their payload bytes
    // Registration datagrams sent or due (one per attempt, see media_failed).
    std::uint64_t registration_attempts = 0;
    // Datagrams on the media socket that were neither a registration ack nor
    // a media frame under the call's voice key: garbage, frames under another
    // key, media that arrived after its call ended, and kept early datagrams
    // that did not open once the voice key came.
    std::uint64_t media_undecryptable = 0;
    // Datagrams that arrived before the voice key, at a callee past `prepare`
    // (not registration acks): kept for the key or, when that was not
    // possible, dropped. Each ends up in exactly one of media_received_*,
    // media_undecryptable or media_early_dropped (once the key came or the
    // call ended); until then it is waiting.
    std::uint64_t media_early = 0;
    // Early datagrams lost without being tried: the store was full (32
    // datagrams or 16 KiB), they waited longer than early_media_hold, or the
    // call ended (or connect() without keepudp) before its voice key came.
    std::uint64_t media_early_dropped = 0;
};

// Callbacks (ClientEvents) run from the event loop, never from inside one of
// this Client's methods. From a callback you may:
//   - call any method of this Client: a command, send_media(), disconnect(),
//     connect() (with or without keepudp), the getters;
//   - create, use and destroy *other* Clients (and Servers) on the same loop;
// but you must not destroy this Client (or the event_base) from inside one of
// its own callbacks: defer that (event_base_once, a flag checked after the
// loop). After disconnect() or connect() in a callback, the rest of what the
// old connection had delivered is dropped; after end() or a connect() that
// ends the call, no more `media` of that call follows.
class DTCALL_API Client {
public:
    Client(event_base* base, ClientConfig config, ClientEvents events);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Connects, does the handshake and logs in; `logged_in` or `login_failed`
    // / `closed` follow. keepudp = reconnect during a call (the call stays).
    // An open connection is dropped first. Errors: bad host literal or user.
    [[nodiscard]] Status connect(bool keepudp = false);
    // Commands. Each returns an error, and does nothing, when it cannot be
    // sent: "not logged in" (before `logged_in`, after disconnect(), a
    // refused login or `closed`); call() while in (or ringing) a call;
    // accept() while in a call with someone else; a peer name that is not a
    // valid user name (it would add fields). Ok means the command was
    // queued for the server, whose answer comes as events (`invalid`...).
    [[nodiscard]] Status call(const std::string& callee);
    [[nodiscard]] Status accept(const std::string& caller);
    // When sent and `peer` is our peer, also forgets the call here (no more
    // media); when not logged in, the call stays (connect(true), then end()).
    [[nodiscard]] Status end(const std::string& peer);
    [[nodiscard]] Status heartbeat();
    // Sends one media frame to the peer; needs no login (media carries on
    // across disconnect()/connect(true)). Returns the frame's sequence number
    // (1, 2, ... per call), or an error and sends nothing when there is no
    // call, it has not `started`, the voice key is not known yet (a callee
    // before `direct`), or the media socket is not open; an error also when
    // the socket refuses the datagram (that sequence number is then spent).
    [[nodiscard]] Result<std::uint32_t> send_media(const std::string& payload);
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
