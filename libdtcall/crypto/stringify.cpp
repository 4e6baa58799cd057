#include "crypto/crypto.hpp"

namespace dtcall {

std::string stringify(const std::uint8_t* data, std::size_t size) {
    std::string out(size * 3, '0');
    for (std::size_t i = 0; i < size; ++i) {
        out[i * 3] = char('0' + data[i] / 100);
        out[i * 3 + 1] = char('0' + data[i] / 10 % 10);
        out[i * 3 + 2] = char('0' + data[i] % 10);
    }
    return out;
}

std::optional<Bytes> unstringify(std::string_view digits) {
    if (digits.size() % 3 != 0) return std::nullopt;
    Bytes out(digits.size() / 3);
    for (std::size_t i = 0; i < out.size(); ++i) {
        unsigned value = 0;
        for (std::size_t j = 0; j < 3; ++j) {
            char c = digits[i * 3 + j];
            if (c < '0' || c > '9') return std::nullopt;
            value = value * 10 + unsigned(c - '0');
        }
        if (value > 255) return std::nullopt;
        out[i] = std::uint8_t(value);
    }
    return out;
}

}  // namespace dtcall
