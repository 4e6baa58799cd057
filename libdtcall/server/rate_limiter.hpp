// Token buckets keyed by a string (an IP address, a user name). Pure: the
// caller passes the time, so tests need no clock. Memory is bounded: past
// `max_keys` buckets, the full ones (idle keys) are forgotten first.
#pragma once

#include <cstddef>
#include <string>
#include <unordered_map>

namespace dtcall {

class RateLimiter {
public:
    // `burst` tokens at most; `per_second` tokens come back each second.
    RateLimiter(double burst, double per_second, std::size_t max_keys = 65536);

    // True when `key` has a token left (nothing is taken).
    bool has_token(const std::string& key, double now);
    // Takes a token if there is one; false when the key is out of tokens.
    bool take(const std::string& key, double now);
    // The first refusal of a key since it ran dry returns true: log that one
    // line, stay quiet for the rest of the window.
    bool first_refusal(const std::string& key, double now);
    std::size_t size() const { return buckets_.size(); }

private:
    struct Bucket {
        double tokens;
        double updated;
        bool refusal_logged;
    };
    Bucket& bucket(const std::string& key, double now);
    void prune(double now);

    double burst_;
    double per_second_;
    std::size_t max_keys_;
    std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace dtcall
