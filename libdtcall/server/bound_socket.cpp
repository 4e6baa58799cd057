#include "io/system_error.hpp"
#include "bound_socket.hpp"

#include <event2/util.h>

#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <unistd.h>

namespace dtcall {
namespace {

bool ipv6_available() {
    int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

ListenAddress any(int family) {
    ListenAddress where;
    if (family == AF_INET6) {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&where.address);
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_any;
        where.length = sizeof(sockaddr_in6);
        where.text = "::";
    } else {
        auto* in = reinterpret_cast<sockaddr_in*>(&where.address);
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_ANY);
        where.length = sizeof(sockaddr_in);
        where.text = "0.0.0.0";
    }
    return where;
}

}  // namespace

Result<std::vector<ListenAddress>> plan_listen_addresses(const std::vector<std::string>& configured) {
    std::vector<ListenAddress> plan;
    if (configured.empty()) {
        plan.push_back(any(ipv6_available() ? AF_INET6 : AF_INET));
        return plan;
    }
    bool any_ipv4 = false;
    for (const std::string& text : configured) {
        ListenAddress where;
        where.text = text;
        int length = sizeof where.address;
        std::string bare = text.size() > 2 && text.front() == '[' && text.back() == ']'
                               ? text.substr(1, text.size() - 2)
                               : text;
        if (bare.find_first_of("[]") != std::string::npos ||
            evutil_parse_sockaddr_port(bare.c_str(), reinterpret_cast<sockaddr*>(&where.address), &length) != 0 ||
            reinterpret_cast<sockaddr_in*>(&where.address)->sin_port != 0) {
            return Error{ErrorCode::bad_address, "listen: \"" + text + "\" is not an IPv4 or IPv6 address (no port; ports are set apart)"};
        }
        where.length = socklen_t(length);
        any_ipv4 = any_ipv4 || where.address.ss_family == AF_INET;
        plan.push_back(where);
    }
    // "::" serves IPv4 too unless IPv4 addresses are listed beside it (then
    // both would claim the same IPv4 port).
    for (ListenAddress& where : plan) {
        if (where.address.ss_family != AF_INET6) continue;
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&where.address);
        bool unspecified = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
        where.v6_only = !unspecified || any_ipv4;
    }
    return plan;
}

Result<int> open_bound_socket(const ListenAddress& where, std::uint16_t port, int type, int backlog,
                              const char* what, bool reuse_port) {
    sockaddr_storage address = where.address;
    if (address.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&address)->sin_port = htons(port);
    else reinterpret_cast<sockaddr_in6*>(&address)->sin6_port = htons(port);
    std::string name = std::string(what) + ": " + (type == SOCK_STREAM ? "TCP " : "UDP ") + where.text +
                       " port " + std::to_string(port);
    int fd = ::socket(address.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return system_error(name + ": cannot create a socket", errno);
    int one = 1;
    if (type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        int err = errno;
        ::close(fd);
        return system_error(name + ": cannot set SO_REUSEPORT", err);
    }
    if (address.ss_family == AF_INET6) {
        int v6_only = where.v6_only ? 1 : 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6_only, sizeof v6_only);
    }
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), where.length) != 0 ||
        (type == SOCK_STREAM && ::listen(fd, backlog) != 0)) {
        int err = errno;
        ::close(fd);
        return system_error(name + ": cannot bind", err);
    }
    return fd;
}

std::uint16_t bound_port(int fd) {
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) != 0) return 0;
    return ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                            : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
}

}  // namespace dtcall
