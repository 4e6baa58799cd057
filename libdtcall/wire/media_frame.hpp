// The media payload of PROTOCOL.md section 9, as the clients make it: a
// symmetric frame under the call's voice key of be32(sequence) + Opus bytes.
// Opaque to the server (it relays datagrams whole); clients and tests use it.
// Pure: no sockets, no clock.
#pragma once

#include "crypto/crypto.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dtcall::wire {

Bytes media_frame(const std::uint8_t* voice_key, std::uint32_t sequence, std::string_view payload);

struct MediaPacket {
    std::uint32_t sequence = 0;
    std::string payload;
};
// nullopt unless the frame opens under the voice key and holds a sequence number.
std::optional<MediaPacket> open_media_frame(const std::uint8_t* voice_key, const std::uint8_t* data,
                                            std::size_t size);

}  // namespace dtcall::wire
