// The Server's observers: called in the order added; one may remove itself
// (or another) from inside a callback without upsetting the rest.
#pragma once

#include <dtcall/events.hpp>

#include <algorithm>
#include <vector>

namespace dtcall {

class ObserverList {
public:
    void add(ServerObserver* observer) {
        if (observer && std::find(list_.begin(), list_.end(), observer) == list_.end()) list_.push_back(observer);
    }
    void remove(ServerObserver* observer) { list_.erase(std::remove(list_.begin(), list_.end(), observer), list_.end()); }

    template <class F>
    void notify(F&& f) {
        if (list_.empty()) return;
        std::vector<ServerObserver*> now = list_;
        for (ServerObserver* o : now)
            if (std::find(list_.begin(), list_.end(), o) != list_.end()) f(*o);
    }

private:
    std::vector<ServerObserver*> list_;
};

}  // namespace dtcall
