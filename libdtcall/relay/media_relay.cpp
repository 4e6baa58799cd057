#include <dtcall/media_relay.hpp>

#include <dtcall/crypto.hpp>
#include <dtcall/wire.hpp>

#include <event2/event.h>
#include <event2/util.h>

#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace dtcall {
namespace {

// Registrations carry "ts|sk": a 59-character key and a 10-digit time make 118
// bytes sealed; anything far off that cannot be one.
constexpr std::size_t min_registration = seal_overhead + 3;
constexpr std::size_t max_registration = seal_overhead + 128;
// Datagrams handled per readiness event before yielding to other events.
constexpr int datagrams_per_wakeup = 64;

// family | port | address, independent of sockaddr padding.
std::string address_key(const sockaddr* address) {
    std::string key(1, char(address->sa_family));
    if (address->sa_family == AF_INET) {
        auto* in = reinterpret_cast<const sockaddr_in*>(address);
        key.append(reinterpret_cast<const char*>(&in->sin_port), 2);
        key.append(reinterpret_cast<const char*>(&in->sin_addr), 4);
    } else if (address->sa_family == AF_INET6) {
        auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
        key.append(reinterpret_cast<const char*>(&in6->sin6_port), 2);
        key.append(reinterpret_cast<const char*>(&in6->sin6_addr), 16);
    }
    return key;
}

}  // namespace

MediaRelay::MediaRelay(event_base* base, const Config& config, Host& host)
    : base_(base), config_(config), host_(host),
      unregistered_(config.unregistered_packets_per_second, config.unregistered_packets_per_second) {}

MediaRelay::~MediaRelay() { close(); }

Status MediaRelay::open() {
    sockaddr_storage address{};
    int length = sizeof address;
    std::string where = config_.listen_address + " port " + std::to_string(config_.media_port);
    if (evutil_parse_sockaddr_port(config_.listen_address.c_str(), reinterpret_cast<sockaddr*>(&address),
                                   &length) != 0) {
        return Error{"media: \"" + config_.listen_address + "\" is not an IPv4 or IPv6 address"};
    }
    if (address.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&address)->sin_port = htons(config_.media_port);
    else reinterpret_cast<sockaddr_in6*>(&address)->sin6_port = htons(config_.media_port);

    fd_ = ::socket(address.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Error{"media: cannot create a UDP socket: " + std::string(std::strerror(errno))};
    // Voice comes in bursts; a roomy receive buffer keeps them (best effort).
    int buffer_size = 4 * 1024 * 1024;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buffer_size, sizeof buffer_size);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), socklen_t(length)) != 0) {
        int err = errno;
        close();
        return Error{"media: cannot bind UDP " + where + ": " + std::strerror(err)};
    }
    socklen_t bound_length = sizeof address;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &bound_length);
    port_ = ntohs(address.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&address)->sin_port
                                               : reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
    read_event_ = event_new(base_, fd_, EV_READ | EV_PERSIST, &MediaRelay::on_readable, this);
    event_add(read_event_, nullptr);
    return Done{};
}

void MediaRelay::close() {
    if (read_event_) event_free(read_event_);
    read_event_ = nullptr;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

void MediaRelay::release(const std::string& user) {
    auto it = endpoint_by_user_.find(user);
    if (it == endpoint_by_user_.end()) return;
    user_by_address_.erase(it->second.key);
    endpoint_by_user_.erase(it);
}

void MediaRelay::on_readable(int, short, void* self) {
    auto* relay = static_cast<MediaRelay*>(self);
    for (int i = 0; i < datagrams_per_wakeup; ++i) {
        sockaddr_storage from;
        socklen_t from_length = sizeof from;
        ssize_t n = ::recvfrom(relay->fd_, relay->buffer_, sizeof relay->buffer_, 0,
                               reinterpret_cast<sockaddr*>(&from), &from_length);
        if (n < 0) return;  // EAGAIN, or a transient error: the next event retries
        relay->handle_datagram(relay->buffer_, std::size_t(n), reinterpret_cast<sockaddr*>(&from),
                               int(from_length));
    }
}

void MediaRelay::handle_datagram(const std::uint8_t* data, std::size_t size, const sockaddr* from,
                                 int from_len) {
    if (size == 0 || size > config_.max_datagram ||
        (from->sa_family != AF_INET && from->sa_family != AF_INET6)) {
        ++stats_.dropped_packets;
        return;
    }
    std::string key = address_key(from);
    auto it = user_by_address_.find(key);
    if (it != user_by_address_.end()) {
        if (const std::string* peer = host_.relay_peer(it->second)) {
            auto target = endpoint_by_user_.find(*peer);
            if (target == endpoint_by_user_.end()) {
                ++stats_.dropped_packets;
                return;
            }
            ::sendto(fd_, data, size, 0, reinterpret_cast<const sockaddr*>(&target->second.address),
                     target->second.length);
            ++stats_.relayed_packets;
            stats_.relayed_bytes += size;
            return;
        }
    }
    // PROTOCOL.md 9: from an unknown address or a user not yet in call, a
    // datagram is a registration attempt. Opening one costs an X25519
    // operation, so each source gets only so many per second.
    if (!unregistered_.take(key, double(host_.now_ms()) / 1000.0)) {
        ++stats_.rate_limited_packets;
        ++stats_.dropped_packets;
        return;
    }
    if (!try_register(data, size, from, from_len, key)) ++stats_.dropped_packets;
}

bool MediaRelay::try_register(const std::uint8_t* data, std::size_t size, const sockaddr* from, int from_len,
                              const std::string& key) {
    if (size < min_registration || size > max_registration) return false;
    auto plain = open_anonymous(config_.server_keys, data, size);
    if (!plain) return false;
    std::string text(plain->begin(), plain->end());
    wipe(*plain);
    std::size_t bar = text.find('|');
    bool shaped = wire::allowed_command_text(text) && bar != std::string::npos && bar > 0 &&
                  bar + 1 < text.size() && text.find('|', bar + 1) == std::string::npos;
    if (!shaped || !wire::timestamp_in_window(std::string_view(text).substr(0, bar), host_.now(),
                                              config_.timestamp_window)) {
        wipe(text);
        return false;
    }
    auto owner = host_.owner_of_session_key(text.substr(bar + 1));
    long long timestamp = std::stoll(text.substr(0, bar));
    wipe(text);
    if (!owner) return false;
    // A sealed box starts with its one-time public key: it names the datagram.
    // The same registration again (a replay, maybe from elsewhere) is refused.
    if (!owner->registrations->fresh(data, timestamp, config_.timestamp_window)) {
        ++stats_.replayed_registrations;
        return false;
    }
    // NAT rebinding and reconnects: a new address replaces the old one.
    release(owner->user);
    auto previous = user_by_address_.find(key);
    if (previous != user_by_address_.end()) endpoint_by_user_.erase(previous->second);
    Endpoint endpoint{key, {}, socklen_t(from_len)};
    std::memcpy(&endpoint.address, from, std::min<std::size_t>(std::size_t(from_len), sizeof endpoint.address));
    user_by_address_[key] = owner->user;
    endpoint_by_user_[owner->user] = endpoint;
    if (!host_.media_registered(owner->user, format_address(from, from_len))) {
        release(owner->user);  // not in a call: dropped again, no ack
        return false;
    }
    Bytes ack = seal_secret_frame(owner->tcp_key, std::to_string(static_cast<long long>(host_.now())));
    ::sendto(fd_, ack.data(), ack.size(), 0, from, socklen_t(from_len));
    ++stats_.registrations;
    return true;
}

}  // namespace dtcall
