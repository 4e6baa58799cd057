#include "session/replay_guard.hpp"

#include <algorithm>
#include <cstring>

namespace dtcall {

bool ReplayGuard::fresh(const std::uint8_t* nonce, long long timestamp, std::time_t window) {
    // 64 bits of a random 192-bit nonce: an accidental clash is 2^-64 per pair.
    std::uint64_t key;
    std::memcpy(&key, nonce, sizeof key);
    if (timestamp <= floor_ || timestamp < newest_ - static_cast<long long>(window)) return false;
    for (const Seen& s : seen_)
        if (s.nonce == key) return false;
    if (seen_.size() < capacity_) {
        seen_.push_back({key, timestamp});
    } else {
        // Every forgotten frame lies at or below the floor, so its replay is refused.
        long long floor = std::max(floor_, seen_[next_].timestamp);
        if (timestamp <= floor) return false;
        floor_ = floor;
        seen_[next_] = {key, timestamp};
        next_ = (next_ + 1) % capacity_;
    }
    newest_ = std::max(newest_, timestamp);
    return true;
}

}  // namespace dtcall
