#include "event_loop.hpp"

#include <event2/event.h>

#include <cstdio>
#include <unistd.h>

namespace dtbench {

Loop::Loop() : base_(event_base_new()) {
    if (!base_) return;
    ticker_ = event_new(base_, -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr);
    timeval tick{0, 10 * 1000};
    if (ticker_) event_add(ticker_, &tick);
}

Loop::~Loop() {
    if (ticker_) event_free(ticker_);
    if (base_) event_base_free(base_);
}

bool Loop::run_until(const std::function<bool()>& done, Clock::time_point deadline,
                     const std::function<void()>& tick) {
    while (!done()) {
        if (Clock::now() >= deadline) return false;
        event_base_loop(base_, EVLOOP_ONCE);
        if (tick) tick();
    }
    return true;
}

Progress::Progress(bool enabled, std::string what)
    : enabled_(enabled), terminal_(isatty(STDERR_FILENO) == 1), what_(std::move(what)), last_(Clock::now()) {}

Progress::~Progress() { finish(); }

void Progress::update(const std::string& status) {
    if (!enabled_) return;
    auto now = Clock::now();
    auto every = terminal_ ? std::chrono::seconds(1) : std::chrono::seconds(5);
    if (now - last_ < every) return;
    last_ = now;
    if (terminal_) {
        std::fprintf(stderr, "\r\033[K[%s] %s", what_.c_str(), status.c_str());
    } else {
        std::fprintf(stderr, "[%s] %s\n", what_.c_str(), status.c_str());
    }
    std::fflush(stderr);
    shown_ = true;
}

void Progress::finish() {
    if (enabled_ && terminal_ && shown_) {
        std::fprintf(stderr, "\r\033[K");
        std::fflush(stderr);
    }
    shown_ = false;
}

}  // namespace dtbench
