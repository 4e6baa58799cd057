// The in-process server: a dtcall::Server on its own event_base in a child
// process (ChildProcess), with throwaway keys and users, on 127.0.0.1 with
// free ports. It answers the parent's "stats" request with its counters.
// With `cluster` set (--nodes), it is one node of a cluster: a RedisCluster
// on the bench's redis-server attached before start; "cluster" answers
// whether Redis is reachable and how many remote users the node knows.
#pragma once

#include <dtcall/config.hpp>
#include "cluster/cluster_key.hpp"
#include "crypto/crypto.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dtbench {

struct ClusterNodeSetup {
    std::string redis_socket;  // the bench's redis-server (Unix socket)
    std::string node;          // node_name: node1 ... nodeN
    std::string node_address = "127.0.0.1:0";  // the Server binds it and tells the link
    dtcall::cluster::ClusterKey key;
};

struct ServerChildSetup {
    dtcall::Config config;
    std::vector<std::pair<std::string, dtcall::PublicKey>> users;
    std::optional<ClusterNodeSetup> cluster;
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
    std::uint64_t node_packets_sent = 0;      // cluster: clients' datagrams sent on to another node
    std::uint64_t node_packets_received = 0;  // cluster: from other nodes, sent on to a user here
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

// The answer to "cluster": Redis reachable (both links), and the remote
// users this node's cache holds.
struct ClusterView {
    bool available = false;
    std::size_t remote_users = 0;
};
std::optional<ClusterView> parse_cluster_view(const std::string& line);

}  // namespace dtbench
