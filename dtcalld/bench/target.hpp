// The server under test, as the modes see it: where to connect, which key to
// pin, which users exist, and (when known) which process to measure.
//   in-process: a ChildProcess running dtcall::Server on 127.0.0.1, ports 0,
//               throwaway server key and users;
//   external:   --host/--port/--media-port, --server-key, --users, and
//               optionally --server-pid.
#pragma once

#include "child_process.hpp"
#include "event_loop.hpp"
#include "key_material.hpp"
#include "options.hpp"
#include "phone.hpp"
#include "server_child.hpp"

#include "crypto/crypto.hpp"
#include <dtcall/result.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dtbench {

struct Target {
    std::string host;
    std::uint16_t port = 0;
    std::uint16_t media_port = 0;
    dtcall::PublicKey server_key;
    std::vector<BenchUser> users;
    std::optional<pid_t> pid;           // to read RSS and CPU from /proc
    std::string description;            // one line for the report
    std::unique_ptr<ChildProcess> child;  // in-process only
    std::vector<std::string> notes;     // settings that differ from dtcalld's defaults

    // The in-process server's own counters (nullopt for an external server).
    std::optional<ServerCounters> counters();
    // How long the in-process server takes to build dtcalld's /metrics body
    // now (nullopt for an external server: scrape its endpoint instead).
    std::optional<ScrapeTiming> scrape();
    void stop();
};

// `users_needed` in-process users are made (named u000001...); an external
// server's users come from --users DIR and must number at least
// `users_needed` when `distinct_users` (idle, calls, relay: one connection
// per user); login cycles may reuse users.
dtcall::Result<std::unique_ptr<Target>> open_target(const Options& options, std::size_t users_needed,
                                                    bool distinct_users, std::optional<int> server_cpu);

// What the modes that hold phones (idle, calls, relay) share: the server,
// an event loop, a pool of handshake hellos, and the phones' context aimed at
// the server (its addresses and key, the heartbeat from the options).
struct Rig {
    std::unique_ptr<Target> target;
    std::unique_ptr<Loop> loop;  // made after the server child is forked
    std::unique_ptr<HelloPool> hellos;
    PhoneContext context;
};

// open_target with one user per connection, then the rest of the Rig.
dtcall::Result<std::unique_ptr<Rig>> rig_up(const Options& options, std::size_t users_needed,
                                            std::optional<int> server_cpu);

}  // namespace dtbench
