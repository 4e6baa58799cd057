#include "options.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <sstream>

namespace dtbench {
namespace {

using dtcall::Error;
using dtcall::Result;

// The media payload carries magic, sender, sequence and send time.
constexpr unsigned min_size = 20;
// Below the largest UDP payload over IPv4, and within dtcalld's max_datagram.
constexpr unsigned max_size = 65000;

Result<double> number(const std::string& flag, const std::string& text, double low, double high) {
    if (text.empty()) return Error{flag + ": a number is required"};
    char* end = nullptr;
    errno = 0;
    double value = std::strtod(text.c_str(), &end);
    if (errno != 0 || end != text.c_str() + text.size() || !std::isfinite(value) || value < low || value > high) {
        std::ostringstream range;
        range << low << " to " << high;
        return Error{flag + ": \"" + text + "\" is not a number from " + range.str()};
    }
    return value;
}

Result<unsigned long> whole(const std::string& flag, const std::string& text, unsigned long low,
                            unsigned long high) {
    bool digits = !text.empty() && text.size() <= 12;
    for (char c : text) digits = digits && c >= '0' && c <= '9';
    unsigned long value = digits ? std::strtoul(text.c_str(), nullptr, 10) : 0;
    if (!digits || value < low || value > high) {
        return Error{flag + ": \"" + text + "\" is not a whole number from " + std::to_string(low) + " to " +
                     std::to_string(high)};
    }
    return value;
}

}  // namespace

const char* mode_name(Mode mode) {
    switch (mode) {
    case Mode::login: return "login";
    case Mode::idle: return "idle";
    case Mode::calls: return "calls";
    case Mode::relay: return "relay";
    case Mode::baseline: return "baseline";
    case Mode::summary: return "summary";
    }
    return "?";
}

Result<Options> parse_options(const std::vector<std::string>& args) {
    Options o;
    bool mode_seen = false;
    bool in_process_flag = false;
    bool port_flag = false;

    using Setter = std::function<std::optional<Error>(const std::string& flag, const std::string& value)>;
    auto unsigned_into = [](unsigned& field, unsigned long low, unsigned long high) -> Setter {
        return [&field, low, high](const std::string& flag, const std::string& value) -> std::optional<Error> {
            auto n = whole(flag, value, low, high);
            if (!n) return Error{n.error()};
            field = unsigned(*n);
            return std::nullopt;
        };
    };
    auto double_into = [](double& field, double low, double high) -> Setter {
        return [&field, low, high](const std::string& flag, const std::string& value) -> std::optional<Error> {
            auto n = number(flag, value, low, high);
            if (!n) return Error{n.error()};
            field = *n;
            return std::nullopt;
        };
    };
    auto port_into = [&port_flag](std::uint16_t& field) -> Setter {
        return [&field, &port_flag](const std::string& flag, const std::string& value) -> std::optional<Error> {
            auto n = whole(flag, value, 1, 65535);
            if (!n) return Error{n.error()};
            field = std::uint16_t(*n);
            port_flag = true;
            return std::nullopt;
        };
    };
    auto text_into = [](std::string& field) -> Setter {
        return [&field](const std::string& flag, const std::string& value) -> std::optional<Error> {
            if (value.empty()) return Error{flag + ": a value is required"};
            field = value;
            return std::nullopt;
        };
    };
    auto optional_int_into = [](std::optional<int>& field, unsigned long low, unsigned long high) -> Setter {
        return [&field, low, high](const std::string& flag, const std::string& value) -> std::optional<Error> {
            auto n = whole(flag, value, low, high);
            if (!n) return Error{n.error()};
            field = int(*n);
            return std::nullopt;
        };
    };

    unsigned frame_gap = 0;
    bool frame_gap_set = false;
    std::map<std::string, Setter> with_value = {
        {"--host", text_into(o.host)},
        {"--port", port_into(o.port)},
        {"--media-port", port_into(o.media_port)},
        {"--server-key", text_into(o.server_key_file)},
        {"--users", text_into(o.users_dir)},
        {"--server-pid", optional_int_into(o.server_pid, 1, 4194304)},
        {"--nodes", unsigned_into(o.nodes, 1, 8)},
        {"--concurrency", unsigned_into(o.concurrency, 1, 100000)},
        {"--duration", double_into(o.duration, 0.1, 86400)},
        {"--count", unsigned_into(o.count, 1, 10000000)},
        {"--pairs", unsigned_into(o.pairs, 1, 100000)},
        {"--size", unsigned_into(o.size, min_size, max_size)},
        {"--rate", double_into(o.rate, 0, 1000000)},
        {"--hold", unsigned_into(o.hold_ms, 0, 3600000)},
        {"--heartbeat", double_into(o.heartbeat, 0, 86400)},
        {"--tick", unsigned_into(o.tick_us, 1, 100000)},
        {"--frame-gap",
         [&](const std::string& flag, const std::string& value) -> std::optional<Error> {
             auto n = whole(flag, value, 0, 10000);
             if (!n) return Error{n.error()};
             frame_gap = unsigned(*n);
             frame_gap_set = true;
             return std::nullopt;
         }},
        {"--media-threads",
         [&](const std::string& flag, const std::string& value) -> std::optional<Error> {
             auto n = whole(flag, value, 0, 64);
             if (!n) return Error{n.error()};
             o.media_threads = unsigned(*n);
             return std::nullopt;
         }},
        {"--server-cpu", optional_int_into(o.server_cpu, 0, 4095)},
        {"--generator-cpu", optional_int_into(o.generator_cpu, 0, 4095)},
        {"--plot", text_into(o.plot_file)},
    };
    std::map<std::string, bool*> switches = {
        {"--in-process", &in_process_flag}, {"--no-baseline", nullptr}, {"--pin", &o.pin},
        {"--json", &o.json},   {"--quiet", &o.quiet},           {"--strict", &o.strict},
        {"--help", &o.help},   {"-h", &o.help},                 {"--version", &o.version},
    };

    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (arg.size() > 1 && arg[0] == '-') {
            std::string flag = arg, value;
            bool inline_value = false;
            if (auto eq = arg.find('='); eq != std::string::npos && arg.compare(0, 2, "--") == 0) {
                flag = arg.substr(0, eq);
                value = arg.substr(eq + 1);
                inline_value = true;
            }
            if (auto s = switches.find(flag); s != switches.end()) {
                if (inline_value) return Error{flag + " takes no value"};
                if (flag == "--no-baseline") o.baseline = false;
                else *s->second = true;
                continue;
            }
            auto setter = with_value.find(flag);
            if (setter == with_value.end()) return Error{"unknown option " + flag + " (see --help)"};
            if (!inline_value) {
                if (i + 1 == args.size()) return Error{flag + ": a value is required"};
                value = args[++i];
            }
            if (auto error = setter->second(flag, value)) return *error;
            continue;
        }
        if (mode_seen) return Error{"unexpected argument \"" + arg + "\" (one mode only; see --help)"};
        mode_seen = true;
        if (arg == "login") o.mode = Mode::login;
        else if (arg == "idle") o.mode = Mode::idle;
        else if (arg == "calls") o.mode = Mode::calls;
        else if (arg == "relay") o.mode = Mode::relay;
        else if (arg == "baseline") o.mode = Mode::baseline;
        else if (arg == "summary") o.mode = Mode::summary;
        else return Error{"unknown mode \"" + arg + "\" (login, idle, calls, relay, baseline or summary)"};
    }
    if (o.help || o.version) return o;
    if (!mode_seen) return Error{"no mode given (login, idle, calls, relay, baseline or summary; see --help)"};
    if (o.mode == Mode::summary && (o.concurrency || o.pairs))
        return Error{"summary runs the README's fixed loads; --concurrency and --pairs belong to the single modes"};

    if (frame_gap_set) o.frame_gap_ms = frame_gap;
    if (o.server_cpu || o.generator_cpu) o.pin = true;
    if (o.server_cpu && o.generator_cpu && *o.server_cpu == *o.generator_cpu)
        return Error{"--server-cpu and --generator-cpu name the same CPU; they must differ"};

    o.in_process = o.host.empty();
    if (in_process_flag && !o.host.empty()) return Error{"--in-process and --host exclude each other"};
    if (o.in_process) {
        if (!o.server_key_file.empty()) return Error{"--server-key needs --host (in-process servers make their own keys)"};
        if (!o.users_dir.empty()) return Error{"--users needs --host (in-process servers make their own users)"};
        if (o.server_pid) return Error{"--server-pid needs --host (the in-process server's pid is known)"};
        if (port_flag) return Error{"--port and --media-port need --host (in-process servers take free ports)"};
    } else {
        if (o.mode == Mode::baseline) return Error{"--host: the baseline forwarder always runs in-process"};
        if (o.server_key_file.empty()) return Error{"--host needs --server-key FILE (the server's public key file)"};
        if (o.users_dir.empty()) return Error{"--host needs --users DIR (NAME_private.na files of its users)"};
        if (o.frame_gap_ms) return Error{"--frame-gap only applies to the in-process server"};
        if (o.media_threads) return Error{"--media-threads only applies to the in-process server"};
    }
    if (o.hold_ms > 0 && o.mode != Mode::calls) return Error{"--hold only applies to the calls mode"};
    if (o.nodes > 1) {
        if (!o.in_process) return Error{"--nodes needs the in-process servers (it starts the cluster itself), not --host"};
        if (o.mode == Mode::login || o.mode == Mode::baseline)
            return Error{"--nodes applies to the calls, relay, idle and summary modes, not " +
                         std::string(mode_name(o.mode))};
    }
    return o;
}

Options with_mode_defaults(Options o) {
    switch (o.mode) {
    case Mode::login:
        if (!o.concurrency) o.concurrency = 1;
        if (o.duration == 0) o.duration = 5;
        break;
    case Mode::idle:
        if (!o.count) o.count = 1000;
        // Logins in flight while building up; below dtcalld's per-IP cap on
        // connections not yet logged in (64), so an external server takes them.
        if (!o.concurrency) o.concurrency = 32;
        if (o.duration == 0) o.duration = 5;
        break;
    case Mode::calls:
        if (!o.pairs) o.pairs = 16;
        if (o.duration == 0) o.duration = 10;
        break;
    case Mode::relay:
    case Mode::baseline:
        if (!o.pairs) o.pairs = 100;
        if (o.duration == 0) o.duration = 10;
        break;
    case Mode::summary:
        if (o.duration == 0) o.duration = 10;
        break;
    }
    return o;
}

std::string usage_text() {
    return R"(usage: dtcall-bench MODE [options]
       dtcall-bench --help | --version

Load generator and measuring tool for dtcalld and any server speaking the
DT Call protocol. See dtcall-bench(1).

Modes:
  login      handshake + login cycles; logins/s, latency, libsodium bound
  idle       hold --count logged-in connections; server memory per session
  calls      call set-up rate and call->start latency with --pairs pairs
  relay      media through the server's relay; loss, latency, CPU per packet,
             then the same traffic through the built-in baseline forwarder
  baseline   the baseline forwarder alone
  summary    all of the above with the README's loads, one table
             (login 1 and 16 at a time, calls 500 pairs, relay 500 x 50 pps
             and open loop, idle up to 100000 or --count); --duration is
             per part

Server under test (default: --in-process):
  --in-process          start dtcalld's engine in a child process on 127.0.0.1
  --host ADDR           a running server (IPv4/IPv6 literal)
  --port N              its TCP command port (1991)
  --media-port N        its UDP media port (1961)
  --server-key FILE     its public key file (required with --host)
  --users DIR           NAME_private.na files of its users (required with --host)
  --server-pid PID      its process, for memory and CPU figures
  --nodes N             calls, relay, idle, summary: N in-process nodes (2-8)
                        sharing a redis-server the bench starts; calls cross
                        nodes, figures beside the single-node run (1)

Load:
  --concurrency N       login: parallel login loops (1); idle: logins in flight (32)
  --duration S          seconds of load (login 5, calls 10, relay 10; idle: hold 5)
  --count K             idle: connections to hold (1000)
  --pairs P             calls (16), relay/baseline (100): caller/callee pairs
  --size B              bytes per media datagram, 20-65000 (100)
  --rate R              media packets/s per party (50); 0 = open loop
  --tick US             relay: least time between two paced send bursts (50)
  --hold MS             calls: keep each call up MS ms, with media at --rate
  --heartbeat S         seconds between heartbeats (300, like the clients)
  --frame-gap MS        in-process server's frame_gap (default: dtcalld's 300)
  --media-threads N     in-process server's media_threads (default 0)
  --no-baseline         relay: skip the baseline run

CPU placement:
  --pin                 server (child) and generator on two different CPUs
  --server-cpu N        CPU for the in-process server or forwarder (implies --pin)
  --generator-cpu N     CPU for the generator (implies --pin)

Output:
  --json                one JSON object on stdout instead of the table
  --plot FILE.png       latency distribution plot (needs gnuplot)
  --quiet               no progress line on stderr
  --strict              exit 1 if any login, call or registration failed
)";
}

}  // namespace dtbench
