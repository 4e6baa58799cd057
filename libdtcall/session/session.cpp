#include "session/session.hpp"

#include "relay/address.hpp"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <sys/socket.h>

#include <sodium.h>

#include <ctime>

namespace dtcall {
namespace {

constexpr std::size_t handshake_size = key_size + seal_overhead;  // 80
constexpr std::size_t read_chunk = 4096;
// Cap on bytes libevent reads ahead for us: input beyond this waits in the kernel.
constexpr std::size_t input_high_water = 16 * 1024;
// A closing connection gets this long to flush what is queued.
constexpr std::chrono::milliseconds close_flush_limit{3000};

timeval to_timeval(std::chrono::milliseconds ms) {
    timeval tv;
    tv.tv_sec = static_cast<long>(ms.count() / 1000);
    tv.tv_usec = static_cast<long>(ms.count() % 1000 * 1000);
    return tv;
}

// Unknown command names are logged; keep what reaches the log short and tame.
std::string printable_name(const std::string& name) {
    return name.size() > 24 ? name.substr(0, 24) + "..." : name;
}

}  // namespace

const char* Session::state_name(State state) {
    switch (state) {
    case State::handshake: return "handshake";
    case State::awaiting_login1: return "awaiting login1";
    case State::looking_up: return "looking up";
    case State::awaiting_login2: return "awaiting login2";
    case State::logged_in: return "logged in";
    case State::closing: return "closing";
    case State::closed: return "closed";
    }
    return "?";
}

const char* Session::reason_text(CloseReason reason) {
    switch (reason) {
    case CloseReason::closed_by_peer: return "peer closed the connection";
    case CloseReason::idle: return "idle timeout";
    case CloseReason::kicked: return "kicked";
    case CloseReason::revoked: return "user revoked";
    case CloseReason::replaced: return "replaced by a newer login of the same user";
    case CloseReason::output_overflow: return "output limit reached (client not reading)";
    case CloseReason::protocol_error: return "protocol error";
    case CloseReason::server_stopping: return "server stopping";
    case CloseReason::frame_too_large: return "frame larger than allowed";
    case CloseReason::handshake_failed: return "handshake failed";
    case CloseReason::login_timeout: return "no login within the deadline";
    case CloseReason::login_failed: return "login failed";
    }
    return "?";
}

LogoutReason Session::logout_reason(CloseReason reason) {
    switch (reason) {
    case CloseReason::closed_by_peer: return LogoutReason::closed_by_peer;
    case CloseReason::idle: return LogoutReason::idle;
    case CloseReason::kicked: return LogoutReason::kicked;
    case CloseReason::revoked: return LogoutReason::revoked;
    case CloseReason::replaced: return LogoutReason::replaced;
    case CloseReason::output_overflow: return LogoutReason::output_overflow;
    case CloseReason::protocol_error:
    case CloseReason::frame_too_large: return LogoutReason::protocol_error;
    case CloseReason::server_stopping: return LogoutReason::server_stopping;
    // Not for a logged-in user; "closed" is the least wrong.
    case CloseReason::handshake_failed:
    case CloseReason::login_timeout:
    case CloseReason::login_failed: return LogoutReason::closed_by_peer;
    }
    return LogoutReason::closed_by_peer;
}

Session::Session(event_base* base, int fd, const sockaddr* address, int address_len, Host& host,
                 std::uint64_t id)
    : host_(host), id_(id), address_(format_address(address, address_len)), ip_(source_network(address, address_len)),
      decoder_(host.config().max_frame_before_login), replays_(host.config().replay_memory) {
    bev_ = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev_, &Session::on_read, &Session::on_write, &Session::on_event, this);
    bufferevent_setwatermark(bev_, EV_READ, 0, input_high_water);
    bufferevent_enable(bev_, EV_READ | EV_WRITE);
    arm_timer(host_.config().login_timeout);
}

Session::~Session() {
    if (timer_) event_free(timer_);
    if (pace_) event_free(pace_);
    if (bev_) bufferevent_free(bev_);
    wipe(session_key_);
}

const std::string& Session::pending_user() const {
    static const std::string none;
    return login_ ? login_->user : none;
}

const PublicKey& Session::user_key() const {
    static const PublicKey none{};
    return login_ ? login_->key : none;
}

void Session::enter(State next) {
    if (next == state_) return;
    host_.log(LogLevel::debug, "session " + std::to_string(id_) + ": " + state_name(state_) + " -> " + state_name(next));
    state_ = next;
}

void Session::arm_timer(std::chrono::milliseconds after) {
    // Timers exist only while needed: a logged-in session holds none (each
    // costs ~150 bytes, times 100 000 sessions).
    if (after.count() <= 0) {
        if (timer_) event_free(timer_);
        timer_ = nullptr;
        return;
    }
    if (!timer_) timer_ = evtimer_new(bufferevent_get_base(bev_), &Session::on_timer, this);
    timeval tv = to_timeval(after);
    evtimer_add(timer_, &tv);
}

// Logged in: the idle timeout is the bufferevent's read timeout, which
// reuses its read event (no allocation per session) and restarts with every
// read; it fires as BEV_EVENT_TIMEOUT | BEV_EVENT_READING (on_event). One
// common-timeout queue for all sessions: O(1) to restart, not a heap.
void Session::arm_idle_timeout() {
    arm_timer(std::chrono::milliseconds(0));  // the login deadline is over
    std::chrono::milliseconds idle = host_.config().idle_timeout;
    if (idle.count() <= 0) return;
    timeval tv = to_timeval(idle);
    const timeval* common = event_base_init_common_timeout(bufferevent_get_base(bev_), &tv);
    bufferevent_set_timeouts(bev_, common ? common : &tv, nullptr);
}

void Session::on_read(bufferevent*, void* self) {
    auto* s = static_cast<Session*>(self);
    if (s->state_ == State::handshake) s->read_handshake();
    if (s->state_ != State::handshake) s->read_frames();
}

void Session::read_handshake() {
    evbuffer* in = bufferevent_get_input(bev_);
    if (evbuffer_get_length(in) < handshake_size) return;
    std::uint8_t sealed[handshake_size];
    evbuffer_remove(in, sealed, handshake_size);
    auto ephemeral = open_anonymous(host_.config().server_keys, sealed, handshake_size);
    if (!ephemeral || ephemeral->size() != key_size) {
        close(CloseReason::handshake_failed, "handshake did not open with the server key");
        return;
    }
    PublicKey client_key;
    std::copy(ephemeral->begin(), ephemeral->end(), client_key.bytes.begin());
    randombytes_buf(tcp_key_.data(), key_size);
    std::string key_text(reinterpret_cast<const char*>(tcp_key_.data()), key_size);
    Bytes reply = seal_box_frame(host_.config().server_keys.secret_key, client_key, key_text);
    wipe(key_text);
    if (reply.empty()) {
        close(CloseReason::handshake_failed, "handshake key is unusable");
        return;
    }
    enter(State::awaiting_login1);
    queue(std::move(reply), ReadProof::any_frame);
}

// States in which frames are decoded: not before the handshake, not while
// the directory is asked (what comes meanwhile waits), not once closing.
static bool reads_frames(Session::State state) {
    return state == Session::State::awaiting_login1 || state == Session::State::awaiting_login2 ||
           state == Session::State::logged_in;
}

void Session::read_frames() {
    // A directory that answers from inside look_up_user() brings us back
    // here from our own loop: that loop goes on by itself.
    if (decoding_) return;
    decoding_ = true;
    decode_frames();
    decoding_ = false;
}

void Session::decode_frames() {
    evbuffer* in = bufferevent_get_input(bev_);
    std::uint8_t chunk[read_chunk];
    Bytes frame;
    while (reads_frames(state_)) {
        auto status = decoder_.next(frame);
        if (status == wire::FrameDecoder::Status::need_more) {
            int n = evbuffer_remove(in, chunk, sizeof chunk);
            if (n <= 0) return;
            decoder_.feed(chunk, std::size_t(n));
            continue;
        }
        if (status != wire::FrameDecoder::Status::frame) {
            if (status == wire::FrameDecoder::Status::too_large) close(CloseReason::frame_too_large);
            else close(CloseReason::protocol_error, "frame with empty plaintext");
            return;
        }
        auto text = open_secret_frame(tcp_key_.data(), frame.data(), frame.size());
        if (!text) continue;  // PROTOCOL.md 3: frames that do not authenticate are dropped
        proven(ReadProof::any_frame);
        handle_text(*text, frame.data());
        wipe(*text);
    }
}

void Session::handle_text(const std::string& text, const std::uint8_t* nonce) {
    const Config& config = host_.config();
    wire::Parsed parsed = wire::parse_command(text, std::time(nullptr), config.timestamp_window);
    // The fields hold the session key or a challenge: zero them on every way out.
    struct WipeFields {
        std::vector<std::string>& fields;
        ~WipeFields() {
            for (std::string& f : fields) wipe(f);
        }
    } wipe_fields{parsed.command.fields};
    if (parsed.status != wire::ParseStatus::ok) return;  // heartbeat, or dropped silently
    const wire::Command& command = parsed.command;
    // A replayed frame (same nonce) or one from too far back is dropped silently.
    if (!replays_.fresh(nonce, std::stoll(command.fields[0]), config.timestamp_window)) {
        host_.log(LogLevel::info, "session " + std::to_string(id_) + ": replayed or out-of-order frame dropped");
        host_.command_replayed(*this);
        return;
    }
    wire::Verb verb = wire::verb_of(command.name());
    if (verb == wire::Verb::unknown) {
        host_.log(LogLevel::info, "session " + std::to_string(id_) + ": unknown command \"" +
                                      printable_name(command.name()) + "\" ignored");
        return;
    }
    if (!wire::fields_fit(verb, command)) {
        host_.log(LogLevel::info, "session " + std::to_string(id_) + ": malformed " + command.name() +
                                      " (" + std::to_string(command.size()) + " fields) dropped");
        return;
    }
    if (verb == wire::Verb::login1 || verb == wire::Verb::login2) {
        // D3/D5: a connection belongs to one user for good.
        if (state_ == State::logged_in) send(wire::Message{wire::MessageKind::invalid, {}});
        else if (verb == wire::Verb::login1) handle_login1(command);
        else handle_login2(command);
        return;
    }
    if (state_ != State::logged_in || !secure_equal(command.last(), session_key_)) {
        send(wire::Message{wire::MessageKind::invalid, {}});
        return;
    }
    proven(ReadProof::session_key);
    if (!host_.session_command(*this, verb, command)) send(wire::Message{wire::MessageKind::invalid, {}});
}

void Session::handle_login1(const wire::Command& command) {
    const std::string& user = command.fields[2];
    if (!host_.login_allowed(*this, user)) {
        send(wire::Message{wire::MessageKind::invalid, {}});
        close(CloseReason::login_failed, "too many failed logins");
        return;
    }
    login_ = std::make_unique<PendingLogin>();  // a login1 again starts afresh
    login_->user = user;
    enter(State::looking_up);
    // May answer (user_looked_up) before it returns; it holds a copy of the name.
    host_.look_up_user(*this, std::string(user));
}

void Session::user_looked_up(const std::string& user, const UserLookup& found) {
    if (state_ != State::looking_up || !login_ || user != login_->user) return;
    auto refuse = [&](LoginFailure failure, const char* detail) {
        host_.login_failed(*this, user, failure);
        send(wire::Message{wire::MessageKind::invalid, {}});
        close(CloseReason::login_failed, detail);
    };
    if (!found) {
        host_.log(LogLevel::warning, "session " + std::to_string(id_) + " from " + address_ +
                                         ": the user directory could not answer for " + user + ": " + found.error());
        refuse(LoginFailure::directory_error, "user directory error");
        return;
    }
    if (!*found) {
        host_.log(LogLevel::info, "session " + std::to_string(id_) + " from " + address_ + ": login1 for unknown user");
        refuse(LoginFailure::unknown_user, "unknown user");
        return;
    }
    const SharedKey* box_key = host_.user_box_key(**found);
    if (!box_key) {
        host_.log(LogLevel::warning, "user " + user + " has a public key X25519 refuses; refusing the login");
        // Counted as a failure: each attempt costs an X25519 operation and a log line.
        refuse(LoginFailure::unusable_key, "unusable user key");
        return;
    }
    login_->key = **found;
    login_->challenge = random_token(200);
    std::string blob = wire::challenge_blob(*box_key, login_->challenge);
    enter(State::awaiting_login2);
    send(wire::Message{wire::MessageKind::login1resp, {blob}});
    // Frames that came while the directory was asked wait in the input.
    read_frames();
}

void Session::handle_login2(const wire::Command& command) {
    const std::string& user = command.fields[2];
    bool ok = state_ == State::awaiting_login2 && login_ && user == login_->user &&
              secure_equal(command.fields[3], login_->challenge);
    if (login_) wipe(login_->challenge);
    if (!ok) {
        login_.reset();
        host_.log(LogLevel::info, "session " + std::to_string(id_) + " from " + address_ + ": failed login2");
        host_.login_failed(*this, user, LoginFailure::bad_response);
        send(wire::Message{wire::MessageKind::invalid, {}});
        close(CloseReason::login_failed, "failed login");
        return;
    }
    proven(ReadProof::challenge);
    user_ = user;
    session_key_ = random_token(59);
    enter(State::logged_in);
    decoder_.set_max_plaintext(host_.config().max_frame_after_login);
    arm_idle_timeout();
    bool keepudp = command.size() == 5;
    // login2resp first: what the host sends on login (notices missed while
    // away) must come after it.
    wire::Message reply{wire::MessageKind::login2resp, {session_key_}};
    send(reply);
    wipe(reply.args[0]);  // a copy of the session key
    // Queuing it can hit max_output_bytes and close us: a closed session
    // must never be registered as the user's connection.
    if (state_ != State::logged_in) return;
    login_announced_ = true;
    host_.session_logged_in(*this, keepudp);
    login_.reset();  // the host has the key now
}

void Session::send(const wire::Message& message) {
    if (state_ == State::closed) return;
    std::string text = wire::format(std::time(nullptr), message);
    Bytes frame = seal_secret_frame(tcp_key_.data(), text);
    wipe(text);
    queue(std::move(frame), wire::read_proof(message.kind));
}

void Session::queue(Bytes frame, ReadProof proof) {
    outbox_bytes_ += frame.size();
    outbox_.push_back({std::move(frame), proof});
    flush_paced();
}

// A client that wrote to us has not necessarily read what we sent (it may have
// written first, or sent a heartbeat): only a message that needed our last
// frame's content counts as proof. Everything else waits for frame_gap.
void Session::proven(ReadProof proof) {
    if (last_frame_read_ || proof != last_frame_proof_) return;
    last_frame_read_ = true;
    if (!outbox_.empty()) flush_paced();
}

void Session::flush_paced() {
    if (state_ == State::closed) return;
    evbuffer* out = bufferevent_get_output(bev_);
    if (outbox_bytes_ + evbuffer_get_length(out) > host_.config().max_output_bytes) {
        // A client that does not read is dropped; nothing more is queued for it.
        outbox_.clear();
        outbox_bytes_ = 0;
        const char* detail = reason_text(CloseReason::output_overflow);
        if (state_ != State::closing) begin_close(CloseReason::output_overflow, detail);
        finish(detail);
        return;
    }
    auto gap = host_.config().frame_gap;
    while (!outbox_.empty()) {
        auto now = std::chrono::steady_clock::now();
        auto since = now - last_send_;
        // Clients read one frame per read(): a second frame may only follow once
        // the client has shown it read the first (it wrote to us) or after a gap.
        if (!last_frame_read_ && since < gap) {
            auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(gap - since) +
                        std::chrono::milliseconds(1);
            timeval tv = to_timeval(wait);
            if (!pace_) pace_ = evtimer_new(bufferevent_get_base(bev_), &Session::on_pace, this);
            evtimer_add(pace_, &tv);
            return;
        }
        Outgoing& next = outbox_.front();
        write_frame(next.frame);
        outbox_bytes_ -= next.frame.size();
        last_frame_proof_ = next.proof;
        outbox_.erase(outbox_.begin());
        last_send_ = now;
        last_frame_read_ = false;
    }
    std::vector<Outgoing>().swap(outbox_);  // idle sessions keep no queue capacity
    // Closing once the last frame is out: a frame sent directly (write_frame)
    // never passes through the bufferevent, so on_write will not say so.
    if (state_ == State::closing && evbuffer_get_length(out) == 0) finish("closed after flushing");
}

// A frame nearly always fits the socket's send buffer: send it at once and
// hand only a remainder to the bufferevent. bufferevent_write alone would cost
// two epoll_ctl calls and a loop iteration per frame (three per login).
void Session::write_frame(const Bytes& frame) {
    evbuffer* out = bufferevent_get_output(bev_);
    std::size_t sent = 0;
    if (evbuffer_get_length(out) == 0) {
        ssize_t n = ::send(bufferevent_getfd(bev_), frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        // On an error the bufferevent's own write reports it (on_event).
        if (n > 0) sent = std::size_t(n);
    }
    if (sent < frame.size()) bufferevent_write(bev_, frame.data() + sent, frame.size() - sent);
}

void Session::on_pace(int, short, void* self) { static_cast<Session*>(self)->flush_paced(); }

void Session::on_write(bufferevent*, void* self) {
    auto* s = static_cast<Session*>(self);
    if (s->state_ == State::closing && s->outbox_.empty()) s->finish("closed after flushing");
}

void Session::on_event(bufferevent*, short what, void* self) {
    auto* s = static_cast<Session*>(self);
    if (s->state_ == State::closed) return;
    // Nothing read for idle_timeout (libevent has stopped reading): an idle
    // close, flushing what is queued, like the old idle timer.
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
        if (s->state_ == State::logged_in) s->close(CloseReason::idle);
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) return;
    const char* detail = what & BEV_EVENT_EOF ? "peer closed the connection" : "connection error";
    // Nothing more can be written: no flushing, straight to closed.
    if (s->state_ != State::closing) s->begin_close(CloseReason::closed_by_peer, detail);
    s->finish(detail);
}

void Session::on_timer(int, short, void* self) {
    auto* s = static_cast<Session*>(self);
    switch (s->state_) {
    case State::handshake:
    case State::awaiting_login1:
    case State::looking_up:  // a directory that never answers
    case State::awaiting_login2: s->close(CloseReason::login_timeout); break;
    case State::logged_in: s->close(CloseReason::idle); break;
    case State::closing: s->finish("could not flush before closing"); break;
    case State::closed: break;
    }
}

void Session::close(CloseReason reason, const char* detail) {
    if (state_ == State::closing || state_ == State::closed) return;
    begin_close(reason, detail ? detail : reason_text(reason));
    bufferevent_disable(bev_, EV_READ);
    evbuffer* out = bufferevent_get_output(bev_);
    if (outbox_.empty() && evbuffer_get_length(out) == 0) {
        finish(detail ? detail : reason_text(reason));
        return;
    }
    arm_timer(close_flush_limit);
}

// Enters closing and tells the host: the user is offline from here on.
void Session::begin_close(CloseReason reason, const char* detail) {
    host_.log(LogLevel::debug, "session " + std::to_string(id_) + ": closing: " + detail);
    close_reason_ = reason;
    closed_from_ = state_;
    enter(State::closing);
    host_.session_closing(*this, reason);
}

void Session::finish(const char* detail) {
    if (state_ == State::closed) return;
    if (state_ != State::closing) begin_close(close_reason_, detail);
    enter(State::closed);
    host_.log(LogLevel::info, "session " + std::to_string(id_) + " from " + address_ +
                                  (closed_from_ == State::logged_in ? " (" + user_ + ")" : "") + " closed: " + detail);
    if (timer_) evtimer_del(timer_);
    if (pace_) evtimer_del(pace_);
    bufferevent_disable(bev_, EV_READ | EV_WRITE);
    bufferevent_setcb(bev_, nullptr, nullptr, nullptr, nullptr);
    host_.session_closed(*this);
}

}  // namespace dtcall
