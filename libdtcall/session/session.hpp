// Session: one TCP command connection (PROTOCOL.md sections 3-7), as an
// explicit state machine. It turns bytes into checked commands for its Host
// and notices into paced, encrypted frames. The Server is the usual Host.
//
//   handshake --80-byte seal--> awaiting_login --login2 ok--> logged_in
//        \___________________________|__________________________/
//                                    v
//                                 closing (flush what is queued, then close)
#pragma once

#include <dtcall/config.hpp>
#include "crypto/crypto.hpp"
#include "session/replay_guard.hpp"
#include <dtcall/log.hpp>
#include "wire/messages.hpp"
#include "wire/wire.hpp"

#include <chrono>
#include <cstdint>
#include <vector>
#include <optional>
#include <string>

struct bufferevent;
struct event;
struct event_base;
struct sockaddr;

namespace dtcall {

class Session {
public:
    enum class State { handshake, awaiting_login, logged_in, closing };
    static const char* state_name(State state);

    class Host {
    public:
        virtual ~Host() = default;
        virtual const Config& config() const = 0;
        virtual std::optional<PublicKey> find_user(const std::string& user) const = 0;
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
        virtual void session_closing(Session& session) = 0;
        // The connection is gone; the host may free the Session (not from inside
        // this call: defer it).
        virtual void session_closed(Session& session) = 0;
        virtual void log(LogLevel level, const std::string& line) = 0;
        // May this connection try to log in as `user` now (failed-login rate
        // limits)? When false the session answers `invalid` and closes.
        virtual bool login_allowed(Session& session, const std::string& user) = 0;
        virtual void login_failed(Session& session, const std::string& user) = 0;
    };

    Session(event_base* base, int fd, const sockaddr* address, int address_len, Host& host,
            std::uint64_t id);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Queue `ts|name|args...` for the client. Frames leave paced (Config::frame_gap).
    void send(const wire::Message& message);
    // The same, spelled as fields (fields[0] = the message name).
    void send(std::initializer_list<std::string_view> fields);
    // Stop reading; flush what is queued, then close. `reason` goes to the log.
    void close(const char* reason);

    State state() const { return state_; }
    std::uint64_t id() const { return id_; }
    const std::string& user() const { return user_; }
    const std::string& address() const { return address_; }
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
    void finish(const char* reason);
    void arm_timer(std::chrono::milliseconds after);
    void enter(State next);

    Host& host_;
    std::uint64_t id_;
    bufferevent* bev_ = nullptr;
    event* timer_ = nullptr;  // login deadline or idle timeout
    event* pace_ = nullptr;
    State state_ = State::handshake;
    std::string address_;
    std::string ip_;
    std::string user_;
    std::string pending_user_;  // login1 name while a challenge is pending
    std::string challenge_;
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
    bool closed_ = false;
};

}  // namespace dtcall
