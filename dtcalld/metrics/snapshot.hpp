// What one scrape of /metrics shows: the server's own counters and gauges
// (dtcall::ServerStats), what the MetricsObserver counted by reason, the
// process figures from /proc, the version, and on a cluster node its Redis
// side (RedisCluster::stats()). Plain values: rendering it
// (render.hpp) needs no server, socket or clock.
#pragma once

#include "cluster/cluster_stats.hpp"

#include <dtcall/server.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace dtcalld::metrics {

// Every value of the library's enums, in declaration order; label values
// are their to_string() names with '_' for ' ' (metrics_label()).
constexpr std::array<dtcall::EndReason, 9> end_reasons{
    dtcall::EndReason::hangup,          dtcall::EndReason::declined,        dtcall::EndReason::cancelled,
    dtcall::EndReason::relogin,         dtcall::EndReason::peer_vanished,   dtcall::EndReason::busy,
    dtcall::EndReason::refused,         dtcall::EndReason::server_stopping, dtcall::EndReason::ended_by_server,
};
constexpr std::array<dtcall::LoginFailure, 6> login_failures{
    dtcall::LoginFailure::unknown_user, dtcall::LoginFailure::bad_response,    dtcall::LoginFailure::rate_limited,
    dtcall::LoginFailure::unusable_key, dtcall::LoginFailure::directory_error, dtcall::LoginFailure::refused,
};
constexpr std::array<dtcall::Limit, dtcall::limit_count> limits{
    dtcall::Limit::connections,  dtcall::Limit::unauthenticated_per_source, dtcall::Limit::failed_logins,
    dtcall::Limit::output_bytes, dtcall::Limit::frame_size,                 dtcall::Limit::unregistered_datagrams,
};

// Upper bounds (seconds) of the call-setup histogram. Setup runs from `call`
// to `start`, so it includes the time the callee's phone rang.
constexpr std::array<double, 10> setup_bounds{0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120};

struct SetupHistogram {
    std::array<std::uint64_t, setup_bounds.size()> buckets{};  // per bound, not cumulative
    std::uint64_t count = 0;                                  // all, +Inf included
    double sum_seconds = 0;
};

// What the observer counts that ServerStats has only as totals.
struct ObservedCounts {
    std::array<std::uint64_t, end_reasons.size()> calls_ended{};        // by end_reasons index
    std::array<std::uint64_t, login_failures.size()> login_failed{};    // by login_failures index
    SetupHistogram setup;
};

// Figures of this process; a figure /proc could not give is nullopt and
// left out of the output.
struct ProcessFigures {
    std::optional<double> cpu_seconds;          // user + system
    std::optional<std::uint64_t> resident_bytes;
    std::optional<std::uint64_t> virtual_bytes;
    std::optional<std::uint64_t> open_fds;
    std::optional<std::uint64_t> max_fds;       // soft RLIMIT_NOFILE
    std::optional<double> start_time_seconds;   // since the Unix epoch
};

struct MetricsSnapshot {
    dtcall::ServerStats server;
    ObservedCounts observed;
    ProcessFigures process;
    std::string version;
    // Set only when dtcalld runs as a cluster node: the dtcall_cluster_*
    // families are rendered then, and not at all on a single node.
    std::optional<dtcall::cluster::ClusterStats> cluster;
};

// "peer vanished" -> "peer_vanished".
std::string metrics_label(const char* name);

}  // namespace dtcalld::metrics
