// The traffic engine behind relay and baseline: every party has an address
// the relay knows as a registered media address; each sends S-byte datagrams
// to the relay at R packets/s (or as fast as it can) and counts what arrives
// from its peer. It runs on its own, outside libevent: one thread, a timerfd
// for pacing, recvmmsg for reading and sendmmsg for sending. The parties
// either all live on one shared socket (shared_media.hpp: 64 parties' packets
// per system call), or each owns a socket (a relay that is not on loopback).
//
// Pacing: the parties' sends are spread evenly over time (party j % N sends
// packet j at t0 + j / (N * R)), so 500 pairs x 50 pps is 50 000 evenly spaced
// packets per second, not bursts of 1000 every 20 ms. How late each send was
// against its schedule is recorded too.
//
// Payload (host byte order: both ends are this machine):
//   u32 magic | u32 sender party | u32 sequence | i64 send time (CLOCK_MONOTONIC ns) | padding
#pragma once

#include "histogram.hpp"

#include <cstdint>
#include <functional>
#include <netinet/in.h>
#include <string>
#include <vector>

namespace dtbench {

constexpr std::size_t media_header_size = 20;

struct MediaParty {
    int fd = -1;          // own socket, connected to the relay (not owned); -1 with a shared socket
    std::uint32_t peer;   // index of the party whose datagrams should arrive here
    std::uint32_t address = 0;  // shared socket: the party's SharedMedia number
    std::uint32_t node = 0;     // shared socket with nodes: where it sends (SharedSocket::nodes)
};

// All parties on one SharedMedia socket (not owned).
struct SharedSocket {
    int fd = -1;
    sockaddr_in relay{};
    std::vector<sockaddr_in> nodes;  // --nodes: party p sends to nodes[p.node], not to relay
};

struct MediaSettings {
    double rate = 50;       // packets/s per party; 0 = open loop
    std::size_t size = 100;
    double duration = 10;   // seconds of sending
    double drain = 1.0;     // at most this long after sending for stragglers
    // Paced: least time between two send bursts (every packet due by then
    // goes in one sendmmsg). See --tick in dtcall-bench(1).
    std::int64_t tick_ns = 50000;
    // Called about once a second with a status line.
    std::function<void(const std::string&)> progress;
};

struct MediaResult {
    std::uint64_t sent = 0;
    std::uint64_t send_failures = 0;   // the kernel refused the datagram
    std::uint64_t delivered = 0;
    std::uint64_t misrouted = 0;       // ours, but from a party that is not the peer
    std::uint64_t foreign = 0;         // not our payload (late acks, junk)
    double send_seconds = 0;           // first to last send
    Histogram latency;                 // one-way, send -> receive, ns
    Histogram lateness;                // paced sends: actual - scheduled, ns
    std::int64_t generator_cpu_ns = 0; // our own CPU (getrusage) over the run
    std::vector<std::uint64_t> delivered_to;  // per party: its peer's packets that reached it
    std::string error;                 // set when the run could not start
};

// `shared` null: every party sends and reads on its own fd.
MediaResult run_media(const std::vector<MediaParty>& parties, const MediaSettings& settings,
                      const SharedSocket* shared = nullptr);

// The payload header, for senders outside the engine (calls with --hold).
void stamp_media(std::uint8_t* packet, std::uint32_t sender, std::uint32_t sequence, std::int64_t send_ns);
// True for one of our payloads; fills its sender and send time.
bool read_media(const std::uint8_t* packet, std::size_t size, std::uint32_t& sender, std::int64_t& send_ns);
// CLOCK_MONOTONIC in nanoseconds: the clock of the payload's send time.
std::int64_t monotonic_ns();

}  // namespace dtbench
