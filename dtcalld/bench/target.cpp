#include "target.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

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
}

dtcall::Result<std::unique_ptr<Target>> open_target(const Options& options, std::size_t users_needed,
                                                    bool distinct_users, std::optional<int> server_cpu) {
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
                                            std::optional<int> server_cpu) {
    auto rig = std::make_unique<Rig>();
    auto target = open_target(options, users_needed, true, server_cpu);
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
    auto aimed = set_addresses(context, rig->target->host, rig->target->port, rig->target->media_port, "--host");
    if (!aimed) return dtcall::Error{aimed.error()};
    return rig;
}

}  // namespace dtbench
