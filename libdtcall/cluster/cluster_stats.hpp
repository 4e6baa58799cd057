// What a cluster node reports about its Redis side (internal): plain values,
// read by RedisCluster::stats() and rendered by dtcalld's metrics
// (dtcall_cluster_*). No hiredis here: dtcalld's metrics library uses it
// without linking dtcall_redis.
#pragma once

#include "cluster/receiver.hpp"

#include <array>
#include <chrono>
#include <cstdint>

namespace dtcall::cluster {

// Upper bounds (seconds) of the Redis round-trip histogram: 100 µs (a Unix
// socket on an idle machine) to 1 s (a Redis in trouble).
constexpr std::array<double, 13> round_trip_bounds{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                   0.025,  0.05,    0.1,    0.25,  0.5,    1};

// Fixed buckets, filled in place: no allocation per observation.
struct RoundTripHistogram {
    std::array<std::uint64_t, round_trip_bounds.size()> buckets{};  // per bound (value <= bound), not cumulative
    std::uint64_t count = 0;                                        // all, those over the last bound included
    double sum_seconds = 0;

    void observe(std::chrono::steady_clock::duration elapsed) {
        double seconds = std::chrono::duration<double>(elapsed).count();
        if (seconds < 0) seconds = 0;
        for (std::size_t i = 0; i < round_trip_bounds.size(); ++i) {
            if (seconds <= round_trip_bounds[i]) {
                ++buckets[i];
                break;
            }
        }
        ++count;
        sum_seconds += seconds;
    }
};

struct ClusterStats {
    bool commands_connected = false;    // the link that sends commands
    bool subscriber_connected = false;  // the link that subscribes
    // Both links up: the node takes part in the cluster (ClusterLink::available()).
    bool redis_connected() const { return commands_connected && subscriber_connected; }
    RoundTripHistogram round_trips;     // the commands link's, send to reply
    std::uint64_t commands_sent = 0;
    std::uint64_t remote_users = 0;     // users online on the other nodes, as this node knows them
    std::uint64_t nodes = 0;            // other nodes known (heard from within the ttl)
    ReceiveCounters control;            // control messages received through Redis, by verdict
    std::uint64_t stored_rejected = 0;  // entries read from Redis that did not authenticate or broke a bound
    std::uint64_t queued = 0;           // messages for other nodes waiting for Redis (or for their node)
    std::uint64_t queue_dropped = 0;    // dropped from that queue: too many, or older than 5 minutes
};

}  // namespace dtcall::cluster
