#include "cluster/cluster_key.hpp"

#include "crypto/crypto.hpp"
#include "io/new_file.hpp"
#include "io/read_bounded.hpp"
#include "io/system_error.hpp"

#include <sodium.h>

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace dtcall::cluster {
namespace {

constexpr std::size_t digits_size = cluster_key_size * 3;
constexpr std::size_t max_key_file = 4096;
// crypto_kdf contexts: exactly 8 characters each.
constexpr char media_context[] = "dtcl-med";
constexpr char control_context[] = "dtcl-ctl";

}  // namespace

ClusterKey::ClusterKey(const std::uint8_t* bytes) { std::copy(bytes, bytes + cluster_key_size, bytes_.begin()); }
ClusterKey::ClusterKey(const ClusterKey& o) : bytes_(o.bytes_) {}
ClusterKey& ClusterKey::operator=(const ClusterKey& o) {
    bytes_ = o.bytes_;
    return *this;
}
ClusterKey::~ClusterKey() { sodium_memzero(bytes_.data(), bytes_.size()); }

ClusterKey ClusterKey::generate() {
    ClusterKey key;
    randombytes_buf(key.bytes_.data(), key.bytes_.size());
    return key;
}

ClusterKeys ClusterKeys::derive(const ClusterKey& key) {
    static_assert(cluster_key_size == crypto_kdf_KEYBYTES, "the cluster key is a crypto_kdf master key");
    ClusterKeys out;
    crypto_kdf_derive_from_key(out.media.data(), cluster_key_size, 1, media_context, key.data());
    crypto_kdf_derive_from_key(out.control.data(), cluster_key_size, 2, control_context, key.data());
    return out;
}

std::string cluster_key_file_text(const ClusterKey& key) {
    // Digit by digit, so no temporary copy of the secret is left unwiped.
    std::string text;
    text.reserve(cluster_key_header.size() + digits_size);
    text += cluster_key_header;
    for (std::size_t i = 0; i < cluster_key_size; ++i) {
        unsigned value = key.data()[i];
        text += char('0' + value / 100);
        text += char('0' + value / 10 % 10);
        text += char('0' + value % 10);
    }
    return text;
}

Result<ClusterKey> parse_cluster_key_file(std::string_view text) {
    if (text.substr(0, cluster_key_header.size()) != cluster_key_header) {
        return Error{ErrorCode::bad_key, "does not start with \"DTCALL CLUSTER KEY\" on its own line"};
    }
    std::string_view digits = text.substr(cluster_key_header.size());
    if (digits.size() == digits_size + 1 && digits.back() == '\n') digits.remove_suffix(1);
    else if (digits.size() == digits_size + 2 && digits.substr(digits_size) == "\r\n") digits.remove_suffix(2);
    if (digits.size() != digits_size) {
        return Error{ErrorCode::bad_key, "key must be exactly 96 digits after the header, found " +
                                             std::to_string(digits.size()) + " characters"};
    }
    ClusterKey key;
    for (std::size_t i = 0; i < cluster_key_size; ++i) {
        unsigned value = 0;
        for (std::size_t j = 0; j < 3; ++j) {
            char c = digits[i * 3 + j];
            if (c < '0' || c > '9') {
                return Error{ErrorCode::bad_key,
                             "key character " + std::to_string(i * 3 + j + 1) + " of 96 is not a digit"};
            }
            value = value * 10 + unsigned(c - '0');
        }
        if (value > 255) {
            return Error{ErrorCode::bad_key, "key byte " + std::to_string(i + 1) + " is a triple above 255"};
        }
        key.data()[i] = std::uint8_t(value);
    }
    return key;
}

Status check_owner_only(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return Done{};
    const mode_t readable = S_IRGRP | S_IROTH, writable = S_IWGRP | S_IWOTH;
    if ((st.st_mode & (readable | writable)) == 0) return Done{};
    const char* what = (st.st_mode & readable) == 0   ? "writable"
                       : (st.st_mode & writable) == 0 ? "readable"
                                                      : "readable and writable";
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", unsigned(st.st_mode & 07777));
    return Error{ErrorCode::permission,
                 path + ": " + what + " by group or others (mode " + mode + "); run: chmod 600 " + path};
}

Result<ClusterKey> read_cluster_key_file(const std::string& path) {
    if (auto safe = check_owner_only(path); !safe) return safe.failure();
    auto text = read_bounded(path, max_key_file, "cluster key file");
    if (!text) return text.failure();
    auto key = parse_cluster_key_file(*text);
    wipe(*text);
    if (!key) return Error{key.code(), path + ": " + key.error()};
    return key;
}

Status write_cluster_key_file(const ClusterKey& key, const std::string& path) {
    std::string text = cluster_key_file_text(key);
    Status written = write_new_file(path, text, 0600);
    wipe(text);
    return written;
}

}  // namespace dtcall::cluster
