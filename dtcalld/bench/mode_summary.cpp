// summary: every figure of the README's Performance table from one run —
// logins one and 16 at a time, call set-up, relay at 500 calls x 50 pps and
// at saturation (each beside the baseline forwarder), idle sessions — so the
// table is reproduced by one command.
#include "modes.hpp"

#include <functional>

namespace dtbench {
namespace {

struct Part {
    const char* name;
    Mode mode;
    std::function<void(Options&)> load;
};

// Copies one figure of a part's report into the summary, with its baseline.
void copy(Report& summary, const Report& part, const std::string& key, const std::string& prefix,
          const std::string& label) {
    const Metric* m = part.find(key);
    if (!m) return;
    Metric& copied = summary.add(prefix + "_" + key, label, m->unit, m->value, m->decimals);
    copied.baseline = m->baseline;
}

}  // namespace

dtcall::Result<Report> run_summary(const RunContext& run) {
    const Options& o = run.options;
    const std::vector<Part> parts = {
        {"login_1", Mode::login, [](Options& p) { p.concurrency = 1; }},
        {"login_16", Mode::login, [](Options& p) { p.concurrency = 16; }},
        {"calls_500", Mode::calls, [](Options& p) { p.pairs = 500; }},
        {"relay_500x50", Mode::relay, [](Options& p) { p.pairs = 500; p.rate = 50; }},
        {"relay_saturated", Mode::relay, [](Options& p) { p.pairs = 50; p.rate = 0; }},
        {"idle", Mode::idle, [count = o.count ? o.count : 100000](Options& p) {
             p.count = count;
             p.concurrency = 32;
         }},
    };
    Report summary;
    summary.mode = "summary";
    summary.title = "dtcall-bench summary: the README's Performance figures, " +
                    format_number(o.duration, 0) + " s per part" + run.placement;
    summary.parameter("duration_s_per_part", o.duration);
    for (const Part& part : parts) {
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
        if (p == "login_1") {
            copy(summary, r, "logins_per_s", p, "logins, one at a time");
            copy(summary, r, "latency_p99_ms", p, "  login latency p99");
        } else if (p == "login_16") {
            copy(summary, r, "logins_per_s", p, "logins, 16 at a time");
            copy(summary, r, "latency_p99_ms", p, "  login latency p99");
            copy(summary, r, "server_cpu_us_per_login", p, "  server CPU per login");
            copy(summary, r, "sodium_bound_logins_per_s", p, "  libsodium bound (3 X25519, one core)");
            copy(summary, r, "percent_of_bound", p, "  logins / libsodium bound");
        } else if (p == "calls_500") {
            copy(summary, r, "calls_per_s", p, "calls set up, 500 pairs");
            copy(summary, r, "setup_p50_ms", p, "  call -> start p50");
            copy(summary, r, "setup_p99_ms", p, "  call -> start p99");
        } else if (p == "relay_500x50") {
            copy(summary, r, "delivered_pps", p, "relay 500 calls x 50 pps/party, delivered");
            copy(summary, r, "loss_percent", p, "  loss");
            copy(summary, r, "latency_p50_us", p, "  one-way latency p50");
            copy(summary, r, "latency_p99_us", p, "  one-way latency p99");
            copy(summary, r, "added_latency_p99_us", p, "  latency added over the baseline, p99");
            copy(summary, r, "latency_max_us", p, "  one-way latency max");
            copy(summary, r, "server_cpu_us_per_packet", p, "  CPU per packet");
        } else if (p == "relay_saturated") {
            copy(summary, r, "delivered_pps", p, "relay at saturation (50 pairs, open loop)");
            copy(summary, r, "loss_percent", p, "  loss");
            copy(summary, r, "server_cpu_us_per_packet", p, "  CPU per packet");
        } else if (p == "idle") {
            copy(summary, r, "held", p, "idle logged-in sessions held");
            copy(summary, r, "server_bytes_per_session", p, "  server RSS per session");
            copy(summary, r, "projected_rss_bytes_100k", p, "  PROJECTION: server RSS for 100000");
        }
    }
    return summary;
}

}  // namespace dtbench
