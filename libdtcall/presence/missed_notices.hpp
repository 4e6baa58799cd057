// What a user was told while its connection was down during a call (its
// grace period): `prepare`, `direct`, `start`, or the peer's `end`. Kept, a
// few per user, and sent when it logs back in with keepudp within the grace
// period — otherwise a client that reconnects into a call its peer has hung
// up would wait for ever. Once the call ended, only its `end` is kept; of
// several `direct`s (voice keys), only the latest.
#pragma once

#include "router/call_router.hpp"

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace dtcall {

class MissedNotices {
public:
    // A call sends a handful of notices to each party; more is a misuse.
    static constexpr std::size_t per_user = 8;

    // Keep `notice` for `user`; the first one kept sets the expiry
    // (`expires_ms`, monotonic: the end of the grace period).
    void keep(const std::string& user, const Notice& notice, std::int64_t now_ms, std::int64_t expires_ms) {
        sweep(now_ms);
        auto [it, fresh] = missed_.try_emplace(user);
        Missed& missed = it->second;
        if (fresh) missed.expires_ms = expires_ms;
        std::vector<Notice>& notices = missed.notices;
        if (!notices.empty() && notices.back().kind == Notice::Kind::end) return;  // the call is over
        if (notice.kind == Notice::Kind::end) notices.clear();
        if (notice.kind == Notice::Kind::direct) {
            for (auto n = notices.begin(); n != notices.end();)
                n = n->kind == Notice::Kind::direct ? notices.erase(n) : n + 1;
        }
        if (notices.size() < per_user) notices.push_back(notice);
    }

    // The user is back: its notices, oldest first, unless they expired.
    std::vector<Notice> take(const std::string& user, std::int64_t now_ms) {
        std::vector<Notice> notices;
        auto it = missed_.find(user);
        if (it == missed_.end()) return notices;
        if (it->second.expires_ms > now_ms) notices = std::move(it->second.notices);
        missed_.erase(it);
        return notices;
    }

    void forget(const std::string& user) { missed_.erase(user); }
    void clear() { missed_.clear(); }
    std::size_t users() const { return missed_.size(); }

private:
    struct Missed {
        std::int64_t expires_ms = 0;
        std::vector<Notice> notices;
    };

    // Users who never came back are dropped once their notices expired;
    // sweeping only when the table doubled keeps this O(1) per keep().
    void sweep(std::int64_t now_ms) {
        if (missed_.size() < 2 * swept_size_ + 16) return;
        for (auto it = missed_.begin(); it != missed_.end();) {
            if (it->second.expires_ms <= now_ms) it = missed_.erase(it);
            else ++it;
        }
        swept_size_ = missed_.size();
    }

    std::unordered_map<std::string, Missed> missed_;
    std::size_t swept_size_ = 0;
};

}  // namespace dtcall
