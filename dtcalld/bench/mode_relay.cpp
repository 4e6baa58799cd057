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
dtcall::Result<Leg> measure(const std::vector<MediaParty>& parties, const SharedSocket* shared, const Options& o,
                            std::optional<pid_t> pid, std::uint16_t media_port,
                            const std::function<std::optional<ServerCounters>()>& counters, const std::string& what) {
    Leg leg;
    leg.pairs = parties.size() / 2;
    ServerProbe server(pid);
    // Port 0: the relay is on another machine; its socket is not ours to read.
    dtcall::Result<std::uint64_t> drops_before = dtcall::Error{"not read"};
    if (media_port) drops_before = udp_socket_drops(media_port);
    leg.counters_before = counters();
    if (auto begun = server.begin(); !begun) return dtcall::Error{begun.error()};
    leg.media = run_media(parties, media_settings(o, what), shared);
    auto server_cpu = server.cpu_ns();
    if (!server_cpu) return dtcall::Error{server_cpu.error()};
    leg.server_cpu_ns = *server_cpu;
    leg.wall_seconds = server.wall_seconds();
    if (media_port) drops_since(leg, drops_before, media_port);
    leg.counters_after = counters();
    return leg;
}

// Through dtcalld (or the external server): calls first, then media.
dtcall::Result<Leg> relay_leg(const RunContext& run, Report& report, std::string& description) {
    const Options& o = run.options;
    auto rig = rig_up(o, std::size_t(o.pairs) * 2, run.server_cpu);
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
        parties.push_back({a->media_fd(), first + 1, std::uint32_t(a->index())});
        parties.push_back({b->media_fd(), first, std::uint32_t(b->index())});
    }
    SharedSocket socket;
    if (shared) {
        shared->stop_events();
        socket.fd = shared->fd();
        socket.relay = shared->relay();
    }
    Target& t = *target;
    bool local = t.host.compare(0, 4, "127.") == 0 || t.host == "::1";
    auto measured = measure(parties, shared ? &socket : nullptr, o, t.pid, local ? t.media_port : 0,
                            [&t] { return t.counters(); }, "relay");
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
    SharedSocket socket{shared.fd(), shared.relay()};
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
    f["latency_p50_us"] = double(m.latency.percentile(0.50)) / 1e3;
    f["latency_p99_us"] = double(m.latency.percentile(0.99)) / 1e3;
    f["latency_max_us"] = double(m.latency.max()) / 1e3;
    if (leg.server_cpu_ns) {
        f["server_cpu_us_per_packet"] = m.delivered ? double(*leg.server_cpu_ns) / 1e3 / double(m.delivered) : 0;
        f["server_cpu_percent"] = 100.0 * double(*leg.server_cpu_ns) / 1e9 / leg.wall_seconds;
    }
    f["generator_cpu_percent"] = 100.0 * double(m.generator_cpu_ns) / 1e9 / leg.wall_seconds;
    f["generator_cpu_us_per_packet"] = m.delivered ? double(m.generator_cpu_ns) / 1e3 / double(m.delivered) : 0;
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
    if (with_relay) {
        auto leg = relay_leg(run, report, relay_description);
        if (!leg) return dtcall::Error{leg.error()};
        relay = std::move(*leg);
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
                   (with_relay && with_baseline ? "; baseline: " + baseline_description : std::string()) + run.placement;
    report.subject = with_relay ? "relay" : "baseline";
    report.parameter("pairs", o.pairs);
    report.parameter("rate_pps", o.rate);
    report.parameter("size_bytes", o.size);
    report.parameter("duration_s", o.duration);
    if (o.rate > 0) report.parameter("tick_us", o.tick_us);

    auto main_figures = figures(with_relay ? *relay : *baseline, o);
    std::map<std::string, double> base_figures;
    if (with_relay && baseline) base_figures = figures(*baseline, o);
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
    if (with_relay && baseline) {
        report.add("added_latency_p50_us", "latency added over the baseline, p50", "us",
                   main_figures["latency_p50_us"] - base_figures["latency_p50_us"], 1);
        report.add("added_latency_p99_us", "latency added over the baseline, p99", "us",
                   main_figures["latency_p99_us"] - base_figures["latency_p99_us"], 1);
    }
    if (relay) report.series.emplace_back("relay", relay->media.latency);
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
    if (with_relay && !with_baseline)
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
    if (relay && relay->media.delivered == 0) report.failures.push_back("relay: no media packet was delivered");
    if (baseline && baseline->media.delivered == 0) report.failures.push_back("baseline: no media packet was delivered");
    report.measured_nothing = (relay && relay->media.delivered == 0) || (baseline && baseline->media.delivered == 0);
    if (relay && !relay->media.error.empty()) report.failures.push_back("relay: " + relay->media.error);
    if (baseline && !baseline->media.error.empty()) report.failures.push_back("baseline: " + baseline->media.error);
    return report;
}

}  // namespace dtbench
