// "127.0.0.1:9641" or "[::1]:9641": where the metrics endpoint listens.
// An IP literal (IPv6 in brackets) and a port; port 0 lets the kernel pick
// (tests), and the bound port is then logged.
#pragma once

#include <dtcall/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace dtcalld::metrics {

struct Endpoint {
    std::string host;  // without brackets: "127.0.0.1", "::1"
    std::uint16_t port = 0;
    bool ipv6() const { return host.find(':') != std::string::npos; }
    // "127.0.0.1:9641", "[::1]:9641"
    std::string text() const;
    std::string with_port(std::uint16_t other) const { return Endpoint{host, other}.text(); }
};

// Errors say what is wrong with the value, without file or key (the conf
// parser adds those).
dtcall::Result<Endpoint> parse_endpoint(std::string_view text);

}  // namespace dtcalld::metrics
