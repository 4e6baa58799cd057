// Accepting what other nodes send (internal): decode, authenticate, then
// reject replays, counting every drop by its reason. Pure: the caller passes
// the time; no sockets.
//
// Media: each sender numbers its datagrams; a receiver keeps, per sender, the
// highest number seen and which of the 1024 before it arrived (the IPsec /
// WireGuard sliding window), so reordering within the window is fine and a
// copy or anything older is dropped. A node starts its counter at the wall
// clock in nanoseconds (initial_sequence), so a restarted node is ahead of
// anything it sent before without any state on disk (it would need to send
// more than 10^9 datagrams a second to catch up with the clock).
//
// Control: the timestamp must be within `window` of the receiver's clock and
// the (sender, nonce) pair new within that window; pairs are forgotten once
// their timestamp leaves the window (a replay of them is then stale anyway).
//
// Memory is bounded: at most max_senders senders (an authenticated message
// from one more is dropped as too_many), and for control at most
// max_nonces_per_sender remembered nonces each. forget(sender) frees a
// sender's place (a node that left or was lost), keeping only a floor: its
// newest timestamp (control, until that leaves the window) or sequence number
// (media, at most max_senders floors, the lowest dropped first), so what it
// sent before is not accepted again; a restarted sender is past the floor.
#pragma once

#include "cluster/messages.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>

namespace dtcall::cluster {

enum class Verdict {
    accepted,
    malformed,  // did not decode (DecodeError other than bad_tag)
    forged,     // bad_tag
    replayed,   // authentic but seen before
    stale,      // authentic but outside the window (too old, or a timestamp too far from now)
    too_many,   // authentic, but no room to remember its sender or nonce
};
const char* to_string(Verdict verdict);

struct ReceiveCounters {
    std::uint64_t accepted = 0, malformed = 0, forged = 0, replayed = 0, stale = 0, too_many = 0;
    void count(Verdict v);
};

// One sender's sliding window over sequence numbers.
class SequenceWindow {
public:
    static constexpr std::uint64_t size = 1024;
    // accepted, replayed (seen) or stale (older than the window).
    Verdict accept(std::uint64_t sequence);
    bool any() const { return any_; }
    std::uint64_t highest() const { return highest_; }

private:
    bool seen(std::uint64_t s) const { return (bits_[(s % size) / 64] >> (s % 64)) & 1u; }
    void set(std::uint64_t s) { bits_[(s % size) / 64] |= std::uint64_t(1) << (s % 64); }
    void clear(std::uint64_t s) { bits_[(s % size) / 64] &= ~(std::uint64_t(1) << (s % 64)); }
    bool any_ = false;
    std::uint64_t highest_ = 0;
    std::array<std::uint64_t, size / 64> bits_{};
};

// The first sequence number a node sends with: CLOCK_REALTIME in ns.
std::uint64_t initial_sequence();

class MediaReceiver {
public:
    explicit MediaReceiver(const ClusterKey& media_key, std::size_t max_senders = 256)
        : key_(media_key), max_senders_(max_senders) {}
    // On accepted, `out` views into data.
    Verdict receive(const std::uint8_t* data, std::size_t size, MediaDatagram& out);
    const ReceiveCounters& counters() const { return counters_; }
    DecodeError last_error() const { return last_error_; }
    void forget(const std::string& sender);
    std::size_t senders() const { return windows_.size(); }

private:
    Verdict judge(const std::uint8_t* data, std::size_t size, MediaDatagram& out);
    ClusterKey key_;
    std::size_t max_senders_;
    std::map<std::string, SequenceWindow, std::less<>> windows_;
    std::map<std::string, std::uint64_t, std::less<>> floors_;  // forgotten senders' highest sequence
    ReceiveCounters counters_;
    DecodeError last_error_ = DecodeError::none;
};

class ControlReceiver {
public:
    explicit ControlReceiver(const ClusterKey& control_key, std::uint64_t window_ms = 30000,
                             std::size_t max_senders = 256, std::size_t max_nonces_per_sender = 65536)
        : key_(control_key), window_ms_(window_ms), max_senders_(max_senders), max_nonces_(max_nonces_per_sender) {}
    Verdict receive(const std::uint8_t* data, std::size_t size, std::uint64_t now_ms, ControlMessage& out);
    const ReceiveCounters& counters() const { return counters_; }
    DecodeError last_error() const { return last_error_; }
    void forget(const std::string& sender);
    std::size_t senders() const { return seen_.size(); }

private:
    using Seen = std::set<std::pair<std::uint64_t, std::array<std::uint8_t, control_nonce_size>>>;
    Verdict judge(const std::uint8_t* data, std::size_t size, std::uint64_t now_ms, ControlMessage& out);
    ClusterKey key_;
    std::uint64_t window_ms_;
    std::size_t max_senders_;
    std::size_t max_nonces_;
    std::map<std::string, Seen, std::less<>> seen_;
    // Forgotten senders: the nonces of their newest timestamp, until it leaves the window.
    std::map<std::string, Seen, std::less<>> floors_;
    ReceiveCounters counters_;
    DecodeError last_error_ = DecodeError::none;
};

}  // namespace dtcall::cluster
