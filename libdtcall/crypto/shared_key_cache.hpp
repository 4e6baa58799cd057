// Precomputed crypto_box keys between the server's secret key and users'
// public keys, so a login1resp costs no X25519 operation for a user whose key
// was seen before (one of the three a login otherwise needs).
#pragma once

#include <dtcall/crypto.hpp>

#include <cstring>
#include <unordered_map>

namespace dtcall {

class SharedKeyCache {
public:
    // Only keys from the user directory reach the cache (an unknown user is
    // refused first), so it is bounded by the directory; the capacity bounds
    // it for directories too large to hold (a database behind UserDirectory).
    explicit SharedKeyCache(std::size_t capacity = 65536) : capacity_(capacity) {}

    // The key for `theirs`, derived on first use; nullptr when X25519 refuses
    // the public key. Valid until the next get() or clear().
    const SharedKey* get(const SecretKey& ours, const PublicKey& theirs) {
        auto found = keys_.find(theirs);
        if (found != keys_.end()) return &found->second;
        auto derived = SharedKey::derive(ours, theirs);
        if (!derived) return nullptr;
        if (keys_.size() >= capacity_) keys_.clear();
        return &keys_.emplace(theirs, *derived).first->second;
    }

    // After the directory changed: keys of removed users go with it.
    void clear() { keys_.clear(); }
    std::size_t size() const { return keys_.size(); }

private:
    // Public keys are uniformly distributed, so eight of their bytes hash well.
    struct KeyHash {
        std::size_t operator()(const PublicKey& key) const {
            std::size_t h;
            std::memcpy(&h, key.bytes.data(), sizeof h);
            return h;
        }
    };
    std::size_t capacity_;
    std::unordered_map<PublicKey, SharedKey, KeyHash> keys_;
};

}  // namespace dtcall
