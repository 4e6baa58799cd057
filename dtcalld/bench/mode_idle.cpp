// idle: log in K connections (at most --concurrency logins in flight), keep
// them with heartbeats, and read the server's resident memory before and
// after. K beyond what the open-files limit lets one process hold is
// projected from the measured bytes per session, and says so. With --nodes N
// the sessions go round robin over a cluster's nodes (memory per node, and
// Redis memory per online user), then the same count on one node beside it.
#include "event_loop.hpp"
#include "key_material.hpp"
#include "modes.hpp"
#include "phone.hpp"
#include "target.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <unistd.h>
#include <memory>

namespace dtbench {
namespace {

// File descriptors kept back for the loop, pipes, listeners, /proc reads.
constexpr std::uint64_t reserved_files = 64;

class IdleHolder final : public PhoneListener {
public:
    IdleHolder(PhoneContext& context, const std::vector<BenchUser>& users, std::size_t count, unsigned in_flight)
        : ever_logged_in_(count, false), in_flight_limit_(in_flight) {
        for (std::size_t i = 0; i < count; ++i)
            phones_.push_back(std::make_unique<Phone>(context, users[i], *this, i));
    }

    void start() { launch(); }
    // Every phone has logged in or failed (a drop after login does not count twice).
    bool settled() const { return next_ == phones_.size() && in_flight_ == 0; }
    std::size_t holding() const {
        std::size_t n = 0;
        for (auto& p : phones_) n += p->logged_in();
        return n;
    }
    std::size_t holding_on(std::size_t node) const {
        std::size_t n = 0;
        for (auto& p : phones_) n += p->logged_in() && p->node() == node;
        return n;
    }

    void logged_in(Phone& phone) override {
        ever_logged_in_[phone.index()] = true;
        ++held;
        --in_flight_;
        launch();
    }
    void failed(Phone& phone, const std::string& why) override {
        ++reasons[why];
        if (ever_logged_in_[phone.index()]) {
            ++dropped;
            return;
        }
        ++failed_logins;
        --in_flight_;
        launch();
    }

    std::uint64_t held = 0, failed_logins = 0, dropped = 0;
    std::map<std::string, std::uint64_t> reasons;

private:
    void launch() {
        while (in_flight_ < in_flight_limit_ && next_ < phones_.size()) {
            ++in_flight_;
            phones_[next_++]->connect();
        }
    }

    std::vector<std::unique_ptr<Phone>> phones_;
    std::vector<bool> ever_logged_in_;
    unsigned in_flight_limit_;
    unsigned in_flight_ = 0;
    std::size_t next_ = 0;
};

// What a cluster run reads before and after the logins.
struct ClusterMemory {
    std::vector<std::optional<std::uint64_t>> node_rss;
    std::optional<std::uint64_t> redis_used;
    std::string redis_error;
};

dtcall::Result<ClusterMemory> cluster_memory(Target& target) {
    ClusterMemory m;
    for (const Target::Node& node : target.nodes) {
        auto rss = ServerProbe(node.pid).rss();
        if (!rss) return dtcall::Error{node.name + ": " + rss.error()};
        m.node_rss.push_back(*rss);
    }
    auto used = target.redis->used_memory();
    if (used) m.redis_used = *used;
    else m.redis_error = used.error();
    return m;
}

dtcall::Result<Report> idle_once(const RunContext& run) {
    const Options& o = run.options;
    std::uint64_t fit = run.open_files > reserved_files ? run.open_files - reserved_files : 0;
    std::size_t count = std::size_t(std::min<std::uint64_t>(o.count, fit));
    if (count == 0) return dtcall::Error{"the open-files limit (" + std::to_string(run.open_files) + ") leaves no room for connections"};

    const std::size_t nodes = o.nodes;
    auto rig = rig_up(o, count, run.server_cpu, run.node_cpus,
                      [nodes](std::size_t phone) { return round_robin_node(phone, nodes); });
    if (!rig) return dtcall::Error{rig.error()};
    auto& target = (*rig)->target;
    Loop& loop = *(*rig)->loop;
    PhoneContext& context = (*rig)->context;

    ServerProbe server(target->pid);
    auto rss_before_read = server.rss();
    if (!rss_before_read) return dtcall::Error{rss_before_read.error()};
    std::optional<std::uint64_t> rss_before = *rss_before_read;
    auto slab_before = slab_bytes();
    auto own_rss_before = resident_bytes(getpid());
    ClusterMemory cluster_before, cluster_after;
    if (target->cluster()) {
        auto read = cluster_memory(*target);
        if (!read) return dtcall::Error{read.error()};
        cluster_before = std::move(*read);
    }

    IdleHolder holder(context, target->users, count, o.concurrency);
    Progress progress(!o.quiet, "idle");
    auto start = Clock::now();
    holder.start();
    // Generous: even a slow server logs in a few hundred users a second.
    auto login_limit = start + std::chrono::seconds(30) + std::chrono::milliseconds(count * 20);
    loop.run_until([&] { return holder.settled(); }, login_limit, [&] {
        progress.update("logging in: " + std::to_string(holder.held) + "/" + std::to_string(count) + " held, " +
                        std::to_string(holder.failed_logins) + " failed");
    });
    double login_seconds = seconds_since(start);
    // Let the server finish what the logins left (frees, pacing timers):
    // a second for big runs, less for a handful of sessions.
    loop.run_until([] { return false; },
                   Clock::now() + std::chrono::milliseconds(std::clamp<std::size_t>(count, 200, 1000)));
    std::size_t held = holder.holding();
    std::optional<std::string> presence_error;
    std::vector<std::optional<ClusterView>> views;
    if (target->cluster()) {
        // Every node's cache holds the others' users before memory is read.
        auto ready = target->wait_for_presence(std::chrono::seconds(10) + std::chrono::milliseconds(count));
        if (!ready) presence_error = ready.error();
        auto read = cluster_memory(*target);
        if (!read) return dtcall::Error{read.error()};
        cluster_after = std::move(*read);
        for (std::size_t i = 0; i < target->nodes.size(); ++i) views.push_back(target->node_view(i));
    }
    auto rss_after_read = server.rss();
    if (!rss_after_read) return dtcall::Error{rss_after_read.error()};
    std::optional<std::uint64_t> rss_after = *rss_after_read;
    auto slab_after = slab_bytes();
    auto own_rss_after = resident_bytes(getpid());
    auto scrape = target->scrape();  // dtcalld's /metrics body with the sessions held

    auto hold_start = Clock::now();
    loop.run_until([] { return false; }, hold_start + std::chrono::microseconds(std::int64_t(o.duration * 1e6)), [&] {
        progress.update("holding " + std::to_string(holder.holding()) + " sessions, " +
                        format_number(seconds_since(hold_start), 0) + "/" + format_number(o.duration, 0) + " s");
    });
    std::size_t held_at_end = holder.holding();
    progress.finish();

    Report report;
    report.mode = "idle";
    report.title = "dtcall-bench idle: " + std::to_string(o.count) + " logged-in connections held for " +
                   format_number(o.duration, 1) + " s against the " + target->description + run.placement;
    report.parameter("count", o.count);
    if (target->cluster()) report.parameter("nodes", o.nodes);
    report.parameter("duration_s", o.duration);
    report.parameter("heartbeat_s", o.heartbeat);
    report.add("requested", "sessions requested", "", double(o.count), 0);
    report.add("attempted", "sessions attempted (fit in the open-files limit)", "", double(count), 0);
    report.add("held", "sessions held after logging in", "", double(held), 0);
    report.add("held_at_end", "sessions still held at the end", "", double(held_at_end), 0);
    report.add("failed_logins", "logins failed", "", double(holder.failed_logins), 0);
    report.add("login_seconds", "time to log them in", "s", login_seconds, 2);
    if (scrape) {
        report.add("metrics_scrape_ms", "a /metrics scrape (body built in the server, worst of 5) with the sessions held",
                   "ms", scrape->worst_ms, 3);
    }
    if (rss_before && rss_after) {
        double per_session = held ? (double(*rss_after) - double(*rss_before)) / double(held) : 0;
        report.add("server_rss_before_bytes", "server RSS before", "B", double(*rss_before), 0);
        report.add("server_rss_after_bytes", "server RSS with the sessions", "B", double(*rss_after), 0);
        report.add("server_bytes_per_session", "server RSS per session", "B", per_session, 0);
        if (o.count > count) {
            report.add("projected_rss_bytes_for_count", "PROJECTION: server RSS for " + std::to_string(o.count) + " sessions",
                       "B", double(*rss_before) + per_session * double(o.count), 0);
            report.notes.push_back("only " + std::to_string(count) + " of " + std::to_string(o.count) +
                                   " sessions fit in the open-files limit of " + std::to_string(run.open_files) +
                                   " per process; the PROJECTION row is RSS before + measured bytes/session x " +
                                   std::to_string(o.count) + ", not a measurement");
        }
        report.add("projected_rss_bytes_100k", "PROJECTION: server RSS for 100000 sessions", "B",
                   double(*rss_before) + per_session * 100000.0, 0);
    } else if (!target->cluster()) {
        report.notes.push_back("no server memory figures: give --server-pid PID for an external server");
    }
    if (target->cluster()) {
        // The cluster's figure comparable with one server's: all nodes' RSS growth per session.
        double grown = 0;
        bool all = true;
        for (std::size_t i = 0; i < target->nodes.size(); ++i) {
            all = all && cluster_before.node_rss[i] && cluster_after.node_rss[i];
            if (all) grown += double(*cluster_after.node_rss[i]) - double(*cluster_before.node_rss[i]);
        }
        if (all) report.add("server_bytes_per_session", "server RSS per session (all nodes)", "B", held ? grown / double(held) : 0, 0);
        for (std::size_t i = 0; i < target->nodes.size(); ++i) {
            const std::string& n = target->nodes[i].name;
            std::size_t here = holder.holding_on(i);
            report.add(n + "_held", n + ": sessions held", "", double(here), 0);
            if (views[i]) report.add(n + "_remote_users", "  " + n + ": users it knows on other nodes", "", double(views[i]->remote_users), 0);
            if (cluster_before.node_rss[i] && cluster_after.node_rss[i]) {
                double grown_here = double(*cluster_after.node_rss[i]) - double(*cluster_before.node_rss[i]);
                report.add(n + "_rss_after_bytes", "  " + n + ": RSS with the sessions", "B", double(*cluster_after.node_rss[i]), 0);
                report.add(n + "_bytes_per_session", "  " + n + ": RSS per session held there", "B",
                           here ? grown_here / double(here) : NAN, 0);
            }
        }
        if (cluster_before.redis_used && cluster_after.redis_used) {
            report.add("redis_used_memory_before_bytes", "redis-server used_memory before", "B", double(*cluster_before.redis_used), 0);
            report.add("redis_used_memory_after_bytes", "redis-server used_memory with the sessions", "B",
                       double(*cluster_after.redis_used), 0);
            report.add("redis_bytes_per_user", "redis-server memory per online user", "B",
                       held ? (double(*cluster_after.redis_used) - double(*cluster_before.redis_used)) / double(held) : NAN, 0);
        } else {
            report.add("redis_bytes_per_user", "redis-server memory per online user", "B", NAN, 0);
            report.notes.push_back("redis-server memory per online user: n/a, " +
                                   (cluster_before.redis_error.empty() ? cluster_after.redis_error : cluster_before.redis_error));
        }
        report.notes.push_back("cross-node: sessions round robin over " + std::to_string(nodes) +
                               " nodes (session i on node i % " + std::to_string(nodes) +
                               "); a node's RSS per session includes its cache of the other nodes' users; redis "
                               "memory: INFO memory used_memory after the logins minus before, / sessions held");
        if (presence_error) report.failures.push_back(*presence_error);
    }
    // Optional figures: when /proc cannot tell, the row says n/a and a note why.
    auto optional_figure = [&](const char* key, const char* label, const dtcall::Result<std::uint64_t>& before,
                               const dtcall::Result<std::uint64_t>& after) {
        if (!held) return;
        if (before && after) {
            report.add(key, label, "B", (double(*after) - double(*before)) / double(held), 0);
            return;
        }
        report.add(key, label, "B", NAN, 0);
        report.notes.push_back(std::string(label) + ": n/a, " + (before ? after.error() : before.error()));
    };
    optional_figure("kernel_slab_bytes_per_session", "kernel slab per session (both ends, whole machine)",
                    slab_before, slab_after);
    optional_figure("generator_bytes_per_session", "generator RSS per session", own_rss_before, own_rss_after);
    if (o.in_process)
        report.notes.push_back("the in-process server is a child process: its RSS holds only server memory "
                               "(plus pages shared with this process since fork, the same before and after)");
    report.notes.push_back("RSS is user-space memory; socket buffers and TCP state live in the kernel (slab row)");
    for (auto& note : target->notes) report.notes.push_back(note);
    for (auto& [why, n] : holder.reasons) report.failures.push_back(std::to_string(n) + " x " + why);
    if (held == 0) {
        report.failures.push_back("no session was held");
        report.measured_nothing = true;
    }
    target->stop();
    return report;
}

}  // namespace

dtcall::Result<Report> run_idle(const RunContext& run) {
    if (run.options.nodes <= 1) return idle_once(run);
    auto cross = idle_once(run);
    if (!cross) return dtcall::Error{"cross-node: " + cross.error()};
    RunContext single = run;
    single.options.nodes = 1;
    auto same = idle_once(single);
    if (!same) return dtcall::Error{"same-node: " + same.error()};
    return beside_same_node(std::move(*cross), *same);
}

}  // namespace dtbench
