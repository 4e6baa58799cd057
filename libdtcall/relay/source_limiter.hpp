// Packets per second from sources that are not registered media addresses,
// without allocating: sources hash into a fixed array of token buckets. Two
// sources that share a bucket share its budget, which only ever makes the
// limit stricter for them; memory never grows, whatever a flood looks like.
#pragma once

#include "address_table.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

namespace dtcall {

class SourceLimiter {
public:
    explicit SourceLimiter(double per_second) : per_second_(per_second) {}

    bool take(const AddressKey& source, std::int64_t now_ms) {
        Bucket& b = buckets_[index(source)];
        if (b.updated_ms == 0) b = Bucket{per_second_, now_ms};
        double refill = double(now_ms - b.updated_ms) / 1000.0 * per_second_;
        b.tokens = std::min(per_second_, b.tokens + std::max(0.0, refill));
        b.updated_ms = now_ms;
        if (b.tokens < 1) return false;
        b.tokens -= 1;
        return true;
    }

private:
    struct Bucket {
        double tokens = 0;
        std::int64_t updated_ms = 0;
    };
    static std::size_t index(const AddressKey& key) {
        std::uint64_t h = 1469598103934665603ull;
        for (std::uint8_t b : key.bytes) h = (h ^ b) * 1099511628211ull;
        return std::size_t(h ^ (h >> 32)) % bucket_count;
    }
    static constexpr std::size_t bucket_count = 4096;

    double per_second_;
    std::array<Bucket, bucket_count> buckets_{};
};

}  // namespace dtcall
