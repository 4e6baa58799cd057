#include "lifecycle.hpp"

#include "metrics/http.hpp"

#include <event2/event.h>

#include <cstdlib>
#include <ctime>

#include <unistd.h>

namespace dtcalld {

using dtcall::LogLevel;

namespace {

timeval to_timeval(std::chrono::microseconds us) {
    return timeval{time_t(us.count() / 1000000), suseconds_t(us.count() % 1000000)};
}

std::uint64_t monotonic_usec() {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return std::uint64_t(now.tv_sec) * 1000000u + std::uint64_t(now.tv_nsec) / 1000u;
}

}  // namespace

Lifecycle::Lifecycle(dtcall::Server& server, LogFile& log) : server_(server), log_(log) {
    auto found = systemd::NotifySocket::from_environment();
    if (!found) {
        log_.write(LogLevel::warning, found.error() + "; systemd will not hear that dtcalld is ready");
        return;
    }
    if (!*found) return;
    socket_ = std::move(**found);
    watchdog_every_ = systemd::watchdog_interval(std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"), ::getpid());
    log_.write(LogLevel::info, "systemd: notifying " + socket_->address().text() +
                                   (watchdog_every_ ? ", watchdog every " + std::to_string(watchdog_every_->count() / 1000) + " ms"
                                                    : ""));
}

Lifecycle::~Lifecycle() {
    if (status_timer_) event_free(status_timer_);
    if (watchdog_timer_) event_free(watchdog_timer_);
}

systemd::StatusFigures Lifecycle::figures() const {
    // stats() is a handful of counters: cheap enough every few seconds.
    dtcall::ServerStats stats = server_.stats();
    systemd::StatusFigures f;
    f.users_online = stats.logged_in;
    f.calls = stats.calls_ringing + stats.calls_accepted + stats.calls_in_progress;
    f.ringing = stats.calls_ringing;
    f.connections = stats.connections;
    f.draining = server_.draining();
    return f;
}

void Lifecycle::notify(const std::string& message) {
    if (!socket_) return;
    auto sent = socket_->send(message);
    if (sent || send_failed_) return;
    send_failed_ = true;
    log_.write(LogLevel::warning, "systemd: " + sent.error());
}

void Lifecycle::ready() {
    if (!socket_) return;
    systemd::StatusFigures now = figures();
    last_status_ = systemd::status_text(now);
    notify(systemd::ready_message(now));
    event_base* base = server_.base();
    if (!status_timer_) {
        status_timer_ = event_new(base, -1, EV_PERSIST, &Lifecycle::on_status_timer, this);
        timeval every = to_timeval(status_period);
        if (status_timer_) event_add(status_timer_, &every);
    }
    if (watchdog_every_ && !watchdog_timer_) {
        notify(systemd::watchdog_message());
        watchdog_timer_ = event_new(base, -1, EV_PERSIST, &Lifecycle::on_watchdog_timer, this);
        timeval every = to_timeval(*watchdog_every_);
        if (watchdog_timer_) event_add(watchdog_timer_, &every);
    }
}

void Lifecycle::reloading() {
    if (stopping_) return;  // no RELOADING=1/READY=1 after STOPPING=1
    notify(systemd::reloading_message(monotonic_usec()));
}

void Lifecycle::reloaded() {
    // A reload during a drain or stop: READY=1 would tell systemd (and
    // anyone watching) that a stopping dtcalld serves again.
    if (stopping_) return;
    systemd::StatusFigures now = figures();
    last_status_ = systemd::status_text(now);
    notify(systemd::ready_message(now));
}

void Lifecycle::stopping(const std::string& why) {
    if (stopping_) return;
    stopping_ = true;
    if (metrics_) metrics_->stopping();
    last_status_ = why;
    notify(systemd::stopping_message(why));
}

void Lifecycle::on_status_timer(int, short, void* self) {
    auto* l = static_cast<Lifecycle*>(self);
    // A stop takes two seconds at most; a drain may take long: keep its counts.
    if (l->stopping_ && !l->server_.draining()) return;
    std::string text = systemd::status_text(l->figures());
    if (text == l->last_status_) return;
    l->last_status_ = text;
    l->notify(systemd::status_message(l->figures()));
}

void Lifecycle::on_watchdog_timer(int, short, void* self) {
    static_cast<Lifecycle*>(self)->notify(systemd::watchdog_message());
}

}  // namespace dtcalld
