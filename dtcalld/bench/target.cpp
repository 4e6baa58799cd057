#include "target.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sched.h>
#include <thread>

namespace dtbench {

std::optional<ServerCounters> Target::counters() {
    if (!child) return std::nullopt;
    auto line = child->ask("stats", std::chrono::milliseconds(2000));
    if (!line) return std::nullopt;
    return parse_server_counters(*line);
}

std::optional<ScrapeTiming> Target::scrape() {
    if (!child) return std::nullopt;
    auto line = child->ask("scrape", std::chrono::milliseconds(5000));
    if (!line) return std::nullopt;
    return parse_scrape_timing(*line);
}

void Target::stop() {
    if (child) child->stop();
    child.reset();
    // The nodes first: they would only log their lost Redis otherwise.
    for (Node& node : nodes)
        if (node.child) node.child->stop();
    nodes.clear();
    if (redis) redis->stop();
    redis.reset();
}

std::optional<ServerCounters> Target::node_counters(std::size_t node) {
    if (node >= nodes.size() || !nodes[node].child) return std::nullopt;
    auto line = nodes[node].child->ask("stats", std::chrono::milliseconds(2000));
    if (!line) return std::nullopt;
    return parse_server_counters(*line);
}

std::optional<ClusterView> Target::node_view(std::size_t node) {
    if (node >= nodes.size() || !nodes[node].child) return std::nullopt;
    auto line = nodes[node].child->ask("cluster", std::chrono::milliseconds(2000));
    if (!line) return std::nullopt;
    return parse_cluster_view(*line);
}

dtcall::Status Target::wait_for_presence(std::chrono::milliseconds within) {
    auto deadline = Clock::now() + within;
    std::string lagging;
    do {
        std::vector<std::size_t> logged_in;
        std::size_t total = 0;
        lagging.clear();
        for (std::size_t i = 0; i < nodes.size() && lagging.empty(); ++i) {
            auto counters = node_counters(i);
            if (!counters) lagging = nodes[i].name + " does not answer \"stats\"";
            else logged_in.push_back(std::size_t(counters->logged_in));
            if (counters) total += std::size_t(counters->logged_in);
        }
        for (std::size_t i = 0; i < nodes.size() && lagging.empty(); ++i) {
            auto view = node_view(i);
            std::size_t others = total - logged_in[i];
            if (!view) lagging = nodes[i].name + " does not answer \"cluster\"";
            else if (!view->available) lagging = nodes[i].name + " has no connection to redis-server";
            else if (view->remote_users < others)
                lagging = nodes[i].name + " knows " + std::to_string(view->remote_users) + " of the " +
                          std::to_string(others) + " users online on the other nodes";
        }
        if (lagging.empty()) return dtcall::Done{};
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (Clock::now() < deadline);
    return dtcall::Error{"cluster not ready within " + std::to_string(within.count()) + " ms: " + lagging};
}

std::size_t pair_node(std::size_t phone, std::size_t nodes) { return (phone / 2 + phone % 2) % nodes; }
std::size_t round_robin_node(std::size_t phone, std::size_t nodes) { return phone % nodes; }

namespace {

// --nodes N > 1: redis-server, then N nodes sharing `setup` (key, users).
dtcall::Status start_cluster(Target& target, const Options& options, ServerChildSetup setup,
                             std::optional<int> server_cpu, const std::vector<int>& node_cpus) {
    auto redis = RedisProcess::start(std::chrono::seconds(10));
    if (!redis) return dtcall::Error{redis.error()};
    target.redis = std::move(*redis);
    if (!node_cpus.empty()) {
        // Beside the nodes, away from the generator.
        cpu_set_t set;
        CPU_ZERO(&set);
        for (int cpu : node_cpus) CPU_SET(cpu, &set);
        sched_setaffinity(target.redis->pid(), sizeof set, &set);
    }
    auto key = dtcall::cluster::ClusterKey::generate();
    std::string description;
    for (unsigned i = 0; i < options.nodes; ++i) {
        Target::Node node;
        node.name = "node" + std::to_string(i + 1);
        node.cpu = node_cpus.empty() ? server_cpu : std::optional<int>(node_cpus[i % node_cpus.size()]);
        setup.cluster = ClusterNodeSetup{target.redis->socket_path(), node.name, "127.0.0.1:0", key};
        auto child = ChildProcess::start(
            node.name, [&setup](int requests, int answers) { return run_server_child(setup, requests, answers); },
            node.cpu, std::chrono::milliseconds(10000));
        if (!child) return dtcall::Error{"in-process cluster: " + child.error()};
        unsigned tcp = 0, udp = 0;
        if (std::sscanf((*child)->ready_line().c_str(), "ready %u %u", &tcp, &udp) != 2 || !tcp || !udp ||
            tcp > 65535 || udp > 65535)
            return dtcall::Error{node.name + ": unexpected ready line \"" + (*child)->ready_line() + "\""};
        node.port = std::uint16_t(tcp);
        node.media_port = std::uint16_t(udp);
        node.pid = (*child)->pid();
        node.child = std::move(*child);
        description += (i ? ", " : "") + node.name + " (pid " + std::to_string(node.pid) +
                       (node.cpu ? ", CPU " + std::to_string(*node.cpu) : std::string()) + ", TCP " +
                       std::to_string(tcp) + " UDP " + std::to_string(udp) + ")";
        target.nodes.push_back(std::move(node));
    }
    target.host = "127.0.0.1";
    target.description = "in-process cluster of " + std::to_string(options.nodes) + " nodes on 127.0.0.1 sharing "
                         "redis-server (pid " + std::to_string(target.redis->pid()) + ", " +
                         target.redis->socket_path() + "): " + description;
    // Each node connected to Redis (no user is online yet).
    return target.wait_for_presence(std::chrono::seconds(10));
}

}  // namespace

dtcall::Result<std::unique_ptr<Target>> open_target(const Options& options, std::size_t users_needed,
                                                    bool distinct_users, std::optional<int> server_cpu,
                                                    const std::vector<int>& node_cpus) {
    auto target = std::make_unique<Target>();
    if (!options.in_process) {
        auto key = dtcall::read_public_key_file(options.server_key_file);
        if (!key) return dtcall::Error{"--server-key: " + key.error()};
        auto users = load_users(options.users_dir, *key);
        if (!users) return dtcall::Error{users.error()};
        if (distinct_users && users->size() < users_needed) {
            return dtcall::Error{"--users " + options.users_dir + ": this run needs " + std::to_string(users_needed) +
                                 " users (one connection each), the directory has " +
                                 std::to_string(users->size())};
        }
        target->host = options.host;
        target->port = options.port;
        target->media_port = options.media_port;
        target->server_key = *key;
        target->users = std::move(*users);
        target->pid = options.server_pid;
        target->description = "server at " + options.host + " TCP " + std::to_string(options.port) + " UDP " +
                              std::to_string(options.media_port) +
                              (options.server_pid ? " (pid " + std::to_string(*options.server_pid) + ")"
                                                  : " (no --server-pid: no server memory/CPU figures)");
        return target;
    }

    ServerChildSetup setup;
    dtcall::Config& config = setup.config;
    config.listen_addresses = {"127.0.0.1"};
    config.command_port = 0;
    config.media_port = 0;
    config.server_keys = dtcall::KeyPair::generate();
    // Every bench connection comes from 127.0.0.1: the per-IP cap on
    // connections still logging in (a DoS guard, 64 by default) would
    // otherwise refuse the load itself.
    config.max_unauthenticated_per_ip = 1000000;
    config.max_connections = std::max<std::size_t>(config.max_connections, users_needed + 1024);
    std::string changed;
    if (options.frame_gap_ms) {
        config.frame_gap = std::chrono::milliseconds(*options.frame_gap_ms);
        changed += ", frame_gap = " + std::to_string(*options.frame_gap_ms) + " ms";
    }
    if (options.media_threads) {
        config.media_threads = *options.media_threads;
        changed += ", media_threads = " + std::to_string(*options.media_threads);
    }
    target->notes.push_back("in-process server: dtcalld defaults, except max_unauthenticated_per_ip = 1000000 "
                            "(all load comes from 127.0.0.1)" + changed);
    target->server_key = config.server_keys.public_key;
    target->users = make_users(std::max<std::size_t>(users_needed, 1), target->server_key, "u");
    setup.users.reserve(target->users.size());
    for (const BenchUser& u : target->users) setup.users.emplace_back(u.name, u.keys.public_key);
    if (options.nodes > 1) {
        // The nodes' directories are copies of one: every node knows every user.
        auto started = start_cluster(*target, options, std::move(setup), server_cpu, node_cpus);
        if (!started) return dtcall::Error{started.error()};  // target's destructor stops what started
        return target;
    }

    auto child = ChildProcess::start(
        "in-process server", [&setup](int requests, int answers) { return run_server_child(setup, requests, answers); },
        server_cpu, std::chrono::milliseconds(10000));
    if (!child) return dtcall::Error{child.error()};
    unsigned tcp = 0, udp = 0;
    if (std::sscanf((*child)->ready_line().c_str(), "ready %u %u", &tcp, &udp) != 2 || !tcp || !udp || tcp > 65535 ||
        udp > 65535)
        return dtcall::Error{"in-process server: unexpected ready line \"" + (*child)->ready_line() + "\""};
    target->host = "127.0.0.1";
    target->port = std::uint16_t(tcp);
    target->media_port = std::uint16_t(udp);
    target->pid = (*child)->pid();
    target->description = "in-process dtcalld engine (child pid " + std::to_string((*child)->pid()) +
                          (server_cpu ? ", CPU " + std::to_string(*server_cpu) : std::string(", not pinned")) +
                          ") on 127.0.0.1 TCP " + std::to_string(tcp) + " UDP " + std::to_string(udp);
    target->child = std::move(*child);
    return target;
}

dtcall::Result<std::unique_ptr<Rig>> rig_up(const Options& options, std::size_t users_needed,
                                            std::optional<int> server_cpu, const std::vector<int>& node_cpus,
                                            std::function<std::size_t(std::size_t)> node_of) {
    auto rig = std::make_unique<Rig>();
    auto target = open_target(options, users_needed, true, server_cpu, node_cpus);
    if (!target) return dtcall::Error{target.error()};
    rig->target = std::move(*target);
    rig->loop = std::make_unique<Loop>();
    if (!rig->loop->ok()) return dtcall::Error{"cannot create an event loop"};
    rig->hellos = std::make_unique<HelloPool>(rig->target->server_key, 256);
    PhoneContext& context = rig->context;
    context.base = rig->loop->base();
    context.server_key = rig->target->server_key;
    context.hellos = rig->hellos.get();
    context.heartbeat = std::chrono::milliseconds(std::int64_t(options.heartbeat * 1000));
    if (rig->target->cluster()) {
        for (const Target::Node& node : rig->target->nodes) {
            PhoneContext aimed_at;
            auto aimed = set_addresses(aimed_at, rig->target->host, node.port, node.media_port, node.name);
            if (!aimed) return dtcall::Error{aimed.error()};
            context.nodes.push_back({aimed_at.command_address, aimed_at.command_length, aimed_at.media_address,
                                     aimed_at.media_length});
        }
        context.node_of = node_of ? node_of : [n = rig->target->nodes.size()](std::size_t phone) {
            return round_robin_node(phone, n);
        };
        // The context's own addresses: node1's (for code that wants one).
        const PhoneContext::Endpoint& first = context.nodes.front();
        context.command_address = first.command;
        context.command_length = first.command_length;
        context.media_address = first.media;
        context.media_length = first.media_length;
        return rig;
    }
    auto aimed = set_addresses(context, rig->target->host, rig->target->port, rig->target->media_port, "--host");
    if (!aimed) return dtcall::Error{aimed.error()};
    return rig;
}

}  // namespace dtbench
