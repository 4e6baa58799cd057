#include "client/protocol.hpp"

#include "wire/wire.hpp"

namespace dtcall::client_side {

std::optional<std::vector<std::string>> parse_reply(std::string_view text, std::time_t now,
                                                    std::time_t window) {
    std::vector<std::string> fields;
    std::size_t start = 0;
    for (;;) {
        std::size_t bar = text.find('|', start);
        std::string_view field = text.substr(start, bar == std::string_view::npos ? bar : bar - start);
        if (field.empty() || fields.size() == wire::max_fields) return std::nullopt;
        fields.emplace_back(field);
        if (bar == std::string_view::npos) break;
        start = bar + 1;
    }
    if (fields.size() < 2 || !wire::timestamp_in_window(fields[0], now, window)) return std::nullopt;
    return fields;
}

bool is_token(std::string_view text) {
    // '|' and the signs are the only characters the command charset allows
    // beyond [0-9A-Za-z]; excluding them keeps a token one field.
    return !text.empty() && wire::allowed_command_text(text) &&
           text.find_first_of("|+-") == std::string_view::npos;
}

Bytes hello(const PublicKey& server, const PublicKey& ephemeral) {
    return seal_anonymous(server, ephemeral.bytes.data(), ephemeral.bytes.size());
}

Bytes registration(const PublicKey& server, std::time_t now, std::string_view session_key) {
    std::string text = std::to_string(static_cast<long long>(now));
    text += '|';
    text += session_key;
    Bytes sealed = seal_anonymous(server, reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
    wipe(text);
    return sealed;
}

Bytes media_frame(const std::uint8_t* voice_key, std::uint32_t sequence, std::string_view payload) {
    std::string plain;
    plain.reserve(4 + payload.size());
    plain += char(sequence >> 24);
    plain += char(sequence >> 16);
    plain += char(sequence >> 8);
    plain += char(sequence);
    plain += payload;
    return seal_secret_frame(voice_key, plain);
}

std::optional<MediaPacket> open_media_frame(const std::uint8_t* voice_key, const std::uint8_t* data,
                                            std::size_t size) {
    auto plain = open_secret_frame(voice_key, data, size);
    if (!plain || plain->size() < 4) return std::nullopt;
    const auto* p = reinterpret_cast<const std::uint8_t*>(plain->data());
    MediaPacket packet;
    packet.sequence = (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) |
                      (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
    packet.payload = plain->substr(4);
    return packet;
}

}  // namespace dtcall::client_side
