#include "server/rate_limiter.hpp"

#include <algorithm>

namespace dtcall {

RateLimiter::RateLimiter(double burst, double per_second, std::size_t max_keys)
    : burst_(burst), per_second_(per_second), max_keys_(max_keys) {}

RateLimiter::Bucket& RateLimiter::bucket(const std::string& key, double now) {
    auto it = buckets_.find(key);
    if (it == buckets_.end()) {
        if (buckets_.size() >= max_keys_) prune(now);
        it = buckets_.emplace(key, Bucket{burst_, now, false}).first;
    }
    Bucket& b = it->second;
    if (now > b.updated) {
        b.tokens = std::min(burst_, b.tokens + (now - b.updated) * per_second_);
        b.updated = now;
    }
    if (b.tokens >= 1) b.refusal_logged = false;
    return b;
}

// Forget the keys whose buckets have refilled: they carry no information.
// If every key is still draining (a flood from many sources), forget all of
// them rather than grow: the limiter then errs on the side of serving.
void RateLimiter::prune(double now) {
    for (auto it = buckets_.begin(); it != buckets_.end();) {
        double tokens = it->second.tokens + (now - it->second.updated) * per_second_;
        it = tokens >= burst_ ? buckets_.erase(it) : std::next(it);
    }
    if (buckets_.size() >= max_keys_) buckets_.clear();
}

bool RateLimiter::has_token(const std::string& key, double now) { return bucket(key, now).tokens >= 1; }

bool RateLimiter::take(const std::string& key, double now) {
    Bucket& b = bucket(key, now);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
}

bool RateLimiter::first_refusal(const std::string& key, double now) {
    Bucket& b = bucket(key, now);
    if (b.refusal_logged) return false;
    b.refusal_logged = true;
    return true;
}

}  // namespace dtcall
