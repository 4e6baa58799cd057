#include "render.hpp"

#include <charconv>
#include <cmath>
#include <initializer_list>
#include <string_view>

namespace dtcalld::metrics {
namespace {

// Appends one metric family: its HELP and TYPE lines, then the samples.
class Writer {
public:
    explicit Writer(std::string& out) : out_(out) {}

    void family(const char* name, const char* type, const char* help) {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }
    void sample(const char* name, std::uint64_t value) { line(name, {}, std::to_string(value)); }
    void sample(const char* name, const char* label, const std::string& label_value, std::uint64_t value) {
        line(name, {{label, label_value}}, std::to_string(value));
    }
    void sample(const char* name, const char* label, const std::string& label_value, const std::string& value) {
        line(name, {{label, label_value}}, value);
    }
    void sample(const char* name, const std::string& value) { line(name, {}, value); }
    // Two labels: dtcall_cluster_dropped_total{leg="control",reason="stale"}.
    void sample(const char* name, const char* label, const std::string& label_value, const char* label2,
                const std::string& label2_value, std::uint64_t value) {
        line(name, {{label, label_value}, {label2, label2_value}}, std::to_string(value));
    }

private:
    struct Label {
        const char* name;
        std::string_view value;
    };

    // Label values here are our own names and the version string: escape
    // what the format requires anyway (\, " and newline).
    void line(const char* name, std::initializer_list<Label> labels, const std::string& value) {
        out_ += name;
        if (labels.size() != 0) {
            char separator = '{';
            for (const Label& label : labels) {
                out_ += separator;
                out_ += label.name;
                out_ += "=\"";
                for (char c : label.value) {
                    if (c == '\\') out_ += "\\\\";
                    else if (c == '"') out_ += "\\\"";
                    else if (c == '\n') out_ += "\\n";
                    else out_ += c;
                }
                out_ += '"';
                separator = ',';
            }
            out_ += '}';
        }
        out_ += ' ';
        out_ += value;
        out_ += '\n';
    }

    std::string& out_;
};

// A histogram family from per-bound (not cumulative) bucket counts; `count`
// includes what is over the last bound.
template <std::size_t N>
void histogram(Writer& w, const std::string& name, const char* help, const std::array<double, N>& bounds,
               const std::array<std::uint64_t, N>& buckets, std::uint64_t count, double sum_seconds) {
    const std::string bucket = name + "_bucket";
    w.family(name.c_str(), "histogram", help);
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < N; ++i) {
        cumulative += buckets[i];
        w.sample(bucket.c_str(), "le", format_value(bounds[i]), cumulative);
    }
    w.sample(bucket.c_str(), "le", "+Inf", count);
    w.sample((name + "_sum").c_str(), format_value(sum_seconds));
    w.sample((name + "_count").c_str(), count);
}

void server_gauges(Writer& w, const dtcall::ServerStats& s) {
    w.family("dtcall_connections", "gauge", "Command connections open, logged in or not.");
    w.sample("dtcall_connections", s.connections);
    w.family("dtcall_users_online", "gauge", "Users logged in.");
    w.sample("dtcall_users_online", s.logged_in);
    w.family("dtcall_calls", "gauge", "Calls now, by phase: ringing, accepted (waiting for both readys), in_call.");
    w.sample("dtcall_calls", "phase", "ringing", s.calls_ringing);
    w.sample("dtcall_calls", "phase", "accepted", s.calls_accepted);
    w.sample("dtcall_calls", "phase", "in_call", s.calls_in_progress);
    w.family("dtcall_media_registered_users", "gauge", "Users with a registered media address.");
    w.sample("dtcall_media_registered_users", s.media_registered);
}

void logins_and_calls(Writer& w, const dtcall::ServerStats& s, const ObservedCounts& o) {
    w.family("dtcall_logins_total", "counter", "Login attempts that finished, by result.");
    w.sample("dtcall_logins_total", "result", "ok", s.logins);
    w.sample("dtcall_logins_total", "result", "failed", s.login_failures);
    w.family("dtcall_login_failures_total", "counter", "Failed login attempts, by reason.");
    for (std::size_t i = 0; i < login_failures.size(); ++i) {
        w.sample("dtcall_login_failures_total", "reason", metrics_label(dtcall::to_string(login_failures[i])),
                 o.login_failed[i]);
    }
    w.family("dtcall_calls_total", "counter", "Calls that ended (rung ones included), by end reason.");
    for (std::size_t i = 0; i < end_reasons.size(); ++i) {
        w.sample("dtcall_calls_total", "end_reason", metrics_label(dtcall::to_string(end_reasons[i])),
                 o.calls_ended[i]);
    }
    histogram(w, "dtcall_call_setup_seconds", "Time from call to start, of calls that started.", setup_bounds,
              o.setup.buckets, o.setup.count, o.setup.sum_seconds);
    w.family("dtcall_commands_replayed_total", "counter", "Command frames seen before, or too old (dropped).");
    w.sample("dtcall_commands_replayed_total", s.commands_replayed);
}

void media(Writer& w, const dtcall::ServerStats& s) {
    w.family("dtcall_media_packets_relayed_total", "counter", "Media datagrams relayed to the peer.");
    w.sample("dtcall_media_packets_relayed_total", s.media_packets_relayed);
    w.family("dtcall_media_bytes_relayed_total", "counter", "Bytes of the media datagrams relayed.");
    w.sample("dtcall_media_bytes_relayed_total", s.media_bytes_relayed);
    w.family("dtcall_media_packets_relayed_by_threads_total", "counter",
             "Of the media datagrams relayed, those relayed by relay threads.");
    w.sample("dtcall_media_packets_relayed_by_threads_total", s.media_packets_relayed_by_threads);
    // The five reasons add up to ServerStats::media_packets_dropped.
    w.family("dtcall_media_packets_dropped_total", "counter",
             "Datagrams neither relayed nor an acked registration, by reason.");
    w.sample("dtcall_media_packets_dropped_total", "reason", "rate_limited", s.media_rate_limited);
    w.sample("dtcall_media_packets_dropped_total", "reason", "too_large", s.media_too_large);
    w.sample("dtcall_media_packets_dropped_total", "reason", "unroutable", s.media_unroutable);
    w.sample("dtcall_media_packets_dropped_total", "reason", "registration_refused", s.registrations_refused);
    w.sample("dtcall_media_packets_dropped_total", "reason", "registration_replayed", s.registrations_replayed);
    w.family("dtcall_media_registrations_acked_total", "counter",
             "Media registrations answered with an ack, retransmissions included.");
    w.sample("dtcall_media_registrations_acked_total", s.registrations_acked);
    w.family("dtcall_media_table_publishes_total", "counter", "Route tables built for relay threads.");
    w.sample("dtcall_media_table_publishes_total", s.media_table_publishes);
}

void limit_hits(Writer& w, const dtcall::ServerStats& s) {
    w.family("dtcall_limit_hits_total", "counter", "Times a limit refused or cut off someone, by limit.");
    for (dtcall::Limit limit : limits) {
        w.sample("dtcall_limit_hits_total", "limit", metrics_label(dtcall::to_string(limit)), s.limit_hit(limit));
    }
}

// Only on a cluster node. Media is the node-to-node leg (ServerStats'
// node_packets_*), control the messages received through Redis.
void cluster(Writer& w, const dtcall::cluster::ClusterStats& c, const dtcall::ServerStats& s) {
    w.family("dtcall_cluster_redis_connected", "gauge",
             "1 when both Redis links (commands and subscriber) are up, else 0: the node is cut off.");
    w.sample("dtcall_cluster_redis_connected", std::uint64_t{c.redis_connected() ? 1u : 0u});
    histogram(w, "dtcall_cluster_redis_round_trip_seconds", "Time from sending a Redis command to its reply.",
              dtcall::cluster::round_trip_bounds, c.round_trips.buckets, c.round_trips.count,
              c.round_trips.sum_seconds);
    w.family("dtcall_cluster_redis_commands_total", "counter", "Redis commands sent.");
    w.sample("dtcall_cluster_redis_commands_total", c.commands_sent);
    w.family("dtcall_cluster_nodes", "gauge", "Other nodes of the cluster known to this one.");
    w.sample("dtcall_cluster_nodes", c.nodes);
    w.family("dtcall_cluster_remote_users", "gauge", "Users online on the other nodes, as this node knows them.");
    w.sample("dtcall_cluster_remote_users", c.remote_users);
    w.family("dtcall_cluster_queued_messages", "gauge",
             "Messages for other nodes waiting for Redis (or for their node) to come back.");
    w.sample("dtcall_cluster_queued_messages", c.queued);
    w.family("dtcall_cluster_queue_dropped_total", "counter",
             "Messages for other nodes dropped from that queue: too many, or older than 5 minutes.");
    w.sample("dtcall_cluster_queue_dropped_total", c.queue_dropped);
    w.family("dtcall_cluster_stored_rejected_total", "counter",
             "Entries read from Redis that did not authenticate with the cluster key or broke a bound (dropped).");
    w.sample("dtcall_cluster_stored_rejected_total", c.stored_rejected);
    w.family("dtcall_cluster_control_messages_total", "counter",
             "Control messages received through Redis and accepted.");
    w.sample("dtcall_cluster_control_messages_total", c.control.accepted);
    w.family("dtcall_cluster_node_packets_total", "counter",
             "Media datagrams on the node-to-node leg: sent on to another node, received and sent on to a user.");
    w.sample("dtcall_cluster_node_packets_total", "direction", "sent", s.node_packets_sent);
    w.sample("dtcall_cluster_node_packets_total", "direction", "received", s.node_packets_received);
    w.family("dtcall_cluster_forged_total", "counter",
             "From other nodes with a tag that does not verify (dropped), by leg: media datagrams, control messages.");
    w.sample("dtcall_cluster_forged_total", "leg", "media", s.node_packets_forged);
    w.sample("dtcall_cluster_forged_total", "leg", "control", c.control.forged);
    w.family("dtcall_cluster_dropped_total", "counter",
             "From other nodes and dropped, forged ones aside, by leg and reason (media: all reasons as other).");
    w.sample("dtcall_cluster_dropped_total", "leg", "media", "reason", "other", s.node_packets_dropped);
    w.sample("dtcall_cluster_dropped_total", "leg", "control", "reason", "malformed", c.control.malformed);
    w.sample("dtcall_cluster_dropped_total", "leg", "control", "reason", "replayed", c.control.replayed);
    w.sample("dtcall_cluster_dropped_total", "leg", "control", "reason", "stale", c.control.stale);
    w.sample("dtcall_cluster_dropped_total", "leg", "control", "reason", "too_many", c.control.too_many);
}

// A process figure /proc could not give is left out, not reported as 0.
void optional_figure(Writer& w, const char* name, const char* type, const char* help,
                     const std::optional<std::uint64_t>& value) {
    if (!value) return;
    w.family(name, type, help);
    w.sample(name, *value);
}
void optional_figure(Writer& w, const char* name, const char* type, const char* help,
                     const std::optional<double>& value) {
    if (!value) return;
    w.family(name, type, help);
    w.sample(name, format_value(*value));
}

void process(Writer& w, const ProcessFigures& p) {
    optional_figure(w, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
                    p.cpu_seconds);
    optional_figure(w, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", p.resident_bytes);
    optional_figure(w, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", p.virtual_bytes);
    optional_figure(w, "process_open_fds", "gauge", "Number of open file descriptors (counted at most every 5 s).",
                    p.open_fds);
    optional_figure(w, "process_max_fds", "gauge", "Maximum number of open file descriptors.", p.max_fds);
    optional_figure(w, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
                    p.start_time_seconds);
}

}  // namespace

std::string metrics_label(const char* name) {
    std::string label = name;
    for (char& c : label) {
        if (c == ' ') c = '_';
    }
    return label;
}

std::string format_value(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    // Plain decimals as Prometheus's own clients write bounds ("0.0001",
    // not "1e-04": le="..." is compared as text by PromQL); the exponent form
    // only for what would be long written out.
    char buffer[400];
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::fixed);
    if (ec == std::errc() && end - buffer <= 24) return std::string(buffer, end);
    auto [short_end, short_ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
    if (short_ec != std::errc()) return "NaN";
    return std::string(buffer, short_end);
}

std::string render_metrics(const MetricsSnapshot& snapshot) {
    std::string out;
    out.reserve(8192);
    Writer w(out);
    w.family("dtcall_build_info", "gauge", "Always 1; the version of dtcalld in a label.");
    w.sample("dtcall_build_info", "version", snapshot.version, std::uint64_t{1});
    server_gauges(w, snapshot.server);
    logins_and_calls(w, snapshot.server, snapshot.observed);
    media(w, snapshot.server);
    limit_hits(w, snapshot.server);
    if (snapshot.cluster) cluster(w, *snapshot.cluster, snapshot.server);
    process(w, snapshot.process);
    return out;
}

}  // namespace dtcalld::metrics
