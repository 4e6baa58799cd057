// The daemon's signals, as libevent signal events on the Server's own
// event_base (so handlers run on the loop thread, never inside a raw signal
// handler):
//   HUP        reload the users file; nobody is disconnected (with users_db
//              there is nothing to reload: changes apply by themselves);
//              systemd hears RELOADING=1, then READY=1
//   TERM, INT  stop the server; run() returns and dtcalld exits 0; systemd
//              hears STOPPING=1 and /healthz answers 503
//   USR1       start a new log file (for logrotate and friends)
#pragma once

#include "lifecycle.hpp"
#include "log_file.hpp"

#include <dtcall/result.hpp>
#include <dtcall/server.hpp>
#include <dtcall/user_directory.hpp>

#include <vector>

struct event;

namespace dtcalld {

class SignalHandlers {
public:
    // All must outlive this object; `users` is null when the users come
    // from users_db.
    SignalHandlers(dtcall::Server& server, const dtcall::UsersFile* users, LogFile& log, Lifecycle& lifecycle);
    ~SignalHandlers();
    SignalHandlers(const SignalHandlers&) = delete;
    SignalHandlers& operator=(const SignalHandlers&) = delete;

    dtcall::Status install();

private:
    static void on_signal(int signal_number, short what, void* self);
    void handle(int signal_number);

    dtcall::Server& server_;
    const dtcall::UsersFile* users_;
    LogFile& log_;
    Lifecycle& lifecycle_;
    std::vector<event*> events_;
};

}  // namespace dtcalld
