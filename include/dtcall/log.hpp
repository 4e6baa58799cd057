// Where the library's log lines go. The library never writes to stderr or a
// file itself; it hands each line to the embedder's sink.
#pragma once

#include <dtcall/export.hpp>

#include <functional>
#include <string>

namespace dtcall {

enum class LogLevel { debug, info, warning, error };
DTCALL_API const char* to_string(LogLevel level);  // "debug", "info", "warning", "error"
// One line per event, already censored: the library never passes session
// keys, challenges, TCP keys or key blobs to the log. Called on the thread
// that runs the Server's or Client's event_base.
using LogSink = std::function<void(LogLevel, const std::string& line)>;

}  // namespace dtcall
