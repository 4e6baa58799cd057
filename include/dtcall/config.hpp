// Everything a Server needs to know, with the defaults dtcalld uses when the
// conf file is silent (documented in dtcalld.conf(5)).
#pragma once

#include <dtcall/keys.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

namespace dtcall {

struct Config {
    // Addresses the TCP and UDP sockets bind to: IPv4 or IPv6 literals
    // ("127.0.0.1", "::1", "[::1]"), one socket of each kind per address.
    // Empty: every IPv4 and IPv6 address, as one dual-stack socket on "::"
    // (IPv4 peers show as plain IPv4), or 0.0.0.0 on a host without IPv6.
    std::vector<std::string> listen_addresses;
    std::uint16_t command_port = 1991;  // TCP; 0 = pick a free port
    std::uint16_t media_port = 1961;    // UDP; 0 = pick a free port
    KeyPair server_keys;

    // Accepted distance of a command's timestamp from our clock, in seconds.
    std::time_t timestamp_window = 300;
    // An unauthenticated connection must finish handshake + login in this time.
    std::chrono::milliseconds login_timeout{15000};
    // Logged-in connections that send nothing (not even `D`) for this long are
    // closed; 0 = never. Clients heartbeat every 5 minutes: the default is
    // above two periods, so one lost heartbeat costs nobody their connection,
    // and a phone that vanished is offline within 11 minutes at most.
    std::chrono::milliseconds idle_timeout{660000};
    // TCP keepalive on command connections: after this much silence the
    // kernel probes the peer every 10 s and resets the connection after 6
    // unanswered probes, so a host that vanished (network lost, battery out)
    // is offline about 2 minutes after its last byte (60 s + 6 x 10 s).
    // 0 = off (no probes; only idle_timeout notices the ghost).
    std::chrono::seconds tcp_keepalive{60};
    // Least time between two frames to one client (clients cannot reassemble
    // two pending frames), unless the client's last message needed our last
    // frame (login2 after login1resp...). Above TCP's 200 ms minimum
    // retransmission delay, so one lost segment does not merge two frames.
    // 0 turns pacing off (benchmarks only).
    std::chrono::milliseconds frame_gap{300};
    // How long `direct` waits for the callee's media registration.
    std::chrono::milliseconds direct_hold{1000};
    // After a client in a call drops, how long its peer waits for it to log
    // back in with keepudp before the call is ended.
    std::chrono::milliseconds call_grace{120000};

    // Largest plaintext accepted in one frame before and after login. A login2
    // with its 200-character challenge is about 280 bytes; passthrough ~300.
    std::size_t max_frame_before_login = 512;
    std::size_t max_frame_after_login = 2048;
    // A client whose unsent output exceeds this is dropped.
    std::size_t max_output_bytes = 64 * 1024;
    // Total command connections held at once; more are refused at accept.
    std::size_t max_connections = 19000;
    // Largest UDP datagram read and relayed.
    std::size_t max_datagram = 65536;
    // Threads that relay media besides the event-loop thread, each with its
    // own SO_REUSEPORT socket per listen address (the kernel spreads peers
    // over them by address). 0: the event-loop thread relays everything.
    // Registrations are always handled by the event-loop thread; the
    // threads' table follows call changes after a short delay (MediaRelay).
    unsigned media_threads = 0;

    // Connections from one IP address that have not logged in yet.
    std::size_t max_unauthenticated_per_ip = 64;
    // Failed logins per source IP and per user name: a burst, then this many
    // per minute. Past it, login1 is answered `invalid` and the connection closed.
    double failed_login_burst = 10;
    double failed_logins_per_minute = 6;
    // Command frames remembered per connection to refuse replays. A connection
    // can send at most this many commands within one second (clients send a
    // handful per call); 16 bytes each, only while in use.
    std::size_t replay_memory = 64;
    // Datagrams per second from one address that is not a registered media
    // address (registration attempts, junk); past it they are dropped unread.
    double unregistered_packets_per_second = 50;
};

}  // namespace dtcall
