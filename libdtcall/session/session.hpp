// Session: one TCP command connection (PROTOCOL.md sections 3-7), as an
// explicit state machine. It turns bytes into checked commands for its Host
// and notices into paced, encrypted frames. The Server is the usual Host.
//
//   handshake --80-byte seal--> awaiting_login1 --login1--> looking_up
//                                     ^                        | directory answered: login1resp
//                                     |                        v
//                                     |                  awaiting_login2 --login2 ok--> logged_in
//                                     |                        | login1 again: looking_up
//   any state but closed --close(reason)--> closing (flush what is queued) --> closed
//   (a refused login, an unknown user, a directory error, a failed login2
//    and the login deadline all close; only a peer's EOF skips the flush)
//
// While looking_up no frame is decoded: what the client sends meanwhile waits
// in the input buffer (bounded) and is read once the directory has answered.
#pragma once

#include <dtcall/config.hpp>
#include <dtcall/events.hpp>
#include <dtcall/user_directory.hpp>
#include "crypto/crypto.hpp"
#include "presence/presence.hpp"
#include "session/replay_guard.hpp"
#include <dtcall/log.hpp>
#include "wire/messages.hpp"
#include "wire/wire.hpp"

#include <chrono>
#include <memory>
#include <cstdint>
#include <vector>
#include <optional>
#include <string>

struct bufferevent;
struct event;
struct event_base;
struct sockaddr;

namespace dtcall {

// A logged-in Session is its user's Presence::Connection.
class Session final : public Presence::Connection {
public:
    enum class State { handshake, awaiting_login1, looking_up, awaiting_login2, logged_in, closing, closed };
    static const char* state_name(State state);

    // Why a connection closed. The first eight are what a logged-in user's
    // observers see (logout_reason()); the rest only close connections that
    // never logged in.
    enum class CloseReason {
        closed_by_peer,    // EOF or a broken connection
        idle,              // Config::idle_timeout
        kicked,            // Server::kick()
        revoked,           // the user left the directory
        replaced,          // a newer login of the same user
        output_overflow,   // Config::max_output_bytes (the client does not read)
        protocol_error,    // an unreadable frame
        server_stopping,   // Server::stop()
        frame_too_large,   // Config::max_frame_before_login / _after_login (a protocol error)
        handshake_failed,  // the 80-byte seal did not open, or its key is unusable
        login_timeout,     // no login within Config::login_timeout
        login_failed,      // refused, unknown user, directory error, wrong login2
    };
    static const char* reason_text(CloseReason reason);
    static LogoutReason logout_reason(CloseReason reason);

    class Host {
    public:
        virtual ~Host() = default;
        virtual const Config& config() const = 0;
        // Ask the directory for `user`'s key on behalf of `session`, which is
        // looking_up; answer with session.user_looked_up(), at once (from
        // inside this call) or later. A host must not answer a session that
        // is gone: it keeps the session's id, never the Session*.
        virtual void look_up_user(Session& session, const std::string& user) = 0;
        // The crypto_box key between the server's secret key and `user_key`
        // (precomputed, see SharedKeyCache), or nullptr when the key is unusable.
        virtual const SharedKey* user_box_key(const PublicKey& user_key) = 0;
        // login2 succeeded on `session` (its user() is set): close the user's
        // previous connection and tell the router.
        virtual void session_logged_in(Session& session, bool keepudp) = 0;
        // An authenticated call/accept/passthrough/ready/end whose session key
        // matched. Return false to answer `invalid`.
        virtual bool session_command(Session& session, wire::Verb verb, const wire::Command& command) = 0;
        // The connection starts closing (it may still flush): its user is
        // offline from now on. Called again, harmlessly, before session_closed.
        virtual void session_closing(Session& session, CloseReason reason) = 0;
        // The connection is gone; the host may free the Session (not from inside
        // this call: defer it).
        virtual void session_closed(Session& session) = 0;
        virtual void log(LogLevel level, const std::string& line) = 0;
        // A command frame was dropped as a replay (seen before, or too old).
        virtual void command_replayed(Session& session) { (void)session; }
        // May this connection try to log in as `user` now (failed-login rate
        // limits)? When false the session answers `invalid` and closes; the
        // host reports that refusal itself (LoginFailure::rate_limited).
        virtual bool login_allowed(Session& session, const std::string& user) = 0;
        // A login as `user` failed for `reason` (the session then closes).
        virtual void login_failed(Session& session, const std::string& user, LoginFailure reason) = 0;
    };

    Session(event_base* base, int fd, const sockaddr* address, int address_len, Host& host,
            std::uint64_t id);
    ~Session() override;
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Queue `ts|name|args...` for the client. Frames leave paced (Config::frame_gap).
    void send(const wire::Message& message) override;
    // Stop reading; flush what is queued, then close. `detail` (or the
    // reason's text) goes to the log. Only the first close counts.
    void close(CloseReason reason, const char* detail = nullptr);
    // The directory's answer to Host::look_up_user(user); ignored unless this
    // session is still looking `user` up.
    void user_looked_up(const std::string& user, const UserLookup& found);

    State state() const { return state_; }
    // Meaningful once closing: why, and which state the close came from
    // (logged_in: the user was online until then).
    CloseReason close_reason() const { return close_reason_; }
    State closed_from() const { return closed_from_; }
    // True once the host has been told of the login (session_logged_in): a
    // login2resp that overflows the output closes from logged_in without it.
    bool login_announced() const { return login_announced_; }
    // The name given in login1 while looking_up / awaiting_login2 (else empty).
    const std::string& pending_user() const;
    // The key the directory gave for the user, from the answer until the
    // login is announced (Host::session_logged_in); all zeros otherwise.
    const PublicKey& user_key() const;
    std::uint64_t id() const { return id_; }
    const std::string& user() const { return user_; }
    const std::string& address() const override { return address_; }
    // The source network per-source limits count by (see source_network()).
    const std::string& ip() const { return ip_; }
    // UDP registrations made with this connection's session key, for replay checks.
    ReplayGuard& registration_replays() { return registration_replays_; }
    const std::string& session_key() const { return session_key_; }
    const std::uint8_t* tcp_key() const { return tcp_key_.data(); }

private:
    static void on_read(bufferevent*, void*);
    static void on_write(bufferevent*, void*);
    static void on_event(bufferevent*, short, void*);
    static void on_timer(int, short, void*);
    static void on_pace(int, short, void*);

    void read_handshake();
    void read_frames();
    void decode_frames();
    void handle_text(const std::string& text, const std::uint8_t* nonce);
    void handle_login1(const wire::Command& command);
    void handle_login2(const wire::Command& command);
    // What would show that the client has read a frame we sent: only frames
    // whose content the client needs for its next message can be proven read
    // (the rule per message kind is wire::read_proof).
    using ReadProof = wire::ReadProof;
    struct Outgoing {
        Bytes frame;
        ReadProof proof;
    };
    void queue(Bytes frame, ReadProof proof);
    void proven(ReadProof proof);
    void flush_paced();
    void write_frame(const Bytes& frame);
    void begin_close(CloseReason reason, const char* detail);
    void finish(const char* detail);
    void arm_timer(std::chrono::milliseconds after);
    void arm_idle_timeout();
    void enter(State next);

    Host& host_;
    std::uint64_t id_;
    bufferevent* bev_ = nullptr;
    // Login deadline, or the flush limit when closing. The idle timeout of a
    // logged-in session is the bufferevent's read timeout instead.
    event* timer_ = nullptr;
    event* pace_ = nullptr;
    State state_ = State::handshake;
    std::string address_;
    std::string ip_;
    std::string user_;
    // What a login under way needs, only while it is under way: a logged-in
    // session keeps none of it (~90 bytes less per idle session).
    struct PendingLogin {
        std::string user;       // the login1 name
        PublicKey key{};        // what the directory gave for it
        std::string challenge;  // sent in login1resp
        ~PendingLogin() { wipe(challenge); }
    };
    std::unique_ptr<PendingLogin> login_;
    std::string session_key_;
    SecretKey tcp_key_;
    wire::FrameDecoder decoder_;
    ReplayGuard replays_;  // sized from Config::replay_memory
    ReplayGuard registration_replays_{16};
    // Frames waiting for their turn (pacing). A vector, not a deque: an empty
    // deque already holds ~600 bytes, and most sessions have nothing queued.
    std::vector<Outgoing> outbox_;
    std::size_t outbox_bytes_ = 0;
    bool last_frame_read_ = true;  // the client has surely read our last frame
    ReadProof last_frame_proof_ = ReadProof::none;
    std::chrono::steady_clock::time_point last_send_{};
    CloseReason close_reason_ = CloseReason::closed_by_peer;
    State closed_from_ = State::handshake;
    bool login_announced_ = false;  // the host was told (session_logged_in)
    // Set while decode_frames() runs: a directory answering from inside
    // look_up_user() must not start a second decoding loop under the first.
    bool decoding_ = false;
};

}  // namespace dtcall
