// The UDP registration (PROTOCOL.md section 9): the sealed "ts|sk" datagram a
// client sends to make its address its media address, and the ack the server
// answers with (a frame under the user's TCP key holding the server's time).
// Pure: no sockets, no clock (the caller passes "now").
#pragma once

#include "crypto/crypto.hpp"

#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace dtcall::wire {

// crypto_box_seal("ts|sk", server): 118 bytes for a 59-character key. The key
// is not checked, so a test can send a malformed one on purpose.
Bytes registration_datagram(const PublicKey& server, std::time_t now, std::string_view session_key);

// What a registration says. The session key is wiped with it.
struct Registration {
    long long timestamp = 0;
    std::string session_key;

    Registration() = default;
    Registration(Registration&&) = default;
    Registration& operator=(Registration&&) = default;
    ~Registration() { wipe(session_key); }
};

// Opens a registration datagram and checks it as the server must: it unseals
// with the server's key, holds only command characters, exactly two non-empty
// fields, and a timestamp within `window` of `now`. nullopt otherwise.
std::optional<Registration> open_registration(const KeyPair& server, const std::uint8_t* data, std::size_t size,
                                              std::time_t now, std::time_t window);

// The ack: a symmetric frame under the user's TCP key of the time `now`
// (54 bytes for a 10-digit time).
Bytes registration_ack(const std::uint8_t* tcp_key, std::time_t now);
Bytes registration_ack(const std::uint8_t* tcp_key, std::time_t now, const Nonce& nonce);

// The timestamp text of an ack that opens under `tcp_key` and holds a
// timestamp (digits only); nullopt for anything else (media, say). The caller
// checks the window if it wants to (timestamp_in_window).
std::optional<std::string> open_registration_ack(const std::uint8_t* tcp_key, const std::uint8_t* data,
                                                 std::size_t size);

}  // namespace dtcall::wire
