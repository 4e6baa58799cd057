// Socket addresses as text, for logs, observers and per-address limits.
#pragma once

#include <string>

struct sockaddr;

namespace dtcall {

// "ip:port" (IPv6 as "[ip]:port").
std::string format_address(const sockaddr* address, int length);
// The IP alone ("127.0.0.1", "::1").
std::string format_ip(const sockaddr* address, int length);
// The network a per-source limit counts by: an IPv4 address as is, an IPv6
// address by its /64 ("2001:db8:1:2::/64"), since one host usually holds a
// whole /64 and could otherwise dodge any per-address limit.
std::string source_network(const sockaddr* address, int length);

}  // namespace dtcall
