// The control socket's request line, and dtcall-ctl's command line that
// makes one. Pure: no sockets, no Server; fuzzed (tests/fuzz/fuzz_control_request.cpp).
//
//   request  = command [SP argument] [SP "json"] LF      (at most 1 KiB)
//   command  = "status" / "users" / "calls" / "kick" / "end" / "reload" /
//              "drain" / "log-reopen"
// kick and end take a user name ([0-9A-Za-z+-], 1-64 characters), drain an
// optional number of seconds; the others take nothing. See dtcall-ctl(8).
#pragma once

#include <dtcall/result.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace dtcalld::control {

enum class Command { status, users, calls, kick, end, reload, drain, log_reopen };
const char* command_name(Command command);

constexpr std::size_t max_request_size = 1024;  // bytes, newline included
constexpr std::size_t max_user_name = 64;
constexpr std::chrono::seconds default_drain_limit{300};
constexpr std::chrono::seconds max_drain_limit{7 * 24 * 3600};

struct Request {
    Command command = Command::status;
    std::string user;                             // kick, end
    std::chrono::seconds drain_limit = default_drain_limit;  // drain
    bool json = false;
};

// One line, without its newline (a trailing CR is allowed). Words are
// separated by blanks. The error is one short line for the client.
dtcall::Result<Request> parse_request(std::string_view line);

// The line dtcall-ctl sends for `request`, newline included.
std::string format_request(const Request& request);

bool valid_user_name(std::string_view name);

// dtcall-ctl's arguments (program name excluded):
//   [--control PATH] COMMAND [ARG] [--json]   |  --help  |  --version
struct CtlOptions {
    enum class Action { run, help, version };
    Action action = Action::run;
    std::string control_path = "/run/dtcalld/control";
    Request request;
};
dtcall::Result<CtlOptions> parse_ctl_arguments(const std::vector<std::string>& args);
std::string ctl_usage_text();

}  // namespace dtcalld::control
