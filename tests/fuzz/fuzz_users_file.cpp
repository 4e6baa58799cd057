// The users file parser.
#include <dtcall/user_directory.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto parsed = dtcall::parse_users_file(text, "users");
    for (const auto& entry : parsed.entries)
        if (entry.user.empty() || entry.key_path.empty()) __builtin_trap();
    return 0;
}
