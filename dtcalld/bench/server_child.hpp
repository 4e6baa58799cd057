// The in-process server: a dtcall::Server on its own event_base in a child
// process (ChildProcess), with throwaway keys and users, on 127.0.0.1 with
// free ports. It answers the parent's "stats" request with its counters.
#pragma once

#include <dtcall/config.hpp>
#include "crypto/crypto.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dtbench {

struct ServerChildSetup {
    dtcall::Config config;
    std::vector<std::pair<std::string, dtcall::PublicKey>> users;
};

// The child's body: serves until the request pipe closes. Writes
// "ready TCP_PORT UDP_PORT" once listening, or "error REASON".
int run_server_child(const ServerChildSetup& setup, int requests, int answers);

struct ServerCounters {
    std::uint64_t relayed_packets = 0;
    std::uint64_t relayed_bytes = 0;
    std::uint64_t dropped_packets = 0;
    std::uint64_t registrations = 0;
    std::uint64_t connections = 0;
    std::uint64_t logged_in = 0;
    std::uint64_t calls = 0;
};

// The answer to "stats"; nullopt when it is not one.
std::optional<ServerCounters> parse_server_counters(const std::string& line);

// The answer to "scrape": the worst of five renders of dtcalld's /metrics
// body in the server child, and the body's size.
struct ScrapeTiming {
    double worst_ms = 0;
    std::size_t bytes = 0;
};
std::optional<ScrapeTiming> parse_scrape_timing(const std::string& line);

}  // namespace dtbench
