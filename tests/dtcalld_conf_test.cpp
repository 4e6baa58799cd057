// dtcalld's conf file (dtcalld.conf(5)) and settings directory: every key,
// the defaults, the comment syntax, and errors that name file, line and key.
#include "conf_file.hpp"
#include "open_files.hpp"
#include "settings.hpp"

#include "crypto/crypto.hpp"

#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

using dtcalld::parse_conf;
using namespace std::chrono_literals;

namespace {

using test_support::TempDir;
using test_support::write_file;

const std::string keys_lines = "public_sodium = pub.na\nprivate_sodium = priv.na\n";

std::string error_of(const std::string& text) {
    auto parsed = parse_conf(text, "/etc/x/dtcalld.conf");
    REQUIRE_FALSE(parsed.ok());
    return parsed.error();
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("an original dtoperator conf: ports and key paths, comments anywhere") {
    auto parsed = parse_conf(
        "# dtoperator settings\n"
        "\n"
        "command = 2020   # TCP\n"
        "   media=2021\n"
        "public_sodium = /etc/dtoperator/server_public.na\n"
        "private_sodium\t=\tserver_private.na # relative\r\n",
        "dtoperator.conf");
    REQUIRE(parsed.ok());
    CHECK(parsed->config.command_port == 2020);
    CHECK(parsed->config.media_port == 2021);
    CHECK(parsed->public_key_path == "/etc/dtoperator/server_public.na");
    CHECK(parsed->public_key_line == 5);
    CHECK(parsed->private_key_path == "server_private.na");
    CHECK(parsed->private_key_line == 6);
    CHECK(parsed->warnings.empty());
}

TEST_CASE("absent keys take the library's defaults, ports 1991/1961 (defect D9)") {
    auto parsed = parse_conf(keys_lines, "c");
    REQUIRE(parsed.ok());
    const dtcall::Config defaults;
    const dtcall::Config& c = parsed->config;
    CHECK(c.command_port == 1991);
    CHECK(c.media_port == 1961);
    CHECK(c.listen_addresses == defaults.listen_addresses);
    CHECK(c.timestamp_window == defaults.timestamp_window);
    CHECK(c.login_timeout == defaults.login_timeout);
    CHECK(c.idle_timeout == defaults.idle_timeout);
    CHECK(c.tcp_keepalive == defaults.tcp_keepalive);
    CHECK(c.frame_gap == defaults.frame_gap);
    CHECK(c.direct_hold == defaults.direct_hold);
    CHECK(c.call_grace == defaults.call_grace);
    CHECK(c.max_connections == defaults.max_connections);
    CHECK(c.max_output_bytes == defaults.max_output_bytes);
    CHECK(c.max_frame_before_login == defaults.max_frame_before_login);
    CHECK(c.max_frame_after_login == defaults.max_frame_after_login);
    CHECK(c.max_datagram == defaults.max_datagram);
    CHECK(parsed->log_level == dtcall::LogLevel::info);
}

TEST_CASE("every new key, in its documented unit") {
    auto parsed = parse_conf(keys_lines +
                                 "listen = ::1\n"
                                 "timestamp_window = 120\n"
                                 "login_timeout = 20\n"
                                 "idle_timeout = 900\n"
                                 "tcp_keepalive = 30\n"
                                 "frame_gap = 50\n"
                                 "direct_hold = 1500\n"
                                 "call_grace = 300\n"
                                 "max_connections = 5000\n"
                                 "max_output_bytes = 131072\n"
                                 "max_frame_before_login = 600\n"
                                 "max_frame_after_login = 4096\n"
                                 "max_datagram = 2000\n"
                                 "media_threads = 3\n"
                                 "max_unauthenticated_per_ip = 8\n"
                                 "failed_login_burst = 3\n"
                                 "failed_logins_per_minute = 2\n"
                                 "replay_memory = 128\n"
                                 "unregistered_packets_per_second = 20\n"
                                 "log_level = debug\n",
                             "c");
    REQUIRE(parsed.ok());
    const dtcall::Config& c = parsed->config;
    CHECK(c.listen_addresses == std::vector<std::string>{"::1"});
    CHECK(c.timestamp_window == 120);
    CHECK(c.login_timeout == 20s);
    CHECK(c.idle_timeout == 900s);
    CHECK(c.tcp_keepalive == 30s);
    CHECK(c.frame_gap == 50ms);
    CHECK(c.direct_hold == 1500ms);
    CHECK(c.call_grace == 300s);
    CHECK(c.max_connections == 5000);
    CHECK(c.max_output_bytes == 131072);
    CHECK(c.max_frame_before_login == 600);
    CHECK(c.max_frame_after_login == 4096);
    CHECK(c.max_datagram == 2000);
    CHECK(c.media_threads == 3);
    CHECK(c.max_unauthenticated_per_ip == 8);
    CHECK(c.failed_login_burst == 3);
    CHECK(c.failed_logins_per_minute == 2);
    CHECK(c.replay_memory == 128);
    CHECK(c.unregistered_packets_per_second == 20);
    CHECK(parsed->log_level == dtcall::LogLevel::debug);
    CHECK(parsed->warnings.empty());
}

TEST_CASE("a bad port is one line naming file, line and key") {
    CHECK(error_of("# ports\ncommand = abc\n" + keys_lines) ==
          "/etc/x/dtcalld.conf:2: command: \"abc\" is not a port number (1-65535)");
    CHECK(error_of(keys_lines + "\n\nmedia = 0\n") ==
          "/etc/x/dtcalld.conf:5: media: \"0\" is not a port number (1-65535)");
    CHECK(contains(error_of("command = 65536\n"), "dtcalld.conf:1: command: \"65536\" is not a port"));
    CHECK(contains(error_of("command = -1\n"), ":1: command: \"-1\" is not a port"));
    CHECK(contains(error_of("command = 99999999999999999999999\n"), ":1: command:"));
}

TEST_CASE("bad numbers say the unit and the range") {
    CHECK(error_of(keys_lines + "login_timeout = 15s\n") ==
          "/etc/x/dtcalld.conf:3: login_timeout: \"15s\" is not a whole number of seconds");
    CHECK(error_of(keys_lines + "frame_gap = 1.5\n") ==
          "/etc/x/dtcalld.conf:3: frame_gap: \"1.5\" is not a whole number of milliseconds");
    CHECK(error_of(keys_lines + "login_timeout = 15000\n") ==
          "/etc/x/dtcalld.conf:3: login_timeout: 15000 is out of range (1-3600 seconds)");
    CHECK(contains(error_of("replay_memory = 2\n"), ":1: replay_memory: 2 is out of range (8-100000)"));
    CHECK(contains(error_of("replay_memory = many\n"), ":1: replay_memory: \"many\" is not a whole number"));
    CHECK(contains(error_of("max_datagram = 1200\n"), ":1: max_datagram: 1200 is out of range (1400-65536 bytes)"));
    CHECK(contains(error_of("media_threads = 65\n"), ":1: media_threads: 65 is out of range (0-64)"));
    CHECK(contains(error_of("tcp_keepalive = 40000\n"), ":1: tcp_keepalive: 40000 is out of range (0-32767"));
    CHECK(contains(error_of("max_frame_before_login = 100\n"), ":1: max_frame_before_login: 100 is out of range"));
    CHECK(contains(error_of("max_connections = 0\n"), ":1: max_connections: 0 is out of range"));
    CHECK(contains(error_of("timestamp_window = 123456789012345678901234\n"), ":1: timestamp_window: "));
    CHECK(contains(error_of("listen = localhost\n"), ":1: listen: \"localhost\" is not an IPv4 or IPv6 address"));
    CHECK(contains(error_of("log_level = loud\n"), ":1: log_level: \"loud\" is not one of"));
}

TEST_CASE("zero is allowed where it means 'never' or 'at once'") {
    auto parsed = parse_conf(
        keys_lines + "idle_timeout = 0\ntcp_keepalive = 0\nframe_gap = 0\ndirect_hold = 0\ncall_grace = 0\n", "c");
    REQUIRE(parsed.ok());
    CHECK(parsed->config.idle_timeout == 0ms);
    CHECK(parsed->config.tcp_keepalive == 0s);
    CHECK(parsed->config.call_grace == 0ms);
}

TEST_CASE("an unknown key is a warning naming file and line; a repeated key warns too") {
    auto parsed = parse_conf("verbose = yes\n" + keys_lines + "command = 1\ncommand = 2\n", "/s/dtoperator.conf");
    REQUIRE(parsed.ok());
    REQUIRE(parsed->warnings.size() == 2);
    CHECK(parsed->warnings[0] == "/s/dtoperator.conf:1: unknown key \"verbose\" ignored");
    CHECK(contains(parsed->warnings[1], "/s/dtoperator.conf:5: command: also set on line 4"));
    CHECK(parsed->config.command_port == 2);
}

TEST_CASE("malformed lines") {
    CHECK(error_of(keys_lines + "command 2000\n") ==
          "/etc/x/dtcalld.conf:3: expected \"key = value\", found \"command 2000\"");
    CHECK(contains(error_of("= 5\n"), ":1: expected \"key = value\""));
    CHECK(error_of(keys_lines + "media =   # nothing\n") == "/etc/x/dtcalld.conf:3: media: has no value");
    // A value echoed in an error stays on one line.
    std::string bad = error_of("command = a\x01\x1b[2J\n");
    CHECK(bad.find('\x1b') == std::string::npos);
    CHECK(bad.find('\n') == std::string::npos);
}

TEST_CASE("the key files are required") {
    CHECK(error_of("command = 1991\n") ==
          "/etc/x/dtcalld.conf: public_sodium: not set (the path of the server's public key file)");
    CHECK(contains(error_of("public_sodium = p\n"), "private_sodium: not set"));
}

TEST_CASE("the parser survives hostile text") {
    std::string junk;
    for (int i = 0; i < 4096; ++i) junk += char((i * 131 + 7) % 256);
    auto parsed = parse_conf(junk, "j");
    CHECK_FALSE(parsed.ok());
    CHECK(parse_conf("", "e").ok() == false);
    CHECK(parse_conf(std::string(100000, '='), "e").ok() == false);
    CHECK(parse_conf(std::string("a = b\0c\n", 8) + keys_lines, "n").ok());
}

// ---- the settings directory -------------------------------------------------

namespace {

void make_server_keys(const TempDir& dir) {
    REQUIRE(dtcall::crypto_init());
    REQUIRE(dtcall::write_key_files(dtcall::KeyPair::generate(), dir / "pub.na", dir / "priv.na").ok());
}

}  // namespace

TEST_CASE("settings: dtcalld.conf with relative key paths") {
    TempDir dir;
    make_server_keys(dir);
    write_file(dir / "dtcalld.conf", "command = 3000\n" + keys_lines);
    auto settings = dtcalld::load_settings(dir.path);
    REQUIRE_MESSAGE(settings.ok(), settings.error());
    CHECK(settings->conf_path == dir / "dtcalld.conf");
    CHECK(settings->users_path == dir / "users");
    CHECK(settings->config.command_port == 3000);
    auto pub = dtcall::read_public_key_file(dir / "pub.na");
    REQUIRE(pub.ok());
    CHECK(settings->config.server_keys.public_key == *pub);
    CHECK(settings->warnings.empty());
}

TEST_CASE("users and users_db: one or the other, both is one error naming both lines") {
    auto file = parse_conf(keys_lines + "users = /etc/x/people\n", "/etc/x/dtcalld.conf");
    REQUIRE_MESSAGE(file.ok(), file.error());
    CHECK(file->users_path == "/etc/x/people");
    CHECK(file->users_db_path.empty());
    auto db = parse_conf(keys_lines + "users_db = /var/lib/dtcall/users.sqlite\n", "/etc/x/dtcalld.conf");
    REQUIRE_MESSAGE(db.ok(), db.error());
    CHECK(db->users_db_path == "/var/lib/dtcall/users.sqlite");
    CHECK(db->users_db_line == 3);
    CHECK(error_of(keys_lines + "users = people\n# db\nusers_db = users.sqlite\n") ==
          "/etc/x/dtcalld.conf:5: users_db: cannot be used together with users (line 3); keep one of the two lines");
    CHECK(error_of(keys_lines + "users_db =\n") == "/etc/x/dtcalld.conf:3: users_db: has no value");
}

TEST_CASE("settings: users and users_db are taken relative to the settings directory") {
    TempDir dir;
    make_server_keys(dir);
    write_file(dir / "dtcalld.conf", keys_lines + "users = people\n");
    auto file = dtcalld::load_settings(dir.path);
    REQUIRE_MESSAGE(file.ok(), file.error());
    CHECK(file->users_path == dir / "people");
    CHECK(file->users_db_path.empty());
    write_file(dir / "dtcalld.conf", keys_lines + "users_db = users.sqlite\n");
    auto db = dtcalld::load_settings(dir.path);
    REQUIRE_MESSAGE(db.ok(), db.error());
    CHECK(db->users_db_path == dir / "users.sqlite");
    CHECK(db->users_path.empty());
}

TEST_CASE("settings: dtoperator.conf is used when dtcalld.conf is absent, ignored when both exist") {
    TempDir dir;
    make_server_keys(dir);
    write_file(dir / "dtoperator.conf", "command = 3001\n" + keys_lines);
    auto settings = dtcalld::load_settings(dir.path);
    REQUIRE_MESSAGE(settings.ok(), settings.error());
    CHECK(settings->conf_path == dir / "dtoperator.conf");
    CHECK(settings->config.command_port == 3001);

    write_file(dir / "dtcalld.conf", "command = 3002\n" + keys_lines);
    settings = dtcalld::load_settings(dir.path);
    REQUIRE(settings.ok());
    CHECK(settings->config.command_port == 3002);
    REQUIRE(settings->warnings.size() == 1);
    CHECK(contains(settings->warnings[0], "dtoperator.conf: ignored"));
}

TEST_CASE("settings: key file errors name the conf line and the key file") {
    TempDir dir;
    make_server_keys(dir);

    write_file(dir / "dtcalld.conf", "public_sodium = pub.na\nprivate_sodium = nothere.na\n");
    auto settings = dtcalld::load_settings(dir.path);
    REQUIRE_FALSE(settings.ok());
    CHECK(contains(settings.error(), dir / "dtcalld.conf:2: private_sodium: " + dir / "nothere.na"));

    write_file(dir / "bad.na", "SODIUM PUBLIC KEY\n123");
    write_file(dir / "dtcalld.conf", "public_sodium = bad.na\nprivate_sodium = priv.na\n");
    settings = dtcalld::load_settings(dir.path);
    REQUIRE_FALSE(settings.ok());
    CHECK(contains(settings.error(), dir / "dtcalld.conf:1: public_sodium: " + dir / "bad.na"));

    REQUIRE(dtcall::write_key_files(dtcall::KeyPair::generate(), dir / "other_pub.na", dir / "other_priv.na").ok());
    write_file(dir / "dtcalld.conf", "public_sodium = other_pub.na\nprivate_sodium = priv.na\n");
    settings = dtcalld::load_settings(dir.path);
    REQUIRE_FALSE(settings.ok());
    CHECK(contains(settings.error(), "dtcalld.conf:1: public_sodium: "));
    CHECK(contains(settings.error(), "is not the public half of"));
    CHECK(settings.error().find('\n') == std::string::npos);
}

TEST_CASE("settings: a missing directory or conf is an error naming it") {
    TempDir dir;
    auto settings = dtcalld::load_settings(dir / "nope");
    REQUIRE_FALSE(settings.ok());
    CHECK(contains(settings.error(), "settings directory " + dir / "nope" + ": No such file or directory"));
    settings = dtcalld::load_settings(dir.path);
    REQUIRE_FALSE(settings.ok());
    CHECK(contains(settings.error(), "neither dtcalld.conf nor dtoperator.conf"));
}

TEST_CASE("metrics, control and control_group remember their lines; conf_error names file, line and key") {
    auto parsed = parse_conf(keys_lines + "metrics = 127.0.0.1:9100\n# c\ncontrol = /run/dtcalld/control\n"
                                          "control_group = dtcall\n",
                             "/etc/x/dtcalld.conf");
    REQUIRE_MESSAGE(parsed.ok(), parsed.error());
    CHECK(parsed->metrics_line == 3);
    CHECK(parsed->control_line == 5);
    CHECK(parsed->control_group_line == 6);
    auto bare = parse_conf(keys_lines, "/etc/x/dtcalld.conf");
    REQUIRE(bare.ok());
    CHECK(bare->metrics_line == 0);
    CHECK(bare->control_line == 0);
    CHECK(bare->control_group_line == 0);

    dtcalld::Settings settings;
    settings.conf_path = "/etc/x/dtcalld.conf";
    CHECK(dtcalld::conf_error(settings, 5, "control", "control: /x/control: No such file or directory") ==
          "/etc/x/dtcalld.conf:5: control: /x/control: No such file or directory");
    CHECK(dtcalld::conf_error(settings, 3, "users_db", "/x/users.sqlite: No such file or directory") ==
          "/etc/x/dtcalld.conf:3: users_db: /x/users.sqlite: No such file or directory");
    // A key left at its default has no line: "(default)", as the open-files warning says.
    CHECK(dtcalld::conf_error(settings, 0, "command", "command: TCP 127.0.0.1 port 1991: cannot bind: Address already in use") ==
          "/etc/x/dtcalld.conf: (default) command: TCP 127.0.0.1 port 1991: cannot bind: Address already in use");
}

TEST_CASE("command, media, listen and node_address remember their lines (a bind failing at start names them)") {
    auto parsed = parse_conf("command = 2001\n" + keys_lines + "media = 2002\nlisten = 127.0.0.1\n"
                                 "cluster_redis = unix:/r\nnode_address = 127.0.1.11:1962\ncluster_key = k\n",
                             "/etc/x/dtcalld.conf");
    REQUIRE_MESSAGE(parsed.ok(), parsed.error());
    CHECK(parsed->command_line == 1);
    CHECK(parsed->media_line == 4);
    CHECK(parsed->listen_line == 5);
    CHECK(parsed->cluster.node_address_line == 7);
    auto bare = parse_conf(keys_lines, "/etc/x/dtcalld.conf");
    REQUIRE(bare.ok());
    CHECK(bare->command_line == 0);
    CHECK(bare->media_line == 0);
    CHECK(bare->listen_line == 0);
}

TEST_CASE("settings: a private key group or others can read or write is refused, naming the fix") {
    TempDir dir;
    make_server_keys(dir);
    write_file(dir / "dtcalld.conf", keys_lines);
    const std::string key = dir / "priv.na";
    const std::string at = dir / "dtcalld.conf:2: private_sodium: " + key + ": ";
    struct Case {
        mode_t mode;
        const char* says;
    };
    for (Case c : {Case{0644, "readable by group or others (mode 0644)"}, Case{0640, "readable by group or others (mode 0640)"},
                   Case{0604, "readable by group or others (mode 0604)"}, Case{0620, "writable by group or others (mode 0620)"},
                   Case{0602, "writable by group or others (mode 0602)"},
                   Case{0666, "readable and writable by group or others (mode 0666)"}}) {
        CAPTURE(c.says);
        REQUIRE(chmod(key.c_str(), c.mode) == 0);
        auto settings = dtcalld::load_settings(dir.path);
        REQUIRE_FALSE(settings.ok());
        CHECK(settings.error() == at + c.says + "; run: chmod 600 " + key);
    }
    // Owner-only modes are fine, read-only included; so is a stray execute bit.
    for (mode_t mode : {0600, 0400, 0700, 0610}) {
        CAPTURE(mode);
        REQUIRE(chmod(key.c_str(), mode) == 0);
        auto settings = dtcalld::load_settings(dir.path);
        REQUIRE_MESSAGE(settings.ok(), settings.error());
        CHECK(settings->warnings.empty());
    }
}

TEST_CASE("open files: max_connections must fit under the limit with 64 descriptors to spare") {
    CHECK(dtcalld::reserved_descriptors == 64);
    CHECK(dtcalld::connection_limit_warning(19000, 1048576, "c:3: ").empty());
    CHECK(dtcalld::connection_limit_warning(19000, 19064, "c:3: ").empty());
    CHECK(dtcalld::connection_limit_warning(1, 65, "c: ").empty());
    CHECK(dtcalld::connection_limit_warning(19000, 19063, "c:3: ") ==
          "c:3: max_connections: 19000 connections need 19064 open files, but the limit is 19063, room for 18999 "
          "connections; raise LimitNOFILE= (systemd) or ulimit -Hn, or lower max_connections");
    // A limit below the reserve leaves room for none (no unsigned wrap-around).
    CHECK(contains(dtcalld::connection_limit_warning(1, 20, "c: "), "the limit is 20, room for 0 connections"));
    // Raising is idempotent and never lowers the limit.
    auto first = dtcalld::raise_open_files_limit();
    REQUIRE_MESSAGE(first.ok(), first.error());
    CHECK(first->now >= first->before);
    auto second = dtcalld::raise_open_files_limit();
    REQUIRE(second.ok());
    CHECK(second->before == first->now);
    CHECK(second->now == first->now);
}

TEST_CASE("the sample dtcalld.conf (dtcalld/dist) parses cleanly and mentions every key") {
    const char* root = std::getenv("DTCALL_SOURCE_ROOT");
    REQUIRE_MESSAGE(root != nullptr, "DTCALL_SOURCE_ROOT is not set (run through meson test)");
    std::ifstream in(std::string(root) + "/dtcalld/dist/dtcalld.conf");
    REQUIRE(in.good());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto parsed = parse_conf(text, "dtcalld.conf");
    REQUIRE_MESSAGE(parsed.ok(), parsed.error());
    CHECK(parsed->warnings.empty());
    CHECK(parsed->public_key_path == "server_public.na");
    CHECK(parsed->private_key_path == "server_private.na");
    // What it sets, and what it shows commented out, are the defaults.
    const dtcall::Config defaults;
    CHECK(parsed->config.command_port == defaults.command_port);
    CHECK(parsed->config.media_port == defaults.media_port);
    for (const std::string& key : dtcalld::conf_key_names()) {
        CAPTURE(key);
        CHECK((contains(text, "\n" + key + " = ") || contains(text, "\n#" + key + " = ")));
    }
    // Uncommenting every "#key = value" line must still parse, to the
    // defaults; users_db is the alternative to users, uncommented on its own.
    std::string uncommented, with_db;
    std::size_t at = 0;
    while (at < text.size()) {
        std::size_t eol = text.find('\n', at);
        if (eol == std::string::npos) eol = text.size();
        std::string line = text.substr(at, eol - at);
        std::string db_line = line;
        if (line.rfind("#users_db = ", 0) == 0) db_line.erase(0, 1);
        else if (line.size() > 1 && line[0] == '#' && line[1] != ' ' && line.find(" = ") != std::string::npos) line.erase(0, 1);
        uncommented += line + "\n";
        with_db += db_line + "\n";
        at = eol + 1;
    }
    auto all = parse_conf(uncommented, "dtcalld.conf");
    REQUIRE_MESSAGE(all.ok(), all.error());
    CHECK(all->warnings.empty());
    CHECK(all->config.max_connections == defaults.max_connections);
    CHECK(all->config.call_grace == defaults.call_grace);
    CHECK(all->config.frame_gap == defaults.frame_gap);
    CHECK(all->config.max_datagram == defaults.max_datagram);
    CHECK(all->config.idle_timeout == defaults.idle_timeout);
    CHECK(all->users_path == "users");
    auto db = parse_conf(with_db, "dtcalld.conf");
    REQUIRE_MESSAGE(db.ok(), db.error());
    CHECK(db->users_db_path == "/var/lib/dtcall/users.sqlite");
}

TEST_CASE("resolve_path") {
    CHECK(dtcalld::resolve_path("/etc/d", "k.na") == "/etc/d/k.na");
    CHECK(dtcalld::resolve_path("/etc/d/", "k.na") == "/etc/d/k.na");
    CHECK(dtcalld::resolve_path("/etc/d", "/abs/k.na") == "/abs/k.na");
}

TEST_CASE("dtcalld.conf(5) documents every key the parser knows") {
    const char* root = std::getenv("DTCALL_SOURCE_ROOT");
    REQUIRE_MESSAGE(root != nullptr, "DTCALL_SOURCE_ROOT is not set (run through meson test)");
    std::ifstream in(std::string(root) + "/man/dtcalld.conf.5");
    REQUIRE(in.good());
    std::string page((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto names = dtcalld::conf_key_names();
    CHECK(names.size() == 34);
    for (const std::string& key : names) {
        CHECK_MESSAGE(contains(page, ".It Cm " + key + " No = "), key);
        // ...and the full example uses it.
        CHECK_MESSAGE(contains(page, "\n" + key + " = "), key);
    }
}

TEST_CASE("metrics = ADDRESS:PORT: off when absent, IPv4 or [IPv6], errors name file, line and key") {
    auto none = parse_conf(keys_lines, "c");
    REQUIRE(none.ok());
    CHECK_FALSE(none->metrics.has_value());

    auto v4 = parse_conf(keys_lines + "metrics = 127.0.0.1:9641   # Prometheus\n", "c");
    REQUIRE(v4.ok());
    REQUIRE(v4->metrics.has_value());
    CHECK(v4->metrics->host == "127.0.0.1");
    CHECK(v4->metrics->port == 9641);

    auto v6 = parse_conf(keys_lines + "metrics = [::1]:9641\n", "c");
    REQUIRE(v6.ok());
    REQUIRE(v6->metrics.has_value());
    CHECK(v6->metrics->text() == "[::1]:9641");

    CHECK(parse_conf(keys_lines + "metrics = 127.0.0.1:0\n", "c")->metrics->port == 0);  // the kernel picks

    CHECK(contains(error_of(keys_lines + "metrics = 9641\n"),
                   "/etc/x/dtcalld.conf:3: metrics: \"9641\" is not ADDRESS:PORT"));
    CHECK(contains(error_of("metrics = localhost:9641\n" + keys_lines), "dtcalld.conf:1: metrics: "));
    CHECK(contains(error_of("metrics = ::1:9641\n" + keys_lines), "brackets"));
    CHECK(contains(error_of("metrics = 127.0.0.1:70000\n" + keys_lines), "not a port number (0-65535)"));
}

// --- cluster keys (dtcalld.conf(5) "Cluster") ---

namespace {

const std::string cluster_lines =
    "cluster_redis = unix:/run/redis/redis.sock\n"
    "node_name = node-1.a_b\n"
    "node_address = 127.0.1.11:1962\n"
    "cluster_key = cluster.key\n";

}  // namespace

TEST_CASE("cluster keys: all absent is a single node; the set parses") {
    auto single = parse_conf(keys_lines, "c");
    REQUIRE(single.ok());
    CHECK_FALSE(single->cluster.any());

    auto parsed = parse_conf(keys_lines + cluster_lines, "c");
    REQUIRE_MESSAGE(parsed.ok(), parsed.error());
    REQUIRE(parsed->cluster.redis.has_value());
    CHECK(parsed->cluster.redis->is_unix());
    CHECK(parsed->cluster.redis->unix_path == "/run/redis/redis.sock");
    CHECK(parsed->cluster.node_name == "node-1.a_b");
    REQUIRE(parsed->cluster.node_address.has_value());
    CHECK(parsed->cluster.node_address->host == "127.0.1.11");
    CHECK(parsed->cluster.node_address->port == 1962);
    CHECK(parsed->cluster.key_path == "cluster.key");
    CHECK(parsed->cluster.key_line == 6);

    auto tcp = parse_conf(keys_lines + "cluster_redis = redis.example:6379\nnode_address = [fd00::5]:1962\n"
                                       "cluster_key = /etc/k\n", "c");
    REQUIRE_MESSAGE(tcp.ok(), tcp.error());
    CHECK_FALSE(tcp->cluster.redis->is_unix());
    CHECK(tcp->cluster.redis->host == "redis.example");
    CHECK(tcp->cluster.redis->port == 6379);
    CHECK(tcp->cluster.node_address->host == "fd00::5");
    CHECK(tcp->cluster.node_name.empty());  // the host name, filled in by load_settings

    auto v6 = parse_conf(keys_lines + "cluster_redis = [::1]:6380\nnode_address = 127.0.0.1:9\ncluster_key = k\n", "c");
    REQUIRE_MESSAGE(v6.ok(), v6.error());
    CHECK(v6->cluster.redis->host == "::1");
    CHECK(v6->cluster.redis->text() == "[::1]:6380");
}

TEST_CASE("cluster keys: a partial set is one error naming the first key's line and what is missing") {
    CHECK(error_of(keys_lines + "cluster_redis = 127.0.1.5:6379\n") ==
          "/etc/x/dtcalld.conf:3: cluster_redis: clustering also needs node_address and cluster_key "
          "(cluster_redis, node_address and cluster_key go together; see dtcalld.conf(5))");
    CHECK(error_of(keys_lines + "node_address = 127.0.1.11:1962\ncluster_redis = 127.0.1.5:6379\n") ==
          "/etc/x/dtcalld.conf:3: node_address: clustering also needs cluster_key "
          "(cluster_redis, node_address and cluster_key go together; see dtcalld.conf(5))");
    CHECK(contains(error_of(keys_lines + "\nnode_name = n1\n"),
                   "/etc/x/dtcalld.conf:4: node_name: clustering also needs cluster_redis and node_address and cluster_key"));
    CHECK(parse_conf(keys_lines + "cluster_key = k\ncluster_redis = unix:/r\nnode_address = 127.0.3.4:5\n", "c").ok());
}

TEST_CASE("cluster keys: bad values name file, line and key") {
    const std::string rest = "node_address = 127.0.1.11:1962\ncluster_key = k\n";
    CHECK(contains(error_of(keys_lines + "cluster_redis = redis\n" + rest),
                   "/etc/x/dtcalld.conf:3: cluster_redis: \"redis\" is not unix:/PATH or HOST:PORT"));
    CHECK(contains(error_of(keys_lines + "cluster_redis = unix:redis.sock\n" + rest),
                   "/etc/x/dtcalld.conf:3: cluster_redis: \"unix:redis.sock\" is not unix:/PATH or HOST:PORT"));
    CHECK(contains(error_of(keys_lines + "cluster_redis = unix:/" + std::string(107, 'a') + "\n" + rest),
                   "longer than 107 bytes"));
    CHECK(contains(error_of(keys_lines + "cluster_redis = host:0\n" + rest), "\"0\" is not a port number (1-65535)"));
    CHECK(contains(error_of(keys_lines + "cluster_redis = ::1:6379\n" + rest), "an IPv6 address goes in brackets"));
    CHECK(contains(error_of(keys_lines + "cluster_redis = [nope]:6379\n" + rest), "\"nope\" is not an IPv6 address"));
    CHECK(contains(error_of(keys_lines + "cluster_redis = b@d:6379\n" + rest), "bad host name"));

    const std::string with_redis = "cluster_redis = 127.0.1.5:6379\n";
    CHECK(error_of(keys_lines + with_redis + rest + "node_name = no de\n") ==
          "/etc/x/dtcalld.conf:6: node_name: \"no de\" is not a node name (1-64 of 0-9 A-Z a-z . _ -)");
    CHECK(contains(error_of(keys_lines + with_redis + rest + "node_name = " + std::string(65, 'n') + "\n"),
                   "is not a node name"));
    CHECK(parse_conf(keys_lines + with_redis + rest + "node_name = " + std::string(64, 'n') + "\n", "c").ok());
    CHECK(contains(error_of(keys_lines + with_redis + "cluster_key = k\nnode_address = node1:1962\n"),
                   "/etc/x/dtcalld.conf:5: node_address: \"node1:1962\" is not ADDRESS:PORT"));
    CHECK(error_of(keys_lines + with_redis + "cluster_key = k\nnode_address = 127.0.1.1:0\n") ==
          "/etc/x/dtcalld.conf:5: node_address: \"127.0.1.1:0\" needs a port number (1-65535)");
    CHECK(error_of(keys_lines + with_redis + "node_address = 127.0.1.1:1\ncluster_key =\n") ==
          "/etc/x/dtcalld.conf:5: cluster_key: has no value");
}

TEST_CASE("cluster_redis: a URL is refused, naming the two forms that are accepted") {
    const std::string rest = "node_address = 127.0.1.11:1962\ncluster_key = k\n";
    const std::string forms = "is a URL, which is not accepted: write unix:/PATH (such as unix:/run/redis/redis.sock) "
                              "or HOST:PORT (such as 10.0.0.5:6379 or [fd00::5]:6379)";
    CHECK(error_of(keys_lines + "cluster_redis = tcp://127.0.0.1:6379\n" + rest) ==
          "/etc/x/dtcalld.conf:3: cluster_redis: \"tcp://127.0.0.1:6379\" " + forms);
    CHECK(error_of(keys_lines + "cluster_redis = redis://127.0.0.1:6379/0\n" + rest) ==
          "/etc/x/dtcalld.conf:3: cluster_redis: \"redis://127.0.0.1:6379/0\" " + forms);
    CHECK(contains(error_of(keys_lines + "cluster_redis = unix:///run/redis.sock\n" + rest), "is a URL"));
}

TEST_CASE("node_address: a wildcard is refused (the other nodes send media there); examples are node addresses") {
    const std::string before = keys_lines + "cluster_redis = unix:/r\ncluster_key = k\n";
    const std::string why = " is a wildcard address: the other nodes send this node's media there, so it must be "
                            "an address they can reach (such as 10.0.0.11:1962 or [fd00::11]:1962)";
    CHECK(error_of(before + "node_address = 0.0.0.0:21903\n") ==
          "/etc/x/dtcalld.conf:5: node_address: \"0.0.0.0:21903\"" + why);
    CHECK(error_of(before + "node_address = [::]:21903\n") == "/etc/x/dtcalld.conf:5: node_address: \"[::]:21903\"" + why);
    CHECK(contains(error_of(before + "node_address = [::ffff:0.0.0.0]:21903\n"), "is a wildcard address"));
    CHECK(contains(error_of(before + "node_address = [0:0::0]:21903\n"), "is a wildcard address"));
    CHECK(parse_conf(before + "node_address = 127.0.0.1:21903\n", "c").ok());
    CHECK(parse_conf(before + "node_address = [::1]:21903\n", "c").ok());
    CHECK(parse_conf(before + "node_address = [::ffff:127.0.0.1]:21903\n", "c").ok());

    // The parser is shared with `metrics`; the example shown is a node address.
    std::string bad = error_of(before + "node_address = 21903\n");
    CHECK(contains(bad, "/etc/x/dtcalld.conf:5: node_address: \"21903\" is not ADDRESS:PORT "
                        "(such as 10.0.0.11:1962 or [fd00::11]:1962)"));
    CHECK_FALSE(contains(bad, "9641"));
    CHECK(contains(error_of(keys_lines + "metrics = 9641\n"), "(such as 127.0.0.1:9641 or [::1]:9641)"));
}

TEST_CASE("cluster_ttl: seconds 1-300, default 15, part of the cluster set") {
    auto defaulted = parse_conf(keys_lines + cluster_lines, "c");
    REQUIRE_MESSAGE(defaulted.ok(), defaulted.error());
    CHECK(defaulted->cluster.ttl == std::chrono::seconds(15));
    CHECK(defaulted->cluster.ttl_line == 0);

    auto two = parse_conf(keys_lines + cluster_lines + "cluster_ttl = 2\n", "c");
    REQUIRE_MESSAGE(two.ok(), two.error());
    CHECK(two->cluster.ttl == std::chrono::seconds(2));
    CHECK(two->cluster.ttl_line == 7);
    CHECK(parse_conf(keys_lines + cluster_lines + "cluster_ttl = 1\n", "c")->cluster.ttl == std::chrono::seconds(1));
    CHECK(parse_conf(keys_lines + cluster_lines + "cluster_ttl = 300\n", "c")->cluster.ttl ==
          std::chrono::seconds(300));

    CHECK(error_of(keys_lines + cluster_lines + "cluster_ttl = 0\n") ==
          "/etc/x/dtcalld.conf:7: cluster_ttl: 0 is out of range (1-300 seconds)");
    CHECK(error_of(keys_lines + cluster_lines + "cluster_ttl = 301\n") ==
          "/etc/x/dtcalld.conf:7: cluster_ttl: 301 is out of range (1-300 seconds)");
    CHECK(error_of(keys_lines + cluster_lines + "cluster_ttl = 15s\n") ==
          "/etc/x/dtcalld.conf:7: cluster_ttl: \"15s\" is not a whole number of seconds");
    CHECK(error_of(keys_lines + cluster_lines + "cluster_ttl =\n") == "/etc/x/dtcalld.conf:7: cluster_ttl: has no value");
    // Alone it asks for the keys clustering cannot do without.
    CHECK(error_of(keys_lines + "cluster_ttl = 5\n") ==
          "/etc/x/dtcalld.conf:3: cluster_ttl: clustering also needs cluster_redis and node_address and cluster_key "
          "(cluster_redis, node_address and cluster_key go together; see dtcalld.conf(5))");
}

TEST_CASE("settings: the cluster key is read relative to the settings dir and must be mode 0600") {
    TempDir dir;
    make_server_keys(dir);
    write_file(dir / "dtcalld.conf", keys_lines + cluster_lines);
    const std::string key = dir / "cluster.key";

    auto missing = dtcalld::load_settings(dir.path);
    REQUIRE_FALSE(missing.ok());
    CHECK(contains(missing.error(), dir / "dtcalld.conf:6: cluster_key: " + key));

    REQUIRE(dtcall::cluster::write_cluster_key_file(dtcall::cluster::ClusterKey::generate(), key).ok());
    auto settings = dtcalld::load_settings(dir.path);
    REQUIRE_MESSAGE(settings.ok(), settings.error());
    REQUIRE(settings->cluster.has_value());
    CHECK(settings->cluster->node_name == "node-1.a_b");
    CHECK(settings->cluster->key_path == key);
    CHECK(settings->cluster->redis.text() == "unix:/run/redis/redis.sock");
    CHECK(settings->cluster->node_address.text() == "127.0.1.11:1962");
    CHECK(settings->cluster->ttl == std::chrono::seconds(15));
    CHECK(settings->cluster->redis_line == 3);
    auto read = dtcall::cluster::read_cluster_key_file(key);
    REQUIRE(read.ok());
    CHECK(std::equal(read->data(), read->data() + 32, settings->cluster->key.data()));

    REQUIRE(chmod(key.c_str(), 0640) == 0);
    auto exposed = dtcalld::load_settings(dir.path);
    REQUIRE_FALSE(exposed.ok());
    CHECK(exposed.error() == dir / "dtcalld.conf:6: cluster_key: " + key +
                                 ": readable by group or others (mode 0640); run: chmod 600 " + key);

    // Without node_name: the host name, when it is a valid node name.
    REQUIRE(chmod(key.c_str(), 0600) == 0);
    write_file(dir / "dtcalld.conf", keys_lines + "cluster_redis = 127.0.0.1:6379\nnode_address = 127.0.0.1:1962\n"
                                                  "cluster_key = cluster.key\n");
    char host[256] = {};
    REQUIRE(gethostname(host, sizeof host - 1) == 0);
    auto defaulted = dtcalld::load_settings(dir.path);
    if (dtcall::cluster::valid_node_name(host)) {
        REQUIRE_MESSAGE(defaulted.ok(), defaulted.error());
        CHECK(defaulted->cluster->node_name == host);
    } else {
        REQUIRE_FALSE(defaulted.ok());
        CHECK(contains(defaulted.error(), "set node_name"));
    }
}
