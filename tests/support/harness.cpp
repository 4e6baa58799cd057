#include "harness.hpp"

#include "crypto/crypto.hpp"
#include "wire/commands.hpp"
#include "wire/registration.hpp"

#include <event2/event.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <unistd.h>

namespace test_support {
namespace {

using Clock = std::chrono::steady_clock;

socklen_t make_address(sockaddr_storage& out, const char* address, std::uint16_t port) {
    out = {};
    if (inet_pton(AF_INET, address, &reinterpret_cast<sockaddr_in*>(&out)->sin_addr) == 1) {
        auto* in = reinterpret_cast<sockaddr_in*>(&out);
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        return sizeof(sockaddr_in);
    }
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
    if (inet_pton(AF_INET6, address, &in6->sin6_addr) != 1) throw std::runtime_error("bad test address");
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    return sizeof(sockaddr_in6);
}

}  // namespace

TestServer::TestServer(std::vector<std::string> names, std::function<void(dtcall::Config&)> tweak,
                       const char* address, dtcall::UserDirectory* directory, event_base* shared_base,
                       std::function<void(dtcall::Server&)> before_start)
    : base(shared_base ? shared_base : event_base_new()), owns_base(shared_base == nullptr),
      keys(dtcall::KeyPair::generate()) {
    dtcall::crypto_init();
    for (const auto& name : names) {
        user_keys[name] = dtcall::KeyPair::generate();
        users.add(name, user_keys[name].public_key);
    }
    config.listen_addresses = {address};
    config.command_port = 0;
    config.media_port = 0;
    config.server_keys = keys;
    config.frame_gap = 20ms;
    config.direct_hold = 2000ms;  // far above any `quiet` wait: no race on a slow CI
    // The same end-to-end tests once more with relay threads (tests/meson.build).
    if (const char* threads = std::getenv("DTCALL_TEST_MEDIA_THREADS")) config.media_threads = unsigned(std::atoi(threads));
    if (tweak) tweak(config);
    server = std::make_unique<dtcall::Server>(config, directory ? *directory : users, base);
    server->set_log([this](dtcall::LogLevel, const std::string& line) { log.push_back(line); });
    if (before_start) before_start(*server);
    auto started = server->start();
    if (!started) {
        // No destructor runs for a constructor that throws.
        server.reset();
        if (owns_base) event_base_free(base);
        throw std::runtime_error(started.error());
    }
}

TestServer::~TestServer() {
    server.reset();
    if (owns_base) event_base_free(base);
}

void TestServer::pump_once() { event_base_loop(base, EVLOOP_NONBLOCK); }

void TestServer::pump(Millis time) {
    auto until = Clock::now() + time;
    while (Clock::now() < until) {
        pump_once();
        ::usleep(500);
    }
}

std::string TestServer::timestamp(long offset) const { return std::to_string(long(std::time(nullptr)) + offset); }

bool TestServer::logged(const std::string& needle) const {
    for (const auto& line : log)
        if (line.find(needle) != std::string::npos) return true;
    return false;
}

RawPeer::RawPeer(TestServer& server, const char* address, const char* source) : server_(server) {
    sockaddr_storage to;
    socklen_t length = make_address(to, address, server.server->command_port());
    fd_ = ::socket(to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (source) {
        sockaddr_storage from;
        socklen_t from_length = make_address(from, source, 0);
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&from), from_length) != 0) throw std::runtime_error("bind source");
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::connect(fd_, reinterpret_cast<sockaddr*>(&to), length);
    // Let the server accept before anything else happens.
    for (int i = 0; i < 20; ++i) server_.pump_once();
}

RawPeer::~RawPeer() {
    if (fd_ >= 0) ::close(fd_);
    server_.pump(Millis(2));
}

void RawPeer::drop() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    server_.pump(Millis(5));
}

void RawPeer::send_bytes(const dtcall::Bytes& bytes) {
    std::size_t done = 0;
    auto until = Clock::now() + patience;
    while (done < bytes.size() && Clock::now() < until) {
        ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
        if (n > 0) done += std::size_t(n);
        else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINPROGRESS) return;
        server_.pump_once();
    }
    server_.pump_once();
}

void RawPeer::send_bytes(const std::string& bytes) { send_bytes(dtcall::Bytes(bytes.begin(), bytes.end())); }

bool RawPeer::fill(Millis wait) {
    auto until = Clock::now() + wait;
    while (Clock::now() < until) {
        server_.pump_once();
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 1) > 0) {
            std::uint8_t buffer[65536];
            ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
            if (n > 0) {
                // Count whole frames delivered by this one read, as a client would see them.
                std::size_t offset = in_.size();
                in_.insert(in_.end(), buffer, buffer + n);
                int frames = 0;
                std::size_t at = 0;
                while (tcp_key.size() == 32 && in_.size() - at >= dtcall::frame_header_size) {
                    std::size_t total = dtcall::frame_overhead + dtcall::wire::announced_length(in_.data() + at);
                    if (in_.size() - at < total) break;
                    if (at + total > offset) ++frames;
                    at += total;
                }
                if (frames > max_frames_in_one_read_) max_frames_in_one_read_ = frames;
                return true;
            }
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                eof_ = true;
                return false;
            }
        }
    }
    return false;
}

bool RawPeer::handshake() {
    dtcall::KeyPair ephemeral = dtcall::KeyPair::generate();
    send_bytes(dtcall::wire::hello(server_.keys.public_key, ephemeral.public_key));
    auto until = Clock::now() + patience;
    while (in_.size() < 76 && Clock::now() < until)
        if (!fill(std::chrono::duration_cast<Millis>(until - Clock::now())) && eof_) return false;
    if (in_.size() < 76) return false;
    auto key = dtcall::open_box_frame(ephemeral.secret_key, server_.keys.public_key, in_.data(), 76);
    in_.erase(in_.begin(), in_.begin() + 76);
    if (!key || key->size() != 32) return false;
    tcp_key.assign(key->begin(), key->end());
    return true;
}

void RawPeer::send_text(const std::string& plaintext) {
    last_frame_ = dtcall::seal_secret_frame(tcp_key.data(), plaintext);
    send_bytes(last_frame_);
}

void RawPeer::command(const std::string& fields) { send_text(server_.timestamp() + "|" + fields); }

void RawPeer::command(dtcall::wire::Verb verb, std::initializer_list<std::string_view> args) {
    send_text(dtcall::wire::command(std::time(nullptr), verb, args, sk));
}

std::optional<std::string> RawPeer::next(Millis wait) {
    auto until = Clock::now() + wait;
    for (;;) {
        if (in_.size() >= dtcall::frame_header_size) {
            std::size_t total = dtcall::frame_overhead + dtcall::wire::announced_length(in_.data());
            if (in_.size() >= total) {
                auto text = dtcall::open_secret_frame(tcp_key.data(), in_.data(), total);
                in_.erase(in_.begin(), in_.begin() + std::ptrdiff_t(total));
                return text ? *text : std::string("<did not open>");
            }
        }
        if (Clock::now() >= until) return std::nullopt;
        if (!fill(std::chrono::duration_cast<Millis>(until - Clock::now())) && eof_) return std::nullopt;
    }
}

std::string RawPeer::next_body(Millis wait) {
    auto text = next(wait);
    if (!text) return "";
    auto bar = text->find('|');
    return bar == std::string::npos ? *text : text->substr(bar + 1);
}

std::optional<dtcall::wire::Reply> RawPeer::next_reply(Millis wait) {
    auto text = next(wait);
    if (!text) return std::nullopt;
    return dtcall::wire::parse_reply(*text, std::time(nullptr), server_.config.timestamp_window);
}

bool RawPeer::closed(Millis wait) {
    auto until = Clock::now() + wait;
    while (!eof_ && Clock::now() < until) {
        in_.clear();
        fill(std::chrono::duration_cast<Millis>(until - Clock::now()));
    }
    return eof_;
}

std::string RawPeer::login(const std::string& name, bool keepudp) {
    if (tcp_key.empty() && !handshake()) return "";
    using dtcall::wire::MessageKind;
    send_text(dtcall::wire::login1(std::time(nullptr), name));
    auto reply = next_reply();
    if (!reply || !reply->is(MessageKind::login1resp, 3)) return "";
    auto challenge =
        dtcall::wire::open_challenge(reply->fields[2], server_.user_keys.at(name).secret_key, server_.keys.public_key);
    if (!challenge) return "";
    send_text(dtcall::wire::login2(std::time(nullptr), name, *challenge, keepudp));
    reply = next_reply();
    if (!reply || !reply->is(MessageKind::login2resp, 3)) return "";
    user = name;
    sk = reply->fields[2];
    return sk;
}

RawMedia::RawMedia(TestServer& server, const char* address) : server_(server) {
    sockaddr_storage to;
    socklen_t length = make_address(to, address, server.server->media_port());
    port_ = server.server->media_port();
    fd_ = ::socket(to.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ::connect(fd_, reinterpret_cast<sockaddr*>(&to), length);
}

RawMedia::~RawMedia() {
    if (fd_ >= 0) ::close(fd_);
}

void RawMedia::send(const dtcall::Bytes& datagram) {
    send_unpumped(datagram);
    server_.pump_once();
}

void RawMedia::send_unpumped(const dtcall::Bytes& datagram) {
    last_sent_ = datagram;
    ::send(fd_, datagram.data(), datagram.size(), 0);
}

dtcall::Bytes RawMedia::registration(const std::string& sk, const std::string& ts) const {
    return dtcall::wire::registration_datagram(server_.keys.public_key, std::time_t(std::stoll(ts)), sk);
}

void RawMedia::send_registration(const std::string& sk, const std::string& ts) { send(registration(sk, ts)); }

bool RawMedia::register_with(const RawPeer& peer) {
    for (int attempt = 0; attempt < 10; ++attempt) {
        send_registration(peer.sk, server_.timestamp());
        auto ack = receive(100ms);
        if (ack && dtcall::wire::open_registration_ack(peer.tcp_key.data(), ack->data(), ack->size())) return true;
    }
    return false;
}

std::optional<dtcall::Bytes> RawMedia::receive(Millis wait) {
    auto until = Clock::now() + wait;
    while (Clock::now() < until) {
        server_.pump_once();
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 1) > 0) {
            std::uint8_t buffer[65536];
            ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
            if (n >= 0) return dtcall::Bytes(buffer, buffer + n);
        }
    }
    return std::nullopt;
}

bool log_in_and_ring(RawPeer& caller, const std::string& caller_name, RawPeer& callee,
                     const std::string& callee_name) {
    if (caller.login(caller_name).empty() || callee.login(callee_name).empty()) return false;
    caller.command(dtcall::wire::Verb::call, {callee_name});
    return caller.next_body() == "available|" + callee_name && callee.next_body() == "incoming|" + caller_name;
}

CallPair::CallPair(TestServer& server, const std::string& caller, const std::string& callee)
    : alice(server), bob(server), alice_media(server), bob_media(server) {
    if (alice.login(caller).empty() || bob.login(callee).empty()) return;
    alice.command(dtcall::wire::Verb::call, {callee});
    if (alice.next_body() != "available|" + callee || bob.next_body() != "incoming|" + caller) return;
    bob.command(dtcall::wire::Verb::accept, {caller});
    if (alice.next_body().rfind("prepare|", 0) != 0 || bob.next_body().rfind("prepare|", 0) != 0) return;
    if (!bob_media.register_with(bob)) return;
    alice.command(dtcall::wire::Verb::passthrough, {callee, "123456"});
    if (bob.next_body() != "direct|123456|" + caller) return;
    if (!alice_media.register_with(alice)) return;
    alice.command(dtcall::wire::Verb::ready, {callee});
    bob.command(dtcall::wire::Verb::ready, {caller});
    if (alice.next_body() != "start|" + callee || bob.next_body() != "start|" + caller) return;
    established = true;
}

std::size_t calls_now(const dtcall::Server& server) {
    return server.calls().size();
}

dtcall::CallPhase phase_of(const dtcall::Server& server, const std::string& user) {
    for (const dtcall::CallInfo& c : server.calls())
        if (c.caller == user || c.callee == user) return c.phase;
    return dtcall::CallPhase::idle;
}

}  // namespace test_support
