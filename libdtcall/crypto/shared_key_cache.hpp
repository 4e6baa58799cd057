// Precomputed crypto_box keys between the server's secret key and the public
// keys of users who logged in lately, so a user's next login (a phone
// switching networks, a client reconnecting) seals its login1resp without an
// X25519 operation: two per login instead of three. A first login still pays
// all three.
#pragma once

#include "crypto/crypto.hpp"

#include <cstring>
#include <unordered_map>

namespace dtcall {

class SharedKeyCache {
public:
    // Only keys from the user directory reach the cache (an unknown user is
    // refused first). The capacity keeps it small whatever the directory's
    // size: about 100 bytes an entry, so 4096 entries are ~400 KiB.
    explicit SharedKeyCache(std::size_t capacity = 4096) : capacity_(capacity) {}

    // The key for `theirs`, derived on first use; nullptr when X25519 refuses
    // the public key. Valid until the next get() or clear().
    const SharedKey* get(const SecretKey& ours, const PublicKey& theirs) {
        auto found = keys_.find(theirs);
        if (found != keys_.end()) return &found->second;
        auto derived = SharedKey::derive(ours, theirs);
        if (!derived) return nullptr;
        // Full: forget an arbitrary entry, in O(1); a cache miss costs one
        // X25519 operation, no more than having no cache.
        if (keys_.size() >= capacity_ && !keys_.empty()) keys_.erase(keys_.begin());
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
