#include "signals.hpp"

#include <event2/event.h>

#include <csignal>
#include <string>

namespace dtcalld {

using dtcall::LogLevel;

SignalHandlers::SignalHandlers(dtcall::Server& server, const dtcall::UsersFile* users, LogFile& log,
                               Lifecycle& lifecycle)
    : server_(server), users_(users), log_(log), lifecycle_(lifecycle) {}

SignalHandlers::~SignalHandlers() {
    for (event* ev : events_) event_free(ev);
}

dtcall::Status SignalHandlers::install() {
    for (int number : {SIGHUP, SIGTERM, SIGINT, SIGUSR1}) {
        event* ev = evsignal_new(server_.base(), number, &SignalHandlers::on_signal, this);
        if (ev == nullptr || event_add(ev, nullptr) != 0) {
            if (ev != nullptr) event_free(ev);
            return dtcall::Error{"cannot install a handler for signal " + std::to_string(number)};
        }
        events_.push_back(ev);
    }
    return dtcall::Done{};
}

void SignalHandlers::on_signal(int signal_number, short, void* self) {
    static_cast<SignalHandlers*>(self)->handle(signal_number);
}

void SignalHandlers::handle(int signal_number) {
    switch (signal_number) {
    case SIGHUP: {
        if (users_ == nullptr) {
            log_.write(LogLevel::info, "SIGHUP: nothing to reload (users_db changes apply within a second)");
            break;
        }
        log_.write(LogLevel::info, "SIGHUP: reloading " + users_->path());
        lifecycle_.reloading();
        // The server logs each skipped line and the outcome; we add the count.
        if (server_.reload_users()) {
            log_.write(LogLevel::info, users_->path() + ": " + std::to_string(users_->size()) + " users");
        }
        // Also after a failed reload: the old users go on being served.
        lifecycle_.reloaded();
        break;
    }
    case SIGUSR1:
        log_.reopen();
        log_.write(LogLevel::info, "SIGUSR1: started a new log file");
        break;
    case SIGTERM:
    case SIGINT: {
        dtcall::ServerStats stats = server_.stats();
        std::string name = signal_number == SIGTERM ? "SIGTERM" : "SIGINT";
        log_.write(LogLevel::info, name + ": stopping; closing " + std::to_string(stats.connections) +
                                       " connections, " + std::to_string(stats.calls_ringing + stats.calls_accepted + stats.calls_in_progress) + " calls");
        lifecycle_.stopping("stopping (" + name + ")");
        // Ends calls politely, flushes, then ends the (owned) loop by itself.
        server_.stop();
        break;
    }
    default:
        break;
    }
}

}  // namespace dtcalld
