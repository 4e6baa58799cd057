// What the server sends (PROTOCOL.md section 6): the message kinds, the text
// of each, and the pacing rule that goes with them. The router's notices are
// turned into messages here, so the router and the session never spell a
// message name. Pure: no sockets, no clock (the caller passes "now").
#pragma once

#include "crypto/crypto.hpp"

#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dtcall::wire {

// Every message of PROTOCOL.md section 6.
enum class MessageKind { login1resp, login2resp, invalid, available, incoming, prepare, direct, start, end };

// The message's name on the wire ("login1resp", ...).
std::string_view name_of(MessageKind kind);
// The kind a name stands for; nullopt for a name the protocol does not have.
std::optional<MessageKind> message_kind(std::string_view name);

// What a client's next message must hold to show it read a frame of ours
// (clients read one frame per read(), see PROTOCOL.md section 3). Frames
// without such proof are paced by time alone.
enum class ReadProof {
    none,         // only time tells
    any_frame,    // the handshake reply: any frame under the TCP key
    challenge,    // login1resp: a login2 with the right challenge
    session_key,  // login2resp: a command carrying the new session key
};
ReadProof read_proof(MessageKind kind);

// The router's notices (the messages of a call), for the router to name
// without knowing their text.
enum class NoticeKind { available, incoming, prepare, direct, start, end };
MessageKind message_kind(NoticeKind kind);

// A message before it is stamped: its kind and the fields after the name.
struct Message {
    MessageKind kind;
    std::vector<std::string> args;
};

// "ts|name|args...": the text of a message sent at `now`.
std::string format(std::time_t now, const Message& message);

// The message a notice becomes, for the user being told. `other` is the peer
// it names; `blob` is the passthrough blob (direct only); `other_key` is the
// peer's public key, dumped in key-file form (prepare only; an unknown key
// leaves the field empty).
Message notice_message(NoticeKind kind, std::string_view other, std::string_view blob,
                       const std::optional<PublicKey>& other_key);

// The login1resp blob: the challenge boxed from the server to the user,
// stringified (PROTOCOL.md section 6).
std::string challenge_blob(const SharedKey& server_to_user, std::string_view challenge);
std::string challenge_blob(const SharedKey& server_to_user, std::string_view challenge, const Nonce& nonce);

}  // namespace dtcall::wire
