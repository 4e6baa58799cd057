#include "command_line.hpp"

#include "settings.hpp"

namespace dtcalld {
namespace {

// "--settings DIR" or "--settings=DIR": the value, or an error.
dtcall::Result<std::string> option_value(const std::vector<std::string>& args, std::size_t& i,
                                         const std::string& name) {
    const std::string& arg = args[i];
    if (arg.size() > name.size() && arg.compare(0, name.size(), name) == 0 && arg[name.size()] == '=') {
        std::string value = arg.substr(name.size() + 1);
        if (value.empty()) return dtcall::Error{name + " needs a directory"};
        return value;
    }
    if (i + 1 >= args.size() || args[i + 1].empty()) return dtcall::Error{name + " needs a directory"};
    return args[++i];
}

bool is_option(const std::string& arg, const std::string& name) {
    return arg == name || (arg.compare(0, name.size() + 1, name + "=") == 0);
}

}  // namespace

dtcall::Result<Options> parse_command_line(const std::vector<std::string>& args) {
    Options out;
    out.settings_dir = default_settings_dir;
    out.log_dir = default_log_dir;
    bool action_set = false;
    auto set_action = [&](Options::Action action, const std::string& arg) -> dtcall::Status {
        if (action_set && out.action != action) return dtcall::Error{arg + " cannot be combined with other actions"};
        out.action = action;
        action_set = true;
        return dtcall::Done{};
    };
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        dtcall::Status status = dtcall::Done{};
        if (is_option(arg, "--settings") || is_option(arg, "--log")) {
            std::string name = arg.compare(0, 5, "--log") == 0 ? "--log" : "--settings";
            auto value = option_value(args, i, name);
            if (!value) return dtcall::Error{value.error()};
            (name == "--log" ? out.log_dir : out.settings_dir) = *value;
        } else if (arg == "--demo") {
            status = set_action(Options::Action::demo, arg);
        } else if (arg == "--help" || arg == "-h") {
            status = set_action(Options::Action::help, arg);
        } else if (arg == "--version" || arg == "-V") {
            status = set_action(Options::Action::version, arg);
        } else {
            return dtcall::Error{"unknown argument \"" + arg + "\" (try --help)"};
        }
        if (!status) return dtcall::Error{status.error()};
    }
    return out;
}

std::string usage_text() {
    return std::string(
               "usage: dtcalld [--settings DIR] [--log DIR]\n"
               "       dtcalld --demo | --help | --version\n"
               "\n"
               "Runs the DT Call signaling server in the foreground.\n"
               "  --settings DIR  dtcalld.conf (or dtoperator.conf), users and key files\n"
               "                  (default ") +
           default_settings_dir +
           ")\n"
           "  --log DIR       where the daily log files go (default " +
           default_log_dir +
           ")\n"
           "  --demo          run a scripted call between two built-in clients on\n"
           "                  loopback, with throwaway keys, and print every step\n"
           "  --help          this text\n"
           "  --version       print the version\n"
           "\n"
           "Signals: HUP reloads the users file, USR1 starts a new log file,\n"
           "TERM and INT stop the server. See dtcalld(8) and dtcalld.conf(5).\n";
}

}  // namespace dtcalld
