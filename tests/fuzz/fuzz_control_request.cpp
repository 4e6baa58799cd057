// The control socket's request line (dtcalld/control/request.hpp): any bytes
// give a request or a one-line error, and what parses survives a round trip
// through format_request. dtcall-ctl's answer reader gets the same bytes.
#include "control/request.hpp"
#include "control/response.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto parsed = dtcalld::control::parse_request(text);
    if (!parsed) {
        if (parsed.error().find('\n') != std::string::npos) __builtin_trap();
    } else {
        std::string line = dtcalld::control::format_request(*parsed);
        if (line.size() > dtcalld::control::max_request_size) __builtin_trap();
        auto again = dtcalld::control::parse_request(std::string_view(line).substr(0, line.size() - 1));
        if (!again || again->command != parsed->command || again->user != parsed->user ||
            again->json != parsed->json || again->drain_limit != parsed->drain_limit)
            __builtin_trap();
    }
    dtcalld::control::Response response;
    dtcalld::control::parse_response(text, response);
    return 0;
}
