// relay and baseline. relay: P pairs log in and set up calls through the
// server, the generator takes over their registered media sockets and sends
// (media_generator.hpp); then, unless --no-baseline, the same traffic goes
// through the built-in forwarder (forwarder.hpp) and every figure gets the
// baseline's beside it. baseline: the forwarder alone.
#include "call_driver.hpp"
#include "child_process.hpp"
#include "event_loop.hpp"
#include "forwarder.hpp"
#include "media_generator.hpp"
#include "modes.hpp"
#include "shared_media.hpp"
#include "target.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <numeric>

namespace dtbench {
namespace {

struct Leg {
    MediaResult media;
    bool shared_socket = false;
    std::optional<std::int64_t> server_cpu_ns;
    double wall_seconds = 0;
    std::optional<std::uint64_t> socket_drops;
    std::string socket_drops_error;  // why there is no socket_drops figure for a local relay
    std::optional<ServerCounters> counters_before, counters_after;
    std::size_t pairs = 0;
    // --nodes: per node, its CPU and counters over the run, and the
    // delivered packets that passed through it (sent or received by one of
    // its parties: a cross-node packet counts at both its nodes).
    struct Node {
        std::string name;
        std::int64_t cpu_ns = 0;
        std::optional<ServerCounters> before, after;
        std::uint64_t packets = 0;
    };
    std::vector<Node> nodes;
};

MediaSettings media_settings(const Options& o, const std::string& what) {
    MediaSettings s;
    s.rate = o.rate;
    s.size = o.size;
    s.duration = o.duration;
    s.tick_ns = std::int64_t(o.tick_us) * 1000;
    if (!o.quiet && o.duration >= 3) {
        auto progress = std::make_shared<Progress>(true, what);
        s.progress = [progress](const std::string& line) { progress->update(line); };
    }
    return s;
}

// The relay's socket drops over the run: before and after, same port. An
// unreadable /proc/net/udp leaves the figure out and says why.
void drops_since(Leg& leg, const dtcall::Result<std::uint64_t>& before, std::uint16_t port) {
    auto after = udp_socket_drops(port);
    if (!before) leg.socket_drops_error = before.error();
    else if (!after) leg.socket_drops_error = after.error();
    else leg.socket_drops = *after - *before;
}

// An error names the /proc file of the server (or forwarder) it could not read.
// `cluster`: a cluster target, whose nodes are measured one by one (their
// CPU together is the leg's server CPU).
dtcall::Result<Leg> measure(const std::vector<MediaParty>& parties, const SharedSocket* shared, const Options& o,
                            std::optional<pid_t> pid, std::uint16_t media_port,
                            const std::function<std::optional<ServerCounters>()>& counters, const std::string& what,
                            Target* cluster = nullptr) {
    Leg leg;
    leg.pairs = parties.size() / 2;
    ServerProbe server(pid);
    std::vector<ServerProbe> node_probes;
    if (cluster) {
        for (std::size_t i = 0; i < cluster->nodes.size(); ++i) {
            leg.nodes.push_back({cluster->nodes[i].name, 0, cluster->node_counters(i), std::nullopt, 0});
            node_probes.emplace_back(cluster->nodes[i].pid);
            if (auto begun = node_probes.back().begin(); !begun)
                return dtcall::Error{cluster->nodes[i].name + ": " + begun.error()};
        }
    }
    // Port 0: the relay is on another machine; its socket is not ours to read.
    dtcall::Result<std::uint64_t> drops_before = dtcall::Error{"not read"};
    if (media_port) drops_before = udp_socket_drops(media_port);
    leg.counters_before = counters();
    if (auto begun = server.begin(); !begun) return dtcall::Error{begun.error()};
    leg.media = run_media(parties, media_settings(o, what), shared);
    auto server_cpu = server.cpu_ns();
    if (!server_cpu) return dtcall::Error{server_cpu.error()};
    leg.server_cpu_ns = *server_cpu;
    for (std::size_t i = 0; i < node_probes.size(); ++i) {
        auto cpu = node_probes[i].cpu_ns();
        if (!cpu) return dtcall::Error{leg.nodes[i].name + ": " + cpu.error()};
        leg.nodes[i].cpu_ns = cpu->value_or(0);
        leg.nodes[i].after = cluster->node_counters(i);
        leg.server_cpu_ns = leg.server_cpu_ns.value_or(0) + leg.nodes[i].cpu_ns;
    }
    if (!leg.media.delivered_to.empty())
        for (std::size_t p = 0; p < parties.size() && !leg.nodes.empty(); ++p) {
            std::uint64_t in = leg.media.delivered_to[p];  // from its peer
            leg.nodes[parties[p].node].packets += in;
            leg.nodes[parties[parties[p].peer].node].packets += in;
        }
    leg.wall_seconds = server.wall_seconds();
    if (media_port) drops_since(leg, drops_before, media_port);
    leg.counters_after = counters();
    return leg;
}

// Through dtcalld (or the external server): calls first, then media.
dtcall::Result<Leg> relay_leg(const RunContext& run, Report& report, std::string& description) {
    const Options& o = run.options;
    const std::size_t node_count = o.nodes;
    auto rig = rig_up(o, std::size_t(o.pairs) * 2, run.server_cpu, run.node_cpus,
                      [node_count](std::size_t phone) { return pair_node(phone, node_count); });
    if (!rig) return dtcall::Error{rig.error()};
    auto& target = (*rig)->target;
    Loop& loop = *(*rig)->loop;
    PhoneContext& context = (*rig)->context;
    description = target->description;
    for (auto& note : target->notes) report.notes.push_back(note);

    // An IPv4 loopback relay gets every party on one shared socket
    // (shared_media.hpp); any other gets a socket per party.
    std::unique_ptr<SharedMedia> shared;
    const auto* relay_address = reinterpret_cast<const sockaddr_in*>(&context.media_address);
    if (relay_address->sin_family == AF_INET && (ntohl(relay_address->sin_addr.s_addr) >> 24) == 127) {
        shared = std::make_unique<SharedMedia>();
        if (auto opened = shared->open(*relay_address); !opened) return dtcall::Error{"relay: " + opened.error()};
        if (target->cluster()) {
            // Each party sends to its own node's media port.
            std::vector<sockaddr_in> relays;
            for (const PhoneContext::Endpoint& node : context.nodes)
                relays.push_back(*reinterpret_cast<const sockaddr_in*>(&node.media));
            shared->aim_parties(std::move(relays), context.node_of);
        }
        context.shared_media = shared.get();
    }

    CallSettings settings;
    settings.repeat = false;
    settings.logins_in_flight = o.in_process ? 64 : 32;
    CallDriver driver(context, target->users, o.pairs, settings);
    if (shared) {
        auto watched = shared->watch(loop.base(), [&driver](std::size_t party, const std::uint8_t* data, std::size_t size) {
            if (party < driver.phone_count()) driver.phone(party).media_input(data, size);
        });
        if (!watched) return dtcall::Error{"relay: " + watched.error()};
    }
    Progress progress(!o.quiet, "relay setup");
    driver.start();
    if (target->cluster()) {
        // Calls across nodes need each node to know the others' users first.
        loop.run_until([&] { return driver.logins_done(); },
                       Clock::now() + std::chrono::seconds(30) + std::chrono::milliseconds(o.pairs * 40));
        auto ready = target->wait_for_presence(std::chrono::seconds(10) + std::chrono::milliseconds(o.pairs * 5));
        if (!ready) return dtcall::Error{"relay: " + ready.error()};
    }
    driver.begin_calling();
    auto setup_limit = Clock::now() + std::chrono::seconds(40) + std::chrono::milliseconds(o.pairs * 40);
    loop.run_until([&] { return driver.logins_done() && driver.setup_done(); }, setup_limit, [&] {
        progress.update(std::to_string(driver.stats().logins) + " logged in, " + std::to_string(driver.stats().calls_up) +
                        "/" + std::to_string(o.pairs) + " calls up");
    });
    progress.finish();
    auto up = driver.pairs_up();
    const CallStats& s = driver.stats();
    for (auto& [why, n] : s.failure_reasons) report.failures.push_back("relay setup: " + std::to_string(n) + " x " + why);
    if (up.size() < o.pairs)
        report.failures.push_back("relay setup: only " + std::to_string(up.size()) + " of " + std::to_string(o.pairs) +
                                  " calls came up");
    if (up.empty()) return dtcall::Error{"relay: no call came up, so no media can flow"};

    std::vector<MediaParty> parties;
    for (auto& [a, b] : up) {
        std::uint32_t first = std::uint32_t(parties.size());
        a->stop_media_reads();
        b->stop_media_reads();
        parties.push_back({a->media_fd(), first + 1, std::uint32_t(a->index()), std::uint32_t(a->node())});
        parties.push_back({b->media_fd(), first, std::uint32_t(b->index()), std::uint32_t(b->node())});
    }
    SharedSocket socket;
    if (shared) {
        shared->stop_events();
        socket.fd = shared->fd();
        socket.relay = shared->relay();
        socket.nodes = shared->relays();
    }
    Target& t = *target;
    bool local = t.host.compare(0, 4, "127.") == 0 || t.host == "::1";
    // A cluster's socket drops would be N sockets' (not read); per node below.
    auto measured = measure(parties, shared ? &socket : nullptr, o, t.pid, local && !t.cluster() ? t.media_port : 0,
                            [&t] { return t.counters(); }, t.cluster() ? "relay (cross-node)" : "relay",
                            t.cluster() ? &t : nullptr);
    if (!measured) return dtcall::Error{"relay: " + measured.error()};
    Leg leg = std::move(*measured);
    leg.shared_socket = shared != nullptr;
    driver.hang_up_all();
    loop.run_until([] { return false; }, Clock::now() + std::chrono::milliseconds(300));
    t.stop();
    return leg;
}

// Through the forwarder: plain registrations, then the same media.
dtcall::Result<Leg> baseline_leg(const RunContext& run, std::string& description) {
    const Options& o = run.options;
    auto child = ChildProcess::start(
        "baseline forwarder", [](int requests, int answers) { return run_forwarder_child("127.0.0.1", requests, answers); },
        run.server_cpu, std::chrono::milliseconds(5000));
    if (!child) return dtcall::Error{child.error()};
    unsigned port = 0;
    if (std::sscanf((*child)->ready_line().c_str(), "ready %u", &port) != 1 || !port || port > 65535)
        return dtcall::Error{"baseline forwarder: unexpected ready line \"" + (*child)->ready_line() + "\""};
    description = "baseline forwarder (child pid " + std::to_string((*child)->pid()) +
                  (run.server_cpu ? ", CPU " + std::to_string(*run.server_cpu) : std::string(", not pinned")) +
                  ") on 127.0.0.1 UDP " + std::to_string(port);

    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(std::uint16_t(port));
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    SharedMedia shared;
    if (auto opened = shared.open(to); !opened) return dtcall::Error{"baseline: " + opened.error()};
    const std::size_t count = std::size_t(o.pairs) * 2;
    // Register every party: like the clients, up to 10 tries 100 ms apart.
    std::vector<bool> acked(count, false);
    std::size_t acked_count = 0;
    auto on_reply = [&](std::size_t party, const std::uint8_t* data, std::size_t size) {
        if (party >= count || acked[party]) return;
        if (std::string(reinterpret_cast<const char*>(data), size) == forwarder_ack(party / 2, int(party % 2))) {
            acked[party] = true;
            ++acked_count;
        }
    };
    for (int attempt = 0; attempt < 10 && acked_count < count; ++attempt) {
        for (std::size_t i = 0; i < count; ++i) {
            if (acked[i]) continue;
            std::string reg = forwarder_registration(i / 2, int(i % 2));
            shared.send_from(i, reinterpret_cast<const std::uint8_t*>(reg.data()), reg.size());
            // Keep the socket from filling with acks while a big batch goes out.
            if (i % 256 == 255) shared.drain(on_reply);
        }
        auto until = Clock::now() + std::chrono::milliseconds(100);
        while (acked_count < count && Clock::now() < until) {
            pollfd watch{shared.fd(), POLLIN, 0};
            if (poll(&watch, 1, 10) > 0) shared.drain(on_reply);
        }
    }
    if (acked_count < count)
        return dtcall::Error{"baseline: " + std::to_string(count - acked_count) + " registrations were never acked"};
    std::vector<MediaParty> parties;
    for (std::size_t i = 0; i < count; ++i) parties.push_back({-1, std::uint32_t(i ^ 1), std::uint32_t(i)});
    SharedSocket socket{shared.fd(), shared.relay(), {}};
    ChildProcess& forwarder = **child;
    auto measured = measure(parties, &socket, o, forwarder.pid(), std::uint16_t(port),
                      [&forwarder]() -> std::optional<ServerCounters> {
                          auto line = forwarder.ask("stats", std::chrono::milliseconds(2000));
                          return line ? parse_server_counters(*line) : std::nullopt;
                      },
                      "baseline");
    forwarder.stop();
    if (!measured) return dtcall::Error{"baseline: " + measured.error()};
    Leg leg = std::move(*measured);
    leg.shared_socket = true;
    return leg;
}

// Every figure of one leg, by metric key.
std::map<std::string, double> figures(const Leg& leg, const Options& o) {
    std::map<std::string, double> f;
    const MediaResult& m = leg.media;
    double seconds = m.send_seconds > 0 ? m.send_seconds : o.duration;
    f["pairs"] = double(leg.pairs);
    f["offered_pps"] = double(m.sent) / seconds;
    f["delivered_pps"] = double(m.delivered) / seconds;
    f["loss_percent"] = m.sent ? 100.0 * (double(m.sent) - double(m.delivered)) / double(m.sent) : 0;
    // Nothing delivered: no latency and no cost per packet (n/a, not 0).
    const double none = m.delivered ? 0.0 : NAN;
    f["latency_p50_us"] = none + double(m.latency.percentile(0.50)) / 1e3;
    f["latency_p99_us"] = none + double(m.latency.percentile(0.99)) / 1e3;
    f["latency_max_us"] = none + double(m.latency.max()) / 1e3;
    if (leg.server_cpu_ns) {
        f["server_cpu_us_per_packet"] = m.delivered ? double(*leg.server_cpu_ns) / 1e3 / double(m.delivered) : NAN;
        f["server_cpu_percent"] = 100.0 * double(*leg.server_cpu_ns) / 1e9 / leg.wall_seconds;
    }
    f["generator_cpu_percent"] = 100.0 * double(m.generator_cpu_ns) / 1e9 / leg.wall_seconds;
    f["generator_cpu_us_per_packet"] = m.delivered ? double(m.generator_cpu_ns) / 1e3 / double(m.delivered) : NAN;
    if (o.rate > 0) {
        f["send_lateness_p99_us"] = double(m.lateness.percentile(0.99)) / 1e3;
        f["send_lateness_max_us"] = double(m.lateness.max()) / 1e3;
    }
    f["sent"] = double(m.sent);
    f["delivered"] = double(m.delivered);
    f["send_failures"] = double(m.send_failures);
    f["misrouted"] = double(m.misrouted);
    if (leg.socket_drops) f["relay_socket_drops"] = double(*leg.socket_drops);
    if (!leg.socket_drops_error.empty()) f["relay_socket_drops"] = NAN;  // n/a, with a note
    if (leg.counters_before && leg.counters_after)
        f["relay_forwarded"] = double(leg.counters_after->relayed_packets - leg.counters_before->relayed_packets);
    return f;
}

struct Row {
    const char* key;
    const char* label;
    const char* unit;
    int decimals;
};

const Row rows[] = {
    {"pairs", "call pairs with media", "", 0},
    {"offered_pps", "offered", "pps", 0},
    {"delivered_pps", "delivered", "pps", 0},
    {"loss_percent", "loss", "%", 3},
    {"latency_p50_us", "one-way latency p50", "us", 1},
    {"latency_p99_us", "one-way latency p99", "us", 1},
    {"latency_max_us", "one-way latency max", "us", 1},
    {"server_cpu_us_per_packet", "relay CPU per delivered packet", "us", 3},
    {"server_cpu_percent", "relay CPU (of one core)", "%", 1},
    {"generator_cpu_percent", "generator CPU (of one core)", "%", 1},
    {"generator_cpu_us_per_packet", "generator CPU per delivered packet", "us", 3},
    {"send_lateness_p99_us", "send lateness vs schedule p99", "us", 1},
    {"send_lateness_max_us", "send lateness vs schedule max", "us", 1},
    {"sent", "packets sent", "", 0},
    {"delivered", "packets delivered", "", 0},
    {"send_failures", "sends refused by the kernel", "", 0},
    {"misrouted", "packets from the wrong party", "", 0},
    {"relay_forwarded", "packets the relay counted as forwarded", "", 0},
    {"relay_socket_drops", "drops at the relay's UDP socket (kernel)", "", 0},
};

// --nodes: the extra hop's latency, and each node's share of the work.
void cluster_rows(Report& report, const Leg& cross, const std::map<std::string, double>& main,
                  const std::map<std::string, double>& same, const Options& o) {
    if (cross.media.delivered > 0 && !same.empty()) {
        report.add("added_latency_p50_us", "one-way latency added by the extra hop, p50", "us",
                   main.at("latency_p50_us") - same.at("latency_p50_us"), 1);
        report.add("added_latency_p99_us", "one-way latency added by the extra hop, p99", "us",
                   main.at("latency_p99_us") - same.at("latency_p99_us"), 1);
    } else {
        report.add("added_latency_p99_us", "one-way latency added by the extra hop, p99", "us", NAN, 1);
        report.notes.push_back("one-way latency added by the extra hop: n/a, no packet crossed the nodes");
    }
    double seconds = cross.media.send_seconds > 0 ? cross.media.send_seconds : o.duration;
    for (const Leg::Node& node : cross.nodes) {
        const std::string& n = node.name;
        report.add(n + "_packets", n + ": delivered packets through it (sent or received)", "", double(node.packets), 0);
        report.add(n + "_cpu_us_per_packet", "  " + n + " CPU per packet through it", "us",
                   node.packets ? double(node.cpu_ns) / 1e3 / double(node.packets) : NAN, 3);
        report.add(n + "_cpu_percent", "  " + n + " CPU (of one core)", "%",
                   100.0 * double(node.cpu_ns) / 1e9 / (cross.wall_seconds > 0 ? cross.wall_seconds : seconds), 1);
        if (node.before && node.after) {
            report.add(n + "_relayed", "  " + n + ": packets it counted as relayed", "",
                       double(node.after->relayed_packets - node.before->relayed_packets), 0);
            report.add(n + "_node_packets_sent", "  " + n + ": sent on to another node", "",
                       double(node.after->node_packets_sent - node.before->node_packets_sent), 0);
            report.add(n + "_node_packets_received", "  " + n + ": received from another node", "",
                       double(node.after->node_packets_received - node.before->node_packets_received), 0);
        }
    }
    report.notes.push_back("cross-node: pair k's caller on node k % " + std::to_string(o.nodes) +
                           ", its callee on node (k + 1) % " + std::to_string(o.nodes) +
                           ", each party's TCP and UDP to its own node: every packet takes two nodes "
                           "(A -> node -> node -> B); relay CPU is all nodes' together, a node's CPU per "
                           "packet counts each delivered packet at both nodes it passed");
    if (cross.media.delivered == 0)
        report.notes.push_back("cross-node: 0 packets delivered; nodes sent on " +
                               std::to_string(std::accumulate(cross.nodes.begin(), cross.nodes.end(), std::uint64_t(0),
                                                              [](std::uint64_t sum, const Leg::Node& node) {
                                                                  return sum + (node.before && node.after
                                                                                    ? node.after->node_packets_sent -
                                                                                          node.before->node_packets_sent
                                                                                    : 0);
                                                              })) +
                               " packets to other nodes: this build's nodes do not carry media between them "
                               "(the node-to-node media leg), so only set-up was measured across nodes");
}

}  // namespace

dtcall::Result<Report> run_relay(const RunContext& run) {
    const Options& o = run.options;
    bool with_relay = o.mode == Mode::relay;
    bool with_baseline = o.mode == Mode::baseline || o.baseline;
    std::uint64_t needed = std::uint64_t(o.pairs) * 4 + 64;
    if (needed > run.open_files)
        return dtcall::Error{"--pairs " + std::to_string(o.pairs) + " needs about " + std::to_string(needed) +
                             " file descriptors (TCP + UDP per party); this process may open " +
                             std::to_string(run.open_files)};

    Report report;
    report.mode = mode_name(o.mode);
    std::string relay_description, baseline_description;
    std::optional<Leg> relay, baseline;
    // --nodes: the relay through the cluster, then the same load through one
    // server as the comparison column (in the place of the forwarder's).
    const bool cluster = with_relay && o.nodes > 1;
    std::optional<Leg> same_node;
    if (with_relay) {
        auto leg = relay_leg(run, report, relay_description);
        if (!leg) return dtcall::Error{std::string(cluster ? "cross-node " : "") + leg.error()};
        relay = std::move(*leg);
    }
    if (cluster) {
        RunContext single = run;
        single.options.nodes = 1;
        Report ignored;  // its notes are the cross-node run's
        std::string ignored_description;
        auto leg = relay_leg(single, ignored, ignored_description);
        if (!leg) return dtcall::Error{"same-node " + leg.error()};
        for (const std::string& failure : ignored.failures) report.failures.push_back("same-node " + failure);
        same_node = std::move(*leg);
        if (with_baseline) report.notes.push_back("--nodes: the comparison column is the same load through one "
                                                  "server, not the baseline forwarder (run relay without --nodes "
                                                  "for that)");
        with_baseline = false;
    }
    if (with_baseline) {
        auto leg = baseline_leg(run, baseline_description);
        if (!leg) return dtcall::Error{leg.error()};
        baseline = std::move(*leg);
    }

    std::string load = std::to_string(o.pairs) + " pairs x " +
                       (o.rate > 0 ? format_number(o.rate, 0) + " pps" : std::string("open loop")) + " per party x " +
                       std::to_string(o.size) + " B for " + format_number(o.duration, 1) + " s";
    report.title = "dtcall-bench " + report.mode + ": " + load + "; " +
                   (with_relay ? "relay: the " + relay_description : baseline_description) +
                   (with_relay && with_baseline ? "; baseline: " + baseline_description : std::string()) +
                   (cluster ? "; same-node: the same load through one in-process server" : std::string()) +
                   run.placement;
    report.subject = cluster ? "cross-node" : with_relay ? "relay" : "baseline";
    if (cluster) report.baseline_subject = "same-node";
    report.parameter("pairs", o.pairs);
    if (cluster) report.parameter("nodes", o.nodes);
    report.parameter("rate_pps", o.rate);
    report.parameter("size_bytes", o.size);
    report.parameter("duration_s", o.duration);
    if (o.rate > 0) report.parameter("tick_us", o.tick_us);

    auto main_figures = figures(with_relay ? *relay : *baseline, o);
    std::map<std::string, double> base_figures;
    if (with_relay && baseline) base_figures = figures(*baseline, o);
    if (same_node) base_figures = figures(*same_node, o);
    for (const Row& row : rows) {
        auto it = main_figures.find(row.key);
        if (it == main_figures.end()) continue;
        Metric& m = report.add(row.key, row.label, row.unit, it->second, row.decimals);
        if (auto b = base_figures.find(row.key); b != base_figures.end()) m.baseline = b->second;
    }
    if (o.rate == 0 && main_figures.count("server_cpu_us_per_packet") && main_figures["server_cpu_us_per_packet"] > 0) {
        // Both sides share two CPUs in open loop; CPU per packet is the figure
        // that does not depend on who got how much of them.
        Metric& m = report.add("capacity_pps_per_core", "capacity of one core at that CPU per packet", "pps",
                               1e6 / main_figures["server_cpu_us_per_packet"], 0);
        if (base_figures.count("server_cpu_us_per_packet") && base_figures["server_cpu_us_per_packet"] > 0)
            m.baseline = 1e6 / base_figures["server_cpu_us_per_packet"];
    }
    if (cluster) cluster_rows(report, *relay, main_figures, base_figures, o);
    if (with_relay && baseline) {
        report.add("added_latency_p50_us", "latency added over the baseline, p50", "us",
                   main_figures["latency_p50_us"] - base_figures["latency_p50_us"], 1);
        report.add("added_latency_p99_us", "latency added over the baseline, p99", "us",
                   main_figures["latency_p99_us"] - base_figures["latency_p99_us"], 1);
    }
    if (relay) report.series.emplace_back(cluster ? "cross-node" : "relay", relay->media.latency);
    if (same_node) report.series.emplace_back("same-node", same_node->media.latency);
    if (baseline) report.series.emplace_back("baseline", baseline->media.latency);
    report.series_label = "one-way media latency";

    report.notes.push_back("latency: send time in the payload (CLOCK_MONOTONIC) to the kernel's arrival timestamp "
                           "at the generator's socket, generator -> relay -> generator, both on this machine; it "
                           "includes waiting behind the rest of a send burst (--tick), as the baseline's does");
    report.notes.push_back("CPU: the relay's from /proc/PID/task/*/schedstat, the generator's from getrusage; on "
                           "loopback a send also pays for delivery into the receiver's socket");
    if (o.rate == 0) {
        auto verdict = [&](const std::map<std::string, double>& f, const char* who) {
            double server = f.count("server_cpu_percent") ? f.at("server_cpu_percent") : -1;
            double generator = f.at("generator_cpu_percent");
            double loss = f.at("loss_percent");
            std::string text = std::string(who) + " open loop: ";
            double drops = f.count("relay_socket_drops") ? f.at("relay_socket_drops") : 0;
            double p50_us = f.at("latency_p50_us");
            // A standing queue at the relay's socket (drops, or a median
            // latency of milliseconds) means the relay, not the generator, set the pace.
            bool queue = drops > 0 || p50_us > 1000;
            if ((loss > 1 || queue) && server >= 90)
                text += "the relay was saturated (CPU " + format_number(server, 0) + " %, median latency " +
                        format_number(p50_us / 1000, 1) + " ms, " + format_number(drops, 0) +
                        " drops at its socket): delivered pps is about its capacity here";
            else if (loss <= 1 && generator >= 90)
                text += "the generator was the limit (CPU " + format_number(generator, 0) +
                        " %) and the relay kept up (loss " + format_number(loss, 1) +
                        " %): its capacity is above the delivered rate";
            else
                text += "relay CPU " + (server >= 0 ? format_number(server, 0) + " %" : std::string("unknown")) +
                        ", generator CPU " + format_number(generator, 0) + " %, loss " + format_number(loss, 1) +
                        " %: no clear limit (other load on the machine?)";
            report.notes.push_back(text);
        };
        verdict(main_figures, with_relay ? "relay" : "baseline");
        if (with_relay && baseline) verdict(base_figures, "baseline");
    }
    if (with_relay && !with_baseline && !cluster)
        report.notes.push_back("no baseline run (--no-baseline): no ratios");
    for (const std::optional<Leg>* leg : {&relay, &baseline})
        if (*leg && !(**leg).socket_drops_error.empty())
            report.notes.push_back(std::string(leg == &relay ? "relay" : "baseline") +
                                   " socket drops: n/a, " + (**leg).socket_drops_error);
    if (relay && relay->shared_socket)
        report.notes.push_back("parties: one address each (127.64.x.y, one port) on one generator socket, "
                               "64 datagrams per sendmmsg/recvmmsg; the relay sees a distinct address per party");
    if (relay && !relay->shared_socket)
        report.notes.push_back("parties: one socket each (the relay is not on IPv4 loopback); the baseline uses one "
                               "shared socket, so generator costs differ between the two columns");
    if (relay && relay->media.delivered == 0)
        report.failures.push_back(std::string(cluster ? "cross-node relay" : "relay") + ": no media packet was delivered");
    if (baseline && baseline->media.delivered == 0) report.failures.push_back("baseline: no media packet was delivered");
    if (same_node && same_node->media.delivered == 0)
        report.failures.push_back("same-node relay: no media packet was delivered");
    report.measured_nothing = (relay && relay->media.delivered == 0) || (baseline && baseline->media.delivered == 0);
    // The cross-node leg alone delivering nothing is a finding (the nodes do
    // not forward media to each other yet), reported, not "nothing measured".
    if (cluster) report.measured_nothing = relay->media.delivered == 0 && same_node->media.delivered == 0;
    if (same_node && !same_node->media.error.empty()) report.failures.push_back("same-node relay: " + same_node->media.error);
    if (relay && !relay->media.error.empty()) report.failures.push_back("relay: " + relay->media.error);
    if (baseline && !baseline->media.error.empty()) report.failures.push_back("baseline: " + baseline->media.error);
    return report;
}

}  // namespace dtbench
