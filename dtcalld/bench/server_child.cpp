#include "server_child.hpp"

#include "metrics/collect.hpp"
#include "metrics/observer.hpp"
#include "metrics/render.hpp"

#include "cluster/redis_address.hpp"
#include "cluster/redis_cluster.hpp"
#include "server/cluster_attach.hpp"

#include <dtcall/server.hpp>
#include <dtcall/user_directory.hpp>

#include <event2/event.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace dtbench {
namespace {

void write_line(int fd, const std::string& line) {
    std::string text = line + "\n";
    (void)!::write(fd, text.data(), text.size());
}

struct Control {
    dtcall::Server* server;
    const dtcalld::metrics::MetricsObserver* observer;
    const dtcall::cluster::RedisCluster* link;  // null: a single node
    event_base* base;
    int answers;
    std::string pending;
};

void on_request(evutil_socket_t fd, short, void* arg) {
    auto& control = *static_cast<Control*>(arg);
    char chunk[256];
    ssize_t got = ::read(fd, chunk, sizeof chunk);
    if (got <= 0) {
        // The parent closed its end (or died): time to go.
        event_base_loopbreak(control.base);
        return;
    }
    control.pending.append(chunk, std::size_t(got));
    for (auto newline = control.pending.find('\n'); newline != std::string::npos;
         newline = control.pending.find('\n')) {
        std::string request = control.pending.substr(0, newline);
        control.pending.erase(0, newline + 1);
        if (request == "stats") {
            dtcall::ServerStats s = control.server->stats();
            char line[256];
            std::snprintf(line, sizeof line, "stats %llu %llu %llu %llu %zu %zu %zu %llu %llu",
                          static_cast<unsigned long long>(s.media_packets_relayed),
                          static_cast<unsigned long long>(s.media_bytes_relayed),
                          static_cast<unsigned long long>(s.media_packets_dropped),
                          static_cast<unsigned long long>(s.registrations_acked), s.connections, s.logged_in,
                          s.calls_ringing + s.calls_accepted + s.calls_in_progress,
                          static_cast<unsigned long long>(s.node_packets_sent),
                          static_cast<unsigned long long>(s.node_packets_received));
            write_line(control.answers, line);
        } else if (request == "scrape") {
            // What dtcalld's GET /metrics does on its loop (render of
            // stats, observer counts and /proc), timed; the worst of five.
            std::int64_t worst_ns = 0;
            std::size_t bytes = 0;
            for (int i = 0; i < 5; ++i) {
                auto start = std::chrono::steady_clock::now();
                bytes = dtcalld::metrics::render_metrics(dtcalld::metrics::collect(*control.server, *control.observer)).size();
                auto took = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start);
                worst_ns = std::max<std::int64_t>(worst_ns, took.count());
            }
            write_line(control.answers, "scrape " + std::to_string(worst_ns) + " " + std::to_string(bytes));
        } else if (request == "cluster") {
            if (!control.link) write_line(control.answers, "error not a cluster node");
            else
                write_line(control.answers, "cluster " + std::to_string(control.link->available() ? 1 : 0) + " " +
                                                std::to_string(control.link->remote_users()));
        } else {
            write_line(control.answers, "error unknown request");
        }
    }
    if (control.pending.size() > 4096) control.pending.clear();  // junk without newlines
}

}  // namespace

int run_server_child(const ServerChildSetup& setup, int requests, int answers) {
    event_base* base = event_base_new();
    if (!base) {
        write_line(answers, "error cannot create an event loop");
        return 1;
    }
    int status = 0;
    {
        // The link outlives the Server (declared first, destroyed last).
        std::unique_ptr<dtcall::cluster::RedisCluster> link;
        if (setup.cluster) {
            auto redis = dtcall::cluster::parse_redis_address("unix:" + setup.cluster->redis_socket);
            if (!redis) {
                write_line(answers, "error cluster_redis: " + redis.error());
                event_base_free(base);
                return 1;
            }
            dtcall::cluster::RedisCluster::Options options;
            options.redis = *redis;
            options.node = setup.cluster->node;
            options.node_address = setup.cluster->node_address;
            options.key = setup.cluster->key;
            options.first_retry = std::chrono::milliseconds(20);
            link = std::make_unique<dtcall::cluster::RedisCluster>(base, options);
        }
        dtcall::InMemoryUserDirectory users;
        for (const auto& [name, key] : setup.users) users.add(name, key);
        dtcall::Server server(setup.config, users, base);
        if (link) dtcall::attach_cluster(server, *link);
        dtcalld::metrics::MetricsObserver observer;
        server.add_observer(&observer);
        auto started = server.start();
        if (!started) {
            write_line(answers, "error " + started.error());
            status = 1;
        } else {
            if (link) link->start();
            Control control{&server, &observer, link.get(), base, answers, {}};
            event* request_event = event_new(base, requests, EV_READ | EV_PERSIST, on_request, &control);
            event_add(request_event, nullptr);
            write_line(answers, "ready " + std::to_string(server.command_port()) + " " +
                                    std::to_string(server.media_port()));
            event_base_dispatch(base);
            event_free(request_event);
            // No polite stop: the parent is done measuring, and the
            // destructor closes every socket at once.
        }
        if (link) link->stop();
    }
    event_base_free(base);
    return status;
}

std::optional<ServerCounters> parse_server_counters(const std::string& line) {
    ServerCounters c;
    unsigned long long v[9] = {};
    // The forwarder's answer has the first seven only.
    int got = std::sscanf(line.c_str(), "stats %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                          &v[3], &v[4], &v[5], &v[6], &v[7], &v[8]);
    if (got != 7 && got != 9) return std::nullopt;
    c.relayed_packets = v[0];
    c.relayed_bytes = v[1];
    c.dropped_packets = v[2];
    c.registrations = v[3];
    c.connections = v[4];
    c.logged_in = v[5];
    c.calls = v[6];
    c.node_packets_sent = v[7];
    c.node_packets_received = v[8];
    return c;
}

std::optional<ClusterView> parse_cluster_view(const std::string& line) {
    unsigned available = 0;
    unsigned long long remote = 0;
    if (std::sscanf(line.c_str(), "cluster %u %llu", &available, &remote) != 2) return std::nullopt;
    return ClusterView{available == 1, std::size_t(remote)};
}

std::optional<ScrapeTiming> parse_scrape_timing(const std::string& line) {
    unsigned long long ns = 0, bytes = 0;
    if (std::sscanf(line.c_str(), "scrape %llu %llu", &ns, &bytes) != 2) return std::nullopt;
    return ScrapeTiming{double(ns) / 1e6, std::size_t(bytes)};
}

}  // namespace dtbench
