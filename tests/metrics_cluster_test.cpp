// The dtcall_cluster_* metrics of a cluster node, collected the way dtcalld
// does (metrics::collect(server, observer, cluster.stats())) from real
// Servers made nodes with real RedisClusters on a real redis-server
// (support/redis_server.*, a Unix socket in a temp dir); and their absence on
// a single node. promtool checks every body when it is on PATH.
//
//   bob --- node2 ---.                 .--- node1 (scraped)
//                    '--- redis-server -'
//   login: HSET + "arrived"  ---------->  remote_users 1, nodes 1
//   a forged publish on dtcall:to:node1 ->  forged{leg="control"} 1
//   redis-server stopped               ->  redis_connected 0, nodes 0
#include "cluster/redis_cluster.hpp"
#include "server/cluster_attach.hpp"

#include "metrics/collect.hpp"
#include "metrics/observer.hpp"
#include "metrics/render.hpp"

#include <doctest/doctest.h>

#include "harness.hpp"
#include "promtool.hpp"
#include "redis_server.hpp"
#include "temp_dir.hpp"

#include <event2/event.h>

using namespace test_support;
using dtcall::cluster::ClusterKey;
using dtcall::cluster::ClusterKeys;
using dtcall::cluster::RedisCluster;
namespace cluster = dtcall::cluster;
namespace m = dtcalld::metrics;

namespace {

bool has_line(const std::string& text, const std::string& line) {
    return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

// The value of the sample `series` (name and labels exactly), or -1.
double value_of(const std::string& text, const std::string& series) {
    auto at = ("\n" + text).find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + series.size() + 1));
}

struct Node {
    std::unique_ptr<RedisCluster> link;  // outlives the server (declared first)
    std::unique_ptr<TestServer> server;
    m::MetricsObserver observer;
    // What dtcalld's /metrics answers on a cluster node.
    std::string scrape() const { return m::render_metrics(m::collect(*server->server, observer, link->stats())); }
};

struct TwoNodes {
    TempDir dir;
    RedisServer redis{dir.path};
    event_base* base = event_base_new();
    ClusterKey key;
    Node nodes[2];

    TwoNodes() {
        dtcall::crypto_init();
        key = ClusterKey::generate();
        REQUIRE(redis.start() == "");
        for (int i = 0; i < 2; ++i) {
            RedisCluster::Options options;
            options.redis = *cluster::parse_redis_address("unix:" + redis.socket_path());
            options.node = "node" + std::to_string(i + 1);
            options.node_address = "127.0.0.1:0";  // the Server binds it
            options.key = key;
            options.ttl = 1500ms;
            options.first_retry = 20ms;
            Node& node = nodes[i];
            node.link = std::make_unique<RedisCluster>(base, options);
            node.server = std::make_unique<TestServer>(std::vector<std::string>{"alice", "bob"}, nullptr, "127.0.0.1",
                                                       nullptr, base, [&node](dtcall::Server& s) {
                                                           s.add_observer(&node.observer);
                                                           attach_cluster(s, *node.link);
                                                       });
            node.link->start();
        }
    }
    ~TwoNodes() {
        for (Node& node : nodes) {
            node.server.reset();
            node.link.reset();
        }
        event_base_free(base);
    }
    bool until(const std::function<bool()>& done, Millis limit = 5000ms) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (!done()) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            nodes[0].server->pump(5ms);
        }
        return true;
    }
};

}  // namespace

TEST_CASE("a cluster node: Redis connected, round trips, nodes, remote users, a forged message; then Redis gone") {
    TwoNodes c;
    Node& node1 = c.nodes[0];
    REQUIRE(c.until([&] { return node1.link->available() && c.nodes[1].link->available(); }));
    RawPeer bob(*c.nodes[1].server);
    REQUIRE_FALSE(bob.login("bob").empty());
    REQUIRE(c.until([&] { return node1.link->remote("bob") != nullptr; }));

    // A message tagged with another key, published on node1's channel.
    ClusterKey other = ClusterKey::generate();
    auto forged = cluster::make_control(cluster::MessageType::notice, "node2", 1);
    forged.kind = "incoming";
    forged.user = "alice";
    forged.other = "bob";
    auto bytes = cluster::encode_control(ClusterKeys::derive(other).control, forged);
    cluster::RedisLink::Options raw_options;
    raw_options.address = *cluster::parse_redis_address("unix:" + c.redis.socket_path());
    cluster::RedisLink raw(c.base, raw_options);
    raw.start();
    REQUIRE(c.until([&] { return raw.connected(); }));
    raw.command({"PUBLISH", "dtcall:to:node1", std::string(bytes.begin(), bytes.end())},
                [](const cluster::RedisReply&) {});
    REQUIRE(c.until([&] { return node1.link->received().forged == 1; }));

    std::string text = node1.scrape();
    const char* lines[] = {
        "# HELP dtcall_cluster_redis_connected 1 when both Redis links (commands and subscriber) are up, else 0: "
        "the node is cut off.",
        "# TYPE dtcall_cluster_redis_connected gauge",
        "dtcall_cluster_redis_connected 1",
        "# TYPE dtcall_cluster_redis_round_trip_seconds histogram",
        "# TYPE dtcall_cluster_redis_commands_total counter",
        "# TYPE dtcall_cluster_nodes gauge",
        "dtcall_cluster_nodes 1",
        "# TYPE dtcall_cluster_remote_users gauge",
        "dtcall_cluster_remote_users 1",
        "# TYPE dtcall_cluster_control_messages_total counter",
        "# TYPE dtcall_cluster_node_packets_total counter",
        "dtcall_cluster_node_packets_total{direction=\"sent\"} 0",
        "dtcall_cluster_node_packets_total{direction=\"received\"} 0",
        "# TYPE dtcall_cluster_forged_total counter",
        "dtcall_cluster_forged_total{leg=\"media\"} 0",
        "dtcall_cluster_forged_total{leg=\"control\"} 1",
        "# TYPE dtcall_cluster_dropped_total counter",
        "dtcall_cluster_dropped_total{leg=\"media\",reason=\"other\"} 0",
        "dtcall_cluster_dropped_total{leg=\"control\",reason=\"malformed\"} 0",
        "dtcall_cluster_dropped_total{leg=\"control\",reason=\"replayed\"} 0",
        "dtcall_cluster_dropped_total{leg=\"control\",reason=\"stale\"} 0",
        "dtcall_cluster_dropped_total{leg=\"control\",reason=\"too_many\"} 0",
    };
    for (const char* line : lines) CHECK_MESSAGE(has_line(text, line), line << "\n---\n" << text);
    // The round trips are the commands link's: as many as it got replies to
    // (all but those still in flight), over every bucket line.
    auto stats = node1.link->stats();
    CHECK(stats.commands_sent > 0);
    CHECK(stats.round_trips.count > 0);
    CHECK(stats.round_trips.count <= stats.commands_sent);
    CHECK(value_of(text, "dtcall_cluster_redis_commands_total") >= double(stats.round_trips.count));
    CHECK(value_of(text, "dtcall_cluster_redis_round_trip_seconds_count") > 0);
    CHECK(value_of(text, "dtcall_cluster_redis_round_trip_seconds_bucket{le=\"0.0001\"}") >= 0);
    CHECK(value_of(text, "dtcall_cluster_redis_round_trip_seconds_bucket{le=\"1\"}") >= 0);
    CHECK(value_of(text, "dtcall_cluster_redis_round_trip_seconds_bucket{le=\"+Inf\"}") ==
          value_of(text, "dtcall_cluster_redis_round_trip_seconds_count"));
    CHECK(value_of(text, "dtcall_cluster_redis_round_trip_seconds_sum") > 0);
    CHECK(value_of(text, "dtcall_cluster_control_messages_total") > 0);  // node2's hello and "arrived" at least
    // The server's own families are still there.
    CHECK(has_line(text, "dtcall_users_online 0"));
    check_with_promtool(text);

    // Redis gone: both links down, the others' users forgotten; node2 stays
    // known (its calls go on) until it is not heard from within a ttl of Redis's return.
    c.redis.stop();
    REQUIRE(c.until([&] { return !node1.link->available(); }));
    text = node1.scrape();
    CHECK(has_line(text, "dtcall_cluster_redis_connected 0"));
    CHECK(has_line(text, "dtcall_cluster_nodes 1"));
    CHECK(has_line(text, "dtcall_cluster_remote_users 0"));
    CHECK(has_line(text, "dtcall_cluster_forged_total{leg=\"control\"} 1"));  // counters stay
    check_with_promtool(text);
}

TEST_CASE("a single node: no dtcall_cluster_* family at all") {
    TestServer server;
    m::MetricsObserver observer;
    std::string text = m::render_metrics(m::collect(*server.server, observer));
    CHECK(text.find("dtcall_cluster_") == std::string::npos);
    CHECK(has_line(text, "dtcall_users_online 0"));
    check_with_promtool(text);
}
