// summary: every figure of the README's Performance table from one run —
// logins one and 16 at a time, call set-up, relay at 500 calls x 50 pps and
// at saturation (each beside the baseline forwarder), idle sessions — so the
// table is reproduced by one command. With --nodes N, the cluster's figures
// instead: calls, relay and idle through N nodes, each beside the same load
// on one node (the login parts do not change with nodes and are left out).
#include "modes.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <thread>
#include <vector>

namespace dtbench {
namespace {

struct Row {
    std::string key;  // the part's metric
    std::string label;
};

struct Part {
    const char* name;
    Mode mode;
    std::function<void(Options&)> load;
    std::vector<Row> rows;  // what the summary shows of it
};

// --nodes N: the Measured list, per node where it is per node.
std::vector<Part> cluster_summary_parts(const Options& o) {
    auto per_node = [&](std::vector<Row> rows, const std::vector<std::pair<std::string, std::string>>& each) {
        for (unsigned i = 1; i <= o.nodes; ++i)
            for (const auto& [key, label] : each) {
                std::string n = "node" + std::to_string(i);
                rows.push_back({n + key, "  " + n + label});
            }
        return rows;
    };
    return {
        {"calls_500", Mode::calls, [](Options& p) { p.pairs = 500; },
         {{"calls_per_s", "calls set up, 500 pairs"},
          {"setup_p50_ms", "  call -> start p50"},
          {"setup_p99_ms", "  call -> start p99"},
          {"server_cpu_us_per_call", "  server CPU per call (all nodes)"},
          {"redis_cpu_us_per_call", "  redis-server CPU per call"}}},
        {"relay_500x50", Mode::relay, [](Options& p) { p.pairs = 500; p.rate = 50; },
         per_node({{"delivered_pps", "relay 500 calls x 50 pps/party, delivered"},
                   {"loss_percent", "  loss"},
                   {"latency_p50_us", "  one-way latency p50"},
                   {"latency_p99_us", "  one-way latency p99"},
                   {"added_latency_p99_us", "  latency added by the extra hop, p99"},
                   {"server_cpu_us_per_packet", "  relay CPU per packet (all nodes)"},
                   {"generator_cpu_percent", "  generator CPU (of one core)"}},
                  {{"_cpu_us_per_packet", " CPU per packet through it"}})},
        {"relay_saturated", Mode::relay, [](Options& p) { p.pairs = 50; p.rate = 0; },
         per_node({{"delivered_pps", "relay at saturation (50 pairs, open loop)"},
                   {"loss_percent", "  loss"},
                   {"server_cpu_us_per_packet", "  relay CPU per packet (all nodes)"},
                   {"generator_cpu_percent", "  generator CPU (of one core)"}},
                  {{"_cpu_us_per_packet", " CPU per packet through it"}})},
        {"idle", Mode::idle,
         [count = o.count ? o.count : 6000 * o.nodes](Options& p) {
             p.count = count;
             p.concurrency = 32;
         },
         per_node({{"held", "idle logged-in sessions held"},
                   {"server_bytes_per_session", "  server RSS per session (all nodes)"},
                   {"redis_bytes_per_user", "  redis-server memory per online user"}},
                  {{"_held", ": sessions held"}, {"_bytes_per_session", ": RSS per session held there"}})},
    };
}

}  // namespace

void copy_part_metric(Report& summary, const Report& part, const std::string& key, const std::string& prefix,
                      const std::string& label) {
    const Metric* m = part.find(key);
    if (!m) {
        summary.add(prefix + "_" + key, label, "", NAN, 0);
        summary.notes.push_back(prefix + ": " + key + ": n/a, the part did not report this figure"
                                " (see its notes; an external server needs --server-pid for CPU and memory)");
        return;
    }
    Metric& copied = summary.add(prefix + "_" + key, label, m->unit, m->value, m->decimals);
    copied.baseline = m->baseline;
}

dtcall::Result<Report> run_summary(const RunContext& run) {
    const Options& o = run.options;
    const std::vector<Part> parts = {
        {"login_1", Mode::login, [](Options& p) { p.concurrency = 1; },
         {{"logins_per_s", "logins, one at a time"}, {"latency_p99_ms", "  login latency p99"}}},
        {"login_16", Mode::login, [](Options& p) { p.concurrency = 16; },
         {{"logins_per_s", "logins, 16 at a time"},
          {"latency_p99_ms", "  login latency p99"},
          {"server_cpu_us_per_login", "  server CPU per login"},
          {"sodium_bound_logins_per_s", "  libsodium bound (3 X25519, one core)"},
          {"percent_of_bound", "  logins / libsodium bound"},
          {"percent_of_repeat_bound", "  logins / bound of a repeat login (2 X25519)"},
          {"generator_cpu_percent", "  generator CPU (of one core)"}}},
        {"calls_500", Mode::calls, [](Options& p) { p.pairs = 500; },
         {{"calls_per_s", "calls set up, 500 pairs"},
          {"setup_p50_ms", "  call -> start p50"},
          {"setup_p99_ms", "  call -> start p99"}}},
        {"relay_500x50", Mode::relay, [](Options& p) { p.pairs = 500; p.rate = 50; },
         {{"delivered_pps", "relay 500 calls x 50 pps/party, delivered"},
          {"loss_percent", "  loss"},
          {"latency_p50_us", "  one-way latency p50"},
          {"latency_p99_us", "  one-way latency p99"},
          {"added_latency_p99_us", "  latency added over the baseline, p99"},
          {"latency_max_us", "  one-way latency max"},
          {"server_cpu_us_per_packet", "  CPU per packet"},
          {"generator_cpu_percent", "  generator CPU (of one core)"}}},
        {"relay_saturated", Mode::relay, [](Options& p) { p.pairs = 50; p.rate = 0; },
         {{"delivered_pps", "relay at saturation (50 pairs, open loop)"},
          {"loss_percent", "  loss"},
          {"server_cpu_us_per_packet", "  CPU per packet"},
          {"generator_cpu_percent", "  generator CPU (of one core)"}}},
        {"idle", Mode::idle,
         [count = o.count ? o.count : 100000](Options& p) {
             p.count = count;
             p.concurrency = 32;
         },
         {{"held", "idle logged-in sessions held"},
          {"server_bytes_per_session", "  server RSS per session"},
          {"projected_rss_bytes_100k", "  PROJECTION: server RSS for 100000"}}},
    };
    const bool cluster = o.nodes > 1;
    Report summary;
    summary.mode = "summary";
    summary.title = "dtcall-bench summary: the README's Performance figures, " +
                    format_number(o.duration, 0) + " s per part" + run.placement;
    summary.parameter("duration_s_per_part", o.duration);
    if (cluster) {
        summary.title = "dtcall-bench summary --nodes " + std::to_string(o.nodes) +
                        ": the README's Cluster figures, cross-node beside the same load on one node, " +
                        format_number(o.duration, 0) + " s per part" + run.placement;
        summary.parameter("nodes", o.nodes);
        summary.subject = "cross-node";
        summary.baseline_subject = "same-node";
        summary.notes.push_back("login parts left out: a login does not cross nodes (run summary without --nodes)");
    }
    const std::vector<Part> cluster_parts = cluster ? cluster_summary_parts(o) : std::vector<Part>{};
    const std::vector<Part>& run_parts = cluster ? cluster_parts : parts;
    for (const Part& part : run_parts) {
        // A moment between parts, so that one part's sockets and CPU load
        // (TIME_WAIT, a child still exiting) do not weigh on the next.
        if (&part != &run_parts.front())
            std::this_thread::sleep_for(std::chrono::milliseconds(std::int64_t(std::min(2.0, o.duration / 5) * 1000)));
        RunContext context = run;
        context.options.mode = part.mode;
        context.options.plot_file.clear();
        part.load(context.options);
        dtcall::Result<Report> result = dtcall::Error{"not run"};
        switch (part.mode) {
        case Mode::login: result = run_login(context); break;
        case Mode::calls: result = run_calls(context); break;
        case Mode::relay: result = run_relay(context); break;
        case Mode::idle: result = run_idle(context); break;
        default: break;
        }
        if (!result) return dtcall::Error{std::string(part.name) + ": " + result.error()};
        const Report& r = *result;
        std::string p = part.name;
        for (const std::string& note : r.notes) summary.notes.push_back(p + ": " + note);
        for (const std::string& failure : r.failures) summary.failures.push_back(p + ": " + failure);
        for (const Row& row : part.rows) copy_part_metric(summary, r, row.key, p, row.label);
    }
    return summary;
}

}  // namespace dtbench
