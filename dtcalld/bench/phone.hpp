// Phone: one user's side of the protocol, built for load rather than for
// phones: it logs in with precomputed key material (key_material.hpp), keeps
// the session key so that its media socket can be handed to the traffic
// generator once registered, and reports everything to a PhoneListener that
// the mode drives. (dtcall::Client does not expose its session key or media
// socket, and spends 5 X25519 operations per login.)
//
//   offline --connect()--> connecting --TCP up: sealed hello--> handshake
//     --76-byte box frame--> login1 --login1resp: challenge--> login2
//     --login2resp--> logged_in ("D" at once, then every heartbeat)
// Any failure closes the connection and calls listener.failed() once.
#pragma once

#include "key_material.hpp"
#include "shared_media.hpp"

#include "crypto/crypto.hpp"
#include <dtcall/result.hpp>
#include "wire/wire.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include <sys/socket.h>

struct bufferevent;
struct event;
struct event_base;

namespace dtbench {

class Phone;

class PhoneListener {
public:
    virtual ~PhoneListener() = default;
    virtual void logged_in(Phone& phone) = 0;
    // Login refused, timed out, connection lost or unreadable: the phone is
    // offline again when this is called; it may connect() at once.
    virtual void failed(Phone& phone, const std::string& why) = 0;
    // A message from the server after login, split at '|' (fields[1] = name).
    virtual void message(Phone& phone, const std::vector<std::string_view>& fields) {
        (void)phone;
        (void)fields;
    }
    virtual void media_acked(Phone& phone) { (void)phone; }
    virtual void media_failed(Phone& phone) { (void)phone; }
    // A datagram on the media socket that is not our ack.
    virtual void media_datagram(Phone& phone, const std::uint8_t* data, std::size_t size) {
        (void)phone;
        (void)data;
        (void)size;
    }
};

// What every phone of a run shares. Single-threaded, like the loop.
struct PhoneContext {
    event_base* base = nullptr;
    sockaddr_storage command_address{};
    int command_length = 0;
    sockaddr_storage media_address{};
    int media_length = 0;
    dtcall::PublicKey server_key;
    HelloPool* hellos = nullptr;
    std::chrono::milliseconds login_timeout{10000};
    std::chrono::milliseconds heartbeat{300000};  // 0 = never
    std::time_t timestamp_window = 300;  // replies further off the local clock are dropped, as clients do
    std::vector<std::uint8_t> receive_buffer = std::vector<std::uint8_t>(65536);
    std::uint64_t unreadable_frames = 0;  // frames that did not authenticate
    // Set: phones send media from this shared socket (party = phone index)
    // and the owner passes them their datagrams (Phone::media_input).
    SharedMedia* shared_media = nullptr;
    // --nodes: phone i talks to nodes[node_of(i)], TCP and UDP alike (a
    // client talks to one node); empty: every phone uses the addresses above.
    struct Endpoint {
        sockaddr_storage command{};
        int command_length = 0;
        sockaddr_storage media{};
        int media_length = 0;
    };
    std::vector<Endpoint> nodes;
    std::function<std::size_t(std::size_t phone)> node_of;
};

// Fills the addresses from a host literal and ports; the error names `flag`.
dtcall::Status set_addresses(PhoneContext& context, const std::string& host, std::uint16_t port,
                             std::uint16_t media_port, const std::string& flag);

class Phone {
public:
    enum class State { offline, connecting, handshake, login1, login2, logged_in };

    Phone(PhoneContext& context, const BenchUser& user, PhoneListener& listener, std::size_t index);
    ~Phone();
    Phone(const Phone&) = delete;
    Phone& operator=(const Phone&) = delete;

    void connect();
    void close();  // the command connection only; the media socket stays
    // `ts|verb|args...|sk`; ignored unless logged in.
    void command(dtcall::wire::Verb verb, std::initializer_list<std::string_view> args);

    dtcall::Status open_media();
    // Registration like the clients: a sealed "ts|sk", again every 100 ms,
    // 10 attempts, until an ack under our TCP key arrives.
    void register_media();
    void stop_registration();
    // A datagram for this phone's media address (its own socket's reader, or
    // the SharedMedia owner, calls this): an ack, or passed to the listener.
    void media_input(const std::uint8_t* data, std::size_t size);
    void stop_media_reads();  // the generator reads the socket from now on
    void close_media();
    int media_fd() const { return media_fd_; }  // -1 with a shared socket

    State state() const { return state_; }
    bool logged_in() const { return state_ == State::logged_in; }
    std::size_t index() const { return index_; }
    std::size_t node() const { return context_.nodes.empty() ? 0 : context_.node_of(index_); }
    const BenchUser& user() const { return user_; }
    // When the current connection attempt began (login latency).
    std::chrono::steady_clock::time_point connect_started() const { return connect_started_; }

private:
    static void on_read(bufferevent* bev, void* self);
    static void on_event(bufferevent* bev, short what, void* self);
    static void on_deadline(int fd, short what, void* self);
    static void on_retry(int fd, short what, void* self);
    static void on_heartbeat(int fd, short what, void* self);
    static void on_media(int fd, short what, void* self);

    void read_frames();
    void handle_frame(const dtcall::Bytes& frame);
    void handle_text(const std::string& text);
    void send_text(std::string_view text);
    void send_registration();
    void fail(const std::string& why);
    const sockaddr* command_address(int& length) const;
    const sockaddr* media_address(int& length) const;

    PhoneContext& context_;
    const BenchUser& user_;
    PhoneListener& listener_;
    std::size_t index_;

    State state_ = State::offline;
    bufferevent* bev_ = nullptr;
    event* deadline_ = nullptr;   // login deadline, or a failure reported from connect()
    event* retry_ = nullptr;      // media registration retries
    event* heartbeat_ = nullptr;
    std::string deferred_failure_;
    // Bumped by connect/close, so a read loop notices when a listener
    // callback replaced or closed the connection under it.
    std::uint64_t generation_ = 0;
    const Hello* hello_ = nullptr;
    SharedKey tcp_key_{};
    std::string session_key_;
    dtcall::wire::FrameDecoder decoder_{4096};
    std::chrono::steady_clock::time_point connect_started_{};

    int media_fd_ = -1;
    event* media_event_ = nullptr;
    bool registering_ = false;
    int attempts_ = 0;
};

}  // namespace dtbench
