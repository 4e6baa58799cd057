// Several Servers in one process, on one event_base, sharing one real
// redis-server on a Unix socket in a temp dir (support/redis_server.*), each
// made a node with attach_cluster() and a RedisCluster: the cluster tests'
// fixture. Node-to-node media goes over real UDP sockets on 127.0.0.1.
#pragma once

#include "cluster/redis_cluster.hpp"
#include "server/cluster_attach.hpp"

#include "harness.hpp"
#include "redis_server.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>
#include <event2/event.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace test_support {

using namespace std::chrono_literals;

struct Node {
    std::unique_ptr<dtcall::cluster::RedisCluster> link;  // outlives the server (declared first)
    std::unique_ptr<TestServer> server;
    std::vector<std::string> link_log;  // the RedisCluster's log lines
    std::size_t logged(const std::string& needle) const {
        std::size_t n = 0;
        for (const std::string& line : link_log) n += line.find(needle) != std::string::npos;
        return n;
    }
    // As SIGKILL: no goodbye, no withdrawal. The link goes first, so the
    // server's teardown cannot reach Redis.
    void kill() {
        link->abandon();
        server->server.reset();
    }
};

struct Cluster {
    TempDir dir;
    RedisServer redis{dir.path};
    event_base* base = event_base_new();
    dtcall::cluster::ClusterKey key;
    std::vector<std::unique_ptr<Node>> nodes;

    std::function<void(dtcall::Config&)> tweak;  // each node's config
    std::string node_address = "127.0.0.1:0";   // the next node's (add())
    std::chrono::milliseconds ttl = 1500ms;      // the next node's (add())

    explicit Cluster(int count, std::function<void(dtcall::Config&)> config_tweak = {}) : tweak(std::move(config_tweak)) {
        dtcall::crypto_init();
        key = dtcall::cluster::ClusterKey::generate();
        REQUIRE(redis.start() == "");
        for (int i = 1; i <= count; ++i) add("node" + std::to_string(i));
    }
    ~Cluster() {
        nodes.clear();
        event_base_free(base);
    }
    void add(const std::string& name) {
        auto node = std::make_unique<Node>();
        dtcall::cluster::RedisCluster::Options options;
        options.redis = *dtcall::cluster::parse_redis_address("unix:" + redis.socket_path());
        options.node = name;
        options.node_address = node_address;  // the Server binds it
        options.key = key;
        options.ttl = ttl;
        options.first_retry = 20ms;
        Node* raw = node.get();
        options.log = [raw](dtcall::LogLevel, const std::string& line) { raw->link_log.push_back(line); };
        node->link = std::make_unique<dtcall::cluster::RedisCluster>(base, options);
        node->server = std::make_unique<TestServer>(std::vector<std::string>{"alice", "bob", "carol", "dave"},
                                                    tweak, "127.0.0.1", nullptr, base,
                                                    [raw](dtcall::Server& s) { dtcall::attach_cluster(s, *raw->link); });
        node->link->start();
        nodes.push_back(std::move(node));
    }
    TestServer& server(int i) { return *nodes[std::size_t(i - 1)]->server; }
    dtcall::cluster::RedisCluster& link(int i) { return *nodes[std::size_t(i - 1)]->link; }
    bool until(const std::function<bool()>& done, Millis limit = 5000ms) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (!done()) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            server(1).pump(5ms);
        }
        return true;
    }
    // Every node sees `user` as online on `node`.
    bool known(const std::string& user, int node) {
        return until([&] {
            for (std::size_t i = 0; i < nodes.size(); ++i) {
                if (int(i) + 1 == node) continue;
                const auto* remote = nodes[i]->link->remote(user);
                if (!remote || remote->node != "node" + std::to_string(node)) return false;
            }
            return true;
        });
    }
};

inline std::string key_text(TestServer& s, const std::string& user) {
    return public_key_file_text(s.user_keys[user].public_key);
}


}  // namespace test_support
