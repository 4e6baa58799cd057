// MediaLink: the client's UDP socket (PROTOCOL.md section 9). It sends
// datagrams to the server's media port and hands every datagram it receives
// to its Handler; what they mean (ack or media) is the Client's business.
#pragma once

#include "crypto/crypto.hpp"
#include <dtcall/result.hpp>

#include <sys/socket.h>

#include <cstdint>
#include <functional>

struct event;
struct event_base;

namespace dtcall::client_side {

class MediaLink {
public:
    using Receiver = std::function<void(const std::uint8_t* data, std::size_t size)>;

    MediaLink(event_base* base, Receiver receiver) : base_(base), receiver_(std::move(receiver)) {}
    ~MediaLink();
    MediaLink(const MediaLink&) = delete;
    MediaLink& operator=(const MediaLink&) = delete;

    // Opens the socket on first use (an ephemeral port, like the real
    // clients) and aims it at `server`. Keeping the socket keeps our media
    // address, which is what lets a keepudp reconnect carry on the call.
    Status open(const sockaddr* server, int length);
    bool is_open() const { return fd_ >= 0; }
    bool send(const Bytes& datagram);
    void close();

private:
    static void on_readable(int, short, void*);

    event_base* base_;
    Receiver receiver_;
    int fd_ = -1;
    event* read_event_ = nullptr;
    sockaddr_storage server_{};
    socklen_t server_length_ = 0;
    Bytes buffer_;
};

}  // namespace dtcall::client_side
