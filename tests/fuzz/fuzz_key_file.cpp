// Key-file text and the stringify codec.
#include "crypto/crypto.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto pub = dtcall::parse_public_key_file(text);
    if (pub && dtcall::public_key_file_text(*pub).size() != 114) __builtin_trap();
    (void)dtcall::parse_private_key_file(text);
    auto bytes = dtcall::unstringify(text);
    if (bytes && dtcall::stringify(*bytes) != text) __builtin_trap();
    return 0;
}
