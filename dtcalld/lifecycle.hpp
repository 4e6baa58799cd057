// Who hears about dtcalld's state changes besides the log: systemd, through
// $NOTIFY_SOCKET (sd_notify(3), spoken by systemd/notify_socket.hpp), and the
// metrics endpoint, whose /healthz answers 503 once stopping. Without
// NOTIFY_SOCKET and without metrics every method does nothing.
//
//   ready()       READY=1 + STATUS=, once the sockets are bound; from then on
//                 STATUS= is refreshed every status_period (when it changed)
//                 and WATCHDOG=1 sent every WATCHDOG_USEC/2 when systemd
//                 watches us (WatchdogSec=), all from the server's event loop
//   reloading()   RELOADING=1 (SIGHUP, `dtcall-ctl reload`) ...
//   reloaded()    ... READY=1 once the users are re-read; neither says a
//                 word after stopping(): STOPPING=1 is final
//   stopping()    STOPPING=1 (SIGTERM/SIGINT, drain); /healthz 503; once
#pragma once

#include "log_file.hpp"
#include "systemd/notify_socket.hpp"

#include <dtcall/server.hpp>

#include <chrono>
#include <optional>
#include <string>

struct event;

namespace dtcalld {

namespace metrics {
class MetricsHttp;
}

class Lifecycle {
public:
    static constexpr std::chrono::seconds status_period{5};

    // Both must outlive this object. Reads NOTIFY_SOCKET, WATCHDOG_USEC and
    // WATCHDOG_PID now; a NOTIFY_SOCKET we cannot use is logged, not fatal.
    Lifecycle(dtcall::Server& server, LogFile& log);
    ~Lifecycle();
    Lifecycle(const Lifecycle&) = delete;
    Lifecycle& operator=(const Lifecycle&) = delete;

    // Told about stopping too; null (the default) when metrics are off.
    void set_metrics(metrics::MetricsHttp* http) { metrics_ = http; }

    void ready();
    void reloading();
    void reloaded();
    void stopping(const std::string& why);
    bool is_stopping() const { return stopping_; }

private:
    static void on_status_timer(int, short, void* self);
    static void on_watchdog_timer(int, short, void* self);
    systemd::StatusFigures figures() const;
    void notify(const std::string& message);

    dtcall::Server& server_;
    LogFile& log_;
    metrics::MetricsHttp* metrics_ = nullptr;
    std::optional<systemd::NotifySocket> socket_;
    std::optional<std::chrono::microseconds> watchdog_every_;
    event* status_timer_ = nullptr;
    event* watchdog_timer_ = nullptr;
    std::string last_status_;
    bool stopping_ = false;
    bool send_failed_ = false;  // warn once, not every few seconds
};

}  // namespace dtcalld
