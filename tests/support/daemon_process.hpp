// Helpers for the tests that run the built daemon and its tools as real
// processes (dtcalld_process_test, dtcall_users_process_test,
// dtcalld_ctl_test): start a binary with its output in files and wait for it
// with a bound, read the log directory dtcalld writes, build a settings
// directory in the original dtoperator layout on loopback ports, and log a
// user in with the library's client. The binaries' paths come from the
// environment tests/meson.build sets ($DTCALLD, $DTCALL_KEYGEN, ...).
// Compiled once into the test_daemon_process library.
#pragma once

#include "temp_dir.hpp"

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

struct event_base;
namespace dtcall {
class Client;
}

namespace daemon_process {

// How long every bounded wait (eventually, ChildProcess::wait_exit) lasts
// unless it is given another limit.
constexpr std::chrono::milliseconds patience{5000};

// The value of environment variable `name`; fails the test (REQUIRE) when it
// is not set, i.e. when the test is not run through `meson test`.
std::string env_or_fail(const char* name);

// The whole content of the file at `path`; empty when it cannot be read.
std::string read_file(const std::string& path);

// Every *.log file in `dir`, concatenated (a SIGUSR1 may start a second).
std::string read_logs(const std::string& dir);

bool contains(const std::string& haystack, const std::string& needle);

// How many '\n' `text` has.
int lines_in(const std::string& text);

// Polls `condition` every 20 ms until it holds or `limit` has passed; the
// condition's last answer.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit = patience);

// A 127.0.0.1 port of socket `type` (SOCK_STREAM, SOCK_DGRAM) that was free a
// moment ago: bind port 0, read it back, close.
std::uint16_t free_port(int type);

// Whether a TCP connection to 127.0.0.1:`port` is accepted.
bool tcp_connects(std::uint16_t port);

// The two files a ChildProcess's stdout and stderr go to.
struct ChildOutput {
    std::string stdout_path;
    std::string stderr_path;
    // DIR/stdout.txt and DIR/stderr.txt.
    static ChildOutput in_dir(const std::string& dir);
    // PREFIX.out and PREFIX.err.
    static ChildOutput with_prefix(const std::string& prefix);
};

// A child process (fork + execv of argv[0]) with stdout and stderr in files;
// killed if still running when it goes out of scope. The child does not
// inherit JOURNAL_STREAM (dtcalld would then echo its log to stderr and the
// "one stderr line" checks would be moot) nor systemd's NOTIFY_SOCKET,
// WATCHDOG_USEC and WATCHDOG_PID (only a test that made one gives them).
class ChildProcess {
public:
    using Environment = std::vector<std::pair<std::string, std::string>>;

    // `open_files`: the child's RLIMIT_NOFILE (soft, hard), set before exec;
    // `environment`: variables set in the child only (NOTIFY_SOCKET...).
    ChildProcess(const std::vector<std::string>& argv, const ChildOutput& output,
                 std::optional<rlimit> open_files = std::nullopt, const Environment& environment = {});
    // Output in `out_dir`/stdout.txt and `out_dir`/stderr.txt.
    ChildProcess(const std::vector<std::string>& argv, const std::string& out_dir,
                 std::optional<rlimit> open_files = std::nullopt, const Environment& environment = {});
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    // Sends signal `number` (REQUIREs that kill(2) works).
    void signal(int number) const;
    // The exit status once it has exited (128 + the signal when killed by
    // one), or nullopt when it still runs after `limit`.
    std::optional<int> wait_exit(std::chrono::milliseconds limit = patience);
    bool running();
    std::string out() const { return read_file(output_.stdout_path); }
    std::string err() const { return read_file(output_.stderr_path); }

private:
    ChildOutput output_;
    pid_t pid_ = -1;
    std::optional<int> status_;
};

// A settings directory in the original dtoperator layout, in a fresh temp
// dir: settings/ with a server key pair, alice's and bob's key pairs, a users
// file whose line 2 is broken on purpose (a warning, never a reason to stop),
// and a conf (`conf_name`) with free loopback ports; log/ for dtcalld's logs.
struct SettingsDir {
    test_support::TempDir dir;
    std::string settings;  // dir/settings
    std::string logs;      // dir/log
    std::uint16_t command_port = 0;
    std::uint16_t media_port = 0;

    explicit SettingsDir(const std::string& conf_name = "dtcalld.conf");
    // Writes settings/`name` (replacing the conf, or another one).
    void write_conf(const std::string& name, const std::string& text) const;
    // $DTCALLD --settings SETTINGS --log LOGS.
    std::vector<std::string> argv() const;
};

// Logs `user` in to the dtcalld serving `s` with the library's client, using
// the key files the SettingsDir made (settings/USER_private.na): "logged in",
// "refused", or what went wrong.
std::string try_login(const SettingsDir& s, const std::string& user);

// `user` logged in to the dtcalld serving `s` and kept connected: the
// library's client (key files as for try_login) on an event loop of its own
// that runs only in the constructor and in run_for. For the checks that a
// change to the users drops a logged-in user, or does not.
class HeldLogin {
public:
    // Connects and runs the loop until logged in; REQUIREs that within 5 s.
    HeldLogin(const SettingsDir& s, const std::string& user);
    ~HeldLogin();
    HeldLogin(const HeldLogin&) = delete;
    HeldLogin& operator=(const HeldLogin&) = delete;

    // Runs the loop for `time`, or until the server closes the connection.
    void run_for(std::chrono::milliseconds time);
    // Whether the server has closed the connection (seen while the loop ran).
    bool closed() const { return closed_; }
    dtcall::Client& client() { return *client_; }

private:
    event_base* base_ = nullptr;
    bool closed_ = false;
    std::unique_ptr<dtcall::Client> client_;
};

// Runs dtcalld on `s` and expects a quick exit 1 with exactly one stderr line
// containing `expected`.
void expect_refusal(const SettingsDir& s, const std::string& expected);

}  // namespace daemon_process
