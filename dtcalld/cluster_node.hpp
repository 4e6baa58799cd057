// This dtcalld as one node of a cluster (dtcalld.conf(5), "Cluster"): the
// Redis link (cluster/redis_cluster.hpp) made from the cluster settings and
// attached to the Server.
//
// Lifetimes. The Server calls its link until its destructor has run (it
// detaches there, and its users are withdrawn on the way out), so the link
// must outlive the Server; but the link's events live on the Server's
// event_base, which ~Server frees, so the Redis link itself must be freed
// before. A ClusterNode is therefore declared before the Server and is the
// Server's ClusterLink: it forwards to the RedisCluster until close(), which
// stops and frees it once the loop has returned (before ~Server); after
// that it answers as a link whose Redis is away (nobody remote, nothing
// sent, no call claimed).
#pragma once

#include "settings.hpp"

#include "cluster/redis_cluster.hpp"

#include <dtcall/log.hpp>
#include <dtcall/result.hpp>
#include <dtcall/server.hpp>

#include <memory>
#include <string>

namespace dtcalld {

// cluster_redis as the link gets it: a Unix socket or an IP literal as they
// are; a host name looked up once (getaddrinfo, which blocks: call this
// before the event loop runs, never from it). The error says which name did
// not resolve and why.
dtcall::Result<dtcall::cluster::RedisAddress> resolve_redis_address(const dtcall::cluster::RedisAddress& address);

class ClusterNode final : public dtcall::ClusterLink {
public:
    // Resolves cluster_redis, makes the link on `server`'s event_base and
    // attaches it: call before server.start(). Nothing connects yet. The
    // error is a cluster_redis name that does not resolve.
    static dtcall::Result<std::unique_ptr<ClusterNode>> make(const ClusterSettings& settings, dtcall::Server& server,
                                                             dtcall::LogSink log);
    ~ClusterNode() override;
    ClusterNode(const ClusterNode&) = delete;
    ClusterNode& operator=(const ClusterNode&) = delete;

    // After server.start(): connects to Redis in the background. Redis away
    // is not an error: the link logs it once and retries with backoff, and
    // this node serves its own users meanwhile.
    void start();
    // After the loop has returned, before ~Server (and on every early
    // return once made): stops and frees the Redis link. Idempotent.
    void close();
    // For the metrics (dtcall_cluster_*); once closed, a link with Redis away.
    dtcall::cluster::ClusterStats stats() const { return link_ ? link_->stats() : dtcall::cluster::ClusterStats{}; }

    // ---- ClusterLink, forwarded while open ----
    void attach(Host* host) override;
    const std::string& node_name() const override { return name_; }
    bool available() const override;
    const std::string& own_address() const override;
    void bound(const std::string& address) override;
    const std::string* node_address(const std::string& node) const override;
    const dtcall::cluster::ClusterKey& media_key() const override;
    const RemoteUser* remote(const std::string& user) const override;
    void announce(const std::string& user, const dtcall::PublicKey& key, bool keepudp = false) override;
    void withdraw(const std::string& user) override;
    void send(const std::string& node, const std::string& kind, const std::string& user, const std::string& other,
              const std::string& blob) override;
    void claim_call(const std::string& caller, const std::string& callee, std::function<void(bool)> done) override;
    void release_call(const std::string& caller, const std::string& callee) override;

private:
    ClusterNode(std::unique_ptr<dtcall::cluster::RedisCluster> link, std::string name);

    std::unique_ptr<dtcall::cluster::RedisCluster> link_;  // null once closed
    std::string name_;
    std::string no_address_;                // own_address() once closed
    dtcall::cluster::ClusterKey no_key_{};  // media_key() once closed (all zero)
};

}  // namespace dtcalld
