#include "crypto/crypto.hpp"

#include <sodium.h>

#include <cstring>

namespace dtcall {

bool crypto_init() { return sodium_init() >= 0; }

SecretKey::SecretKey(const std::uint8_t* bytes) { std::memcpy(bytes_.data(), bytes, key_size); }
SecretKey::SecretKey(const SecretKey& o) : bytes_(o.bytes_) {}
SecretKey& SecretKey::operator=(const SecretKey& o) {
    bytes_ = o.bytes_;
    return *this;
}
SecretKey::~SecretKey() { sodium_memzero(bytes_.data(), bytes_.size()); }

KeyPair KeyPair::generate() {
    KeyPair pair;
    crypto_box_keypair(pair.public_key.bytes.data(), pair.secret_key.data());
    return pair;
}

KeyPair KeyPair::from_secret(const SecretKey& secret) {
    KeyPair pair;
    pair.secret_key = secret;
    crypto_scalarmult_base(pair.public_key.bytes.data(), secret.data());
    return pair;
}

std::optional<SharedKey> SharedKey::derive(const SecretKey& ours, const PublicKey& theirs) {
    SharedKey key;
    if (crypto_box_beforenm(key.bytes_.data(), theirs.bytes.data(), ours.data()) != 0) return std::nullopt;
    return key;
}
SharedKey::SharedKey(const SharedKey& o) : bytes_(o.bytes_) {}
SharedKey& SharedKey::operator=(const SharedKey& o) {
    bytes_ = o.bytes_;
    return *this;
}
SharedKey::~SharedKey() { sodium_memzero(bytes_.data(), bytes_.size()); }

}  // namespace dtcall
