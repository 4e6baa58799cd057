// The client's half of the wire format: pure helpers for what a phone sends
// and how it reads the server's replies. No sockets, no clock (callers pass
// "now"). Shared by Client and, through it, the demo and the tools.
#pragma once

#include "crypto/crypto.hpp"

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dtcall::client_side {

// A server message split at '|'. Unlike commands, replies are not charset
// checked: `prepare` carries a key dump with spaces and a newline. nullopt for
// an empty field, fewer than 2 or more than 5 fields, or a timestamp outside
// the window (the real clients check it too).
std::optional<std::vector<std::string>> parse_reply(std::string_view text, std::time_t now,
                                                    std::time_t window);

// Non-empty [0-9A-Za-z]: what challenges and session keys are made of. A
// server that sends anything else cannot be answered without breaking the
// command syntax.
bool is_token(std::string_view text);

// Handshake step 1: the ephemeral public key sealed to the server (80 bytes).
Bytes hello(const PublicKey& server, const PublicKey& ephemeral);

// UDP registration datagram: crypto_box_seal("ts|sk") to the server.
Bytes registration(const PublicKey& server, std::time_t now, std::string_view session_key);

// Media datagram: secretbox frame under the voice key of be32(seq) + payload.
Bytes media_frame(const std::uint8_t* voice_key, std::uint32_t sequence, std::string_view payload);

struct MediaPacket {
    std::uint32_t sequence = 0;
    std::string payload;
};
std::optional<MediaPacket> open_media_frame(const std::uint8_t* voice_key, const std::uint8_t* data,
                                            std::size_t size);

}  // namespace dtcall::client_side
