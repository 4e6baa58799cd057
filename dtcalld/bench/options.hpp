// dtcall-bench's command line: the mode, the server under test, the load and
// the output. Parsing is pure (no I/O); checks that need the system (file
// descriptors, CPUs, files) happen when the run starts.
#pragma once

#include <dtcall/result.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dtbench {

enum class Mode { login, idle, calls, relay, baseline, summary };
const char* mode_name(Mode mode);

struct Options {
    Mode mode = Mode::login;

    // The server under test: a child process this tool starts (in_process),
    // or a running server speaking the protocol.
    bool in_process = true;
    std::string host;
    std::uint16_t port = 1991;
    std::uint16_t media_port = 1961;
    std::string server_key_file;
    std::string users_dir;
    std::optional<int> server_pid;
    // In-process only: a cluster of this many nodes sharing the bench's own
    // redis-server (calls, relay, idle, summary); 1 = the single server.
    unsigned nodes = 1;

    // Load. Zero means "the mode's default" (see with_mode_defaults).
    unsigned concurrency = 0;
    double duration = 0;  // seconds
    unsigned count = 0;
    unsigned pairs = 0;
    unsigned size = 100;  // bytes per media datagram
    double rate = 50;     // packets/s per party; 0 = open loop
    unsigned hold_ms = 0; // calls: how long each call stays up
    double heartbeat = 300;  // seconds between `D`, like the real clients
    unsigned tick_us = 50;  // relay: least time between two paced send bursts
    std::optional<unsigned> frame_gap_ms;  // in-process server only
    std::optional<unsigned> media_threads;  // in-process server only
    bool baseline = true;  // relay: also run the baseline forwarder

    // CPU placement: server (or forwarder) and generator on separate CPUs.
    bool pin = false;
    std::optional<int> server_cpu;
    std::optional<int> generator_cpu;

    bool json = false;
    bool quiet = false;   // no progress line
    bool strict = false;  // exit 1 when any login/call/registration failed
    std::string plot_file;
    bool help = false;
    bool version = false;
};

// `args` excludes the program name. "--flag VALUE" and "--flag=VALUE" are both
// accepted. Errors are one line naming the flag or argument at fault.
dtcall::Result<Options> parse_options(const std::vector<std::string>& args);

// Fills the load options left at zero with the defaults of `options.mode`.
Options with_mode_defaults(Options options);

std::string usage_text();

}  // namespace dtbench
