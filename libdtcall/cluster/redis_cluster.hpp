// The ClusterLink on Redis (internal, in dtcall_redis): presence, node
// channels and the atomic busy check. Two RedisLinks: one sends commands, one
// subscribes (a subscribing Redis connection runs nothing else).
//
// Redis keys and channels (prefix "dtcall:"; U a user, N a node):
//   dtcall:nodes          SET   the nodes that ever announced (read on (re)connect)
//   dtcall:alive:N        STRING N's node address, PX ttl: N's heartbeat
//   dtcall:users:N        HASH  U -> U's public key (32 bytes): N's online users;
//                               PEXPIREd with the heartbeat, so a dead node's
//                               users vanish within the ttl, and no per-user
//                               refresh exists
//   dtcall:call:U         STRING "N/serial" of the call U is in, PX ttl,
//                               refreshed by the owning node's heartbeat;
//                               set for both parties by one Lua script only
//                               when both are free (the busy check)
//   dtcall:presence       channel: notice "arrived" (user, blob = key, then
//                               "k" when the login was keepudp),
//                               user_left, node_hello (the heartbeat; address)
//   dtcall:to:N           channel: what is for N: client notices to deliver,
//                               commands for calls N owns ("cmd_*")
// Every publish is a control message (cluster/messages.hpp) tagged with the
// cluster key; forged, replayed and stale ones are dropped and counted.
//
// The cache: each node keeps user -> (node, key) for the other nodes, fed by
// "arrived"/user_left, refilled by HGETALL dtcall:users:N when a node says
// hello for the first time and for every node on (re)connect; a node not
// heard from for a ttl is dropped with its users; losing Redis empties it
// (the other nodes' users look offline until Redis is back).
//
// Round trips: a login is HSET + PUBLISH sent back to back (2 commands, one
// round trip); a logout HDEL + PUBLISH; a call set-up one EVAL (the claim)
// plus one PUBLISH per notice or command that crosses nodes: incoming,
// accept, prepare, passthrough's direct, ready, start (6), 7 commands in all;
// its end one PUBLISH and one EVAL (release). The heartbeat is one round
// (SET, PEXPIRE, one PEXPIRE per call this node owns, PUBLISH) every ttl/3,
// whatever the number of users.
#pragma once

#include "cluster/cluster_link.hpp"
#include "cluster/cluster_stats.hpp"
#include "cluster/receiver.hpp"
#include "cluster/redis_link.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <unordered_map>

namespace dtcall::cluster {

class RedisCluster final : public ClusterLink {
public:
    struct Options {
        RedisAddress redis;
        std::string node;          // node_name
        std::string node_address;  // node_address (what the Server binds; the bound one is told in hello)
        ClusterKey key;            // the cluster key
        std::chrono::milliseconds ttl{15000};
        std::chrono::milliseconds first_retry{100};
        std::string prefix = "dtcall:";
        LogSink log;
    };

    RedisCluster(event_base* base, Options options);
    ~RedisCluster() override;
    void start();
    void stop();

    void attach(Host* host) override { host_ = host; }
    const std::string& node_name() const override { return options_.node; }
    bool available() const override { return commands_.connected() && subscriber_.connected(); }
    const std::string& own_address() const override { return options_.node_address; }
    void bound(const std::string& address) override { options_.node_address = address; }
    const std::string* node_address(const std::string& node) const override;
    const ClusterKey& media_key() const override { return keys_.media; }
    const RemoteUser* remote(const std::string& user) const override;
    void announce(const std::string& user, const PublicKey& key, bool keepudp = false) override;
    void withdraw(const std::string& user) override;
    void send(const std::string& node, const std::string& kind, const std::string& user, const std::string& other,
              const std::string& blob) override;
    void claim_call(const std::string& caller, const std::string& callee, std::function<void(bool)> done) override;
    void release_call(const std::string& caller, const std::string& callee) override;

    // Redis commands sent (tests count round trips with it) and what was dropped.
    std::uint64_t commands_sent() const { return commands_sent_; }
    const ReceiveCounters& received() const { return receiver_.counters(); }
    std::size_t remote_users() const { return users_.size(); }
    // Everything above in one value, for dtcalld's metrics (dtcall_cluster_*).
    ClusterStats stats() const {
        ClusterStats s;
        s.commands_connected = commands_.connected();
        s.subscriber_connected = subscriber_.connected();
        s.round_trips = commands_.round_trips();
        s.commands_sent = commands_sent_;
        s.remote_users = users_.size();
        s.nodes = nodes_.size();
        s.control = receiver_.counters();
        return s;
    }

private:
    struct Claim {
        std::string callee;
        std::string token;
    };
    struct Node {
        std::chrono::steady_clock::time_point heard;
        std::string address;  // its node_address, from its hello or alive key
    };

    static void on_heartbeat(int, short, void* self);
    void heartbeat();
    void resync();
    void read_node(const std::string& node);
    void forget_node(std::string node, const std::string& why);
    void received(std::string_view bytes);
    bool command(std::vector<std::string> args, RedisLink::ReplyHandler handler = {});
    void publish(const std::string& channel, const ControlMessage& message);
    ControlMessage make(MessageType type) const;
    std::string key(const std::string& what) const { return options_.prefix + what; }
    void log(LogLevel level, const std::string& line) const;

    event_base* base_;
    Options options_;
    ClusterKeys keys_;
    RedisLink commands_;
    RedisLink subscriber_;
    ControlReceiver receiver_;
    Host* host_ = nullptr;
    event* heartbeat_ = nullptr;
    std::unordered_map<std::string, PublicKey> local_;  // this node's announced users
    std::unordered_map<std::string, RemoteUser> users_;  // the cache of the others
    std::map<std::string, Node> nodes_;
    std::unordered_map<std::string, Claim> claims_;  // calls this node owns, by caller
    std::uint64_t serial_ = 0;
    std::uint64_t commands_sent_ = 0;
    std::shared_ptr<RedisCluster*> alive_ = std::make_shared<RedisCluster*>(this);
};

}  // namespace dtcall::cluster
