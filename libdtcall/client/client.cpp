// Client::Impl: login and call state on top of a CommandLink (TCP) and a
// MediaLink (UDP), doing what the Android/GTK clients do (PROTOCOL.md 7-10).
//
//   connect: hello ........................ (CommandLink)
//   login1|user          -> login1resp|blob    open blob -> challenge
//   login2|user|challenge -> login2resp|sk     then `D`, like the real clients
//   call|B|sk            -> available|B ... prepare|keydump|B
//   caller: passthrough|B|box(voice key)|sk; both: UDP registration -> ack -> ready|peer|sk
//   callee: direct|blob|A -> voice key;     start|peer -> media both ways
#include <dtcall/client.hpp>

#include "client/command_link.hpp"
#include "client/media_link.hpp"
#include "wire/media_frame.hpp"

#include "wire/commands.hpp"
#include "wire/registration.hpp"
#include "wire/reply.hpp"
#include "wire/wire.hpp"

#include <event2/event.h>
#include <event2/util.h>
#include <sodium.h>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <optional>
#include <vector>

namespace dtcall {
namespace {

using client_side::CommandLink;
using client_side::MediaLink;

// The real clients retry registration 10 times, 100 ms apart.
constexpr int registration_attempts = 10;
constexpr timeval registration_interval{0, 100 * 1000};
// Early media kept for a voice key still on its way: a few hundred ms of
// speech at the real clients' frame rates, and little memory.
constexpr std::size_t max_early_datagrams = 32;
constexpr std::size_t max_early_bytes = 16 * 1024;

using Clock = std::chrono::steady_clock;

timeval to_timeval(std::chrono::milliseconds ms) {
    return timeval{static_cast<decltype(timeval::tv_sec)>(ms.count() / 1000),
                   static_cast<decltype(timeval::tv_usec)>(ms.count() % 1000 * 1000)};
}

struct Address {
    sockaddr_storage storage{};
    int length = sizeof(sockaddr_storage);
    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// Literals only: a test or tool must never resolve names behind our back.
Result<Address> parse_address(const std::string& host, std::uint16_t port) {
    if (host.empty()) return Error{ErrorCode::bad_address, "no host given"};
    bool bare_ipv6 = host.find(':') != std::string::npos && host.front() != '[';
    std::string text = bare_ipv6 ? "[" + host + "]" : host;
    text += ":" + std::to_string(port);
    Address address;
    if (evutil_parse_sockaddr_port(text.c_str(), reinterpret_cast<sockaddr*>(&address.storage),
                                   &address.length) != 0) {
        return Error{ErrorCode::bad_address, "host \"" + host + "\" is not an IPv4 or IPv6 literal"};
    }
    return address;
}

// A server-chosen word, safe to put in a reason that may end up in a log line.
std::string shown(const std::string& word) {
    if (word.size() <= 32 && wire::allowed_command_text(word)) return word;
    return "an unreadable message";
}

template <class F, class... Args>
void fire(const F& callback, const Args&... args) {
    if (callback) callback(args...);
}

}  // namespace

struct DTCALL_HIDDEN Client::Impl : CommandLink::Handler {
    enum class Login { offline, awaiting_challenge, awaiting_session, logged_in };

    // One call, from `call`/`incoming` to `end`. Reset as a whole.
    struct Call {
        std::string peer;
        bool caller = false;
        std::optional<PublicKey> peer_key;   // from `prepare`
        std::optional<SecretKey> voice_key;  // generated (caller) or from `direct` (callee)
        int attempts = 0;
        bool registering = false;
        bool started = false;
        std::uint32_t next_sequence = 1;
    };

    // A datagram that came before the voice key (callee, before `direct`).
    struct EarlyDatagram {
        Bytes data;
        Clock::time_point arrived;
    };

    Impl(event_base* b, ClientConfig c, ClientEvents e)
        : base(b), config(std::move(c)), events(std::move(e)), link(b, *this),
          media(b, [this](const std::uint8_t* d, std::size_t n) { datagram(d, n); }) {
        retry_timer = evtimer_new(base, on_retry, this);
        login_timer = evtimer_new(base, on_login_timeout, this);
        heartbeat_timer = event_new(base, -1, EV_PERSIST, on_heartbeat, this);
        early_timer = evtimer_new(base, on_early_expiry, this);
    }

    ~Impl() override {
        event_free(retry_timer);
        event_free(login_timer);
        event_free(heartbeat_timer);
        event_free(early_timer);
        link.close();
        media.close();
        wipe(session_key);
    }

    // --- connection and login -------------------------------------------

    Status connect(bool keep) {
        if (!crypto_init()) return Error{ErrorCode::other, "libsodium cannot start"};
        if (!wire::valid_user_name(config.user)) return Error{ErrorCode::invalid_argument, "user name \"" + config.user + "\" cannot be sent"};
        auto command_address = parse_address(config.host, config.command_port);
        if (!command_address) return command_address.failure();
        auto media_address = parse_address(config.host, config.media_port);
        if (!media_address) return media_address.failure();
        media_server = *media_address;

        drop_connection();
        // A login without keepudp ends our call at the server; forget it here too.
        if (!keep) clear_call();
        keepudp = keep;
        auto opened = link.open(command_address->get(), command_address->length, config.server_key);
        if (!opened) return opened;
        if (config.login_timeout.count() > 0) {
            timeval t = to_timeval(config.login_timeout);
            evtimer_add(login_timer, &t);
        }
        return Done{};
    }

    void drop_connection() {
        link.close();
        login = Login::offline;
        wipe(session_key);
        evtimer_del(login_timer);
        event_del(heartbeat_timer);
    }

    void close_with(const std::string& reason) {
        drop_connection();
        fire(events.closed, reason);
    }

    void link_ready() override {
        login = Login::awaiting_challenge;
        link.send(wire::login1(std::time(nullptr), config.user));
    }

    void link_closed(const std::string& reason) override { close_with(reason); }

    void link_message(std::string& text) override {
        if (text == wire::heartbeat) return;  // a server may echo heartbeats; nothing to do
        auto reply = wire::parse_reply(text, std::time(nullptr), config.timestamp_window);
        if (!reply) {
            // A logged-in client drops what it cannot read, like the real ones;
            // during login there is no way on but to give up.
            if (login != Login::logged_in) close_with("unreadable reply during login");
            return;
        }
        if (reply->kind == wire::MessageKind::invalid) {
            on_invalid();
        } else if (login == Login::awaiting_challenge) {
            on_login1resp(*reply);
        } else if (login == Login::awaiting_session) {
            on_login2resp(*reply);
        } else if (login == Login::logged_in) {
            on_notice(*reply);
        }
        reply->wipe_fields();
    }

    void on_invalid() {
        if (login == Login::logged_in) {
            fire(events.invalid);
            return;
        }
        drop_connection();
        fire(events.login_failed, std::string("refused by the server"));
    }

    void on_login1resp(const wire::Reply& r) {
        if (r.kind != wire::MessageKind::login1resp) return close_with("expected login1resp, got " + shown(r.name()));
        if (r.size() != 3) return close_with("login1resp must have 3 fields");
        if (!unstringify(r.fields[2])) return close_with("login1resp blob is not stringified bytes");
        auto challenge = wire::open_challenge(r.fields[2], config.user_key, config.server_key);
        if (!challenge) {
            // Almost always a wrong user key: a failed login, not a broken link.
            drop_connection();
            fire(events.login_failed, std::string("the challenge did not open with our key"));
            return;
        }
        login = Login::awaiting_session;
        std::string text = wire::login2(std::time(nullptr), config.user, *challenge, keepudp);
        link.send(text);
        wipe(text);
        wipe(*challenge);
    }

    void on_login2resp(const wire::Reply& r) {
        if (r.kind != wire::MessageKind::login2resp) return close_with("expected login2resp, got " + shown(r.name()));
        if (r.size() != 3 || !wire::is_token(r.fields[2])) return close_with("login2resp without a session key");
        session_key = r.fields[2];
        login = Login::logged_in;
        evtimer_del(login_timer);
        if (config.heartbeat_interval.count() > 0) {
            timeval t = to_timeval(config.heartbeat_interval);
            event_add(heartbeat_timer, &t);
        }
        link.send(wire::heartbeat);  // the real clients heartbeat right after login
        fire(events.logged_in);
    }

    // --- commands ----------------------------------------------------------

    // `ts|verb|args...|sk`.
    Status command(wire::Verb verb, std::initializer_list<std::string_view> args) {
        if (login != Login::logged_in) return Error{ErrorCode::not_logged_in, "not logged in"};
        std::string text = wire::command(std::time(nullptr), verb, args, session_key);
        link.send(text);
        wipe(text);
        return Done{};
    }

    // --- call ------------------------------------------------------------

    void on_notice(const wire::Reply& r) {
        using wire::MessageKind;
        const std::vector<std::string>& f = r.fields;
        if (r.is(MessageKind::available, 3)) {
            fire(events.available, f[2]);
        } else if (r.is(MessageKind::incoming, 3)) {
            if (call.peer.empty()) {
                call.peer = f[2];
                call.caller = false;
            }
            fire(events.incoming, f[2]);
        } else if (r.is(MessageKind::prepare, 4)) {
            on_prepare(f[2], f[3]);
        } else if (r.is(MessageKind::direct, 4)) {
            on_direct(f[2], f[3]);
        } else if (r.is(MessageKind::start, 3)) {
            if (f[2] != call.peer) return;
            call.started = true;
            fire(events.started, f[2]);
        } else if (r.is(MessageKind::end, 3)) {
            std::string peer = f[2];
            if (peer == call.peer) clear_call();
            fire(events.ended, peer);
        }
        // Anything else: unknown or malformed notices are ignored, as the
        // real clients do.
    }

    void on_prepare(const std::string& dump, const std::string& peer) {
        if (!call.peer.empty() && call.peer != peer) return;  // not our call
        auto key = parse_public_key_file(dump);
        if (!key) return;
        call.peer = peer;
        call.peer_key = *key;
        fire(events.prepare, peer, *key);
        if (call.peer != peer) return;  // the callback ended the call
        if (call.caller) send_voice_key();
        if (call.peer != peer) return;
        start_registration();
    }

    void send_voice_key() {
        SecretKey voice;
        randombytes_buf(voice.data(), key_size);
        std::string blob = wire::voice_key_blob(config.user_key, *call.peer_key, voice);
        if (blob.empty()) return;  // a degenerate peer key: no call possible
        call.voice_key = voice;
        std::string peer = call.peer;
        // Only a `prepare` callback that disconnected can make this fail; the
        // call then cannot carry media, as with a link lost at this moment.
        (void)command(wire::Verb::passthrough, {peer, blob});
        fire(events.voice_key, peer);
    }

    void on_direct(const std::string& blob, const std::string& peer) {
        if (peer != call.peer || call.caller || !call.peer_key) return;
        auto box = unstringify(blob);
        if (!box) return;
        auto key = open_box_frame(config.user_key, *call.peer_key, box->data(), box->size());
        bool opened = key && key->size() == key_size;
        if (opened) call.voice_key = SecretKey(reinterpret_cast<const std::uint8_t*>(key->data()));
        if (key) wipe(*key);
        if (!opened) return;
        std::uint64_t generation = call_generation;
        fire(events.voice_key, peer);
        if (generation == call_generation) deliver_early();  // unless the callback ended the call
    }

    void clear_call() {
        evtimer_del(retry_timer);
        drop_early();
        ++call_generation;
        call = Call{};  // SecretKey wipes the old voice key
    }

    // --- media -------------------------------------------------------------

    void start_registration() {
        auto opened = media.open(media_server.get(), media_server.length);
        if (!opened) {
            fire(events.media_failed, call.peer);
            return;
        }
        call.attempts = 0;
        call.registering = true;
        register_once();
    }

    void register_once() {
        if (call.attempts == registration_attempts) {
            call.registering = false;
            fire(events.media_failed, call.peer);
            return;
        }
        ++call.attempts;
        ++stats.registration_attempts;
        // Without a session key (the link dropped) the attempt is spent but
        // nothing is sent: a stale key would only be refused.
        if (!session_key.empty()) {
            media.send(wire::registration_datagram(config.server_key, std::time(nullptr), session_key));
        }
        evtimer_add(retry_timer, &registration_interval);
    }

    void datagram(const std::uint8_t* data, std::size_t size) {
        if (call.voice_key && deliver(data, size)) return;
        // Acks are recognised whenever the TCP key can tell: a late or repeated
        // one (an ack per attempt) is not media, nor early media.
        if (link.ready()) {
            auto ack = wire::open_registration_ack(link.tcp_key(), data, size);
            if (ack && wire::timestamp_in_window(*ack, std::time(nullptr), config.timestamp_window)) {
                if (call.registering) registered();
                return;
            }
        }
        // A callee past `prepare` without the voice key: the caller may
        // already be talking (it starts at `start`, `direct` may still come).
        if (!call.voice_key && call.peer_key && !call.caller) return keep_early(data, size);
        ++stats.media_undecryptable;
    }

    // Opens a media frame under the voice key and hands it on; false if it
    // does not open.
    bool deliver(const std::uint8_t* data, std::size_t size) {
        auto packet = wire::open_media_frame(call.voice_key->data(), data, size);
        if (!packet) return false;
        ++stats.media_received_packets;
        stats.media_received_bytes += packet->payload.size();
        fire(events.media, packet->sequence, packet->payload);
        return true;
    }

    // --- early media: before the voice key ------------------------------

    void keep_early(const std::uint8_t* data, std::size_t size) {
        ++stats.media_early;
        auto now = Clock::now();
        expire_early(now);
        if (config.early_media_hold.count() <= 0 || early.size() == max_early_datagrams ||
            early_bytes + size > max_early_bytes) {
            ++stats.media_early_dropped;
            return;
        }
        early.push_back({Bytes(data, data + size), now});
        early_bytes += size;
        if (early.size() == 1) arm_early_timer(now);
    }

    void arm_early_timer(Clock::time_point now) {
        auto due = early.front().arrived + config.early_media_hold - now;
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(due) + std::chrono::milliseconds(1);
        timeval t = to_timeval(std::max(ms, std::chrono::milliseconds(1)));
        evtimer_add(early_timer, &t);
    }

    // Drops what has waited longer than early_media_hold.
    void expire_early(Clock::time_point now) {
        while (!early.empty() && now - early.front().arrived >= config.early_media_hold) {
            early_bytes -= early.front().data.size();
            early.pop_front();
            ++stats.media_early_dropped;
        }
    }

    void drop_early() {
        evtimer_del(early_timer);
        stats.media_early_dropped += early.size();
        early.clear();
        early_bytes = 0;
    }

    // The voice key is here: what waited for it goes out, oldest first.
    void deliver_early() {
        evtimer_del(early_timer);
        expire_early(Clock::now());
        std::deque<EarlyDatagram> waiting;
        waiting.swap(early);
        early_bytes = 0;
        std::uint64_t generation = call_generation;
        for (auto& d : waiting) {
            if (generation != call_generation) {
                ++stats.media_early_dropped;  // a `media` callback ended the call
            } else if (!deliver(d.data.data(), d.data.size())) {
                ++stats.media_undecryptable;
            }
        }
    }

    static void on_early_expiry(evutil_socket_t, short, void* arg) {
        auto& self = *static_cast<Impl*>(arg);
        auto now = Clock::now();
        self.expire_early(now);
        if (!self.early.empty()) self.arm_early_timer(now);
    }

    void registered() {
        call.registering = false;
        evtimer_del(retry_timer);
        std::string peer = call.peer;
        // The ack opened under the TCP key, so the link is up and logged in
        // unless a callback dropped it since; then there is nobody to tell.
        (void)command(wire::Verb::ready, {peer});
        fire(events.media_registered, peer);
    }

    Result<std::uint32_t> send_media(const std::string& payload) {
        if (call.peer.empty()) return Error{ErrorCode::invalid_state, "no call to send media to"};
        if (!call.started) return Error{ErrorCode::invalid_state, "the call with " + shown(call.peer) + " has not started"};
        if (!call.voice_key) return Error{ErrorCode::invalid_state, "no voice key yet for the call with " + shown(call.peer)};
        if (!media.is_open()) return Error{ErrorCode::invalid_state, "the media socket is not open"};
        std::uint32_t sequence = call.next_sequence++;
        errno = 0;
        if (!media.send(wire::media_frame(call.voice_key->data(), sequence, payload))) {
            int error = errno;
            return Error{ErrorCode::io, "media frame " + std::to_string(sequence) + " not sent: " +
                         (error ? std::strerror(error) : "short write")};
        }
        ++stats.media_sent_packets;
        stats.media_sent_bytes += payload.size();
        return sequence;
    }

    // --- timers ------------------------------------------------------------

    static void on_retry(evutil_socket_t, short, void* arg) {
        auto& self = *static_cast<Impl*>(arg);
        if (self.call.registering) self.register_once();
    }

    static void on_login_timeout(evutil_socket_t, short, void* arg) {
        auto& self = *static_cast<Impl*>(arg);
        if (self.login != Login::logged_in) self.close_with("login timed out");
    }

    static void on_heartbeat(evutil_socket_t, short, void* arg) {
        auto& self = *static_cast<Impl*>(arg);
        if (self.login == Login::logged_in) self.link.send(wire::heartbeat);
    }

    event_base* base;
    ClientConfig config;
    ClientEvents events;
    CommandLink link;
    MediaLink media;
    Address media_server;
    event* retry_timer = nullptr;
    event* login_timer = nullptr;
    event* heartbeat_timer = nullptr;
    event* early_timer = nullptr;
    Login login = Login::offline;
    bool keepudp = false;
    std::string session_key;
    Call call;
    std::uint64_t call_generation = 0;  // bumped whenever `call` is reset
    std::deque<EarlyDatagram> early;
    std::size_t early_bytes = 0;
    ClientStats stats;
};

Client::Client(event_base* base, ClientConfig config, ClientEvents events)
    : impl_(std::make_unique<Impl>(base, std::move(config), std::move(events))) {}

Client::~Client() = default;

Status Client::connect(bool keepudp) { return impl_->connect(keepudp); }

namespace {

// A name that would add or break fields must not reach the command line.
Status sendable(const std::string& user) {
    if (wire::valid_user_name(user)) return Done{};
    return Error{ErrorCode::invalid_argument, "\"" + shown(user) + "\" is not a user name that can be sent"};
}

}  // namespace

Status Client::call(const std::string& callee) {
    if (!is_logged_in()) return Error{ErrorCode::not_logged_in, "not logged in"};
    if (!impl_->call.peer.empty()) return Error{ErrorCode::invalid_state, "already in a call with " + shown(impl_->call.peer)};
    if (auto ok = sendable(callee); !ok) return ok;
    impl_->call.peer = callee;
    impl_->call.caller = true;
    return impl_->command(wire::Verb::call, {callee});
}

Status Client::accept(const std::string& caller) {
    if (!is_logged_in()) return Error{ErrorCode::not_logged_in, "not logged in"};
    if (!impl_->call.peer.empty() && impl_->call.peer != caller) {
        return Error{ErrorCode::invalid_state, "in a call with " + shown(impl_->call.peer) + ", not " + shown(caller)};
    }
    if (auto ok = sendable(caller); !ok) return ok;
    impl_->call.peer = caller;
    impl_->call.caller = false;
    return impl_->command(wire::Verb::accept, {caller});
}

Status Client::end(const std::string& peer) {
    if (auto ok = sendable(peer); !ok) return ok;
    auto sent = impl_->command(wire::Verb::end, {peer});
    if (sent && peer == impl_->call.peer) impl_->clear_call();
    return sent;
}

Status Client::heartbeat() {
    if (!is_logged_in()) return Error{ErrorCode::not_logged_in, "not logged in"};
    impl_->link.send(wire::heartbeat);
    return Done{};
}

Result<std::uint32_t> Client::send_media(const std::string& payload) { return impl_->send_media(payload); }

void Client::disconnect() { impl_->drop_connection(); }

bool Client::is_logged_in() const { return impl_->login == Impl::Login::logged_in; }

const std::string& Client::peer() const { return impl_->call.peer; }

const ClientStats& Client::stats() const { return impl_->stats; }

}  // namespace dtcall
