// Socket addresses as text, for logs, observers and per-address limits.
#pragma once

#include <string>

struct sockaddr;

namespace dtcall {

// "ip:port" (IPv6 as "[ip]:port").
std::string format_address(const sockaddr* address, int length);
// The IP alone ("127.0.0.1", "::1").
std::string format_ip(const sockaddr* address, int length);

}  // namespace dtcall
