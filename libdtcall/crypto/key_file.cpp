#include "io/system_error.hpp"
#include "crypto/crypto.hpp"

#include "io/new_file.hpp"
#include "io/read_bounded.hpp"

#include <sodium.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace dtcall {
namespace {

constexpr std::size_t digits_size = key_size * 3;
constexpr std::size_t max_key_file = 4096;

std::string key_file_text(std::string_view header, const std::uint8_t* key) {
    std::string text(header);
    text += stringify(key, key_size);
    return text;
}

// Exactly 96 digits into the 32 bytes at `out`. Positions, never the
// characters, go into errors: the digits may be a private key.
Status decode_key_digits(std::string_view digits, std::uint8_t* out) {
    if (digits.size() != digits_size) {
        return Error{ErrorCode::bad_key, "key must be exactly 96 digits, found " + std::to_string(digits.size()) + " characters"};
    }
    for (std::size_t i = 0; i < key_size; ++i) {
        unsigned value = 0;
        for (std::size_t j = 0; j < 3; ++j) {
            char c = digits[i * 3 + j];
            if (c < '0' || c > '9') {
                return Error{ErrorCode::bad_key, "key character " + std::to_string(i * 3 + j + 1) + " of 96 is not a digit"};
            }
            value = value * 10 + unsigned(c - '0');
        }
        if (value > 255) {
            return Error{ErrorCode::bad_key, "key byte " + std::to_string(i + 1) + " (characters " + std::to_string(i * 3 + 1) + "-" +
                         std::to_string(i * 3 + 3) + ") is a triple above 255"};
        }
        out[i] = std::uint8_t(value);
    }
    return Done{};
}

// Shared by both key kinds: check the header, drop one trailing newline,
// decode 96 digits into `out`.
Status parse_key_text(std::string_view text, std::string_view header, std::uint8_t* out) {
    if (text.substr(0, header.size()) != header) {
        return Error{ErrorCode::bad_key, "does not start with \"" + std::string(header.substr(0, header.size() - 1)) +
                     "\" on its own line"};
    }
    std::string_view digits = text.substr(header.size());
    if (digits.size() == digits_size + 1 && digits.back() == '\n') digits.remove_suffix(1);
    else if (digits.size() == digits_size + 2 && digits.substr(digits_size) == "\r\n") digits.remove_suffix(2);
    if (digits.size() != digits_size) {
        return Error{ErrorCode::bad_key, "key must be exactly 96 digits after the header, found " +
                     std::to_string(digits.size()) + " characters"};
    }
    return decode_key_digits(digits, out);
}

}  // namespace

Result<PublicKey> PublicKey::from_digits(std::string_view digits) {
    PublicKey key;
    auto status = decode_key_digits(digits, key.bytes.data());
    if (!status) return status.failure();
    return key;
}

std::string PublicKey::to_digits() const { return stringify(bytes.data(), key_size); }

std::string public_key_file_text(const PublicKey& key) {
    return key_file_text(public_key_header, key.bytes.data());
}

std::string private_key_file_text(const SecretKey& key) {
    return key_file_text(private_key_header, key.data());
}

Result<PublicKey> parse_public_key_file(std::string_view text) {
    PublicKey key;
    auto status = parse_key_text(text, public_key_header, key.bytes.data());
    if (!status) return status.failure();
    return key;
}

Result<SecretKey> parse_private_key_file(std::string_view text) {
    SecretKey key;
    auto status = parse_key_text(text, private_key_header, key.data());
    if (!status) return status.failure();
    return key;
}

Result<PublicKey> read_public_key_file(const std::string& path) {
    auto text = read_bounded(path, max_key_file, "key file");
    if (!text) return text.failure();
    auto key = parse_public_key_file(*text);
    if (!key) return Error{key.code(), path + ": " + key.error()};
    return key;
}

Result<SecretKey> read_private_key_file(const std::string& path) {
    auto text = read_bounded(path, max_key_file, "key file");
    if (!text) return text.failure();
    auto key = parse_private_key_file(*text);
    wipe(*text);
    if (!key) return Error{key.code(), path + ": " + key.error()};
    return key;
}

Status write_key_files(const KeyPair& pair, const std::string& public_path,
                       const std::string& private_path) {
    if (::access(public_path.c_str(), F_OK) == 0) return Error{ErrorCode::invalid_state, public_path + ": already exists, not overwriting"};
    std::string secret_text = private_key_file_text(pair.secret_key);
    auto status = write_new_file(private_path, secret_text, 0600);
    wipe(secret_text);
    if (!status) return status;
    status = write_new_file(public_path, public_key_file_text(pair.public_key), 0644);
    if (!status) ::unlink(private_path.c_str());
    return status;
}

}  // namespace dtcall
