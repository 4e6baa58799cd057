#include "wire/commands.hpp"

namespace dtcall::wire {

std::string_view name_of(Verb verb) {
    switch (verb) {
    case Verb::login1: return "login1";
    case Verb::login2: return "login2";
    case Verb::call: return "call";
    case Verb::accept: return "accept";
    case Verb::passthrough: return "passthrough";
    case Verb::ready: return "ready";
    case Verb::end: return "end";
    case Verb::unknown: return "";
    }
    return "";
}

Bytes hello(const PublicKey& server, const PublicKey& ephemeral) {
    return seal_anonymous(server, ephemeral.bytes.data(), ephemeral.bytes.size());
}

std::string login1(std::time_t now, std::string_view user) { return format_message(now, {"login1", user}); }

std::string login2(std::time_t now, std::string_view user, std::string_view challenge, bool keepudp) {
    if (keepudp) return format_message(now, {"login2", user, challenge, "keepudp"});
    return format_message(now, {"login2", user, challenge});
}

std::string command(std::time_t now, Verb verb, std::initializer_list<std::string_view> args,
                    std::string_view session_key) {
    std::string text = format_message(now, {name_of(verb)});
    for (std::string_view arg : args) {
        text += '|';
        text += arg;
    }
    text += '|';
    text += session_key;
    return text;
}

std::string voice_key_blob(const SecretKey& caller, const PublicKey& callee, const SecretKey& voice_key) {
    Bytes box = seal_box_frame(caller, callee,
                               std::string_view(reinterpret_cast<const char*>(voice_key.data()), key_size));
    return box.empty() ? std::string() : stringify(box);
}

std::string voice_key_blob(const std::uint8_t* caller_callee_key, const SecretKey& voice_key) {
    Bytes box = seal_box_frame_precomputed(
        caller_callee_key, std::string_view(reinterpret_cast<const char*>(voice_key.data()), key_size), random_nonce());
    return stringify(box);
}

}  // namespace dtcall::wire
