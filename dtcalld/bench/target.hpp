// The server under test, as the modes see it: where to connect, which key to
// pin, which users exist, and (when known) which process to measure.
//   in-process: a ChildProcess running dtcall::Server on 127.0.0.1, ports 0,
//               throwaway server key and users;
//   external:   --host/--port/--media-port, --server-key, --users, and
//               optionally --server-pid;
//   cluster:    --nodes N > 1: the bench's own redis-server and N in-process
//               nodes (node1 ... nodeN), sharing the server key and users.
#pragma once

#include "child_process.hpp"
#include "event_loop.hpp"
#include "key_material.hpp"
#include "options.hpp"
#include "phone.hpp"
#include "redis_process.hpp"
#include "server_child.hpp"

#include "crypto/crypto.hpp"
#include <dtcall/result.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dtbench {

struct Target {
    std::string host;
    std::uint16_t port = 0;
    std::uint16_t media_port = 0;
    dtcall::PublicKey server_key;
    std::vector<BenchUser> users;
    std::optional<pid_t> pid;           // to read RSS and CPU from /proc
    std::string description;            // one line for the report
    std::unique_ptr<ChildProcess> child;  // in-process only
    std::vector<std::string> notes;     // settings that differ from dtcalld's defaults

    // --nodes N > 1: node i (0-based) is "node<i+1>"; host above is theirs
    // (127.0.0.1), port/media_port/pid/child above are unused.
    struct Node {
        std::string name;
        std::uint16_t port = 0;
        std::uint16_t media_port = 0;
        pid_t pid = -1;
        std::optional<int> cpu;
        std::unique_ptr<ChildProcess> child;
    };
    std::vector<Node> nodes;
    std::unique_ptr<RedisProcess> redis;
    bool cluster() const { return !nodes.empty(); }
    std::optional<ServerCounters> node_counters(std::size_t node);
    std::optional<ClusterView> node_view(std::size_t node);
    // Every node sees every user logged in on the others (its remote-user
    // cache holds them all), or an error after `within` naming the node that
    // lags and what it sees.
    dtcall::Status wait_for_presence(std::chrono::milliseconds within);

    // The in-process server's own counters (nullopt for an external server).
    ~Target() { stop(); }  // every child and the redis-server, on every path

    std::optional<ServerCounters> counters();
    // How long the in-process server takes to build dtcalld's /metrics body
    // now (nullopt for an external server: scrape its endpoint instead).
    std::optional<ScrapeTiming> scrape();
    void stop();
};

// `users_needed` in-process users are made (named u000001...); an external
// server's users come from --users DIR and must number at least
// `users_needed` when `distinct_users` (idle, calls, relay: one connection
// per user); login cycles may reuse users.
// `node_cpus`: with --nodes N > 1 and --pin, the CPUs of node i are
// node_cpus[i % size]; else `server_cpu`.
dtcall::Result<std::unique_ptr<Target>> open_target(const Options& options, std::size_t users_needed,
                                                    bool distinct_users, std::optional<int> server_cpu,
                                                    const std::vector<int>& node_cpus = {});

// What the modes that hold phones (idle, calls, relay) share: the server,
// an event loop, a pool of handshake hellos, and the phones' context aimed at
// the server (its addresses and key, the heartbeat from the options).
struct Rig {
    std::unique_ptr<Target> target;
    std::unique_ptr<Loop> loop;  // made after the server child is forked
    std::unique_ptr<HelloPool> hellos;
    PhoneContext context;
};

// open_target with one user per connection, then the rest of the Rig.
// With --nodes N > 1, `node_of` says which node phone i talks to (TCP and
// UDP); the phones' context then aims each phone at its node.
dtcall::Result<std::unique_ptr<Rig>> rig_up(const Options& options, std::size_t users_needed,
                                            std::optional<int> server_cpu, const std::vector<int>& node_cpus = {},
                                            std::function<std::size_t(std::size_t)> node_of = nullptr);

// Placements over N nodes: a pair's caller (phone 2k) on node k % N, its
// callee (2k+1) on node (k+1) % N, so every call crosses nodes; idle
// sessions round robin.
std::size_t pair_node(std::size_t phone, std::size_t nodes);
std::size_t round_robin_node(std::size_t phone, std::size_t nodes);

}  // namespace dtbench
