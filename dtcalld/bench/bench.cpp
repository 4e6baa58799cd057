#include "bench.hpp"

#include "child_process.hpp"
#include "modes.hpp"
#include "plot.hpp"
#include "proc_stats.hpp"

#include "crypto/crypto.hpp"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <unistd.h>
#include <sched.h>

namespace dtbench {
namespace {

// Restores what run() changed in the process, however it returns.
class ProcessSettings {
public:
    ProcessSettings() {
        struct sigaction ignore{};
        ignore.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &ignore, &old_pipe_);
        had_mask_ = sched_getaffinity(0, sizeof old_mask_, &old_mask_) == 0;
    }
    ~ProcessSettings() {
        sigaction(SIGPIPE, &old_pipe_, nullptr);
        if (had_mask_) sched_setaffinity(0, sizeof old_mask_, &old_mask_);
    }
    const cpu_set_t* mask() const { return had_mask_ ? &old_mask_ : nullptr; }

private:
    struct sigaction old_pipe_{};
    cpu_set_t old_mask_{};
    bool had_mask_ = false;
};

dtcall::Status place(const Options& o, const ProcessSettings& process, RunContext& run) {
    if (!o.pin) return dtcall::Done{};
    const cpu_set_t* allowed = process.mask();
    if (!allowed) return dtcall::Error{"--pin: cannot read this process's CPU mask"};
    std::vector<int> cpus;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
        if (CPU_ISSET(cpu, allowed)) cpus.push_back(cpu);
    auto usable = [&](int cpu) { return std::find(cpus.begin(), cpus.end(), cpu) != cpus.end(); };
    if (o.server_cpu && !usable(*o.server_cpu))
        return dtcall::Error{"--server-cpu " + std::to_string(*o.server_cpu) + ": not a CPU this process may use"};
    if (o.generator_cpu && !usable(*o.generator_cpu))
        return dtcall::Error{"--generator-cpu " + std::to_string(*o.generator_cpu) + ": not a CPU this process may use"};
    if (cpus.size() < 2 && !(o.server_cpu && o.generator_cpu))
        return dtcall::Error{"--pin needs two CPUs; this process may use " + std::to_string(cpus.size())};
    int server = o.server_cpu ? *o.server_cpu : (o.generator_cpu && cpus[0] == *o.generator_cpu ? cpus[1] : cpus[0]);
    int generator = server;
    if (o.generator_cpu) {
        generator = *o.generator_cpu;
    } else {
        for (int cpu : cpus)
            if (cpu != server) {
                generator = cpu;
                break;
            }
    }
    if (!pin_to_cpu(0, generator))
        return dtcall::Error{"--pin: cannot pin the generator to CPU " + std::to_string(generator)};
    // An external server is pinned by whoever started it (taskset); only
    // the children this tool starts go to `server`.
    run.server_cpu = server;
    run.generator_cpu = generator;
    // A cluster's nodes (and its redis-server) spread over the other CPUs.
    for (int cpu : cpus)
        if (cpu != generator && (!o.server_cpu || cpu == *o.server_cpu)) run.node_cpus.push_back(cpu);
    run.placement = "; generator pinned to CPU " + std::to_string(generator);
    return dtcall::Done{};
}

// The 1-minute load average, or -1 when unreadable.
double load_average() {
    double load[1];
    return getloadavg(load, 1) == 1 ? load[0] : -1;
}

}  // namespace

dtcall::Result<Report> run(const Options& given) {
    RunContext context;
    context.options = with_mode_defaults(given);
    const Options& o = context.options;
    if (!dtcall::crypto_init()) return dtcall::Error{"libsodium cannot start (no entropy source?)"};
    ProcessSettings process;
    context.open_files = raise_open_files_limit();
    if (auto placed = place(o, process, context); !placed) return dtcall::Error{placed.error()};
    if (!o.pin) context.placement = "; not pinned";

    double load_before = load_average();
    dtcall::Result<Report> report = dtcall::Error{"unknown mode"};
    switch (o.mode) {
    case Mode::login: report = run_login(context); break;
    case Mode::idle: report = run_idle(context); break;
    case Mode::calls: report = run_calls(context); break;
    case Mode::relay:
    case Mode::baseline: report = run_relay(context); break;
    case Mode::summary: report = run_summary(context); break;
    }
    if (report) {
        // Other work on the machine skews every figure; say how busy it was.
        double load_after = load_average();
        double cpus = double(sysconf(_SC_NPROCESSORS_ONLN));
        report->notes.push_back("machine load average (1 min): " + format_number(load_before, 2) + " at the start, " +
                                format_number(load_after, 2) + " at the end, on " + format_number(cpus, 0) +
                                " CPUs" +
                                (std::max(load_before, load_after) > 0.5 * cpus
                                     ? std::string(" - other processes competed for the CPUs; treat the figures as rough")
                                     : std::string()));
    }
    if (report && !o.plot_file.empty()) {
        std::string problem = write_plot(*report, o.plot_file);
        if (!problem.empty()) report->notes.push_back("--plot " + o.plot_file + ": " + problem);
    }
    return report;
}

}  // namespace dtbench
