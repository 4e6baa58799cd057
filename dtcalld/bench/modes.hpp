// The six modes. Each sets up its server (in-process or external), drives
// the load, and returns a Report; errors name the flag, file or step.
#pragma once

#include "options.hpp"
#include "proc_stats.hpp"
#include "report.hpp"

#include <dtcall/result.hpp>

#include <optional>
#include <string>
#include <vector>

namespace dtbench {

struct RunContext {
    Options options;                   // with the mode's defaults filled in
    std::optional<int> server_cpu;     // the in-process server or forwarder child, when pinned
    std::optional<int> generator_cpu;  // this process, when pinned
    std::vector<int> node_cpus;        // --nodes with --pin: every CPU but the generator's
    std::uint64_t open_files = 1024;   // our RLIMIT_NOFILE after raising it
    std::string placement;             // for the report title
};

dtcall::Result<Report> run_login(const RunContext& run);
dtcall::Result<Report> run_idle(const RunContext& run);
dtcall::Result<Report> run_calls(const RunContext& run);
dtcall::Result<Report> run_relay(const RunContext& run);  // relay and baseline
dtcall::Result<Report> run_summary(const RunContext& run);  // all of them, the README's table

// CPU and memory of the server process between two moments. Without a pid
// (an external server, no --server-pid) there are no figures (nullopt); with
// one, a /proc file that cannot be read is an error that names it.
class ServerProbe {
public:
    explicit ServerProbe(std::optional<pid_t> pid) : pid_(pid) {}
    dtcall::Status begin();
    // CPU the server used since begin(), in ns.
    dtcall::Result<std::optional<std::int64_t>> cpu_ns() const;
    double wall_seconds() const;
    dtcall::Result<std::optional<std::uint64_t>> rss() const;

private:
    std::optional<pid_t> pid_;
    std::optional<CpuSample> start_;
    std::int64_t wall_start_ns_ = 0;
};

// --nodes N > 1: `cross` (the cluster run) with every figure of `same` (the
// single-node run of the same load) beside it, in the comparison column
// headed "same-node"; the notes and failures of `same` are kept, prefixed.
// Nothing measured only when neither measured anything.
Report beside_same_node(Report cross, const Report& same);

// summary: copies `key` of a part's report into the summary as
// PREFIX_KEY, with its baseline. A figure the part did not report shows as
// "n/a" (null in JSON) with a note saying which, never a missing row.
void copy_part_metric(Report& summary, const Report& part, const std::string& key, const std::string& prefix,
                      const std::string& label);

}  // namespace dtbench
