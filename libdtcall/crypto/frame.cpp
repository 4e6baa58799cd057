#include "crypto/crypto.hpp"

#include <sodium.h>

#include <cstring>

namespace dtcall {
namespace {

void put_header(Bytes& frame, const Nonce& nonce, std::size_t length) {
    std::memcpy(frame.data(), nonce.data(), nonce_size);
    frame[24] = std::uint8_t(length >> 24);
    frame[25] = std::uint8_t(length >> 16);
    frame[26] = std::uint8_t(length >> 8);
    frame[27] = std::uint8_t(length);
}

// The frame is whole and consistent: its header announces exactly what follows.
bool frame_shape_ok(const std::uint8_t* frame, std::size_t size) {
    if (size <= frame_overhead) return false;
    std::size_t length = (std::size_t(frame[24]) << 24) | (std::size_t(frame[25]) << 16) |
                         (std::size_t(frame[26]) << 8) | std::size_t(frame[27]);
    return length >= 1 && size == frame_overhead + length;
}

}  // namespace

Nonce random_nonce() {
    Nonce nonce;
    randombytes_buf(nonce.data(), nonce.size());
    return nonce;
}

Bytes seal_secret_frame(const std::uint8_t* key, std::string_view plaintext) {
    return seal_secret_frame(key, plaintext, random_nonce());
}

Bytes seal_secret_frame(const std::uint8_t* key, std::string_view plaintext, const Nonce& nonce) {
    Bytes frame(frame_overhead + plaintext.size());
    put_header(frame, nonce, plaintext.size());
    crypto_secretbox_easy(frame.data() + frame_header_size,
                          reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(),
                          nonce.data(), key);
    return frame;
}

Bytes seal_box_frame(const SecretKey& sender, const PublicKey& recipient, std::string_view plaintext) {
    return seal_box_frame(sender, recipient, plaintext, random_nonce());
}

Bytes seal_box_frame(const SecretKey& sender, const PublicKey& recipient, std::string_view plaintext,
                     const Nonce& nonce) {
    Bytes frame(frame_overhead + plaintext.size());
    put_header(frame, nonce, plaintext.size());
    if (crypto_box_easy(frame.data() + frame_header_size,
                        reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(),
                        nonce.data(), recipient.bytes.data(), sender.data()) != 0) {
        return {};  // a low-order public key: nothing sensible to send
    }
    return frame;
}

Bytes seal_box_frame(const SharedKey& key, std::string_view plaintext) {
    return seal_box_frame(key, plaintext, random_nonce());
}

Bytes seal_box_frame(const SharedKey& key, std::string_view plaintext, const Nonce& nonce) {
    return seal_box_frame_precomputed(key.data(), plaintext, nonce);
}

Bytes seal_box_frame_precomputed(const std::uint8_t* shared_key, std::string_view plaintext, const Nonce& nonce) {
    Bytes frame(frame_overhead + plaintext.size());
    put_header(frame, nonce, plaintext.size());
    crypto_box_easy_afternm(frame.data() + frame_header_size,
                            reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(),
                            nonce.data(), shared_key);
    return frame;
}

std::optional<std::string> open_secret_frame(const std::uint8_t* key, const std::uint8_t* frame,
                                             std::size_t size) {
    if (!frame_shape_ok(frame, size)) return std::nullopt;
    std::string plain(size - frame_overhead, '\0');
    if (crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(plain.data()), frame + frame_header_size,
                                   size - frame_header_size, frame, key) != 0) {
        return std::nullopt;
    }
    return plain;
}

std::optional<std::string> open_box_frame(const SecretKey& recipient, const PublicKey& sender,
                                          const std::uint8_t* frame, std::size_t size) {
    if (!frame_shape_ok(frame, size)) return std::nullopt;
    std::string plain(size - frame_overhead, '\0');
    if (crypto_box_open_easy(reinterpret_cast<unsigned char*>(plain.data()), frame + frame_header_size,
                             size - frame_header_size, frame, sender.bytes.data(), recipient.data()) != 0) {
        return std::nullopt;
    }
    return plain;
}

std::optional<std::string> open_box_frame_precomputed(const std::uint8_t* shared_key, const std::uint8_t* frame,
                                                      std::size_t size) {
    if (!frame_shape_ok(frame, size)) return std::nullopt;
    std::string plain(size - frame_overhead, '\0');
    if (crypto_box_open_easy_afternm(reinterpret_cast<unsigned char*>(plain.data()), frame + frame_header_size,
                                     size - frame_header_size, frame, shared_key) != 0) {
        return std::nullopt;
    }
    return plain;
}

Bytes seal_anonymous(const PublicKey& recipient, const std::uint8_t* data, std::size_t size) {
    Bytes sealed(size + crypto_box_SEALBYTES);
    crypto_box_seal(sealed.data(), data, size, recipient.bytes.data());
    return sealed;
}

std::optional<Bytes> open_anonymous(const KeyPair& recipient, const std::uint8_t* data, std::size_t size) {
    if (size < crypto_box_SEALBYTES) return std::nullopt;
    Bytes plain(size - crypto_box_SEALBYTES);
    if (crypto_box_seal_open(plain.data(), data, size, recipient.public_key.bytes.data(),
                             recipient.secret_key.data()) != 0) {
        return std::nullopt;
    }
    return plain;
}

}  // namespace dtcall
