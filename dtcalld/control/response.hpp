// The control socket's answer: one status line, then the body, then the
// server closes the connection.
//   answer = "ok" LF body  /  "error" SP message LF
// Pure; dtcalld writes answers with format_*, dtcall-ctl reads them with
// parse_response.
#pragma once

#include <string>
#include <string_view>

namespace dtcalld::control {

std::string format_ok(std::string_view body);
// The message is made one line (control bytes become '?').
std::string format_error(std::string_view message);

struct Response {
    bool ok = false;
    std::string message;  // an error's message
    std::string body;     // after "ok\n"
};
// False when `text` is not an answer (no status line, or an unknown one).
bool parse_response(std::string_view text, Response& out);

}  // namespace dtcalld::control
