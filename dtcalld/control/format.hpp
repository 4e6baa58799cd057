// What the control socket answers, as text: human tables (columns padded,
// a header row) or one JSON document. Pure: the figures and "now" come in as
// arguments, so tests give fixed ones. Times are local in tables
// ("YYYY-MM-DD HH:MM:SS") and UTC in JSON ("YYYY-MM-DDTHH:MM:SSZ"). The
// nodes (OnlineUser::node, CallInfo::caller_node/callee_node) are always
// shown: "-" in tables and null in JSON on a single node.
#pragma once

#include <dtcall/events.hpp>
#include <dtcall/server.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace dtcalld::control {

using TimePoint = std::chrono::system_clock::time_point;

struct StatusView {
    std::string version;
    std::chrono::seconds uptime{0};
    bool draining = false;
    dtcall::ServerStats stats;
};

// Each answer ends with a newline.
std::string format_status(const StatusView& status, bool json);
std::string format_users(const std::vector<dtcall::OnlineUser>& users, TimePoint now, bool json);
std::string format_calls(const std::vector<dtcall::CallInfo>& calls, TimePoint now, bool json);
// For kick, end, reload, drain, log-reopen: a sentence, or {"result":"..."}.
std::string format_message(std::string_view message, bool json);

// "idle", "ringing", "accepted", "in_call": one word, for tables and JSON.
const char* phase_name(dtcall::CallPhase phase);
// "45s", "3m05s", "2h03m00s", "3d04h05m": whole seconds, largest units first.
std::string format_duration(std::chrono::milliseconds duration);
// A JSON string literal, quotes included.
std::string json_string(std::string_view text);
std::string utc_time(TimePoint when);    // "2024-05-01T12:00:00Z"
std::string local_time(TimePoint when);  // "2024-05-01 14:00:00"

}  // namespace dtcalld::control
