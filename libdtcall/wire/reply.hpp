// Reading what the server sends, on the client side (PROTOCOL.md sections 6,
// 7 and 10): a reply split into fields and named, the login1resp challenge,
// and the tokens (challenge, session key) a client may send back.
// Pure: no sockets, no clock (the caller passes "now").
#pragma once

#include "crypto/crypto.hpp"
#include "wire/messages.hpp"

#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dtcall::wire {

// A server message split at '|'. Unlike commands, replies are not charset
// checked: `prepare` carries a key dump with spaces and a newline.
struct Reply {
    std::optional<MessageKind> kind;  // nullopt: a name the protocol does not have
    std::vector<std::string> fields;  // fields[0] = ts, fields[1] = name
    const std::string& name() const { return fields[1]; }
    std::size_t size() const { return fields.size(); }
    bool is(MessageKind k, std::size_t field_count) const { return kind == k && fields.size() == field_count; }
    // Fields may hold a session key or a challenge.
    void wipe_fields();
};

// nullopt for an empty field, fewer than 2 or more than 5 fields, or a
// timestamp outside the window (the real clients check it too).
std::optional<Reply> parse_reply(std::string_view text, std::time_t now, std::time_t window);

// Non-empty [0-9A-Za-z]: what challenges and session keys are made of. A
// server that sends anything else cannot be answered without breaking the
// command syntax.
bool is_token(std::string_view text);

// The challenge inside a login1resp blob: unstringified, opened from the
// server to the user, and a token. nullopt otherwise (almost always a wrong
// user key).
std::optional<std::string> open_challenge(std::string_view blob, const SecretKey& user, const PublicKey& server);
// The same with the user-server key precomputed (crypto_box_beforenm).
std::optional<std::string> open_challenge(std::string_view blob, const std::uint8_t* user_server_key);

// The voice key in a `direct` blob (the callee's side of voice_key_blob),
// with the callee-caller key precomputed; nullopt unless it opens to 32 bytes.
std::optional<SecretKey> open_voice_key(std::string_view blob, const std::uint8_t* callee_caller_key);

}  // namespace dtcall::wire
