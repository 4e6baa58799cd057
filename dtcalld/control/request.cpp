#include "request.hpp"

#include <charconv>
#include <optional>

namespace dtcalld::control {
namespace {

struct CommandSpec {
    Command command;
    std::string_view name;
    enum class Argument { none, user, seconds } argument;
};

constexpr CommandSpec commands[] = {
    {Command::status, "status", CommandSpec::Argument::none},
    {Command::users, "users", CommandSpec::Argument::none},
    {Command::calls, "calls", CommandSpec::Argument::none},
    {Command::kick, "kick", CommandSpec::Argument::user},
    {Command::end, "end", CommandSpec::Argument::user},
    {Command::reload, "reload", CommandSpec::Argument::none},
    {Command::drain, "drain", CommandSpec::Argument::seconds},
    {Command::log_reopen, "log-reopen", CommandSpec::Argument::none},
};

const CommandSpec* find_command(std::string_view name) {
    for (const auto& spec : commands) {
        if (spec.name == name) return &spec;
    }
    return nullptr;
}

const CommandSpec& spec_of(Command command) {
    for (const auto& spec : commands) {
        if (spec.command == command) return spec;
    }
    return commands[0];
}

bool blank(char c) { return c == ' ' || c == '\t'; }

std::vector<std::string_view> split_words(std::string_view line) {
    std::vector<std::string_view> words;
    std::size_t at = 0;
    while (at < line.size()) {
        while (at < line.size() && blank(line[at])) ++at;
        std::size_t end = at;
        while (end < line.size() && !blank(line[end])) ++end;
        if (end > at) words.push_back(line.substr(at, end - at));
        at = end;
    }
    return words;
}

// A word echoed in an error: short and printable, so the error stays one line.
std::string shown(std::string_view word) {
    constexpr std::size_t limit = 40;
    std::string out = "\"";
    for (std::size_t i = 0; i < word.size() && i < limit; ++i) {
        auto c = static_cast<unsigned char>(word[i]);
        out += (c < 0x20 || c >= 0x7f) ? '?' : char(c);
    }
    if (word.size() > limit) out += "...";
    return out + "\"";
}

std::optional<std::chrono::seconds> parse_seconds(std::string_view text) {
    if (text.empty() || text.size() > 9) return std::nullopt;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
    }
    long long n = 0;
    std::from_chars(text.data(), text.data() + text.size(), n);
    if (std::chrono::seconds(n) > max_drain_limit) return std::nullopt;
    return std::chrono::seconds(n);
}

// The words after the command (the json flag already taken off).
dtcall::Status apply_argument(const CommandSpec& spec, const std::vector<std::string_view>& args, Request& out) {
    std::string name(spec.name);
    switch (spec.argument) {
    case CommandSpec::Argument::none:
        if (!args.empty()) return dtcall::Error{name + " takes no argument"};
        return dtcall::Done{};
    case CommandSpec::Argument::user:
        if (args.size() != 1) return dtcall::Error{name + " needs one user name"};
        if (!valid_user_name(args[0])) {
            return dtcall::Error{shown(args[0]) + " is not a user name ([0-9A-Za-z+-], at most 64 characters)"};
        }
        out.user = std::string(args[0]);
        return dtcall::Done{};
    case CommandSpec::Argument::seconds:
        if (args.size() > 1) return dtcall::Error{name + " takes at most one number of seconds"};
        if (args.size() == 1) {
            auto limit = parse_seconds(args[0]);
            if (!limit) {
                return dtcall::Error{shown(args[0]) + " is not a number of seconds (0-" +
                                     std::to_string(max_drain_limit.count()) + ")"};
            }
            out.drain_limit = *limit;
        }
        return dtcall::Done{};
    }
    return dtcall::Done{};
}

}  // namespace

const char* command_name(Command command) { return spec_of(command).name.data(); }

bool valid_user_name(std::string_view name) {
    if (name.empty() || name.size() > max_user_name) return false;
    for (char c : name) {
        bool ok = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '+' || c == '-';
        if (!ok) return false;
    }
    return true;
}

dtcall::Result<Request> parse_request(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() >= max_request_size) return dtcall::Error{"request too long"};
    for (char c : line) {
        auto u = static_cast<unsigned char>(c);
        if ((u < 0x20 && c != '\t') || u >= 0x7f) return dtcall::Error{"request has a control or non-ASCII byte"};
    }
    auto words = split_words(line);
    if (words.empty()) return dtcall::Error{"empty request"};
    const CommandSpec* spec = find_command(words[0]);
    if (spec == nullptr) return dtcall::Error{"unknown command " + shown(words[0])};
    Request out;
    out.command = spec->command;
    std::vector<std::string_view> args(words.begin() + 1, words.end());
    // A user may be called "json": for kick and end the flag is the word after the name.
    bool flag_possible = spec->argument != CommandSpec::Argument::user || args.size() >= 2;
    if (!args.empty() && args.back() == "json" && flag_possible) {
        out.json = true;
        args.pop_back();
    }
    if (auto applied = apply_argument(*spec, args, out); !applied) return dtcall::Error{applied.error()};
    return out;
}

std::string format_request(const Request& request) {
    const CommandSpec& spec = spec_of(request.command);
    std::string line(spec.name);
    if (spec.argument == CommandSpec::Argument::user) line += " " + request.user;
    if (spec.argument == CommandSpec::Argument::seconds) line += " " + std::to_string(request.drain_limit.count());
    if (request.json) line += " json";
    return line + "\n";
}

dtcall::Result<CtlOptions> parse_ctl_arguments(const std::vector<std::string>& args) {
    CtlOptions out;
    std::vector<std::string> words;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (arg == "--help" || arg == "-h") {
            out.action = CtlOptions::Action::help;
            return out;
        }
        if (arg == "--version") {
            out.action = CtlOptions::Action::version;
            return out;
        }
        if (arg == "--json") {
            out.request.json = true;
        } else if (arg == "--control") {
            if (i + 1 == args.size() || args[i + 1].empty()) return dtcall::Error{"--control needs a path"};
            out.control_path = args[++i];
        } else if (arg.rfind("--control=", 0) == 0) {
            out.control_path = arg.substr(10);
            if (out.control_path.empty()) return dtcall::Error{"--control needs a path"};
        } else if (arg.size() > 1 && arg[0] == '-' && !(arg.size() > 1 && arg[1] >= '0' && arg[1] <= '9')) {
            return dtcall::Error{"unknown option " + shown(arg) + " (try --help)"};
        } else {
            words.push_back(arg);
        }
    }
    if (words.empty()) return dtcall::Error{"no command (try --help)"};
    // The same rules as the socket's: one line, built from the words.
    std::string line;
    for (const std::string& word : words) {
        if (word.empty() || word.find_first_of(" \t\r\n") != std::string::npos) {
            return dtcall::Error{"bad argument " + shown(word)};
        }
        line += (line.empty() ? "" : " ") + word;
    }
    auto request = parse_request(line);
    if (!request) return dtcall::Error{request.error()};
    bool json = out.request.json;
    out.request = *request;
    out.request.json = json;
    return out;
}

std::string ctl_usage_text() {
    return "usage: dtcall-ctl [--control PATH] COMMAND [ARG] [--json]\n"
           "commands:\n"
           "  status          version, uptime, connections, users online, calls by phase\n"
           "  users           online users: name, node, address, since, call\n"
           "  calls           calls: parties, their nodes, phase, duration, media each way\n"
           "  kick USER       close USER's connection (its call ends)\n"
           "  end USER        end USER's call for both parties\n"
           "  reload          re-read the users file (as SIGHUP)\n"
           "  drain [SECONDS] no new logins or calls; stop when the calls are over or\n"
           "                  after SECONDS (default 300)\n"
           "  log-reopen      start a new log file (as SIGUSR1)\n"
           "options:\n"
           "  --control PATH  the control socket (default /run/dtcalld/control)\n"
           "  --json          one JSON document instead of a table\n"
           "See dtcall-ctl(8).\n";
}

}  // namespace dtcalld::control
