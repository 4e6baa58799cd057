#include "cluster/redis_address.hpp"

#include <arpa/inet.h>

#include <charconv>

namespace dtcall::cluster {
namespace {

constexpr std::size_t max_unix_path = 107;  // sun_path less its terminating zero

bool host_name_char(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '-';
}

}  // namespace

std::string RedisAddress::text() const {
    if (is_unix()) return "unix:" + unix_path;
    std::string port_text = std::to_string(port);
    return host.find(':') != std::string::npos ? "[" + host + "]:" + port_text : host + ":" + port_text;
}

bool valid_node_name(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    for (char c : name) {
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
                  c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

Result<RedisAddress> parse_redis_address(std::string_view text) {
    const std::string expected = "is not unix:/PATH or HOST:PORT (such as unix:/run/redis/redis.sock or 10.0.0.5:6379)";
    RedisAddress out;
    if (text.substr(0, 5) == "unix:") {
        std::string_view path = text.substr(5);
        if (path.empty() || path.front() != '/') {
            return Error{ErrorCode::bad_config, expected + ": the socket path must be absolute"};
        }
        if (path.size() > max_unix_path) {
            return Error{ErrorCode::bad_config, expected + ": the socket path is longer than 107 bytes"};
        }
        out.unix_path = std::string(path);
        return out;
    }
    std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return Error{ErrorCode::bad_config, expected};
    std::string_view host = text.substr(0, colon);
    std::string_view port = text.substr(colon + 1);
    bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
    if (bracketed) {
        host = host.substr(1, host.size() - 2);
        std::string literal(host);
        unsigned char buffer[16];
        if (::inet_pton(AF_INET6, literal.c_str(), buffer) != 1) {
            return Error{ErrorCode::bad_config, expected + ": \"" + literal + "\" is not an IPv6 address"};
        }
    } else {
        if (host.size() > 253) return Error{ErrorCode::bad_config, expected + ": the host name is too long"};
        for (char c : host) {
            if (!host_name_char(c)) {
                return Error{ErrorCode::bad_config,
                             expected + (c == ':' ? ": an IPv6 address goes in brackets" : ": bad host name")};
            }
        }
    }
    unsigned number = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || number == 0 || number > 65535) {
        return Error{ErrorCode::bad_config, expected + ": \"" + std::string(port) + "\" is not a port number (1-65535)"};
    }
    out.host = std::string(host);
    out.port = std::uint16_t(number);
    return out;
}

}  // namespace dtcall::cluster
