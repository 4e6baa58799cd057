// Socket addresses as text, for logs, observers and per-address limits.
#pragma once

#include <string>

#include <sys/socket.h>

namespace dtcall {

// "ip:port" (IPv6 as "[ip]:port").
std::string format_address(const sockaddr* address, int length);
// The IP alone ("127.0.0.1", "::1").
std::string format_ip(const sockaddr* address, int length);
// The network a per-source limit counts by: an IPv4 address as is, an IPv6
// address by its /64 ("2001:db8:1:2::/64"), since one host usually holds a
// whole /64 and could otherwise dodge any per-address limit.
std::string source_network(const sockaddr* address, int length);
// "IPv4:PORT" or "[IPv6]:PORT" (numeric, port 0-65535) into `out`; false
// when it is not one (no name lookups).
bool parse_address(const std::string& text, sockaddr_storage& out, socklen_t& length);
// An IPv4 address as the IPv4-mapped IPv6 address a dual-stack socket
// sends to (::ffff:a.b.c.d); anything else unchanged.
void map_to_v6(sockaddr_storage& address, socklen_t& length);

}  // namespace dtcall
