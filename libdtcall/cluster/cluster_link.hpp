// What the Server needs from a cluster (internal), as an interface so that
// libdtcall itself never links hiredis: the Redis implementation
// (cluster/redis_cluster.*) lives in the internal dtcall_redis library and is
// handed to a Server with attach_cluster() (server/cluster_attach.hpp) before
// start(). A Server without one is the single node it always was.
//
// Everything here answers at once from what the link keeps in memory (a cache
// of remote presence fed by Redis pub/sub), except claim_call(), whose answer
// comes later: the busy check is atomic in Redis.
#pragma once

#include "cluster/cluster_key.hpp"
#include "wire/messages.hpp"

#include <dtcall/keys.hpp>

#include <functional>
#include <optional>
#include <string>

namespace dtcall {

// A client notice's name between nodes (the `kind` of a notice message).
inline const char* notice_kind_name(wire::NoticeKind kind) {
    switch (kind) {
    case wire::NoticeKind::available: return "available";
    case wire::NoticeKind::incoming: return "incoming";
    case wire::NoticeKind::prepare: return "prepare";
    case wire::NoticeKind::direct: return "direct";
    case wire::NoticeKind::start: return "start";
    case wire::NoticeKind::end: return "end";
    }
    return "";
}
inline std::optional<wire::NoticeKind> notice_kind_named(const std::string& name) {
    for (auto kind : {wire::NoticeKind::available, wire::NoticeKind::incoming, wire::NoticeKind::prepare,
                      wire::NoticeKind::direct, wire::NoticeKind::start, wire::NoticeKind::end})
        if (name == notice_kind_name(kind)) return kind;
    return std::nullopt;
}

class ClusterLink {
public:
    // A user online on another node, as the cache knows it.
    struct RemoteUser {
        std::string node;
        PublicKey key;  // what its login was checked against (`prepare` tells it)
    };

    // What the link tells its Server.
    class Host {
    public:
        virtual ~Host() = default;
        // An authenticated message for this node: a client notice to deliver
        // (kind "available" ... "end") or a command for a call this node owns
        // ("cmd_accept", "cmd_ready", "cmd_end", "cmd_vanished", "cmd_relogin").
        virtual void node_message(const std::string& from, const std::string& kind, const std::string& user,
                                  const std::string& other, const std::string& blob) = 0;
        // `user` logged in on `node` (another one), with keepudp or not: a
        // session here is replaced.
        virtual void remote_arrival(const std::string& user, const std::string& node, bool keepudp) = 0;
        // `node` was not heard from for a ttl (killed, cut off): its users are
        // offline, and calls with them end unless they log in again in time.
        virtual void node_lost(const std::string& node) { (void)node; }
    };

    virtual ~ClusterLink() = default;
    virtual void attach(Host* host) = 0;  // null detaches
    virtual const std::string& node_name() const = 0;
    // Redis is reachable: cross-node calls are possible.
    virtual bool available() const = 0;

    // The node-to-node media leg. The Server binds own_address() at start()
    // ("IP:PORT", port 0 = any; the media port itself shares the media
    // socket) and tells the link what it bound, which the heartbeat then
    // publishes; node_address() is another node's, as its heartbeat said
    // (null: not known). Media between nodes is tagged with media_key().
    virtual const std::string& own_address() const = 0;
    virtual void bound(const std::string& address) = 0;
    virtual const std::string* node_address(const std::string& node) const = 0;
    virtual const cluster::ClusterKey& media_key() const = 0;

    // The cache of remote presence (null: not online on another node).
    virtual const RemoteUser* remote(const std::string& user) const = 0;
    // This node's users, cluster-wide.
    virtual void announce(const std::string& user, const PublicKey& key, bool keepudp = false) = 0;
    virtual void withdraw(const std::string& user) = 0;
    // A message to one node (published on its channel).
    virtual void send(const std::string& node, const std::string& kind, const std::string& user,
                      const std::string& other, const std::string& blob) = 0;
    // The busy check: both parties free cluster-wide, and both claimed for this
    // call, atomically; `done(false)` when either is in a call or Redis failed.
    virtual void claim_call(const std::string& caller, const std::string& callee, std::function<void(bool)> done) = 0;
    // The call claimed by this node for `caller` is over (or never rang).
    virtual void release_call(const std::string& caller, const std::string& callee) = 0;
};

}  // namespace dtcall
