// A minimal blocking HTTP/1.1 client for tests of the metrics endpoint:
// sends the bytes given, reads until the server closes or `patience` runs out.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace test_support {

struct HttpAnswer {
    bool connected = false;
    bool closed = false;   // the server closed the connection (EOF or reset)
    int status = 0;        // 0: no status line
    std::string head;      // status line and headers
    std::string body;
};

inline HttpAnswer http_exchange(std::uint16_t port, const std::string& request,
                                std::chrono::milliseconds patience = std::chrono::milliseconds(3000)) {
    HttpAnswer answer;
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return answer;
    timeval limit{static_cast<time_t>(patience.count() / 1000), static_cast<suseconds_t>(patience.count() % 1000 * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        return answer;
    }
    answer.connected = true;
    std::size_t sent = 0;
    while (sent < request.size()) {
        ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += std::size_t(n);
    }
    std::string all;
    char buffer[16384];
    for (;;) {
        ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n == 0) {
            answer.closed = true;
            break;
        }
        if (n < 0) {
            answer.closed = errno == ECONNRESET;
            break;
        }
        all.append(buffer, std::size_t(n));
    }
    ::close(fd);
    std::size_t split = all.find("\r\n\r\n");
    answer.head = all.substr(0, split);
    if (split != std::string::npos) answer.body = all.substr(split + 4);
    if (all.rfind("HTTP/1.", 0) == 0 && all.size() > 12) answer.status = std::atoi(all.c_str() + 9);
    return answer;
}

inline HttpAnswer http_get(std::uint16_t port, const std::string& path, const std::string& method = "GET") {
    return http_exchange(port, method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
}

}  // namespace test_support
