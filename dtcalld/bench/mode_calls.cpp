// calls: P pairs placing calls back to back for --duration seconds (with
// --hold, each call stays up that long with media at --rate). Logins come
// first and are not timed. With --nodes N, first through a cluster (each
// caller on another node than its callee), then the same load on one node,
// beside it.
#include "call_driver.hpp"
#include "event_loop.hpp"
#include "modes.hpp"
#include "target.hpp"

#include <vector>

namespace dtbench {
namespace {

dtcall::Result<Report> calls_once(const RunContext& run) {
    const Options& o = run.options;
    std::uint64_t needed = std::uint64_t(o.pairs) * 4 + 64;  // TCP + UDP per party
    if (needed > run.open_files)
        return dtcall::Error{"--pairs " + std::to_string(o.pairs) + " needs about " + std::to_string(needed) +
                             " file descriptors; this process may open " + std::to_string(run.open_files)};
    const std::size_t nodes = o.nodes;
    auto rig = rig_up(o, std::size_t(o.pairs) * 2, run.server_cpu, run.node_cpus,
                      [nodes](std::size_t phone) { return pair_node(phone, nodes); });
    if (!rig) return dtcall::Error{rig.error()};
    auto& target = (*rig)->target;
    Loop& loop = *(*rig)->loop;
    PhoneContext& context = (*rig)->context;

    CallSettings settings;
    settings.repeat = true;
    settings.hold = std::chrono::milliseconds(o.hold_ms);
    settings.media_rate = o.hold_ms ? o.rate : 0;
    settings.media_size = o.size;
    settings.logins_in_flight = o.in_process ? 64 : 32;
    CallDriver driver(context, target->users, o.pairs, settings);
    Progress progress(!o.quiet && o.duration >= 3, "calls");

    driver.start();
    loop.run_until([&] { return driver.logins_done(); },
                   Clock::now() + std::chrono::seconds(30) + std::chrono::milliseconds(o.pairs * 40));

    if (target->cluster()) {
        // Calls need each node to know the other nodes' users.
        auto ready = target->wait_for_presence(std::chrono::seconds(10) + std::chrono::milliseconds(o.pairs * 5));
        if (!ready) return dtcall::Error{ready.error()};
    }
    ServerProbe server(target->pid);
    if (auto begun = server.begin(); !begun) return dtcall::Error{begun.error()};
    std::vector<ServerProbe> node_probes;
    for (const Target::Node& node : target->nodes) node_probes.emplace_back(node.pid);
    ServerProbe redis(target->redis ? std::optional<pid_t>(target->redis->pid()) : std::nullopt);
    if (auto begun = redis.begin(); !begun) return dtcall::Error{"redis-server: " + begun.error()};
    for (ServerProbe& probe : node_probes)
        if (auto begun = probe.begin(); !begun) return dtcall::Error{begun.error()};
    std::int64_t own_before = own_cpu_ns();
    auto start = Clock::now();
    driver.begin_calling();
    loop.run_until([] { return false; }, start + std::chrono::microseconds(std::int64_t(o.duration * 1e6)), [&] {
        double t = seconds_since(start);
        progress.update(format_number(t, 0) + "/" + format_number(o.duration, 0) + " s  " +
                        std::to_string(driver.stats().calls_up) + " calls (" +
                        format_number(double(driver.stats().calls_up) / t, 0) + "/s), " +
                        std::to_string(driver.stats().calls_failed) + " failed");
    });
    double elapsed = seconds_since(start);
    auto server_cpu_read = server.cpu_ns();
    std::int64_t own_cpu = own_cpu_ns() - own_before;
    if (!server_cpu_read) return dtcall::Error{server_cpu_read.error()};
    std::optional<std::int64_t> server_cpu = *server_cpu_read;
    std::vector<std::int64_t> node_cpu;
    for (std::size_t i = 0; i < node_probes.size(); ++i) {
        auto cpu = node_probes[i].cpu_ns();
        if (!cpu) return dtcall::Error{target->nodes[i].name + ": " + cpu.error()};
        node_cpu.push_back(cpu->value_or(0));
    }
    auto redis_cpu = redis.cpu_ns();
    if (!redis_cpu) return dtcall::Error{"redis-server: " + redis_cpu.error()};
    if (!node_cpu.empty()) {
        // The cluster's CPU: every node's, for the same calls.
        server_cpu = 0;
        for (std::int64_t ns : node_cpu) *server_cpu += ns;
    }
    std::uint64_t calls_in_time = driver.stats().calls_up;
    driver.stop_calling();
    // Let calls in progress finish, so that failures among them are counted.
    loop.run_until([&] { return driver.quiet(); },
                   Clock::now() + settings.call_timeout + settings.hold + std::chrono::seconds(6));
    progress.finish();
    const CallStats& s = driver.stats();

    Report report;
    report.mode = "calls";
    report.title = "dtcall-bench calls: " + std::to_string(o.pairs) + " pairs calling for " +
                   format_number(o.duration, 1) + " s" +
                   (o.hold_ms ? ", each call held " + std::to_string(o.hold_ms) + " ms with media" : std::string()) +
                   ", against the " + target->description + run.placement;
    report.parameter("pairs", o.pairs);
    if (target->cluster()) report.parameter("nodes", o.nodes);
    report.parameter("duration_s", o.duration);
    report.parameter("hold_ms", o.hold_ms);
    if (o.hold_ms) {
        report.parameter("rate_pps", o.rate);
        report.parameter("size_bytes", o.size);
    }
    report.add("calls_per_s", "calls set up", "/s", double(calls_in_time) / elapsed, 1);
    report.add("setup_p50_ms", "call -> start latency p50 (caller)", "ms", double(s.setup_latency.percentile(0.5)) / 1e6, 2);
    report.add("setup_p99_ms", "call -> start latency p99", "ms", double(s.setup_latency.percentile(0.99)) / 1e6, 2);
    report.add("setup_max_ms", "call -> start latency max", "ms", double(s.setup_latency.max()) / 1e6, 2);
    report.add("calls_up", "calls set up (whole run)", "", double(s.calls_up), 0);
    report.add("calls_failed", "calls failed", "", double(s.calls_failed), 0);
    report.add("logins", "logins", "", double(s.logins), 0);
    report.add("login_failures", "logins failed", "", double(s.login_failures), 0);
    report.add("connections_lost", "connections lost", "", double(s.connections_lost), 0);
    if (o.hold_ms && o.rate > 0) {
        report.add("media_sent", "media packets sent", "", double(s.media_sent), 0);
        report.add("media_received", "media packets received", "", double(s.media_received), 0);
        report.add("media_loss_percent", "media loss", "%",
                   s.media_sent ? 100.0 * (double(s.media_sent) - double(s.media_received)) / double(s.media_sent) : 0, 2);
        report.add("media_latency_p50_us", "media one-way latency p50", "us", double(s.media_latency.percentile(0.5)) / 1e3, 1);
        report.add("media_latency_p99_us", "media one-way latency p99", "us", double(s.media_latency.percentile(0.99)) / 1e3, 1);
    }
    if (server_cpu) {
        report.add("server_cpu_us_per_call", "server CPU per call", "us",
                   calls_in_time ? double(*server_cpu) / 1e3 / double(calls_in_time) : 0, 1);
        report.add("server_cpu_percent", "server CPU (of one core)", "%", 100.0 * double(*server_cpu) / 1e9 / elapsed, 1);
    }
    for (std::size_t i = 0; i < node_cpu.size(); ++i) {
        const std::string& name = target->nodes[i].name;
        report.add(name + "_cpu_percent", "  " + name + " CPU (of one core)", "%",
                   100.0 * double(node_cpu[i]) / 1e9 / elapsed, 1);
    }
    if (*redis_cpu)
        report.add("redis_cpu_us_per_call", "redis-server CPU per call", "us",
                   calls_in_time ? double(**redis_cpu) / 1e3 / double(calls_in_time) : 0, 1);
    report.add("generator_cpu_percent", "generator CPU (of one core)", "%", 100.0 * double(own_cpu) / 1e9 / elapsed, 1);
    report.series.emplace_back("call setup", s.setup_latency);
    report.series_label = "call -> start latency";
    report.notes.push_back("call -> start includes the server's frame pacing (frame_gap) and direct hold, as a "
                           "real client sees them; each party registers media once per call (sealed, 2 X25519 "
                           "operations on the generator)");
    for (auto& note : target->notes) report.notes.push_back(note);
    if (target->cluster())
        report.notes.push_back("cross-node: pair k's caller on node k % " + std::to_string(nodes) +
                               ", its callee on node (k + 1) % " + std::to_string(nodes) +
                               ": every call crosses nodes through Redis; server CPU is all nodes' together "
                               "(redis-server's not included)");
    for (auto& [why, n] : s.failure_reasons) report.failures.push_back(std::to_string(n) + " x " + why);
    if (s.calls_up == 0) {
        report.failures.push_back("no call was set up");
        report.measured_nothing = true;
    }
    target->stop();
    return report;
}

}  // namespace

dtcall::Result<Report> run_calls(const RunContext& run) {
    if (run.options.nodes <= 1) return calls_once(run);
    auto cross = calls_once(run);
    if (!cross) return dtcall::Error{"cross-node: " + cross.error()};
    RunContext single = run;
    single.options.nodes = 1;
    auto same = calls_once(single);
    if (!same) return dtcall::Error{"same-node: " + same.error()};
    return beside_same_node(std::move(*cross), *same);
}

}  // namespace dtbench
