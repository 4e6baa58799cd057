// The ClusterLink on Redis (internal, in dtcall_redis): presence, node
// channels and the atomic busy check. Two RedisLinks: one sends commands, one
// subscribes (a subscribing Redis connection runs nothing else).
//
// Redis keys and channels (prefix "dtcall:"; U a user, N a node):
//   dtcall:nodes          SET   the nodes that announced and did not stop
//                               cleanly (read on (re)connect: at most
//                               max_nodes valid names, the rest counted)
//   dtcall:alive:N        STRING N's node_hello (the authenticated bytes,
//                               with its address), PX ttl: N's heartbeat
//   dtcall:users:N        HASH  U -> the authenticated "arrived" message N
//                               published for U (U's public key inside):
//                               N's online users; PEXPIREd with the
//                               heartbeat, so a dead node's users vanish
//                               within the ttl, and no per-user refresh exists
//   dtcall:call:U         STRING "N/serial" of the call U is in, PX ttl,
//                               refreshed by the owning node's heartbeat;
//                               set for both parties by one Lua script only
//                               when both are free (the busy check)
//   dtcall:presence       channel: notice "arrived" (user, blob = key, then
//                               "k" when the login was keepudp),
//                               user_left, node_hello (the heartbeat; address),
//                               node_bye
//   dtcall:to:N           channel: what is for N: client notices to deliver,
//                               commands for calls N owns ("cmd_*")
// Every publish is a control message (cluster/messages.hpp) tagged with the
// cluster key; forged, replayed and stale ones are dropped and counted (the
// first of each verdict logged, then one summary line a minute). What is
// read back (users:N values, alive:N) is decoded the same way, the tag only
// (stored values are old by design), and kept only when N sent it (from,
// type, and the hash field == the user): write access to Redis alone cannot
// forge a user's key or a node's address, only put back an older entry N
// itself once stored. Rejects are counted (stored_rejected).
//
// The cache: each node keeps user -> (node, key) for the other nodes, fed by
// "arrived"/user_left, refilled by HGETALL dtcall:users:N when a node is
// first heard from (first since the link was last lost, too) and for every
// node on (re)connect; a node not heard from for a ttl is forgotten with its
// users (Host::node_lost). Losing Redis empties the users (the other nodes'
// users look offline until Redis is back) but keeps the nodes, which are not
// timed out while Redis is away (calls that are up go on) and get a fresh
// ttl when it is back: one that died meanwhile is forgotten then.
//
// Lifecycle: the first connect of this object DELs users:N and publishes
// node_bye (a process restarted within the ttl: the others end calls with
// its predecessor's users) before announcing, and logs an error when
// alive:N holds another address (two processes with one node_name). stop()
// publishes node_bye, DELs users:N and alive:N and SREMs N from nodes,
// and lets them leave before the link closes.
//
// Messages for other nodes (send()) that cannot be published (Redis away)
// or that no subscriber heard (that node's link not back yet) wait in a
// queue (max_queued, oldest dropped; max_queued_age) and go out in order,
// stamped afresh, on reconnect and at each heartbeat, before anything new.
//
// Round trips: a login is HSET + PUBLISH sent back to back (2 commands, one
// round trip); a logout HDEL + PUBLISH; a call set-up one EVAL (the claim)
// plus one PUBLISH per notice or command that crosses nodes: incoming,
// accept, prepare, passthrough's direct, ready, start (6), 7 commands in all;
// its end one PUBLISH and one EVAL (release). The heartbeat is one round
// (SET, PEXPIRE, one PEXPIRE per call this node owns, PUBLISH, and what
// waits in the queue) every ttl/3, whatever the number of users. The first
// connect adds GET + DEL + PUBLISH; a clean stop DEL + SREM + PUBLISH.
#pragma once

#include "cluster/cluster_link.hpp"
#include "cluster/cluster_stats.hpp"
#include "cluster/receiver.hpp"
#include "cluster/redis_link.hpp"

#include <array>
#include <chrono>
#include <deque>
#include <map>
#include <set>
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

    // Bounds on what is read back from Redis and kept while it is away.
    static constexpr std::size_t max_nodes = 1024;
    static constexpr std::size_t max_users_per_node = 1000000;
    static constexpr std::size_t max_queued = 4096;
    static constexpr std::chrono::minutes max_queued_age{5};

    RedisCluster(event_base* base, Options options);
    ~RedisCluster() override;  // stop()
    void start();
    // Leaves the cluster: when connected, publishes node_bye and removes this
    // node's keys (users, alive, its name in nodes) before closing, so the
    // others forget it at once instead of after the ttl.
    void stop();
    // As a killed process (tests): the links close, nothing is said.
    void abandon();

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
    // Entries read back from Redis that did not authenticate or broke a bound.
    std::uint64_t stored_rejected() const { return stored_rejected_; }
    std::size_t queued() const { return queue_.size(); }
    std::uint64_t queue_dropped() const { return queue_dropped_; }
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
        s.stored_rejected = stored_rejected_;
        s.queued = queue_.size();
        s.queue_dropped = queue_dropped_;
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
    // A message for another node that could not be published yet (Redis
    // away, or that node not subscribed): stamped again when it goes.
    struct Queued {
        std::string node;
        ControlMessage message;
        std::chrono::steady_clock::time_point since;
    };
    static constexpr std::size_t verdicts = 6;  // Verdict's values

    static void on_heartbeat(int, short, void* self);
    void heartbeat();
    void resync();
    void disconnected();
    void read_node(const std::string& node);
    void forget_node(std::string node, const std::string& why);
    void received(std::string_view bytes);
    void dropped(Verdict verdict, std::string_view bytes);
    void summarize_drops(std::chrono::steady_clock::time_point now);
    bool stored(const RedisReply& value, MessageType type, const std::string& node, ControlMessage& out) const;
    void flush_queue();
    bool command(std::vector<std::string> args, RedisLink::ReplyHandler handler = {});
    std::string encode(const ControlMessage& message) const;
    void publish(const std::string& channel, const ControlMessage& message, RedisLink::ReplyHandler handler = {});
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
    std::unordered_map<std::string, std::string> local_;  // this node's users: their "arrived", as stored
    std::unordered_map<std::string, RemoteUser> users_;  // the cache of the others
    std::map<std::string, Node> nodes_;
    std::set<std::string> read_;  // nodes whose users were read since the link was last lost (alive then)
    std::set<std::string> reading_;  // nodes being read (one read at a time)
    // This node's users who came or went while Redis was away: the others
    // hear of them when it is back (their caches may hold the node as read).
    std::unordered_map<std::string, PublicKey> arrived_offline_;
    std::set<std::string> left_offline_;
    std::unordered_map<std::string, Claim> claims_;  // calls this node owns, by caller
    std::uint64_t serial_ = 0;
    std::uint64_t commands_sent_ = 0;
    bool announced_ = false;  // the first connect's clean-up is done
    std::deque<Queued> queue_;
    std::uint64_t queue_dropped_ = 0;
    std::uint64_t stored_rejected_ = 0;
    // Dropped control messages: the first of each verdict is logged, then one summary a minute.
    std::array<bool, verdicts> drop_logged_{};
    std::array<std::uint64_t, verdicts> drops_{};  // since the last summary
    std::chrono::steady_clock::time_point drops_since_ = std::chrono::steady_clock::now();
    std::string last_claimed_;
    std::shared_ptr<RedisCluster*> alive_ = std::make_shared<RedisCluster*>(this);
};

}  // namespace dtcall::cluster
