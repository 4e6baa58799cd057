// Last line of defence before a log line reaches disk: the library already
// keeps secrets out of its log lines, but a bug there must not put a session
// key on disk, where it would outlive the session by months.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace dtcalld {

// Session keys are 59 characters of [0-9A-Za-z], challenges 200, key blobs are
// long digit strings; nothing an operator needs to read (user names, addresses,
// ports, times) is that long in one unbroken run.
constexpr std::size_t censor_min_run = 32;
constexpr std::string_view censored_text = "[censored]";

// Replaces every run of `censor_min_run` or more characters from [0-9A-Za-z]
// with "[censored]", and every control character with '?' so that one event
// always stays one line.
std::string censor(std::string_view line);

}  // namespace dtcalld
