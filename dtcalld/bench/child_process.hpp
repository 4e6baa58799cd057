// A forked child that runs one job (the in-process server, the baseline
// forwarder) so that its memory and CPU can be measured apart from the
// generator's, and pinned to its own CPU. Parent and child talk over two
// pipes, one line at a time:
//   child -> parent: "ready ..." once serving, or "error ..." and exit
//   parent -> child: a request line; the child answers with one line
// The child exits when the parent closes its end (or dies: PDEATHSIG), and
// stop() kills it if it has not gone within the time given.
#pragma once

#include <dtcall/result.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>

namespace dtbench {

class ChildProcess {
public:
    // Runs in the child: reads requests from `requests`, writes the ready
    // line and answers to `answers`; returns the exit status.
    using Body = std::function<int(int requests, int answers)>;

    // `what` names the child in errors. Returns once the child's first line
    // arrived: "ready ..." → the child; anything else, or nothing within
    // `ready_within`, → an error quoting it.
    static dtcall::Result<std::unique_ptr<ChildProcess>> start(const std::string& what, const Body& body,
                                                               std::optional<int> cpu,
                                                               std::chrono::milliseconds ready_within);
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return pid_; }
    const std::string& ready_line() const { return ready_line_; }
    // One request line, one answer line; nullopt when the child does not answer in time.
    std::optional<std::string> ask(const std::string& request, std::chrono::milliseconds within);
    // Closes the request pipe (the child's cue to exit), waits, then SIGKILLs.
    void stop(std::chrono::milliseconds within = std::chrono::milliseconds(3000));

private:
    ChildProcess() = default;
    std::optional<std::string> read_line(std::chrono::milliseconds within);

    std::string what_;
    pid_t pid_ = -1;
    int requests_ = -1;  // our write end
    int answers_ = -1;   // our read end
    std::string buffered_;
    std::string ready_line_;
};

// Pins the calling thread's process to one CPU; false (and errno) on failure.
bool pin_to_cpu(pid_t pid, int cpu);

}  // namespace dtbench
