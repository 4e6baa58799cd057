// The crypto of the wire (internal): precomputed box keys, the "stringify"
// codec, the encrypted frame layout of PROTOCOL.md sections 1 and 3, sealed
// boxes, tokens and wiping. Pure functions over libsodium; no I/O.
#pragma once

#include <dtcall/keys.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dtcall {

using Bytes = std::vector<std::uint8_t>;

constexpr std::size_t nonce_size = 24;
constexpr std::size_t mac_size = 16;
constexpr std::size_t frame_header_size = nonce_size + 4;      // nonce + uint32 L
constexpr std::size_t frame_overhead = frame_header_size + mac_size;  // 44
constexpr std::size_t seal_overhead = 48;  // crypto_box_SEALBYTES

// The precomputed key of one (our secret, their public) pair
// (crypto_box_beforenm). Boxes made with it are byte for byte those of
// crypto_box_easy with the two keys, without the X25519 operation each time.
// Wipes itself.
class SharedKey {
public:
    // nullopt for a public key X25519 refuses (low order).
    static std::optional<SharedKey> derive(const SecretKey& ours, const PublicKey& theirs);
    SharedKey(const SharedKey& o);
    SharedKey& operator=(const SharedKey& o);
    ~SharedKey();
    const std::uint8_t* data() const { return bytes_.data(); }

private:
    SharedKey() = default;
    std::array<std::uint8_t, key_size> bytes_{};
};

// --- stringify: each byte as three decimal digits ("007", "255") ---
std::string stringify(const std::uint8_t* data, std::size_t size);
inline std::string stringify(const Bytes& b) { return stringify(b.data(), b.size()); }
// nullopt when the length is not a multiple of 3, a character is not a digit
// or a triple is above 255.
std::optional<Bytes> unstringify(std::string_view digits);

// --- frames (PROTOCOL.md section 3): nonce(24) | L (u32 BE) | MAC(16) + L ---
using Nonce = std::array<std::uint8_t, nonce_size>;
Nonce random_nonce();

Bytes seal_secret_frame(const std::uint8_t* key, std::string_view plaintext);
Bytes seal_secret_frame(const std::uint8_t* key, std::string_view plaintext, const Nonce& nonce);
Bytes seal_box_frame(const SecretKey& sender, const PublicKey& recipient, std::string_view plaintext);
Bytes seal_box_frame(const SecretKey& sender, const PublicKey& recipient, std::string_view plaintext,
                     const Nonce& nonce);
Bytes seal_box_frame(const SharedKey& key, std::string_view plaintext);
Bytes seal_box_frame(const SharedKey& key, std::string_view plaintext, const Nonce& nonce);

// nullopt unless the frame is whole (exactly 44 + L bytes, L >= 1) and authenticates.
std::optional<std::string> open_secret_frame(const std::uint8_t* key, const std::uint8_t* frame,
                                             std::size_t size);
std::optional<std::string> open_box_frame(const SecretKey& recipient, const PublicKey& sender,
                                          const std::uint8_t* frame, std::size_t size);
// The same with a precomputed key (crypto_box_beforenm, 32 bytes).
// The same as the SharedKey versions, for a key precomputed elsewhere (crypto_box_beforenm).
Bytes seal_box_frame_precomputed(const std::uint8_t* shared_key, std::string_view plaintext, const Nonce& nonce);
std::optional<std::string> open_box_frame_precomputed(const std::uint8_t* shared_key, const std::uint8_t* frame,
                                                      std::size_t size);

// --- sealed boxes (handshake, UDP registration) ---
Bytes seal_anonymous(const PublicKey& recipient, const std::uint8_t* data, std::size_t size);
std::optional<Bytes> open_anonymous(const KeyPair& recipient, const std::uint8_t* data, std::size_t size);

// --- random tokens from [0-9A-Za-z] (challenges, session keys) ---
std::string random_token(std::size_t length);

// Constant-time equality of two strings (lengths compared first: they are public).
bool secure_equal(std::string_view a, std::string_view b);
// sodium_memzero over a buffer, then release it (the capacity too).
void wipe(std::string& s);
void wipe(Bytes& b);

}  // namespace dtcall
