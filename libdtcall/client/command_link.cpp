#include "client/command_link.hpp"

#include "wire/commands.hpp"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include <cstring>  // evutil_socket_error_to_string is strerror

namespace dtcall::client_side {
namespace {

// The largest server message is login1resp (~760 bytes); a little room for a
// longer user name or a future field, but nothing a hostile server can use to
// make us allocate much.
constexpr std::size_t max_reply = 4096;
constexpr std::size_t read_chunk = 4096;

}  // namespace

CommandLink::~CommandLink() { close(); }

Status CommandLink::open(const sockaddr* address, int length, const PublicKey& server_key) {
    close();
    bev_ = bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev_) return Error{ErrorCode::io, "cannot create a socket buffer"};
    bufferevent_setcb(bev_, on_read, nullptr, on_event, this);
    bufferevent_enable(bev_, EV_READ | EV_WRITE);
    server_key_ = server_key;
    ephemeral_ = KeyPair::generate();
    decoder_ = wire::FrameDecoder(key_size);  // the handshake reply holds just the key
    state_ = State::connecting;
    if (bufferevent_socket_connect(bev_, const_cast<sockaddr*>(address), length) != 0) {
        std::string reason = evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
        close();
        return Error{ErrorCode::io, "cannot connect: " + reason};
    }
    return Done{};
}

void CommandLink::send(std::string_view text) {
    if (state_ != State::ready) return;
    Bytes frame = seal_secret_frame(tcp_key_.data(), text);
    bufferevent_write(bev_, frame.data(), frame.size());
}

void CommandLink::close() {
    ++generation_;
    if (bev_) bufferevent_free(bev_);
    bev_ = nullptr;
    state_ = State::closed;
    ephemeral_.reset();
    tcp_key_ = SecretKey();
    decoder_ = wire::FrameDecoder(key_size);
}

void CommandLink::fail(const std::string& reason) {
    close();
    handler_.link_closed(reason);
}

void CommandLink::on_event(bufferevent*, short what, void* arg) {
    auto& self = *static_cast<CommandLink*>(arg);
    if (what & BEV_EVENT_CONNECTED) {
        self.state_ = State::handshake;
        Bytes hello_bytes = wire::hello(self.server_key_, self.ephemeral_->public_key);
        bufferevent_write(self.bev_, hello_bytes.data(), hello_bytes.size());
        return;
    }
    if (what & BEV_EVENT_EOF) {
        self.fail("server closed the connection");
    } else if (what & BEV_EVENT_ERROR) {
        self.fail(std::string("connection error: ") + evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    }
}

void CommandLink::on_read(bufferevent*, void* arg) { static_cast<CommandLink*>(arg)->read_frames(); }

void CommandLink::read_frames() {
    std::uint64_t generation = generation_;
    std::uint8_t chunk[read_chunk];
    evbuffer* input = bufferevent_get_input(bev_);
    // Feed in small chunks and drain after each, so the decoder never holds
    // more than one partial frame plus a chunk.
    while (evbuffer_get_length(input) > 0) {
        int got = evbuffer_remove(input, chunk, sizeof chunk);
        if (got <= 0) break;
        decoder_.feed(chunk, std::size_t(got));
        for (;;) {
            Bytes frame;
            auto status = decoder_.next(frame);
            if (status == wire::FrameDecoder::Status::need_more) break;
            if (status != wire::FrameDecoder::Status::frame) {
                fail(status == wire::FrameDecoder::Status::too_large ? "server frame too large"
                                                                     : "empty frame from server");
                return;
            }
            handle_frame(frame);
            if (generation != generation_) return;  // closed or reopened by a callback
        }
    }
}

void CommandLink::handle_frame(const Bytes& frame) {
    if (state_ == State::handshake) {
        auto key = open_box_frame(ephemeral_->secret_key, server_key_, frame.data(), frame.size());
        ephemeral_.reset();
        if (!key || key->size() != key_size) {
            if (key) wipe(*key);
            fail("handshake reply does not open with the pinned server key");
            return;
        }
        tcp_key_ = SecretKey(reinterpret_cast<const std::uint8_t*>(key->data()));
        wipe(*key);
        decoder_.set_max_plaintext(max_reply);
        state_ = State::ready;
        handler_.link_ready();
        return;
    }
    if (state_ != State::ready) {
        fail("data before the handshake");
        return;
    }
    auto text = open_secret_frame(tcp_key_.data(), frame.data(), frame.size());
    if (!text) {
        fail("frame from server does not authenticate");
        return;
    }
    handler_.link_message(*text);
    wipe(*text);
}

}  // namespace dtcall::client_side
