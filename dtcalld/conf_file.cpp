#include "conf_file.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstdint>
#include <map>
#include <optional>

namespace dtcalld {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

enum class Kind { port, count, bytes, seconds, milliseconds, address, path, level, endpoint, redis, node_name, node_address };

struct Line {
    std::string_view file;
    int number;
    std::string_view key;
    std::string_view value;

    std::string where() const { return std::string(file) + ":" + std::to_string(number) + ": "; }
    dtcall::Error error(const std::string& what) const {
        return dtcall::Error{where() + std::string(key) + ": " + what};
    }
};

// "listen = 0.0.0.0, ::1" or "listen = [::1] 127.0.0.1": commas and/or
// blanks between addresses; brackets around IPv6 are allowed and dropped.
std::vector<std::string> split_addresses(std::string_view value) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at < value.size()) {
        std::size_t end = value.find_first_of(", \t", at);
        if (end == std::string_view::npos) end = value.size();
        std::string_view word = value.substr(at, end - at);
        if (word.size() > 2 && word.front() == '[' && word.back() == ']') word = word.substr(1, word.size() - 2);
        if (!word.empty()) out.emplace_back(word);
        at = end + 1;
    }
    return out;
}

struct KeySpec {
    std::string_view name;
    Kind kind;
    std::uint64_t min;
    std::uint64_t max;
    // Numbers arrive checked against [min, max]; text keys get number 0.
    void (*apply)(ConfValues& out, std::uint64_t number, const Line& line);
};

// Bounds are generous; they exist to catch typos (a timeout in milliseconds
// written into a seconds key) and values that would break the protocol (a
// frame limit too small for login2, a datagram limit below the clients' 1400).
const KeySpec key_specs[] = {
    {"command", Kind::port, 1, 65535,
     [](ConfValues& o, std::uint64_t n, const Line& l) {
         o.config.command_port = std::uint16_t(n);
         o.command_line = l.number;
     }},
    {"media", Kind::port, 1, 65535,
     [](ConfValues& o, std::uint64_t n, const Line& l) {
         o.config.media_port = std::uint16_t(n);
         o.media_line = l.number;
     }},
    {"public_sodium", Kind::path, 0, 0,
     [](ConfValues& o, std::uint64_t, const Line& l) {
         o.public_key_path = std::string(l.value);
         o.public_key_line = l.number;
     }},
    {"private_sodium", Kind::path, 0, 0,
     [](ConfValues& o, std::uint64_t, const Line& l) {
         o.private_key_path = std::string(l.value);
         o.private_key_line = l.number;
     }},
    {"listen", Kind::address, 0, 0,
     [](ConfValues& o, std::uint64_t, const Line& l) {
         o.config.listen_addresses = split_addresses(l.value);
         o.listen_line = l.number;
     }},
    {"timestamp_window", Kind::seconds, 1, 86400,
     [](ConfValues& o, std::uint64_t n, const Line&) { o.config.timestamp_window = std::time_t(n); }},
    {"login_timeout", Kind::seconds, 1, 3600,
     [](ConfValues& o, std::uint64_t n, const Line&) { o.config.login_timeout = seconds(n); }},
    {"idle_timeout", Kind::seconds, 0, 7 * 86400,
     [](ConfValues& o, std::uint64_t n, const Line&) { o.config.idle_timeout = seconds(n); }},
    {"tcp_keepalive", Kind::seconds, 0, 32767,
     [](ConfValues& o, std::uint64_t n, const Line&) { o.config.tcp_keepalive = seconds(n); }},
    {"frame_gap", Kind::milliseconds, 0, 10000,
     [](ConfValues& o, std::uint64_t n, const Line&) { o.config.frame_gap = milliseconds(n); }},
    {"direct_hold", Kind::milliseconds, 0, 60000,
     [](ConfValues& o, std::uint64_t n, const Line&) { o.config.direct_hold = milliseconds(n); }},
    {"call_grace", Kind::seconds, 0, 86400,
     [](ConfValues& o, std::uint64_t n, const Line&) { o.config.call_grace = seconds(n); }},
    {"max_connections", Kind::count, 1, 10000000,
     [](ConfValues& o, std::uint64_t n, const Line& l) {
         o.config.max_connections = std::size_t(n);
         o.max_connections_line = l.number;
     }},
    {"max_output_bytes", Kind::bytes, 4096, 1u << 30,
     [](ConfValues& o, std::uint64_t n, const Line&) { o.config.max_output_bytes = std::size_t(n); }},
    {"max_frame_before_login", Kind::bytes, 300, 65536,
     [](ConfValues& o, std::uint64_t n, const Line&) { o.config.max_frame_before_login = std::size_t(n); }},
    {"max_frame_after_login", Kind::bytes, 512, 1u << 20,
     [](ConfValues& o, std::uint64_t n, const Line&) { o.config.max_frame_after_login = std::size_t(n); }},
    {"max_datagram", Kind::bytes, 1400, 65536,
     [](ConfValues& o, std::uint64_t n, const Line&) { o.config.max_datagram = std::size_t(n); }},
    {"media_threads", Kind::count, 0, 64,
     [](ConfValues& o, std::uint64_t n, const Line&) { o.config.media_threads = unsigned(n); }},
    {"max_unauthenticated_per_ip", Kind::count, 1, 10000000,
     [](ConfValues& o, std::uint64_t n, const Line&) { o.config.max_unauthenticated_per_ip = std::size_t(n); }},
    {"failed_login_burst", Kind::count, 1, 1000000,
     [](ConfValues& o, std::uint64_t n, const Line&) { o.config.failed_login_burst = double(n); }},
    {"failed_logins_per_minute", Kind::count, 1, 1000000,
     [](ConfValues& o, std::uint64_t n, const Line&) { o.config.failed_logins_per_minute = double(n); }},
    {"replay_memory", Kind::count, 8, 100000,
     [](ConfValues& o, std::uint64_t n, const Line&) { o.config.replay_memory = std::size_t(n); }},
    {"unregistered_packets_per_second", Kind::count, 10, 1000000,
     [](ConfValues& o, std::uint64_t n, const Line&) { o.config.unregistered_packets_per_second = double(n); }},
    {"log_level", Kind::level, 0, 0, nullptr},
    {"metrics", Kind::endpoint, 0, 0, nullptr},
    {"users", Kind::path, 0, 0,
     [](ConfValues& o, std::uint64_t, const Line& l) {
         o.users_path = std::string(l.value);
         o.users_line = l.number;
     }},
    {"users_db", Kind::path, 0, 0,
     [](ConfValues& o, std::uint64_t, const Line& l) {
         o.users_db_path = std::string(l.value);
         o.users_db_line = l.number;
     }},
    // --- control socket (dtcall-ctl) ---
    {"control", Kind::path, 0, 0,
     [](ConfValues& o, std::uint64_t, const Line& l) {
         o.control_path = std::string(l.value);
         o.control_line = l.number;
     }},
    {"control_group", Kind::path, 0, 0,
     [](ConfValues& o, std::uint64_t, const Line& l) {
         o.control_group = std::string(l.value);
         o.control_group_line = l.number;
     }},
    // --- cluster (checked as a set at the end of parse_conf) ---
    {"cluster_redis", Kind::redis, 0, 0, nullptr},
    {"node_name", Kind::node_name, 0, 0, nullptr},
    {"node_address", Kind::node_address, 0, 0, nullptr},
    {"cluster_key", Kind::path, 0, 0,
     [](ConfValues& o, std::uint64_t, const Line& l) {
         o.cluster.key_path = std::string(l.value);
         o.cluster.key_line = l.number;
     }},
    {"cluster_ttl", Kind::seconds, 1, 300,
     [](ConfValues& o, std::uint64_t n, const Line& l) {
         o.cluster.ttl = seconds(n);
         o.cluster.ttl_line = l.number;
     }},
};

const KeySpec* find_key(std::string_view name) {
    for (const auto& spec : key_specs) {
        if (spec.name == name) return &spec;
    }
    return nullptr;
}

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && blank(s.back())) s.remove_suffix(1);
    return s;
}

// A value echoed in an error: quoted, short, printable, still one line.
std::string quoted(std::string_view value) {
    constexpr std::size_t shown = 60;
    std::string out = "\"";
    for (std::size_t i = 0; i < value.size() && i < shown; ++i) {
        auto c = static_cast<unsigned char>(value[i]);
        out += (c < 0x20 || c == 0x7f) ? '?' : char(c);
    }
    if (value.size() > shown) out += "...";
    out += '"';
    return out;
}

std::optional<std::uint64_t> parse_number(std::string_view text) {
    if (text.empty()) return std::nullopt;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
    }
    std::uint64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return n;
}

const char* unit_name(Kind kind) {
    switch (kind) {
    case Kind::seconds: return " seconds";
    case Kind::milliseconds: return " milliseconds";
    case Kind::bytes: return " bytes";
    case Kind::count: return "";  // a count of what the key names
    default: return "";
    }
}

dtcall::Status apply_number(const KeySpec& spec, const Line& line, ConfValues& out) {
    auto number = parse_number(line.value);
    std::string range = std::to_string(spec.min) + "-" + std::to_string(spec.max);
    if (spec.kind == Kind::port) {
        if (!number || *number < spec.min || *number > spec.max) {
            return line.error(quoted(line.value) + " is not a port number (" + range + ")");
        }
    } else if (!number) {
        // Distinguish "too many digits" from "not a number at all".
        bool all_digits = line.value.find_first_not_of("0123456789") == std::string_view::npos;
        if (!all_digits) {
            std::string unit = unit_name(spec.kind);
            return line.error(quoted(line.value) + " is not a whole number" + (unit.empty() ? "" : " of" + unit));
        }
        return line.error(quoted(line.value) + " is out of range (" + range + unit_name(spec.kind) + ")");
    } else if (*number < spec.min || *number > spec.max) {
        return line.error(std::to_string(*number) + " is out of range (" + range + unit_name(spec.kind) + ")");
    }
    spec.apply(out, *number, line);
    return dtcall::Done{};
}

bool ip_literal(const std::string& text) {
    unsigned char buffer[16];
    return inet_pton(AF_INET, text.c_str(), buffer) == 1 || inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

// 0.0.0.0, :: (and ::ffff:0.0.0.0): fine to listen on, meaningless to send to.
bool unspecified_address(const std::string& text) {
    unsigned char buffer[16] = {};
    if (inet_pton(AF_INET, text.c_str(), buffer) == 1) return buffer[0] == 0 && buffer[1] == 0 && buffer[2] == 0 && buffer[3] == 0;
    if (inet_pton(AF_INET6, text.c_str(), buffer) != 1) return false;
    bool mapped = buffer[10] == 0xff && buffer[11] == 0xff;  // ::ffff:0.0.0.0
    for (int i = 0; i < 16; ++i) {
        if (buffer[i] != 0 && !(mapped && (i == 10 || i == 11))) return false;
    }
    return true;
}

// metrics::parse_endpoint is shared with `metrics`, whose example addresses
// (a local scrape port) would mislead here: name node addresses instead.
constexpr const char* node_address_examples = "10.0.0.11:1962 or [fd00::11]:1962";
std::string node_address_example(std::string why) {
    const std::string metrics_example = "(such as 127.0.0.1:9641 or [::1]:9641)";
    std::size_t at = why.find(metrics_example);
    if (at != std::string::npos) {
        why.replace(at, metrics_example.size(), "(such as " + std::string(node_address_examples) + ")");
    }
    return why;
}

std::optional<dtcall::LogLevel> parse_level(std::string_view text) {
    if (text == "debug") return dtcall::LogLevel::debug;
    if (text == "info") return dtcall::LogLevel::info;
    if (text == "warning" || text == "warn") return dtcall::LogLevel::warning;
    if (text == "error") return dtcall::LogLevel::error;
    return std::nullopt;
}

dtcall::Status apply(const KeySpec& spec, const Line& line, ConfValues& out) {
    switch (spec.kind) {
    case Kind::address:
        if (split_addresses(line.value).empty()) return line.error("needs at least one address");
        for (const std::string& address : split_addresses(line.value)) {
            if (!ip_literal(address)) return line.error(quoted(address) + " is not an IPv4 or IPv6 address");
        }
        spec.apply(out, 0, line);
        return dtcall::Done{};
    case Kind::path:
        spec.apply(out, 0, line);
        return dtcall::Done{};
    case Kind::endpoint: {
        auto endpoint = metrics::parse_endpoint(line.value);
        if (!endpoint) return line.error(quoted(line.value) + " " + endpoint.error());
        out.metrics = *endpoint;
        out.metrics_line = line.number;
        return dtcall::Done{};
    }
    case Kind::redis: {
        // redis://, rediss://, tcp://...: the usual client URL is not taken
        // (no database number, user or TLS here); say so rather than let
        // the HOST:PORT parser complain about brackets.
        if (line.value.find("://") != std::string_view::npos) {
            return line.error(quoted(line.value) +
                              " is a URL, which is not accepted: write unix:/PATH (such as "
                              "unix:/run/redis/redis.sock) or HOST:PORT (such as 10.0.0.5:6379 or [fd00::5]:6379)");
        }
        auto redis = dtcall::cluster::parse_redis_address(line.value);
        if (!redis) return line.error(quoted(line.value) + " " + redis.error());
        out.cluster.redis = *redis;
        out.cluster.redis_line = line.number;
        return dtcall::Done{};
    }
    case Kind::node_name:
        if (!dtcall::cluster::valid_node_name(line.value)) {
            return line.error(quoted(line.value) + " is not a node name (1-64 of 0-9 A-Z a-z . _ -)");
        }
        out.cluster.node_name = std::string(line.value);
        out.cluster.node_name_line = line.number;
        return dtcall::Done{};
    case Kind::node_address: {
        auto endpoint = metrics::parse_endpoint(line.value);
        if (!endpoint) return line.error(quoted(line.value) + " " + node_address_example(endpoint.error()));
        if (endpoint->port == 0) return line.error(quoted(line.value) + " needs a port number (1-65535)");
        if (unspecified_address(endpoint->host)) {
            return line.error(quoted(line.value) +
                              " is a wildcard address: the other nodes send this node's media there, so it must "
                              "be an address they can reach (such as " + std::string(node_address_examples) + ")");
        }
        out.cluster.node_address = *endpoint;
        out.cluster.node_address_line = line.number;
        return dtcall::Done{};
    }
    case Kind::level: {
        auto level = parse_level(line.value);
        if (!level) return line.error(quoted(line.value) + " is not one of debug, info, warning, error");
        out.log_level = *level;
        return dtcall::Done{};
    }
    default:
        return apply_number(spec, line, out);
    }
}

// Any cluster key turns clustering on, and then a node cannot work without
// the shared Redis, the address other nodes send it media at, and the key
// that authenticates both: a partial set is a mistake, not a single node.
dtcall::Status check_cluster_set(const ConfValues::Cluster& c, std::string_view file_name) {
    if (!c.any()) return dtcall::Done{};
    struct Named { const char* key; int line; };
    const Named keys[] = {{"cluster_redis", c.redis_line}, {"node_name", c.node_name_line},
                          {"node_address", c.node_address_line}, {"cluster_key", c.key_line},
                          {"cluster_ttl", c.ttl_line}};
    const Named* first = nullptr;
    for (const Named& k : keys) {
        if (k.line > 0 && (first == nullptr || k.line < first->line)) first = &k;
    }
    std::string missing;
    for (const Named& k : keys) {
        bool optional = std::string_view(k.key) == "node_name" || std::string_view(k.key) == "cluster_ttl";
        if (k.line > 0 || optional) continue;
        missing += missing.empty() ? "" : " and ";
        missing += k.key;
    }
    if (missing.empty()) return dtcall::Done{};
    return dtcall::Error{std::string(file_name) + ":" + std::to_string(first->line) + ": " + first->key +
                         ": clustering also needs " + missing +
                         " (cluster_redis, node_address and cluster_key go together; see dtcalld.conf(5))"};
}

}  // namespace

std::vector<std::string> conf_key_names() {
    std::vector<std::string> names;
    for (const auto& spec : key_specs) names.emplace_back(spec.name);
    return names;
}

dtcall::Result<ConfValues> parse_conf(std::string_view text, std::string_view file_name) {
    ConfValues out;
    std::map<std::string_view, int, std::less<>> seen;  // key -> line it was set on
    int number = 0;
    while (!text.empty()) {
        ++number;
        std::size_t eol = text.find('\n');
        std::string_view raw = text.substr(0, eol);
        text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);

        std::string_view content = trim(raw.substr(0, raw.find('#')));
        if (content.empty()) continue;
        std::size_t eq = content.find('=');
        Line line{file_name, number, {}, {}};
        if (eq == std::string_view::npos || trim(content.substr(0, eq)).empty()) {
            return dtcall::Error{line.where() + "expected \"key = value\", found " + quoted(content)};
        }
        line.key = trim(content.substr(0, eq));
        line.value = trim(content.substr(eq + 1));

        const KeySpec* spec = find_key(line.key);
        if (spec == nullptr) {
            out.warnings.push_back(line.where() + "unknown key " + quoted(line.key) + " ignored");
            continue;
        }
        if (line.value.empty()) return line.error("has no value");
        auto status = apply(*spec, line, out);
        if (!status) return dtcall::Error{status.error()};
        auto [it, fresh] = seen.emplace(spec->name, number);
        if (!fresh) {
            out.warnings.push_back(line.where() + std::string(spec->name) + ": also set on line " +
                                   std::to_string(it->second) + "; this later value is used");
            it->second = number;
        }
    }
    std::string where = std::string(file_name) + ": ";
    if (out.public_key_path.empty()) {
        return dtcall::Error{where + "public_sodium: not set (the path of the server's public key file)"};
    }
    if (out.private_key_path.empty()) {
        return dtcall::Error{where + "private_sodium: not set (the path of the server's private key file)"};
    }
    if (out.users_line > 0 && out.users_db_line > 0) {
        return dtcall::Error{std::string(file_name) + ":" + std::to_string(out.users_db_line) +
                             ": users_db: cannot be used together with users (line " + std::to_string(out.users_line) +
                             "); keep one of the two lines"};
    }
    if (auto cluster = check_cluster_set(out.cluster, file_name); !cluster) return dtcall::Error{cluster.error()};
    return out;
}

}  // namespace dtcalld
