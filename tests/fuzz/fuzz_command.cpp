// Decrypted command text: parsing, field counts, timestamps.
#include "wire/wire.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto parsed = dtcall::wire::parse_command(text, 1700000000, 300);
    if (parsed.status == dtcall::wire::ParseStatus::ok) {
        auto verb = dtcall::wire::verb_of(parsed.command.name());
        (void)dtcall::wire::fields_fit(verb, parsed.command);
        (void)parsed.command.last();
    }
    (void)dtcall::wire::valid_user_name(text);
    return 0;
}
