#include <dtcall/address.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace dtcall {

std::string format_ip(const sockaddr* address, int length) {
    char text[INET6_ADDRSTRLEN] = "?";
    if (address->sa_family == AF_INET && length >= int(sizeof(sockaddr_in)))
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text, sizeof text);
    else if (address->sa_family == AF_INET6 && length >= int(sizeof(sockaddr_in6)))
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, text, sizeof text);
    return text;
}

std::string format_address(const sockaddr* address, int length) {
    char text[INET6_ADDRSTRLEN] = "?";
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
