#include "format.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace dtcalld::control {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using Row = std::vector<std::string>;

// Columns two blanks apart, each as wide as its widest cell; no trailing blanks.
std::string table(const std::vector<Row>& rows) {
    std::vector<std::size_t> width;
    for (const Row& row : rows) {
        if (width.size() < row.size()) width.resize(row.size(), 0);
        for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    std::string out;
    for (const Row& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line + "\n";
    }
    return out;
}

std::string two_digits(long long n) {
    char buffer[8];
    std::snprintf(buffer, sizeof buffer, "%02lld", n);
    return buffer;
}

bool started(const dtcall::CallInfo& call) { return call.started_at.time_since_epoch().count() != 0; }

milliseconds call_duration(const dtcall::CallInfo& call, TimePoint now) {
    if (!started(call) || now < call.started_at) return milliseconds(0);
    return duration_cast<milliseconds>(now - call.started_at);
}

std::string number(std::uint64_t n) { return std::to_string(n); }

// Empty (a single node, no peer) is null in JSON and "-" in tables.
std::string json_or_null(const std::string& text) { return text.empty() ? "null" : json_string(text); }
std::string cell(const std::string& text) { return text.empty() ? "-" : text; }

// "node1/node2" (caller's/callee's), "-" on a single node.
std::string nodes_cell(const dtcall::CallInfo& call) {
    if (call.caller_node.empty() && call.callee_node.empty()) return "-";
    return cell(call.caller_node) + "/" + cell(call.callee_node);
}

std::string flow_json(const dtcall::MediaFlow& flow) {
    return "{\"packets\":" + number(flow.packets) + ",\"bytes\":" + number(flow.bytes) +
           ",\"longest_gap_ms\":" + std::to_string(flow.longest_gap.count()) + "}";
}

std::string endpoint_json(const dtcall::MediaEndpoint& endpoint) {
    return "{\"address\":" + json_string(endpoint.address) + ",\"moves\":" + std::to_string(endpoint.moves) + "}";
}

std::string call_json(const dtcall::CallInfo& call, TimePoint now) {
    std::string started_at = started(call) ? json_string(utc_time(call.started_at)) : "null";
    return "{\"caller\":" + json_string(call.caller) + ",\"callee\":" + json_string(call.callee) +
           ",\"caller_node\":" + json_or_null(call.caller_node) + ",\"callee_node\":" +
           json_or_null(call.callee_node) + ",\"phase\":" + json_string(phase_name(call.phase)) + ",\"rung_at\":" +
           json_string(utc_time(call.rung_at)) + ",\"started_at\":" + started_at +
           ",\"duration_ms\":" + std::to_string(call_duration(call, now).count()) +
           ",\"caller_to_callee\":" + flow_json(call.caller_to_callee) +
           ",\"callee_to_caller\":" + flow_json(call.callee_to_caller) +
           ",\"caller_media\":" + endpoint_json(call.caller_media) +
           ",\"callee_media\":" + endpoint_json(call.callee_media) + "}";
}

std::string tm_text(TimePoint when, bool utc, const char* format) {
    std::time_t t = std::chrono::system_clock::to_time_t(when);
    std::tm parts{};
    if (utc) {
        gmtime_r(&t, &parts);
    } else {
        localtime_r(&t, &parts);
    }
    char buffer[40];
    std::strftime(buffer, sizeof buffer, format, &parts);
    return buffer;
}

}  // namespace

const char* phase_name(dtcall::CallPhase phase) {
    switch (phase) {
    case dtcall::CallPhase::idle: return "idle";
    case dtcall::CallPhase::ringing: return "ringing";
    case dtcall::CallPhase::accepted: return "accepted";
    case dtcall::CallPhase::in_call: return "in_call";
    }
    return "idle";
}

std::string format_duration(milliseconds duration) {
    long long s = std::max<long long>(0, duration.count() / 1000);
    long long days = s / 86400, hours = s / 3600 % 24, minutes = s / 60 % 60, seconds = s % 60;
    if (days > 0) return std::to_string(days) + "d" + two_digits(hours) + "h" + two_digits(minutes) + "m";
    if (s >= 3600) return std::to_string(hours) + "h" + two_digits(minutes) + "m" + two_digits(seconds) + "s";
    if (s >= 60) return std::to_string(minutes) + "m" + two_digits(seconds) + "s";
    return std::to_string(seconds) + "s";
}

std::string json_string(std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
        auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20) {
            char buffer[8];
            std::snprintf(buffer, sizeof buffer, "\\u%04x", unsigned(u));
            out += buffer;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::string utc_time(TimePoint when) { return tm_text(when, true, "%Y-%m-%dT%H:%M:%SZ"); }
std::string local_time(TimePoint when) { return tm_text(when, false, "%Y-%m-%d %H:%M:%S"); }

std::string format_status(const StatusView& status, bool json) {
    const dtcall::ServerStats& s = status.stats;
    if (json) {
        return "{\"version\":" + json_string(status.version) + ",\"uptime_seconds\":" +
               std::to_string(status.uptime.count()) + ",\"state\":" +
               json_string(status.draining ? "draining" : "serving") + ",\"connections\":" +
               number(s.connections) + ",\"users_online\":" + number(s.logged_in) + ",\"calls\":{\"ringing\":" +
               number(s.calls_ringing) + ",\"accepted\":" + number(s.calls_accepted) + ",\"in_call\":" +
               number(s.calls_in_progress) + "}}\n";
    }
    return table({
        {"version", status.version},
        {"uptime", format_duration(status.uptime)},
        {"state", status.draining ? "draining" : "serving"},
        {"connections", number(s.connections)},
        {"users online", number(s.logged_in)},
        {"calls", "ringing " + number(s.calls_ringing) + ", accepted " + number(s.calls_accepted) + ", in call " +
                      number(s.calls_in_progress)},
    });
}

std::string format_users(const std::vector<dtcall::OnlineUser>& users, TimePoint now, bool json) {
    if (json) {
        std::string out = "{\"users\":[";
        for (std::size_t i = 0; i < users.size(); ++i) {
            const dtcall::OnlineUser& u = users[i];
            out += (i ? "," : "") + std::string("{\"user\":") + json_string(u.user) + ",\"node\":" +
                   json_or_null(u.node) + ",\"address\":" +
                   json_string(u.address) + ",\"since\":" + json_string(utc_time(u.since)) +
                   ",\"online_seconds\":" +
                   std::to_string(std::max<long long>(0, duration_cast<std::chrono::seconds>(now - u.since).count())) +
                   ",\"phase\":" + json_string(phase_name(u.phase)) + ",\"peer\":" + json_or_null(u.peer) + "}";
        }
        return out + "]}\n";
    }
    std::vector<Row> rows{{"USER", "NODE", "ADDRESS", "SINCE", "CALL"}};
    for (const dtcall::OnlineUser& u : users) {
        std::string call = u.peer.empty() ? "-" : std::string(phase_name(u.phase)) + " " + u.peer;
        rows.push_back({u.user, cell(u.node), u.address, local_time(u.since), call});
    }
    return table(rows);
}

std::string format_calls(const std::vector<dtcall::CallInfo>& calls, TimePoint now, bool json) {
    if (json) {
        std::string out = "{\"calls\":[";
        for (std::size_t i = 0; i < calls.size(); ++i) out += (i ? "," : "") + call_json(calls[i], now);
        return out + "]}\n";
    }
    // Pairs are "caller->callee/callee->caller"; nodes and moves "caller/callee".
    std::vector<Row> rows{{"CALLER", "CALLEE", "NODE", "PHASE", "DURATION", "PACKETS", "BYTES", "GAP(ms)", "MOVES"}};
    for (const dtcall::CallInfo& c : calls) {
        rows.push_back({c.caller, c.callee, nodes_cell(c), phase_name(c.phase),
                        started(c) ? format_duration(call_duration(c, now)) : "-",
                        number(c.caller_to_callee.packets) + "/" + number(c.callee_to_caller.packets),
                        number(c.caller_to_callee.bytes) + "/" + number(c.callee_to_caller.bytes),
                        std::to_string(c.caller_to_callee.longest_gap.count()) + "/" +
                            std::to_string(c.callee_to_caller.longest_gap.count()),
                        std::to_string(c.caller_media.moves) + "/" + std::to_string(c.callee_media.moves)});
    }
    return table(rows);
}

std::string format_message(std::string_view message, bool json) {
    if (json) return "{\"result\":" + json_string(message) + "}\n";
    return std::string(message) + "\n";
}

}  // namespace dtcalld::control
