// dtcalld's command line: the original's --settings/--log, plus our actions.
#include "command_line.hpp"

#include <doctest/doctest.h>

using dtcalld::Options;
using dtcalld::parse_command_line;

TEST_CASE("defaults are the original daemon's directories") {
    auto options = parse_command_line({});
    REQUIRE(options.ok());
    CHECK(options->action == Options::Action::run);
    CHECK(options->settings_dir == "/etc/dtoperator");
    CHECK(options->log_dir == "/var/log/dtoperator");
}

TEST_CASE("--settings DIR --log DIR, in either order and with =") {
    auto options = parse_command_line({"--log", "/l", "--settings", "/s"});
    REQUIRE(options.ok());
    CHECK(options->settings_dir == "/s");
    CHECK(options->log_dir == "/l");
    options = parse_command_line({"--settings=/a", "--log=/b"});
    REQUIRE(options.ok());
    CHECK(options->settings_dir == "/a");
    CHECK(options->log_dir == "/b");
}

TEST_CASE("actions") {
    CHECK(parse_command_line({"--demo"})->action == Options::Action::demo);
    CHECK(parse_command_line({"--help"})->action == Options::Action::help);
    CHECK(parse_command_line({"--version"})->action == Options::Action::version);
    CHECK_FALSE(parse_command_line({"--help", "--demo"}).ok());
}

TEST_CASE("mistakes are one-line errors") {
    auto missing = parse_command_line({"--settings"});
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error() == "--settings needs a directory");
    CHECK_FALSE(parse_command_line({"--log="}).ok());
    CHECK_FALSE(parse_command_line({"--settings", ""}).ok());
    auto unknown = parse_command_line({"-d"});
    REQUIRE_FALSE(unknown.ok());
    CHECK(unknown.error() == "unknown argument \"-d\" (try --help)");
    CHECK_FALSE(parse_command_line({"--logfile", "x"}).ok());
    CHECK_FALSE(parse_command_line({"settings"}).ok());
}

TEST_CASE("the usage text names the defaults") {
    std::string usage = dtcalld::usage_text();
    CHECK(usage.find("/etc/dtoperator") != std::string::npos);
    CHECK(usage.find("/var/log/dtoperator") != std::string::npos);
}
