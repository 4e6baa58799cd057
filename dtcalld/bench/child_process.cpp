#include "child_process.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace dtbench {

bool pin_to_cpu(pid_t pid, int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) {
        errno = EINVAL;
        return false;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(pid, sizeof set, &set) == 0;
}

dtcall::Result<std::unique_ptr<ChildProcess>> ChildProcess::start(const std::string& what, const Body& body,
                                                                   std::optional<int> cpu,
                                                                   std::chrono::milliseconds ready_within) {
    int to_child[2], from_child[2];
    if (pipe2(to_child, O_CLOEXEC) != 0) return dtcall::Error{what + ": pipe: " + std::strerror(errno)};
    if (pipe2(from_child, O_CLOEXEC) != 0) {
        ::close(to_child[0]);
        ::close(to_child[1]);
        return dtcall::Error{what + ": pipe: " + std::strerror(errno)};
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) ::close(fd);
        return dtcall::Error{what + ": fork: " + std::strerror(errno)};
    }
    if (pid == 0) {
        // The child never returns into the caller (a test runner, main): it
        // leaves through _exit, without running the parent's atexit handlers
        // or flushing the parent's stdio buffers a second time.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        ::close(to_child[1]);
        ::close(from_child[0]);
        signal(SIGPIPE, SIG_IGN);
        if (cpu && !pin_to_cpu(0, *cpu)) {
            std::string line = "error cannot pin to CPU " + std::to_string(*cpu) + ": " + std::strerror(errno) + "\n";
            (void)!write(from_child[1], line.data(), line.size());
            _exit(1);
        }
        int status = 1;
        try {
            status = body(to_child[0], from_child[1]);
        } catch (...) {
            const char line[] = "error the child failed with an exception\n";
            (void)!write(from_child[1], line, sizeof line - 1);
        }
        _exit(status);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    std::unique_ptr<ChildProcess> child(new ChildProcess());
    child->what_ = what;
    child->pid_ = pid;
    child->requests_ = to_child[1];
    child->answers_ = from_child[0];
    auto line = child->read_line(ready_within);
    if (!line) return dtcall::Error{what + ": did not start within " + std::to_string(ready_within.count()) + " ms"};
    if (line->compare(0, 6, "ready ") != 0) {
        std::string reason = line->compare(0, 6, "error ") == 0 ? line->substr(6) : *line;
        return dtcall::Error{what + ": " + reason};
    }
    child->ready_line_ = *line;
    return child;
}

ChildProcess::~ChildProcess() { stop(); }

std::optional<std::string> ChildProcess::read_line(std::chrono::milliseconds within) {
    auto deadline = std::chrono::steady_clock::now() + within;
    for (;;) {
        auto newline = buffered_.find('\n');
        if (newline != std::string::npos) {
            std::string line = buffered_.substr(0, newline);
            buffered_.erase(0, newline + 1);
            return line;
        }
        if (answers_ < 0 || buffered_.size() > 65536) return std::nullopt;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return std::nullopt;
        pollfd p{answers_, POLLIN, 0};
        int ready = poll(&p, 1, int(left.count()) + 1);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) return std::nullopt;
        char chunk[512];
        ssize_t got = ::read(answers_, chunk, sizeof chunk);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return std::nullopt;  // the child is gone
        buffered_.append(chunk, std::size_t(got));
    }
}

std::optional<std::string> ChildProcess::ask(const std::string& request, std::chrono::milliseconds within) {
    if (requests_ < 0) return std::nullopt;
    std::string line = request + "\n";
    if (::write(requests_, line.data(), line.size()) != ssize_t(line.size())) return std::nullopt;
    return read_line(within);
}

void ChildProcess::stop(std::chrono::milliseconds within) {
    if (requests_ >= 0) ::close(requests_);
    requests_ = -1;
    if (pid_ > 0) {
        auto deadline = std::chrono::steady_clock::now() + within;
        int status = 0;
        bool reaped = false;
        while (!reaped && std::chrono::steady_clock::now() < deadline) {
            pid_t done = waitpid(pid_, &status, WNOHANG);
            if (done == pid_ || (done < 0 && errno != EINTR)) reaped = true;
            else usleep(5000);
        }
        if (!reaped) {
            kill(pid_, SIGKILL);
            while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
        }
        pid_ = -1;
    }
    if (answers_ >= 0) ::close(answers_);
    answers_ = -1;
}

}  // namespace dtbench
