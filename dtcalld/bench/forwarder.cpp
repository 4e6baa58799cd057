#include "forwarder.hpp"

#include "relay/datagram_batch.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_map>
#include <vector>

namespace dtbench {
namespace {

constexpr int batches_per_wakeup = 8;  // as dtcalld: then look at the control pipe

void write_line(int fd, const std::string& line) {
    std::string text = line + "\n";
    (void)!::write(fd, text.data(), text.size());
}

std::uint64_t key_of(const sockaddr_in& a) {
    return (std::uint64_t(a.sin_addr.s_addr) << 16) | a.sin_port;
}

const sockaddr_in& as_in(const sockaddr* a) { return *reinterpret_cast<const sockaddr_in*>(a); }

struct Forwarder {
    int fd = -1;
    std::unordered_map<std::uint64_t, sockaddr_in> routes;  // source -> peer
    std::unordered_map<std::size_t, sockaddr_in> first_side[2];
    std::uint64_t forwarded = 0, bytes = 0, dropped = 0, registrations = 0;

    // The same batching as dtcalld's relay, so that the two differ only in
    // what they do per packet.
    dtcall::DatagramBatch batch;
    void registration(const std::uint8_t* data, std::size_t size, const sockaddr_in& source) {
        char text[64] = {};
        std::memcpy(text, data, std::min(size, sizeof text - 1));
        unsigned long pair = 0;
        int side = -1;
        if (std::sscanf(text, "REG %lu %d", &pair, &side) != 2 || (side != 0 && side != 1)) {
            ++dropped;
            return;
        }
        first_side[side][pair] = source;
        auto other = first_side[1 - side].find(pair);
        if (other != first_side[1 - side].end()) {
            routes[key_of(source)] = other->second;
            routes[key_of(other->second)] = source;
        }
        ++registrations;
        std::string ack = forwarder_ack(pair, side);
        sendto(fd, ack.data(), ack.size(), MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&source), sizeof source);
    }

    void read_batches() {
        for (int round = 0; round < batches_per_wakeup; ++round) {
            unsigned got = batch.receive(fd);
            for (unsigned i = 0; i < got; ++i) {
                const sockaddr_in& from = as_in(batch.from(i));
                auto route = routes.find(key_of(from));
                if (route == routes.end()) {
                    if (batch.length(i) >= 4 && std::memcmp(batch.data(i), "REG ", 4) == 0)
                        registration(batch.data(i), batch.length(i), from);
                    else ++dropped;
                    continue;
                }
                batch.forward(i, reinterpret_cast<const sockaddr*>(&route->second), sizeof route->second, fd);
                ++forwarded;
                bytes += batch.length(i);
            }
            unsigned refused = batch.flush();
            forwarded -= refused;
            dropped += refused;
            if (got < dtcall::DatagramBatch::size) return;
        }
    }
};

}  // namespace

std::string forwarder_registration(std::size_t pair, int side) {
    return "REG " + std::to_string(pair) + " " + std::to_string(side);
}

std::string forwarder_ack(std::size_t pair, int side) {
    return "ACK " + std::to_string(pair) + " " + std::to_string(side);
}

int run_forwarder_child(const std::string& address, int requests, int answers) {
    Forwarder f;
    sockaddr_in bind_to{};
    bind_to.sin_family = AF_INET;
    if (inet_pton(AF_INET, address.c_str(), &bind_to.sin_addr) != 1) {
        write_line(answers, "error \"" + address + "\" is not an IPv4 address");
        return 1;
    }
    f.fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    // The same receive buffer dtcalld asks for, so neither gets more room to absorb bursts.
    int buffer_size = 8 * 1024 * 1024;
    setsockopt(f.fd, SOL_SOCKET, SO_RCVBUF, &buffer_size, sizeof buffer_size);
    if (f.fd < 0 || bind(f.fd, reinterpret_cast<sockaddr*>(&bind_to), sizeof bind_to) != 0) {
        write_line(answers, std::string("error cannot bind UDP ") + address + ": " + std::strerror(errno));
        return 1;
    }
    socklen_t length = sizeof bind_to;
    getsockname(f.fd, reinterpret_cast<sockaddr*>(&bind_to), &length);
    write_line(answers, "ready " + std::to_string(ntohs(bind_to.sin_port)));

    std::string pending;
    for (;;) {
        pollfd watch[2] = {{f.fd, POLLIN, 0}, {requests, POLLIN, 0}};
        int ready = poll(watch, 2, -1);
        if (ready < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (watch[0].revents & POLLIN) f.read_batches();
        if (watch[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            char chunk[256];
            ssize_t got = read(requests, chunk, sizeof chunk);
            if (got <= 0) break;  // the parent closed its end
            pending.append(chunk, std::size_t(got));
            for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
                std::string request = pending.substr(0, nl);
                pending.erase(0, nl + 1);
                if (request == "stats") {
                    write_line(answers, "stats " + std::to_string(f.forwarded) + " " + std::to_string(f.bytes) + " " +
                                            std::to_string(f.dropped) + " " + std::to_string(f.registrations) +
                                            " 0 0 " + std::to_string(f.routes.size() / 2));
                } else {
                    write_line(answers, "error unknown request");
                }
            }
            if (pending.size() > 4096) pending.clear();
        }
    }
    close(f.fd);
    return 0;
}

}  // namespace dtbench
