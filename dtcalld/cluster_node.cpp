#include "cluster_node.hpp"

#include "server/cluster_attach.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

namespace dtcalld {
namespace {

using dtcall::cluster::RedisAddress;

bool ip_literal(const std::string& host) {
    unsigned char buffer[16];
    return inet_pton(AF_INET, host.c_str(), buffer) == 1 || inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

// "Redis at unix:/run/redis.sock" or "Redis at redis.example:6379
// (10.0.0.5:6379, looked up once at start)".
std::string where_text(const RedisAddress& written, const RedisAddress& used) {
    std::string text = "Redis at " + written.text();
    if (used.host != written.host) text += " (" + used.text() + ", looked up once at start)";
    return text;
}

}  // namespace

dtcall::Result<RedisAddress> resolve_redis_address(const RedisAddress& address) {
    if (address.is_unix() || ip_literal(address.host)) return address;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;  // no AI_ADDRCONFIG: it hides 127.0.0.1 on a host with only loopback
    addrinfo* found = nullptr;
    int failed = ::getaddrinfo(address.host.c_str(), nullptr, &hints, &found);
    if (failed != 0) {
        return dtcall::Error{"cannot look up \"" + address.host + "\" (" + ::gai_strerror(failed) +
                             "); dtcalld looks a name up once, at start: give an IP address or unix:/PATH to "
                             "start without DNS"};
    }
    // The first address of a family this host has sockets for (a name with
    // an IPv6 address on a host without IPv6 must not pin the link to it).
    std::string chosen;
    for (addrinfo* a = found; a != nullptr && chosen.empty(); a = a->ai_next) {
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6) continue;
        int probe = ::socket(a->ai_family, SOCK_STREAM, 0);
        if (probe < 0) continue;
        ::close(probe);
        char text[INET6_ADDRSTRLEN] = {};
        const void* raw = a->ai_family == AF_INET6
                              ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr)
                              : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr);
        if (::inet_ntop(a->ai_family, raw, text, sizeof text) != nullptr) chosen = text;
    }
    ::freeaddrinfo(found);
    if (chosen.empty()) {
        return dtcall::Error{"\"" + address.host + "\" has no IPv4 or IPv6 address this host can connect to"};
    }
    RedisAddress out = address;
    out.host = chosen;
    return out;
}

dtcall::Result<std::unique_ptr<ClusterNode>> ClusterNode::make(const ClusterSettings& settings,
                                                               dtcall::Server& server, dtcall::LogSink log) {
    auto redis = resolve_redis_address(settings.redis);
    if (!redis) return dtcall::Error{redis.error()};
    dtcall::cluster::RedisCluster::Options options;
    options.redis = *redis;
    options.node = settings.node_name;
    options.node_address = settings.node_address.text();
    options.key = settings.key;
    options.ttl = settings.ttl;
    options.log = log;
    if (log) {
        log(dtcall::LogLevel::info, "cluster: node " + settings.node_name + ", " + where_text(settings.redis, *redis) +
                                        ", node address " + options.node_address + ", ttl " +
                                        std::to_string(settings.ttl.count()) + " s");
    }
    auto link = std::make_unique<dtcall::cluster::RedisCluster>(server.base(), std::move(options));
    std::unique_ptr<ClusterNode> node(new ClusterNode(std::move(link), settings.node_name));
    dtcall::attach_cluster(server, *node);
    return node;
}

ClusterNode::ClusterNode(std::unique_ptr<dtcall::cluster::RedisCluster> link, std::string name)
    : link_(std::move(link)), name_(std::move(name)) {}

ClusterNode::~ClusterNode() { close(); }

void ClusterNode::start() {
    if (link_) link_->start();
}

void ClusterNode::close() {
    if (!link_) return;
    link_->stop();
    link_.reset();
}

void ClusterNode::attach(Host* host) {
    if (link_) link_->attach(host);
}

bool ClusterNode::available() const { return link_ && link_->available(); }

const std::string& ClusterNode::own_address() const { return link_ ? link_->own_address() : no_address_; }

void ClusterNode::bound(const std::string& address) {
    if (link_) link_->bound(address);
}

const std::string* ClusterNode::node_address(const std::string& node) const {
    return link_ ? link_->node_address(node) : nullptr;
}

const dtcall::cluster::ClusterKey& ClusterNode::media_key() const { return link_ ? link_->media_key() : no_key_; }

const ClusterNode::RemoteUser* ClusterNode::remote(const std::string& user) const {
    return link_ ? link_->remote(user) : nullptr;
}

void ClusterNode::announce(const std::string& user, const dtcall::PublicKey& key, bool keepudp) {
    if (link_) link_->announce(user, key, keepudp);
}

void ClusterNode::withdraw(const std::string& user) {
    if (link_) link_->withdraw(user);
}

void ClusterNode::send(const std::string& node, const std::string& kind, const std::string& user,
                       const std::string& other, const std::string& blob) {
    if (link_) link_->send(node, kind, user, other, blob);
}

// Once closed the loop has returned: no answer could ever be delivered, so
// `done` is dropped rather than called from inside the Server's own call.
void ClusterNode::claim_call(const std::string& caller, const std::string& callee, std::function<void(bool)> done) {
    if (link_) link_->claim_call(caller, callee, std::move(done));
}

void ClusterNode::release_call(const std::string& caller, const std::string& callee) {
    if (link_) link_->release_call(caller, callee);
}

}  // namespace dtcalld
