#include "relay/address.hpp"

#include <arpa/inet.h>
#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>

namespace dtcall {
namespace {

// IPv4 peers on a dual-stack socket arrive as ::ffff:a.b.c.d; show them as
// the IPv4 addresses they are.
bool v4_mapped(const sockaddr* address, int length, in_addr& out) {
    if (address->sa_family != AF_INET6 || length < int(sizeof(sockaddr_in6))) return false;
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    if (!IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) return false;
    std::memcpy(&out, in6->sin6_addr.s6_addr + 12, 4);
    return true;
}

}  // namespace

std::string format_ip(const sockaddr* address, int length) {
    char text[INET6_ADDRSTRLEN] = "?";
    in_addr mapped;
    if (v4_mapped(address, length, mapped)) inet_ntop(AF_INET, &mapped, text, sizeof text);
    else if (address->sa_family == AF_INET && length >= int(sizeof(sockaddr_in)))
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text, sizeof text);
    else if (address->sa_family == AF_INET6 && length >= int(sizeof(sockaddr_in6)))
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, text, sizeof text);
    return text;
}

std::string source_network(const sockaddr* address, int length) {
    in_addr mapped;
    if (address->sa_family != AF_INET6 || length < int(sizeof(sockaddr_in6)) || v4_mapped(address, length, mapped))
        return format_ip(address, length);
    in6_addr prefix = reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr;
    std::memset(prefix.s6_addr + 8, 0, 8);
    char text[INET6_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET6, &prefix, text, sizeof text);
    return std::string(text) + "/64";
}

std::string format_address(const sockaddr* address, int length) {
    char text[INET6_ADDRSTRLEN] = "?";
    in_addr mapped;
    if (v4_mapped(address, length, mapped)) {
        inet_ntop(AF_INET, &mapped, text, sizeof text);
        return std::string(text) + ":" + std::to_string(ntohs(reinterpret_cast<const sockaddr_in6*>(address)->sin6_port));
    }
    if (address->sa_family == AF_INET && length >= int(sizeof(sockaddr_in))) {
        auto* in = reinterpret_cast<const sockaddr_in*>(address);
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        return std::string(text) + ":" + std::to_string(ntohs(in->sin_port));
    }
    if (address->sa_family == AF_INET6 && length >= int(sizeof(sockaddr_in6))) {
        auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        return "[" + std::string(text) + "]:" + std::to_string(ntohs(in6->sin6_port));
    }
    return "unknown address";
}

}  // namespace dtcall

namespace dtcall {

bool parse_address(const std::string& text, sockaddr_storage& out, socklen_t& length) {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || colon + 1 == text.size() || text.size() - colon - 1 > 5) return false;
    unsigned long port = 0;
    for (std::size_t i = colon + 1; i < text.size(); ++i) {
        if (text[i] < '0' || text[i] > '9') return false;
        port = port * 10 + unsigned(text[i] - '0');
    }
    if (port > 65535) return false;
    std::string host = text.substr(0, colon);
    out = {};
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        auto& v6 = reinterpret_cast<sockaddr_in6&>(out);
        if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &v6.sin6_addr) != 1) return false;
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons(std::uint16_t(port));
        length = sizeof v6;
        return true;
    }
    auto& v4 = reinterpret_cast<sockaddr_in&>(out);
    if (inet_pton(AF_INET, host.c_str(), &v4.sin_addr) != 1) return false;
    v4.sin_family = AF_INET;
    v4.sin_port = htons(std::uint16_t(port));
    length = sizeof v4;
    return true;
}

void map_to_v6(sockaddr_storage& address, socklen_t& length) {
    if (address.ss_family != AF_INET) return;
    sockaddr_in v4 = reinterpret_cast<const sockaddr_in&>(address);
    sockaddr_in6 v6{};
    v6.sin6_family = AF_INET6;
    v6.sin6_port = v4.sin_port;
    v6.sin6_addr.s6_addr[10] = 0xff;
    v6.sin6_addr.s6_addr[11] = 0xff;
    std::memcpy(&v6.sin6_addr.s6_addr[12], &v4.sin_addr, 4);
    address = {};
    std::memcpy(&address, &v6, sizeof v6);
    length = sizeof v6;
}

}  // namespace dtcall
