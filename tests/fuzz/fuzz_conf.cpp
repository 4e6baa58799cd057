// dtcalld's conf parser: any text gives a value or a one-line error.
#include "conf_file.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto parsed = dtcalld::parse_conf(text, "dtcalld.conf");
    if (!parsed && parsed.error().find('\n') != std::string::npos) __builtin_trap();
    return 0;
}
