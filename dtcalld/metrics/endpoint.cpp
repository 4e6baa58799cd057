#include "endpoint.hpp"

#include <arpa/inet.h>

#include <charconv>

namespace dtcalld::metrics {

std::string Endpoint::text() const {
    std::string port_text = std::to_string(port);
    return ipv6() ? "[" + host + "]:" + port_text : host + ":" + port_text;
}

dtcall::Result<Endpoint> parse_endpoint(std::string_view text) {
    const std::string expected = "is not ADDRESS:PORT (such as 127.0.0.1:9641 or [::1]:9641)";
    std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return dtcall::Error{expected};
    std::string_view host = text.substr(0, colon);
    std::string_view port = text.substr(colon + 1);
    bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
    if (bracketed) host = host.substr(1, host.size() - 2);

    Endpoint out;
    out.host = std::string(host);
    unsigned char buffer[16];
    bool v4 = ::inet_pton(AF_INET, out.host.c_str(), buffer) == 1;
    bool v6 = ::inet_pton(AF_INET6, out.host.c_str(), buffer) == 1;
    if (!v4 && !v6) return dtcall::Error{expected + ": \"" + out.host + "\" is not an IPv4 or IPv6 address"};
    if (v6 && !bracketed) return dtcall::Error{expected + ": an IPv6 address goes in brackets"};
    if (v4 && bracketed) return dtcall::Error{expected};

    unsigned number = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || number > 65535) {
        return dtcall::Error{expected + ": \"" + std::string(port) + "\" is not a port number (0-65535)"};
    }
    out.port = std::uint16_t(number);
    return out;
}

}  // namespace dtcalld::metrics
