// Keys and key files: the server's key pair, users' public keys, and the
// key-file text format the original server and its clients use (see "Keys
// and key files" in dtcall-protocol(7)). Pure functions over libsodium; no
// I/O except the key-file readers and writers.
#pragma once

#include <dtcall/export.hpp>
#include <dtcall/result.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dtcall {

constexpr std::size_t key_size = 32;

// Initialises libsodium; safe to call many times and from any Server/Client.
// Returns false only when libsodium cannot start (no entropy source).
DTCALL_API bool crypto_init();

struct DTCALL_API PublicKey {
    std::array<std::uint8_t, key_size> bytes{};
    // The "stringify" form clients exchange: exactly 96 decimal digits, three
    // per byte, no header, nothing around them. Errors (ErrorCode::bad_key)
    // say what is wrong (the length, which character is not a digit, which
    // triple is above 255) without echoing the text.
    static Result<PublicKey> from_digits(std::string_view digits);
    // The 96 digits of this key (what follows the header in a key file).
    std::string to_digits() const;
    bool operator==(const PublicKey& o) const { return bytes == o.bytes; }
    bool operator!=(const PublicKey& o) const { return !(*this == o); }
};

// A secret key that wipes itself (sodium_memzero) when it goes away.
class DTCALL_API SecretKey {
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

struct DTCALL_API KeyPair {
    PublicKey public_key;
    SecretKey secret_key;
    static KeyPair generate();
    // The public half of a secret key (crypto_scalarmult_base).
    static KeyPair from_secret(const SecretKey& secret);
};

// --- key files ---
constexpr std::string_view public_key_header = "SODIUM PUBLIC KEY\n";
constexpr std::string_view private_key_header = "SODIUM PRIVATE KEY\n";

// Canonical text: header + 96 digits, no trailing newline.
DTCALL_API std::string public_key_file_text(const PublicKey& key);
DTCALL_API std::string private_key_file_text(const SecretKey& key);
// Parse key-file text; one trailing "\n" (or "\r\n") is tolerated. The error says
// what is wrong, without the file name (the caller adds it).
DTCALL_API Result<PublicKey> parse_public_key_file(std::string_view text);
DTCALL_API Result<SecretKey> parse_private_key_file(std::string_view text);
// Read from disk; errors name the path. Reading stops at 4 KiB so a huge or
// endless file (a FIFO, /dev/zero) cannot exhaust memory.
DTCALL_API Result<PublicKey> read_public_key_file(const std::string& path);
DTCALL_API Result<SecretKey> read_private_key_file(const std::string& path);
// Write canonical key files; the private one is created 0600. Refuses to
// overwrite an existing file.
DTCALL_API Status write_key_files(const KeyPair& pair, const std::string& public_path,
                       const std::string& private_path);

}  // namespace dtcall
