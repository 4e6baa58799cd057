// Building what a client sends (PROTOCOL.md section 5): the handshake hello,
// login1/login2, the session-keyed commands and the heartbeat. The server's
// side of the same text (parsing, checks) is in wire.hpp.
// Pure: no sockets, no clock (the caller passes "now").
#pragma once

#include "crypto/crypto.hpp"
#include "wire/wire.hpp"

#include <ctime>
#include <initializer_list>
#include <string>
#include <string_view>

namespace dtcall::wire {

// The heartbeat: the single character D, sent encrypted like any command.
constexpr std::string_view heartbeat = "D";

// The command's name on the wire ("login1", ...); "" for Verb::unknown.
std::string_view name_of(Verb verb);

// Handshake step 1: the ephemeral public key sealed to the server (80 bytes, raw).
Bytes hello(const PublicKey& server, const PublicKey& ephemeral);

// "ts|login1|user".
std::string login1(std::time_t now, std::string_view user);
// "ts|login2|user|challenge", with "|keepudp" to keep a call across a reconnect.
std::string login2(std::time_t now, std::string_view user, std::string_view challenge, bool keepudp);
// "ts|verb|args...|sk": call/accept/ready/end take the peer, passthrough the
// peer and the blob.
std::string command(std::time_t now, Verb verb, std::initializer_list<std::string_view> args,
                    std::string_view session_key);

// The passthrough blob: the voice key boxed from caller to callee, stringified.
// Empty when the callee's key is unusable (X25519 refuses it).
std::string voice_key_blob(const SecretKey& caller, const PublicKey& callee, const SecretKey& voice_key);
// The same with the caller-callee key precomputed (crypto_box_beforenm).
std::string voice_key_blob(const std::uint8_t* caller_callee_key, const SecretKey& voice_key);

}  // namespace dtcall::wire
