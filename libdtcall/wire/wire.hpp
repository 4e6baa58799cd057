// The byte and text format of the command channel (PROTOCOL.md sections 2, 3
// and 5): an incremental frame decoder and the `ts|name|...` command codec.
// Pure: no sockets, no clock (the caller passes "now"), no libevent.
#pragma once

#include "crypto/crypto.hpp"

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dtcall::wire {

// --- frame decoding -------------------------------------------------------

// Reassembles frames from a byte stream: bytes go in as they arrive (split or
// coalesced), whole frames come out. It never allocates what a header merely
// announces: a frame whose plaintext length is 0 or above `max_plaintext`
// puts the decoder into a failed state and the connection should be closed.
class FrameDecoder {
public:
    explicit FrameDecoder(std::size_t max_plaintext) : max_plaintext_(max_plaintext) {}

    enum class Status { need_more, frame, too_large, empty_frame };

    // Appends bytes. Feed at most a few KiB at a time and drain with next().
    void feed(const std::uint8_t* data, std::size_t size);
    // Takes the next whole frame into `frame` (header included).
    Status next(Bytes& frame);
    // The plaintext limit can change once a connection is authenticated.
    void set_max_plaintext(std::size_t max) { max_plaintext_ = max; }
    std::size_t buffered() const { return buffer_.size() - start_; }

private:
    std::size_t max_plaintext_;
    Bytes buffer_;
    std::size_t start_ = 0;
};

// Plaintext length announced by a frame header (bytes 24..27, big-endian).
std::uint32_t announced_length(const std::uint8_t* header);

// --- commands -------------------------------------------------------------

constexpr std::size_t min_fields = 3;
constexpr std::size_t max_fields = 5;

// True for the characters a decrypted command may hold: 0-9 A-Z a-z + - |
bool allowed_command_text(std::string_view text);
// True for a user name the protocol can carry (non-empty, [0-9A-Za-z+-]).
bool valid_user_name(std::string_view name);

struct Command {
    std::vector<std::string> fields;  // fields[0] = ts, fields[1] = name
    const std::string& name() const { return fields[1]; }
    // The session key is always the last field.
    const std::string& last() const { return fields.back(); }
    std::size_t size() const { return fields.size(); }
};

enum class ParseStatus {
    ok,
    heartbeat,       // "D": ignore, no reply
    bad_charset,     // dropped silently
    bad_fields,      // empty field, fewer than 3 or more than 5: dropped
    bad_timestamp,   // not digits, or outside the window: dropped silently
};

struct Parsed {
    ParseStatus status;
    Command command;
};

// Applies the checks of PROTOCOL.md section 5, in order, to decrypted text.
Parsed parse_command(std::string_view text, std::time_t now, std::time_t window_seconds);

// True when `ts` is all digits (at most 19) and within [now - window, now + window].
bool timestamp_in_window(std::string_view ts, std::time_t now, std::time_t window_seconds);

// "ts|a|b|c": joins the server's timestamp and fields.
std::string format_message(std::time_t now, std::initializer_list<std::string_view> fields);

// The command names of PROTOCOL.md section 5, and how many fields each takes.
enum class Verb { login1, login2, call, accept, passthrough, ready, end, unknown };
Verb verb_of(std::string_view name);
// Field-count rule per command (D6/D7): login1 3; login2 4, or 5 with
// "keepudp"; call/accept/ready/end 4; passthrough 5.
bool fields_fit(Verb verb, const Command& command);

}  // namespace dtcall::wire
