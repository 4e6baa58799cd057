#include "censor.hpp"

namespace dtcalld {
namespace {

// Not std::isalnum: that one follows the C locale's idea of letters.
bool token_char(char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

bool control_char(char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
}

}  // namespace

std::string censor(std::string_view line) {
    std::string out;
    out.reserve(line.size());
    std::size_t i = 0;
    while (i < line.size()) {
        if (!token_char(line[i])) {
            out += control_char(line[i]) ? '?' : line[i];
            ++i;
            continue;
        }
        std::size_t end = i;
        while (end < line.size() && token_char(line[end])) ++end;
        if (end - i >= censor_min_run) out += censored_text;
        else out.append(line.substr(i, end - i));
        i = end;
    }
    return out;
}

}  // namespace dtcalld
