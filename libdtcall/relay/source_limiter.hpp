// Packets per second from sources that are not registered media addresses,
// without allocating: sources hash into a fixed array of token buckets. Two
// sources that share a bucket share its budget, which only ever makes the
// limit stricter for them; memory never grows, whatever a flood looks like.
#pragma once

#include "address_table.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

#include <sodium.h>

namespace dtcall {

class SourceLimiter {
public:
    explicit SourceLimiter(double per_second) : per_second_(per_second) {
        // Idempotent; the relay may be built before its Server calls it. With
        // no random source, refuse every unregistered packet rather than guess.
        if (sodium_init() < 0) per_second_ = 0;
        randombytes_buf(hash_key_, sizeof hash_key_);
    }

    // `first_refusal` (optional) is set when this refusal is the bucket's
    // first since it last granted one: once per window per source, for a
    // limit_hit report rather than one per packet.
    bool take(const AddressKey& source, std::int64_t now_ms, bool* first_refusal = nullptr) {
        Bucket& b = buckets_[index(source)];
        if (b.updated_ms == 0) b = Bucket{per_second_, now_ms, false};
        double refill = double(now_ms - b.updated_ms) / 1000.0 * per_second_;
        b.tokens = std::min(per_second_, b.tokens + std::max(0.0, refill));
        b.updated_ms = now_ms;
        if (b.tokens < 1) {
            if (first_refusal) *first_refusal = !b.refusing;
            b.refusing = true;
            return false;
        }
        b.tokens -= 1;
        b.refusing = false;
        return true;
    }

private:
    struct Bucket {
        double tokens = 0;
        std::int64_t updated_ms = 0;
        bool refusing = false;  // refused since it last granted
    };
    // Keyed (SipHash with a per-relay secret), so an attacker cannot aim
    // sources at the bucket a victim's address falls into.
    std::size_t index(const AddressKey& key) const {
        std::uint64_t h = 0;
        crypto_shorthash(reinterpret_cast<unsigned char*>(&h), key.bytes.data(), key.bytes.size(), hash_key_);
        return std::size_t(h % bucket_count);
    }
    static constexpr std::size_t bucket_count = 4096;

    double per_second_;
    unsigned char hash_key_[crypto_shorthash_KEYBYTES];
    std::array<Bucket, bucket_count> buckets_{};
};

}  // namespace dtcall
