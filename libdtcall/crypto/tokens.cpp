#include "crypto/crypto.hpp"

#include <sodium.h>

namespace dtcall {

std::string random_token(std::size_t length) {
    static constexpr char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    // One randombytes_buf per batch instead of a call per character (the
    // original's login cost was mostly hundreds of tiny RNG calls). Bytes
    // >= 248 (= 4 * 62) are rejected so every character is equally likely.
    std::string out;
    out.reserve(length);
    unsigned char pool[256];
    while (out.size() < length) {
        randombytes_buf(pool, sizeof pool);
        for (unsigned char b : pool) {
            if (b >= 248) continue;
            out.push_back(alphabet[b % 62]);
            if (out.size() == length) break;
        }
    }
    sodium_memzero(pool, sizeof pool);
    return out;
}

bool secure_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    if (a.empty()) return true;
    return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Zero, then release the buffer too: a cleared string keeps its capacity,
// and an idle session should not carry its old challenge's 200 bytes.
void wipe(std::string& s) {
    if (!s.empty()) sodium_memzero(s.data(), s.size());
    std::string().swap(s);
}

void wipe(Bytes& b) {
    if (!b.empty()) sodium_memzero(b.data(), b.size());
    Bytes().swap(b);
}

}  // namespace dtcall
