// Where a Server listens: the configured addresses turned into sockets, one
// per address, for TCP and UDP alike. Empty = every IPv4 and IPv6 address, as
// one dual-stack socket on "::" (IPv4 peers appear as ::ffff:a.b.c.d), or
// "0.0.0.0" on a host without IPv6.
#pragma once

#include <dtcall/result.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include <sys/socket.h>

namespace dtcall {

struct ListenAddress {
    sockaddr_storage address{};
    socklen_t length = 0;
    bool v6_only = false;
    std::string text;  // as configured, for messages
};

Result<std::vector<ListenAddress>> plan_listen_addresses(const std::vector<std::string>& configured);

// A bound socket (SOCK_STREAM listening with `backlog`, or SOCK_DGRAM),
// non-blocking and close-on-exec. `reuse_port`: SO_REUSEPORT, so that
// several sockets (relay threads) share the address. Errors name the
// address, port and reason.
Result<int> open_bound_socket(const ListenAddress& where, std::uint16_t port, int type, int backlog,
                              const char* what, bool reuse_port = false);

std::uint16_t bound_port(int fd);

}  // namespace dtcall
