// dtcalld's command line, the original daemon's plus a few of our own:
//   dtcalld [--settings DIR] [--log DIR] | --demo | --help | --version
#pragma once

#include <dtcall/result.hpp>

#include <string>
#include <vector>

namespace dtcalld {

struct Options {
    enum class Action { run, demo, help, version };
    Action action = Action::run;
    std::string settings_dir;  // defaults from settings.hpp
    std::string log_dir;
};

// `args` excludes the program name. Both "--settings DIR" and
// "--settings=DIR" are accepted. The error is one line for stderr.
dtcall::Result<Options> parse_command_line(const std::vector<std::string>& args);

// The --help text.
std::string usage_text();

}  // namespace dtcalld
