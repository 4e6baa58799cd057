#include "wire/wire.hpp"

namespace dtcall::wire {
namespace {

bool is_alnum(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

bool all_digits(std::string_view s) {
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return !s.empty();
}

}  // namespace

bool allowed_command_text(std::string_view text) {
    for (char c : text)
        if (!is_alnum(c) && c != '+' && c != '-' && c != '|') return false;
    return true;
}

bool valid_user_name(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    for (char c : name)
        if (!is_alnum(c) && c != '+' && c != '-') return false;
    return true;
}

bool timestamp_in_window(std::string_view ts, std::time_t now, std::time_t window_seconds) {
    if (!all_digits(ts) || ts.size() > 18) return false;
    long long value = 0;
    for (char c : ts) value = value * 10 + (c - '0');
    long long distance = value - static_cast<long long>(now);
    return distance <= window_seconds && -distance <= window_seconds;
}

Parsed parse_command(std::string_view text, std::time_t now, std::time_t window_seconds) {
    Parsed parsed{ParseStatus::ok, {}};
    if (!allowed_command_text(text) || text.empty()) {
        parsed.status = ParseStatus::bad_charset;
        return parsed;
    }
    if (text == "D") {
        parsed.status = ParseStatus::heartbeat;
        return parsed;
    }
    std::vector<std::string>& fields = parsed.command.fields;
    std::size_t start = 0;
    for (;;) {
        std::size_t bar = text.find('|', start);
        std::string_view field = text.substr(start, bar == std::string_view::npos ? bar : bar - start);
        if (field.empty() || fields.size() == max_fields) {
            parsed.status = ParseStatus::bad_fields;
            fields.clear();
            return parsed;
        }
        fields.emplace_back(field);
        if (bar == std::string_view::npos) break;
        start = bar + 1;
    }
    if (fields.size() < min_fields) {
        parsed.status = ParseStatus::bad_fields;
        fields.clear();
        return parsed;
    }
    if (!timestamp_in_window(fields[0], now, window_seconds)) {
        parsed.status = ParseStatus::bad_timestamp;
        fields.clear();
    }
    return parsed;
}

std::string format_message(std::time_t now, std::initializer_list<std::string_view> fields) {
    std::string out = std::to_string(static_cast<long long>(now));
    for (std::string_view f : fields) {
        out += '|';
        out += f;
    }
    return out;
}

Verb verb_of(std::string_view name) {
    if (name == "login1") return Verb::login1;
    if (name == "login2") return Verb::login2;
    if (name == "call") return Verb::call;
    if (name == "accept") return Verb::accept;
    if (name == "passthrough") return Verb::passthrough;
    if (name == "ready") return Verb::ready;
    if (name == "end") return Verb::end;
    return Verb::unknown;
}

bool fields_fit(Verb verb, const Command& command) {
    std::size_t n = command.size();
    switch (verb) {
    case Verb::login1: return n == 3;
    case Verb::login2: return n == 4 || (n == 5 && command.fields[4] == "keepudp");
    case Verb::call:
    case Verb::accept:
    case Verb::ready:
    case Verb::end: return n == 4;
    case Verb::passthrough: return n == 5;
    case Verb::unknown: return false;
    }
    return false;
}

}  // namespace dtcall::wire
