// Running a libevent loop in bounded steps, and the progress line.
#pragma once

#include <chrono>
#include <functional>
#include <string>

struct event;
struct event_base;

namespace dtbench {

using Clock = std::chrono::steady_clock;

// Owns an event_base with a 10 ms ticker, so that one loop step never blocks
// past a deadline even when nothing else is pending.
class Loop {
public:
    Loop();
    ~Loop();
    Loop(const Loop&) = delete;
    Loop& operator=(const Loop&) = delete;
    event_base* base() const { return base_; }
    bool ok() const { return base_ && ticker_; }
    // Runs until `done()` or `deadline`; true when `done()` came first.
    // `tick` (optional) runs between steps, e.g. for the progress line.
    bool run_until(const std::function<bool()>& done, Clock::time_point deadline,
                   const std::function<void()>& tick = nullptr);

private:
    event_base* base_ = nullptr;
    event* ticker_ = nullptr;
};

// A one-line status on stderr, at most once a second, for runs longer than
// a few seconds. On a terminal it rewrites itself; elsewhere (a log, a CI
// job) it prints whole lines, every 5 s, so logs stay readable.
class Progress {
public:
    Progress(bool enabled, std::string what);
    ~Progress();
    void update(const std::string& status);
    void finish();

private:
    bool enabled_;
    bool terminal_;
    std::string what_;
    Clock::time_point last_{};
    bool shown_ = false;
};

// Seconds since `start`, as a double.
inline double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace dtbench
