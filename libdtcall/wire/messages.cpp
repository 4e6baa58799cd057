#include "wire/messages.hpp"

namespace dtcall::wire {

std::string_view name_of(MessageKind kind) {
    switch (kind) {
    case MessageKind::login1resp: return "login1resp";
    case MessageKind::login2resp: return "login2resp";
    case MessageKind::invalid: return "invalid";
    case MessageKind::available: return "available";
    case MessageKind::incoming: return "incoming";
    case MessageKind::prepare: return "prepare";
    case MessageKind::direct: return "direct";
    case MessageKind::start: return "start";
    case MessageKind::end: return "end";
    }
    return "invalid";
}

std::optional<MessageKind> message_kind(std::string_view name) {
    for (MessageKind kind : {MessageKind::login1resp, MessageKind::login2resp, MessageKind::invalid,
                             MessageKind::available, MessageKind::incoming, MessageKind::prepare,
                             MessageKind::direct, MessageKind::start, MessageKind::end}) {
        if (name_of(kind) == name) return kind;
    }
    return std::nullopt;
}

ReadProof read_proof(MessageKind kind) {
    switch (kind) {
    case MessageKind::login1resp: return ReadProof::challenge;
    case MessageKind::login2resp: return ReadProof::session_key;
    default: return ReadProof::none;
    }
}

MessageKind message_kind(NoticeKind kind) {
    switch (kind) {
    case NoticeKind::available: return MessageKind::available;
    case NoticeKind::incoming: return MessageKind::incoming;
    case NoticeKind::prepare: return MessageKind::prepare;
    case NoticeKind::direct: return MessageKind::direct;
    case NoticeKind::start: return MessageKind::start;
    case NoticeKind::end: return MessageKind::end;
    }
    return MessageKind::end;
}

std::string format(std::time_t now, const Message& message) {
    std::string out = std::to_string(static_cast<long long>(now));
    out += '|';
    out += name_of(message.kind);
    for (const std::string& arg : message.args) {
        out += '|';
        out += arg;
    }
    return out;
}

Message notice_message(NoticeKind kind, std::string_view other, std::string_view blob,
                       const std::optional<PublicKey>& other_key) {
    Message message{message_kind(kind), {}};
    switch (kind) {
    case NoticeKind::prepare:
        // Both clients take the 96 digits after the key file's header.
        message.args = {other_key ? public_key_file_text(*other_key) : std::string(), std::string(other)};
        break;
    case NoticeKind::direct: message.args = {std::string(blob), std::string(other)}; break;
    default: message.args = {std::string(other)}; break;
    }
    return message;
}

std::string challenge_blob(const SharedKey& server_to_user, std::string_view challenge) {
    return stringify(seal_box_frame(server_to_user, challenge));
}

std::string challenge_blob(const SharedKey& server_to_user, std::string_view challenge, const Nonce& nonce) {
    return stringify(seal_box_frame(server_to_user, challenge, nonce));
}

}  // namespace dtcall::wire
