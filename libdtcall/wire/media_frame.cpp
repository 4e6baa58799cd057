#include "wire/media_frame.hpp"

namespace dtcall::wire {

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

}  // namespace dtcall::wire
