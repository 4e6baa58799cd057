#include "wire/reply.hpp"

#include "wire/wire.hpp"

namespace dtcall::wire {
namespace {

std::optional<std::string> token_or_nothing(std::optional<std::string> text) {
    if (text && is_token(*text)) return text;
    if (text) wipe(*text);
    return std::nullopt;
}

}  // namespace

void Reply::wipe_fields() {
    for (std::string& f : fields) wipe(f);
}

std::optional<Reply> parse_reply(std::string_view text, std::time_t now, std::time_t window) {
    Reply reply;
    std::vector<std::string>& fields = reply.fields;
    std::size_t start = 0;
    for (;;) {
        std::size_t bar = text.find('|', start);
        std::string_view field = text.substr(start, bar == std::string_view::npos ? bar : bar - start);
        if (field.empty() || fields.size() == max_fields) {
            reply.wipe_fields();
            return std::nullopt;
        }
        fields.emplace_back(field);
        if (bar == std::string_view::npos) break;
        start = bar + 1;
    }
    if (fields.size() < 2 || !timestamp_in_window(fields[0], now, window)) {
        reply.wipe_fields();
        return std::nullopt;
    }
    reply.kind = message_kind(fields[1]);
    return reply;
}

bool is_token(std::string_view text) {
    // '|' and the signs are the only characters the command charset allows
    // beyond [0-9A-Za-z]; excluding them keeps a token one field.
    return !text.empty() && allowed_command_text(text) && text.find_first_of("|+-") == std::string_view::npos;
}

std::optional<std::string> open_challenge(std::string_view blob, const SecretKey& user, const PublicKey& server) {
    auto box = unstringify(blob);
    if (!box) return std::nullopt;
    return token_or_nothing(open_box_frame(user, server, box->data(), box->size()));
}

std::optional<std::string> open_challenge(std::string_view blob, const std::uint8_t* user_server_key) {
    auto box = unstringify(blob);
    if (!box) return std::nullopt;
    return token_or_nothing(open_box_frame_precomputed(user_server_key, box->data(), box->size()));
}

std::optional<SecretKey> open_voice_key(std::string_view blob, const std::uint8_t* callee_caller_key) {
    auto box = unstringify(blob);
    if (!box) return std::nullopt;
    auto text = open_box_frame_precomputed(callee_caller_key, box->data(), box->size());
    if (!text) return std::nullopt;
    std::optional<SecretKey> key;
    if (text->size() == key_size) key.emplace(reinterpret_cast<const std::uint8_t*>(text->data()));
    wipe(*text);
    return key;
}

}  // namespace dtcall::wire
