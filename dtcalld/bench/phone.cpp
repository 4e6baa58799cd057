#include "phone.hpp"

#include "wire/commands.hpp"
#include "wire/registration.hpp"
#include "wire/reply.hpp"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include <sodium.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace dtbench {
namespace {

constexpr std::size_t handshake_frame = dtcall::frame_overhead + dtcall::key_size;  // 76
constexpr int registration_attempts = 10;
constexpr timeval registration_interval{0, 100 * 1000};
constexpr std::size_t read_chunk = 4096;
constexpr int datagrams_per_wakeup = 64;

timeval to_timeval(std::chrono::milliseconds ms) {
    return timeval{static_cast<decltype(timeval::tv_sec)>(ms.count() / 1000),
                   static_cast<decltype(timeval::tv_usec)>(ms.count() % 1000 * 1000)};
}

std::time_t now() { return std::time(nullptr); }

}  // namespace

dtcall::Status set_addresses(PhoneContext& context, const std::string& host, std::uint16_t port,
                             std::uint16_t media_port, const std::string& flag) {
    bool bare_ipv6 = host.find(':') != std::string::npos && host.front() != '[';
    std::string literal = bare_ipv6 ? "[" + host + "]" : host;
    auto parse = [&](std::uint16_t p, sockaddr_storage& out, int& length) {
        std::string text = literal + ":" + std::to_string(p);
        length = sizeof out;
        return evutil_parse_sockaddr_port(text.c_str(), reinterpret_cast<sockaddr*>(&out), &length) == 0;
    };
    if (host.empty() || !parse(port, context.command_address, context.command_length) ||
        !parse(media_port, context.media_address, context.media_length)) {
        return dtcall::Error{flag + ": \"" + host + "\" is not an IPv4 or IPv6 literal"};
    }
    return dtcall::Done{};
}

Phone::Phone(PhoneContext& context, const BenchUser& user, PhoneListener& listener, std::size_t index)
    : context_(context), user_(user), listener_(listener), index_(index) {
    deadline_ = evtimer_new(context_.base, on_deadline, this);
    retry_ = evtimer_new(context_.base, on_retry, this);
    heartbeat_ = event_new(context_.base, -1, EV_PERSIST, on_heartbeat, this);
}

Phone::~Phone() {
    close();
    close_media();
    if (deadline_) event_free(deadline_);
    if (retry_) event_free(retry_);
    if (heartbeat_) event_free(heartbeat_);
    sodium_memzero(tcp_key_.data(), tcp_key_.size());
}

const sockaddr* Phone::command_address(int& length) const {
    if (context_.nodes.empty()) {
        length = context_.command_length;
        return reinterpret_cast<const sockaddr*>(&context_.command_address);
    }
    const PhoneContext::Endpoint& endpoint = context_.nodes[node()];
    length = endpoint.command_length;
    return reinterpret_cast<const sockaddr*>(&endpoint.command);
}

const sockaddr* Phone::media_address(int& length) const {
    if (context_.nodes.empty()) {
        length = context_.media_length;
        return reinterpret_cast<const sockaddr*>(&context_.media_address);
    }
    const PhoneContext::Endpoint& endpoint = context_.nodes[node()];
    length = endpoint.media_length;
    return reinterpret_cast<const sockaddr*>(&endpoint.media);
}

void Phone::connect() {
    close();
    ++generation_;
    connect_started_ = std::chrono::steady_clock::now();
    decoder_ = dtcall::wire::FrameDecoder(4096);
    hello_ = &context_.hellos->next();
    state_ = State::connecting;
    bev_ = bufferevent_socket_new(context_.base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (bev_) {
        bufferevent_setcb(bev_, on_read, nullptr, on_event, this);
        bufferevent_enable(bev_, EV_READ | EV_WRITE);
    }
    int command_length = 0;
    const sockaddr* to = command_address(command_length);
    if (!bev_ || bufferevent_socket_connect(bev_, const_cast<sockaddr*>(to), command_length) != 0) {
        // Reported from the loop, not from here: a listener that reconnects
        // on failure must not recurse through connect().
        deferred_failure_ = std::string("cannot connect: ") + std::strerror(errno ? errno : EIO);
        if (bev_) bufferevent_free(bev_);
        bev_ = nullptr;
        timeval now{0, 0};
        evtimer_add(deadline_, &now);
        return;
    }
    timeval limit = to_timeval(context_.login_timeout);
    evtimer_add(deadline_, &limit);
}

void Phone::close() {
    ++generation_;
    if (bev_) bufferevent_free(bev_);
    bev_ = nullptr;
    state_ = State::offline;
    registering_ = false;
    deferred_failure_.clear();
    evtimer_del(deadline_);
    evtimer_del(retry_);
    event_del(heartbeat_);
    if (!session_key_.empty()) sodium_memzero(session_key_.data(), session_key_.size());
    session_key_.clear();
}

void Phone::fail(const std::string& why) {
    close();
    listener_.failed(*this, why);
}

void Phone::on_deadline(int, short, void* self) {
    auto& phone = *static_cast<Phone*>(self);
    if (!phone.deferred_failure_.empty()) {
        std::string why = phone.deferred_failure_;
        phone.fail(why);
    } else if (phone.state_ != State::logged_in && phone.state_ != State::offline) {
        phone.fail("login did not finish within " + std::to_string(phone.context_.login_timeout.count()) + " ms");
    }
}

void Phone::on_event(bufferevent* bev, short what, void* self) {
    auto& phone = *static_cast<Phone*>(self);
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        phone.state_ = State::handshake;
        bufferevent_write(bev, phone.hello_->sealed.data(), phone.hello_->sealed.size());
        return;
    }
    if (what & BEV_EVENT_EOF) {
        phone.fail(phone.state_ == State::logged_in ? "the server closed the connection"
                                                    : "the server closed the connection during login");
    } else if (what & BEV_EVENT_ERROR) {
        int err = EVUTIL_SOCKET_ERROR();
        phone.fail(std::string("connection error: ") + evutil_socket_error_to_string(err));
    }
}

void Phone::on_read(bufferevent*, void* self) { static_cast<Phone*>(self)->read_frames(); }

void Phone::read_frames() {
    std::uint64_t generation = generation_;
    evbuffer* in = bufferevent_get_input(bev_);
    std::uint8_t chunk[read_chunk];
    dtcall::Bytes frame;
    while (generation == generation_ && evbuffer_get_length(in) > 0) {
        int n = evbuffer_remove(in, chunk, sizeof chunk);
        if (n <= 0) return;
        decoder_.feed(chunk, std::size_t(n));
        for (;;) {
            auto status = decoder_.next(frame);
            if (status == dtcall::wire::FrameDecoder::Status::need_more) break;
            if (status != dtcall::wire::FrameDecoder::Status::frame) {
                fail("the server sent a frame that is empty or larger than 4096 bytes");
                return;
            }
            handle_frame(frame);
            if (generation != generation_) return;  // a callback closed or reconnected us
        }
    }
}

void Phone::handle_frame(const dtcall::Bytes& frame) {
    if (state_ == State::handshake) {
        std::uint8_t key[dtcall::key_size];
        bool ok = frame.size() == handshake_frame && dtcall::wire::announced_length(frame.data()) == dtcall::key_size &&
                  crypto_box_open_easy_afternm(key, frame.data() + dtcall::frame_header_size,
                                               dtcall::mac_size + dtcall::key_size, frame.data(),
                                               hello_->reply_key.data()) == 0;
        if (!ok) return fail("the handshake reply did not open (wrong --server-key?)");
        std::memcpy(tcp_key_.data(), key, sizeof key);
        sodium_memzero(key, sizeof key);
        state_ = State::login1;
        send_text(dtcall::wire::login1(now(), user_.name));
        return;
    }
    auto text = dtcall::open_secret_frame(tcp_key_.data(), frame.data(), frame.size());
    if (!text) {
        ++context_.unreadable_frames;  // dropped, as the protocol says
        return;
    }
    handle_text(*text);
    dtcall::wipe(*text);
}

void Phone::handle_text(const std::string& text) {
    using dtcall::wire::MessageKind;
    if (text == dtcall::wire::heartbeat) return;
    auto reply = dtcall::wire::parse_reply(text, now(), context_.timestamp_window);
    if (state_ == State::logged_in) {
        // Unreadable messages are dropped, as the real clients do.
        if (!reply) return;
        std::vector<std::string_view> fields(reply->fields.begin(), reply->fields.end());
        listener_.message(*this, fields);
        return;
    }
    if (!reply) return fail("unreadable reply during login");
    if (reply->kind == MessageKind::invalid) return fail("login refused (invalid)");
    if (state_ == State::login1) {
        if (!reply->is(MessageKind::login1resp, 3)) return fail("expected login1resp");
        auto challenge = dtcall::wire::open_challenge(reply->fields[2], user_.with_server.data());
        if (!challenge) return fail("the challenge did not open with " + user_.name + "'s key");
        state_ = State::login2;
        std::string login2 = dtcall::wire::login2(now(), user_.name, *challenge, false);
        send_text(login2);
        dtcall::wipe(login2);
        dtcall::wipe(*challenge);
        return;
    }
    if (state_ == State::login2) {
        if (!reply->is(MessageKind::login2resp, 3) || !dtcall::wire::is_token(reply->fields[2]))
            return fail("expected login2resp");
        session_key_ = reply->fields[2];
        reply->wipe_fields();
        state_ = State::logged_in;
        evtimer_del(deadline_);
        send_text(dtcall::wire::heartbeat);  // as the real clients do right after login
        if (context_.heartbeat.count() > 0) {
            timeval every = to_timeval(context_.heartbeat);
            event_add(heartbeat_, &every);
        }
        listener_.logged_in(*this);
        return;
    }
    fail("unexpected message during login");
}

void Phone::send_text(std::string_view text) {
    if (!bev_) return;
    dtcall::Bytes frame = dtcall::seal_secret_frame(tcp_key_.data(), text);
    bufferevent_write(bev_, frame.data(), frame.size());
}

void Phone::command(dtcall::wire::Verb verb, std::initializer_list<std::string_view> args) {
    if (state_ != State::logged_in) return;
    std::string text = dtcall::wire::command(now(), verb, args, session_key_);
    send_text(text);
    dtcall::wipe(text);
}

void Phone::on_heartbeat(int, short, void* self) {
    auto& phone = *static_cast<Phone*>(self);
    if (phone.state_ == State::logged_in) phone.send_text(dtcall::wire::heartbeat);
}

dtcall::Status Phone::open_media() {
    if (context_.shared_media) return dtcall::Done{};
    if (media_fd_ >= 0) {
        if (media_event_) event_add(media_event_, nullptr);
        return dtcall::Done{};
    }
    int media_length = 0;
    const sockaddr* server = media_address(media_length);
    media_fd_ = ::socket(server->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (media_fd_ < 0) return dtcall::Error{std::string("cannot open a UDP socket: ") + std::strerror(errno)};
    // Room for bursts at open-loop rates, so that loss is the relay's, not ours.
    int buffer_size = 1 << 20;
    setsockopt(media_fd_, SOL_SOCKET, SO_RCVBUF, &buffer_size, sizeof buffer_size);
    // Connected: sends need no address, and only the server's datagrams arrive.
    if (::connect(media_fd_, server, socklen_t(media_length)) != 0) {
        int err = errno;
        close_media();
        return dtcall::Error{std::string("cannot aim the UDP socket at the server: ") + std::strerror(err)};
    }
    media_event_ = event_new(context_.base, media_fd_, EV_READ | EV_PERSIST, on_media, this);
    if (!media_event_ || event_add(media_event_, nullptr) != 0) {
        close_media();
        return dtcall::Error{"cannot watch the UDP socket"};
    }
    return dtcall::Done{};
}

void Phone::register_media() {
    if (!context_.shared_media && media_fd_ < 0 && !open_media()) {
        listener_.media_failed(*this);
        return;
    }
    attempts_ = 0;
    registering_ = true;
    send_registration();
}

void Phone::send_registration() {
    if (attempts_ == registration_attempts || state_ != State::logged_in) {
        registering_ = false;
        listener_.media_failed(*this);
        return;
    }
    ++attempts_;
    dtcall::Bytes sealed = dtcall::wire::registration_datagram(context_.server_key, now(), session_key_);
    if (context_.shared_media) context_.shared_media->send_from(index_, sealed.data(), sealed.size());
    else (void)!::send(media_fd_, sealed.data(), sealed.size(), MSG_DONTWAIT);
    evtimer_add(retry_, &registration_interval);
}

void Phone::on_retry(int, short, void* self) {
    auto& phone = *static_cast<Phone*>(self);
    if (phone.registering_) phone.send_registration();
}

void Phone::on_media(int fd, short, void* self) {
    auto& phone = *static_cast<Phone*>(self);
    std::vector<std::uint8_t>& buffer = phone.context_.receive_buffer;
    for (int i = 0; i < datagrams_per_wakeup && phone.media_fd_ == fd; ++i) {
        ssize_t got = ::recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (got < 0) {
            if (errno == EINTR || errno == ECONNREFUSED) continue;  // ICMP from an earlier send
            return;
        }
        phone.media_input(buffer.data(), std::size_t(got));
    }
}

void Phone::media_input(const std::uint8_t* data, std::size_t size) {
    if (registering_ && state_ == State::logged_in) {
        if (dtcall::wire::open_registration_ack(tcp_key_.data(), data, size)) {
            registering_ = false;
            evtimer_del(retry_);
            listener_.media_acked(*this);
            return;
        }
    }
    listener_.media_datagram(*this, data, size);
}

void Phone::stop_registration() {
    registering_ = false;
    evtimer_del(retry_);
}

void Phone::stop_media_reads() {
    if (media_event_) event_del(media_event_);
}

void Phone::close_media() {
    if (media_event_) event_free(media_event_);
    media_event_ = nullptr;
    if (media_fd_ >= 0) ::close(media_fd_);
    media_fd_ = -1;
    registering_ = false;
    if (retry_) evtimer_del(retry_);
}

}  // namespace dtbench
