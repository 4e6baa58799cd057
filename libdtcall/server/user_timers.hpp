// One-shot timers keyed by user name (a held `direct`, a call's grace
// period): arming again replaces the previous one; cancelled by name.
#pragma once

#include "io/timeval.hpp"

#include <event2/event.h>

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>

namespace dtcall {

class UserTimers {
public:
    using Fire = void (*)(void* owner, const std::string& user);
    UserTimers(event_base* base, void* owner, Fire fire) : base_(base), owner_(owner), fire_(fire) {}
    ~UserTimers() { clear(); }

    void arm(const std::string& user, std::chrono::milliseconds after) {
        cancel(user);
        auto entry = std::make_unique<Entry>(Entry{this, user, nullptr});
        entry->ev = evtimer_new(base_, &UserTimers::on_fire, entry.get());
        timeval tv = to_timeval(after);
        evtimer_add(entry->ev, &tv);
        entries_[user] = std::move(entry);
    }
    void cancel(const std::string& user) { entries_.erase(user); }
    void clear() { entries_.clear(); }
    bool armed(const std::string& user) const { return entries_.count(user) != 0; }

private:
    struct Entry {
        UserTimers* timers;
        std::string user;
        event* ev;
        ~Entry() {
            if (ev) event_free(ev);
        }
    };
    static void on_fire(int, short, void* arg) {
        auto* entry = static_cast<Entry*>(arg);
        UserTimers* timers = entry->timers;
        std::string user = entry->user;
        timers->entries_.erase(user);  // frees the entry: use only the copies from here on
        timers->fire_(timers->owner_, user);
    }

    event_base* base_;
    void* owner_;
    Fire fire_;
    std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;
};


}  // namespace dtcall
