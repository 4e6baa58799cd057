// Refuses a command frame seen before on the same connection. Frames carry a
// random nonce and a timestamp: the guard remembers the nonces of the last
// `capacity` frames and refuses any frame older than the newest evicted one or
// more than `window` seconds older than the newest seen, so a replay is either
// remembered or too old. Memory: nothing until the first frame, then at most
// `capacity` entries of 16 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <vector>

namespace dtcall {

class ReplayGuard {
public:
    explicit ReplayGuard(std::size_t capacity) : capacity_(capacity ? capacity : 1) {}
    // True (and remembered) for a fresh frame; false for a replay or a frame
    // too far in the past.
    bool fresh(const std::uint8_t* nonce, long long timestamp, std::time_t window);

private:
    struct Seen {
        std::uint64_t nonce;
        long long timestamp;
    };
    std::size_t capacity_;
    std::vector<Seen> seen_;  // a ring once full; next_ is the oldest
    std::size_t next_ = 0;
    long long newest_ = 0;
    long long floor_ = 0;  // frames at or below this are refused
};

}  // namespace dtcall
