#include "response.hpp"

namespace dtcalld::control {

std::string format_ok(std::string_view body) { return "ok\n" + std::string(body); }

std::string format_error(std::string_view message) {
    std::string out = "error ";
    for (char c : message) {
        auto u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7f) ? '?' : c;
    }
    return out + "\n";
}

bool parse_response(std::string_view text, Response& out) {
    std::size_t eol = text.find('\n');
    if (eol == std::string_view::npos) return false;
    std::string_view status = text.substr(0, eol);
    if (status == "ok") {
        out.ok = true;
        out.body = std::string(text.substr(eol + 1));
        return true;
    }
    if (status.rfind("error ", 0) == 0 && status.size() > 6) {
        out.ok = false;
        out.message = std::string(status.substr(6));
        return true;
    }
    return false;
}

}  // namespace dtcalld::control
