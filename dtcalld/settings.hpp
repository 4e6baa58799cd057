// A settings directory laid out like the original dtoperator's:
//   DIR/dtcalld.conf   (or DIR/dtoperator.conf, so an old directory works as is)
//   DIR/users          (read by dtcall::UsersFile; the conf's `users` may
//                       name another file, or `users_db` a SQLite database)
//   the server's key files, wherever the conf says (relative to DIR).
#pragma once

#include "metrics/endpoint.hpp"

#include "cluster/cluster_key.hpp"
#include "cluster/redis_address.hpp"

#include <dtcall/config.hpp>
#include <dtcall/result.hpp>
#include <dtcall/server.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace dtcalld {

constexpr const char* default_settings_dir = "/etc/dtoperator";
constexpr const char* default_log_dir = "/var/log/dtoperator";

// The cluster keys of dtcalld.conf(5), checked as a set, with the cluster
// key read (its file must be mode 0600 or stricter).
struct ClusterSettings {
    dtcall::cluster::RedisAddress redis;
    std::string node_name;          // node_name, or the host name
    metrics::Endpoint node_address; // where other nodes send this node media
    std::string key_path;           // resolved against the settings dir
    dtcall::cluster::ClusterKey key;  // wipes itself
    std::chrono::seconds ttl{15};   // cluster_ttl
    int redis_line = 0;             // where cluster_redis is (a lookup failing at start names it)
};

struct Settings {
    dtcall::Config config;  // server_keys filled in and checked
    std::string conf_path;
    std::string users_path;     // the users file, when users_db is not set
    std::string users_db_path;  // the SQLite user directory, or empty
    int max_connections_line = 0;  // 0: not in the conf file (the default)
    dtcall::LogLevel log_level = dtcall::LogLevel::info;
    std::optional<metrics::Endpoint> metrics;  // the metrics endpoint; nullopt = off
    std::string control_path;   // resolved against the settings dir; empty = no control socket
    std::string control_group;  // empty = mode 0600
    std::optional<ClusterSettings> cluster;  // nullopt: a single node (no cluster keys)
    std::vector<std::string> warnings;  // one line each, naming file and line
    // Where users_db, metrics, control and control_group were set (0: not
    // set), so errors found later (at open or bind) can name the conf line.
    int users_db_line = 0;
    int metrics_line = 0;
    int control_line = 0;
    int control_group_line = 0;
    // The same for the sockets server.start() opens (node_address: only on
    // a cluster node).
    int command_line = 0;
    int media_line = 0;
    int listen_line = 0;
    int node_address_line = 0;
};

// "CONF:LINE: KEY: WHAT", the conf parser's style, for an error found after
// parsing (a socket that cannot be bound, a database that cannot be opened).
// A leading "KEY: " already in `what` is not repeated. Line 0 (a key left
// at its default) gives "CONF: (default) KEY: WHAT".
std::string conf_error(const Settings& settings, int line, const std::string& key, std::string what);

// Reads the conf file and both key files. The error is one line naming the
// file, the line and the key at fault. A private key file readable or
// writable by group or others is an error, not a warning; so is a cluster
// key file.
dtcall::Result<Settings> load_settings(const std::string& dir);

// `path` as seen from `dir`: absolute paths stay, relative ones are joined.
std::string resolve_path(const std::string& dir, const std::string& path);

}  // namespace dtcalld
