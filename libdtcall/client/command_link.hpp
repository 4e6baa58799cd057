// CommandLink: the client's TCP command connection (PROTOCOL.md sections 3
// and 4): connect, the sealed-ephemeral handshake, then symmetric frames both
// ways. It knows nothing of commands; its Handler gets decrypted text.
//
//   closed --open()--> connecting --connected: send hello--> handshake
//          --76-byte box frame opens--> ready --(frames)--> ... --> closed
#pragma once

#include "crypto/crypto.hpp"
#include <dtcall/result.hpp>
#include "wire/wire.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

struct bufferevent;
struct event_base;
struct sockaddr;

namespace dtcall::client_side {

class CommandLink {
public:
    class Handler {
    public:
        virtual ~Handler() = default;
        virtual void link_ready() = 0;                       // TCP key agreed
        virtual void link_message(std::string& text) = 0;    // one decrypted frame
        // The link failed (never called for a close() by the owner).
        virtual void link_closed(const std::string& reason) = 0;
    };

    CommandLink(event_base* base, Handler& handler) : base_(base), handler_(handler) {}
    ~CommandLink();
    CommandLink(const CommandLink&) = delete;
    CommandLink& operator=(const CommandLink&) = delete;

    // Starts connecting; an open link is closed first.
    Status open(const sockaddr* address, int length, const PublicKey& server_key);
    // Encrypts and queues one frame; ignored unless ready().
    void send(std::string_view text);
    void close();

    bool ready() const { return state_ == State::ready; }
    const std::uint8_t* tcp_key() const { return tcp_key_.data(); }

private:
    enum class State { closed, connecting, handshake, ready };

    static void on_read(bufferevent*, void*);
    static void on_event(bufferevent*, short, void*);
    void read_frames();
    void handle_frame(const Bytes& frame);
    void fail(const std::string& reason);

    event_base* base_;
    Handler& handler_;
    bufferevent* bev_ = nullptr;
    State state_ = State::closed;
    // Bumped by every open/close so a read loop notices when a handler
    // callback replaced or closed the connection under it.
    std::uint64_t generation_ = 0;
    PublicKey server_key_;
    std::optional<KeyPair> ephemeral_;
    SecretKey tcp_key_;
    wire::FrameDecoder decoder_{key_size};
};

}  // namespace dtcall::client_side
