// Where the cluster's Redis is (`cluster_redis` in dtcalld.conf(5)):
// "unix:/run/redis/redis.sock" or "HOST:PORT" ("10.0.0.5:6379",
// "redis.example:6379", "[fd00::5]:6379"). Pure parsing, no lookups.
#pragma once

#include <dtcall/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace dtcall::cluster {

struct RedisAddress {
    std::string unix_path;  // non-empty: a Unix socket, host and port unused
    std::string host;       // a name or an IP literal, without brackets
    std::uint16_t port = 0;
    bool is_unix() const { return !unix_path.empty(); }
    std::string text() const;  // as written in a conf file, for logs
};

// Errors say what is wrong with the value, without file or key.
Result<RedisAddress> parse_redis_address(std::string_view text);

// NAME of `node_name`: 1-64 of [0-9A-Za-z._-].
bool valid_node_name(std::string_view name);

}  // namespace dtcall::cluster
