// The conf file, in the original dtoperator syntax: `key = value` lines, `#`
// starts a comment anywhere, blank lines are fine. Every key and its unit is
// documented in dtcalld.conf(5); keep the two in step.
#pragma once

#include "metrics/endpoint.hpp"

#include "cluster/redis_address.hpp"

#include <dtcall/config.hpp>
#include <dtcall/result.hpp>
#include <dtcall/server.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dtcalld {

struct ConfValues {
    // Ports, addresses, timeouts and limits, with the library's defaults
    // where the file is silent. server_keys is left empty: the key files are
    // read later, relative to the settings directory.
    dtcall::Config config;
    std::string public_key_path;   // as written in the file
    std::string private_key_path;
    int public_key_line = 0;       // where they were set, for error messages
    int private_key_line = 0;
    int max_connections_line = 0;  // 0: not set (for the open-files warning)
    // Where the sockets' keys were set (0: the default), so that a bind that
    // fails at start can name the line.
    int command_line = 0;
    int media_line = 0;
    int listen_line = 0;
    // Who may log in: a users file (default "users") or a SQLite database
    // (users_db); never both. As written; lines 0 when not set.
    std::string users_path;
    std::string users_db_path;
    int users_line = 0;
    int users_db_line = 0;
    dtcall::LogLevel log_level = dtcall::LogLevel::info;
    // `metrics = ADDRESS:PORT`: the Prometheus endpoint; absent = none.
    std::optional<metrics::Endpoint> metrics;
    int metrics_line = 0;
    // The control socket (dtcall-ctl(8)): empty = none; control_group empty =
    // mode 0600, else 0660 owned by that group.
    std::string control_path;
    std::string control_group;
    int control_line = 0;  // lines 0 when not set
    int control_group_line = 0;
    // Clustering through Redis (dtcalld.conf(5) "Cluster"): all unset = a
    // single node. When any is set, cluster_redis, node_address and
    // cluster_key must all be; node_name defaults to the host name (filled
    // in by load_settings, not here: parsing stays pure), cluster_ttl to 15 s.
    // Lines 0 = not set.
    struct Cluster {
        std::optional<dtcall::cluster::RedisAddress> redis;
        std::string node_name;
        std::optional<metrics::Endpoint> node_address;  // IP literal and port 1-65535
        std::string key_path;  // as written
        // cluster_ttl: how long a node's presence lives in Redis without a
        // heartbeat (RedisCluster::Options::ttl); 1-300 s.
        std::chrono::seconds ttl{15};
        int redis_line = 0, node_name_line = 0, node_address_line = 0, key_line = 0, ttl_line = 0;
        bool any() const { return redis_line || node_name_line || node_address_line || key_line || ttl_line; }
    } cluster;
    // "FILE:LINE: ..." for unknown or repeated keys: old confs may carry keys
    // we do not know, and that must not stop an upgrade.
    std::vector<std::string> warnings;
};

// Pure: no file access. On error, the one-line message names the file, the
// line and the key ("FILE:7: command: \"abc\" is not a port number (1-65535)").
dtcall::Result<ConfValues> parse_conf(std::string_view text, std::string_view file_name);

// Every key parse_conf knows, so a test can check dtcalld.conf(5) lists them all.
std::vector<std::string> conf_key_names();

}  // namespace dtcalld
