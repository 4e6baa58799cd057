// Keys, key files, the "stringify" codec and the encrypted frame layout of
// PROTOCOL.md sections 1 and 3. Pure functions over libsodium; no I/O except
// the key-file readers/writers.
#pragma once

#include <dtcall/result.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dtcall {

using Bytes = std::vector<std::uint8_t>;

constexpr std::size_t key_size = 32;
constexpr std::size_t nonce_size = 24;
constexpr std::size_t mac_size = 16;
constexpr std::size_t frame_header_size = nonce_size + 4;      // nonce + uint32 L
constexpr std::size_t frame_overhead = frame_header_size + mac_size;  // 44
constexpr std::size_t seal_overhead = 48;  // crypto_box_SEALBYTES

// Initialises libsodium; safe to call many times and from any Server/Client.
// Returns false only when libsodium cannot start (no entropy source).
bool crypto_init();

struct PublicKey {
    std::array<std::uint8_t, key_size> bytes{};
    // The "stringify" form clients exchange (PROTOCOL.md section 1): exactly 96
    // decimal digits, three per byte, no header, nothing around them. Errors
    // say what is wrong (the length, which character is not a digit, which
    // triple is above 255) without echoing the text.
    static Result<PublicKey> from_digits(std::string_view digits);
    // The 96 digits of this key (what follows the header in a key file).
    std::string to_digits() const;
    bool operator==(const PublicKey& o) const { return bytes == o.bytes; }
    bool operator!=(const PublicKey& o) const { return !(*this == o); }
};

// A secret key that wipes itself (sodium_memzero) when it goes away.
class SecretKey {
public:
    SecretKey() = default;
    explicit SecretKey(const std::uint8_t* bytes);
    SecretKey(const SecretKey& o);
    SecretKey& operator=(const SecretKey& o);
    ~SecretKey();
    const std::uint8_t* data() const { return bytes_.data(); }
    std::uint8_t* data() { return bytes_.data(); }

private:
    std::array<std::uint8_t, key_size> bytes_{};
};

struct KeyPair {
    PublicKey public_key;
    SecretKey secret_key;
    static KeyPair generate();
    // The public half of a secret key (crypto_scalarmult_base).
    static KeyPair from_secret(const SecretKey& secret);
};

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

// --- key files (PROTOCOL.md section 1) ---
constexpr std::string_view public_key_header = "SODIUM PUBLIC KEY\n";
constexpr std::string_view private_key_header = "SODIUM PRIVATE KEY\n";

// Canonical text: header + 96 digits, no trailing newline.
std::string public_key_file_text(const PublicKey& key);
std::string private_key_file_text(const SecretKey& key);
// Parse key-file text; one trailing "\n" (or "\r\n") is tolerated. The error says
// what is wrong, without the file name (the caller adds it).
Result<PublicKey> parse_public_key_file(std::string_view text);
Result<SecretKey> parse_private_key_file(std::string_view text);
// Read from disk; errors name the path. Reading stops at 4 KiB so a huge or
// endless file (a FIFO, /dev/zero) cannot exhaust memory.
Result<PublicKey> read_public_key_file(const std::string& path);
Result<SecretKey> read_private_key_file(const std::string& path);
// Write canonical key files; the private one is created 0600. Refuses to
// overwrite an existing file.
Status write_key_files(const KeyPair& pair, const std::string& public_path,
                       const std::string& private_path);

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
