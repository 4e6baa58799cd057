// The six modes. Each sets up its server (in-process or external), drives
// the load, and returns a Report; errors name the flag, file or step.
#pragma once

#include "options.hpp"
#include "proc_stats.hpp"
#include "report.hpp"

#include <dtcall/result.hpp>

#include <optional>
#include <string>

namespace dtbench {

struct RunContext {
    Options options;                   // with the mode's defaults filled in
    std::optional<int> server_cpu;     // the in-process server or forwarder child, when pinned
    std::optional<int> generator_cpu;  // this process, when pinned
    std::uint64_t open_files = 1024;   // our RLIMIT_NOFILE after raising it
    std::string placement;             // for the report title
};

dtcall::Result<Report> run_login(const RunContext& run);
dtcall::Result<Report> run_idle(const RunContext& run);
dtcall::Result<Report> run_calls(const RunContext& run);
dtcall::Result<Report> run_relay(const RunContext& run);  // relay and baseline
dtcall::Result<Report> run_summary(const RunContext& run);  // all of them, the README's table

// CPU and memory of the server process between two moments.
class ServerProbe {
public:
    explicit ServerProbe(std::optional<pid_t> pid) : pid_(pid) {}
    void begin();
    // CPU the server used since begin(), in ns; nullopt without a pid.
    std::optional<std::int64_t> cpu_ns() const;
    double wall_seconds() const;
    std::optional<std::uint64_t> rss() const { return pid_ ? resident_bytes(*pid_) : std::nullopt; }

private:
    std::optional<pid_t> pid_;
    std::optional<CpuSample> start_;
    std::int64_t wall_start_ns_ = 0;
};

}  // namespace dtbench
