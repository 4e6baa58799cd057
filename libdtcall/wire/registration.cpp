#include "wire/registration.hpp"

#include "wire/wire.hpp"

namespace dtcall::wire {

Bytes registration_datagram(const PublicKey& server, std::time_t now, std::string_view session_key) {
    std::string text = std::to_string(static_cast<long long>(now));
    text += '|';
    text += session_key;
    Bytes sealed = seal_anonymous(server, reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
    wipe(text);
    return sealed;
}

std::optional<Registration> open_registration(const KeyPair& server, const std::uint8_t* data, std::size_t size,
                                              std::time_t now, std::time_t window) {
    auto plain = open_anonymous(server, data, size);
    if (!plain) return std::nullopt;
    std::string text(plain->begin(), plain->end());
    wipe(*plain);
    std::size_t bar = text.find('|');
    bool shaped = allowed_command_text(text) && bar != std::string::npos && bar > 0 && bar + 1 < text.size() &&
                  text.find('|', bar + 1) == std::string::npos;
    if (!shaped || !timestamp_in_window(std::string_view(text).substr(0, bar), now, window)) {
        wipe(text);
        return std::nullopt;
    }
    Registration registration;
    registration.timestamp = std::stoll(text.substr(0, bar));
    registration.session_key = text.substr(bar + 1);
    wipe(text);
    return registration;
}

Bytes registration_ack(const std::uint8_t* tcp_key, std::time_t now) {
    return seal_secret_frame(tcp_key, std::to_string(static_cast<long long>(now)));
}

Bytes registration_ack(const std::uint8_t* tcp_key, std::time_t now, const Nonce& nonce) {
    return seal_secret_frame(tcp_key, std::to_string(static_cast<long long>(now)), nonce);
}

std::optional<std::string> open_registration_ack(const std::uint8_t* tcp_key, const std::uint8_t* data,
                                                 std::size_t size) {
    auto text = open_secret_frame(tcp_key, data, size);
    if (!text || text->empty() || text->size() > 18 || text->find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
    return text;
}

}  // namespace dtcall::wire
