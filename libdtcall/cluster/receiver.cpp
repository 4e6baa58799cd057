#include "cluster/receiver.hpp"

#include <ctime>

namespace dtcall::cluster {

const char* to_string(Verdict verdict) {
    switch (verdict) {
    case Verdict::accepted: return "accepted";
    case Verdict::malformed: return "malformed";
    case Verdict::forged: return "forged";
    case Verdict::replayed: return "replayed";
    case Verdict::stale: return "stale";
    case Verdict::too_many: return "too_many";
    }
    return "unknown";
}

void ReceiveCounters::count(Verdict v) {
    switch (v) {
    case Verdict::accepted: ++accepted; break;
    case Verdict::malformed: ++malformed; break;
    case Verdict::forged: ++forged; break;
    case Verdict::replayed: ++replayed; break;
    case Verdict::stale: ++stale; break;
    case Verdict::too_many: ++too_many; break;
    }
}

Verdict SequenceWindow::accept(std::uint64_t sequence) {
    if (!any_) {
        any_ = true;
        highest_ = sequence;
        set(sequence);
        return Verdict::accepted;
    }
    if (sequence > highest_) {
        std::uint64_t ahead = sequence - highest_;
        if (ahead >= size) {
            bits_.fill(0);
        } else {
            for (std::uint64_t s = highest_ + 1; s != sequence; ++s) clear(s);
        }
        clear(sequence);
        set(sequence);
        highest_ = sequence;
        return Verdict::accepted;
    }
    if (highest_ - sequence >= size) return Verdict::stale;
    if (seen(sequence)) return Verdict::replayed;
    set(sequence);
    return Verdict::accepted;
}

std::uint64_t initial_sequence() {
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    return std::uint64_t(now.tv_sec) * 1000000000u + std::uint64_t(now.tv_nsec);
}

namespace {

Verdict verdict_of(DecodeError error) {
    return error == DecodeError::bad_tag ? Verdict::forged : Verdict::malformed;
}

}  // namespace

Verdict MediaReceiver::receive(const std::uint8_t* data, std::size_t size, MediaDatagram& out) {
    Verdict v = judge(data, size, out);
    counters_.count(v);
    return v;
}

Verdict MediaReceiver::judge(const std::uint8_t* data, std::size_t size, MediaDatagram& out) {
    MediaDatagram m;
    last_error_ = decode_media(key_, data, size, m);
    if (last_error_ != DecodeError::none) return verdict_of(last_error_);
    auto it = windows_.find(m.sender);
    if (it == windows_.end()) {
        auto floor = floors_.find(m.sender);
        if (floor != floors_.end()) {
            if (m.sequence <= floor->second) return Verdict::stale;
            floors_.erase(floor);
        }
        if (windows_.size() >= max_senders_) return Verdict::too_many;
        it = windows_.emplace(std::string(m.sender), SequenceWindow{}).first;
    }
    Verdict v = it->second.accept(m.sequence);
    if (v == Verdict::accepted) out = m;
    return v;
}

void MediaReceiver::forget(const std::string& sender) {
    auto it = windows_.find(sender);
    if (it == windows_.end()) return;
    if (it->second.any()) {
        if (floors_.size() >= max_senders_) {
            auto lowest = floors_.begin();
            for (auto f = floors_.begin(); f != floors_.end(); ++f)
                if (f->second < lowest->second) lowest = f;
            floors_.erase(lowest);
        }
        floors_[sender] = it->second.highest();
    }
    windows_.erase(it);
}

void ControlReceiver::forget(const std::string& sender) {
    auto it = seen_.find(sender);
    if (it == seen_.end()) return;
    // At most max_senders floors: they are only made from remembered senders.
    Seen& seen = it->second;
    if (!seen.empty()) {
        std::uint64_t newest = std::prev(seen.end())->first;
        seen.erase(seen.begin(), seen.lower_bound(std::make_pair(newest, std::array<std::uint8_t, control_nonce_size>{})));
        floors_[sender] = std::move(seen);
    }
    seen_.erase(it);
}

Verdict ControlReceiver::receive(const std::uint8_t* data, std::size_t size, std::uint64_t now_ms,
                                 ControlMessage& out) {
    Verdict v = judge(data, size, now_ms, out);
    counters_.count(v);
    return v;
}

Verdict ControlReceiver::judge(const std::uint8_t* data, std::size_t size, std::uint64_t now_ms,
                               ControlMessage& out) {
    ControlMessage m;
    last_error_ = decode_control(key_, data, size, m);
    if (last_error_ != DecodeError::none) return verdict_of(last_error_);
    std::uint64_t distance = m.timestamp_ms > now_ms ? m.timestamp_ms - now_ms : now_ms - m.timestamp_ms;
    if (distance > window_ms_) return Verdict::stale;

    std::uint64_t oldest = now_ms > window_ms_ ? now_ms - window_ms_ : 0;
    for (auto f = floors_.begin(); f != floors_.end();)
        f = f->second.begin()->first < oldest ? floors_.erase(f) : std::next(f);
    auto it = seen_.find(m.from);
    if (it == seen_.end()) {
        auto floor = floors_.find(m.from);
        if (floor != floors_.end() && m.timestamp_ms < floor->second.begin()->first) return Verdict::replayed;
        if (seen_.size() >= max_senders_) return Verdict::too_many;
        // Back after being forgotten: what it sent in its newest millisecond stays seen.
        Seen start;
        if (floor != floors_.end()) {
            start = std::move(floor->second);
            floors_.erase(floor);
        }
        it = seen_.emplace(m.from, std::move(start)).first;
    }
    Seen& seen = it->second;
    // Forget what left the window: a replay of it is now stale.
    while (!seen.empty() && seen.begin()->first < oldest) seen.erase(seen.begin());
    auto key = std::make_pair(m.timestamp_ms, m.nonce);
    if (seen.count(key) != 0) return Verdict::replayed;
    if (seen.size() >= max_nonces_) return Verdict::too_many;
    seen.insert(key);
    out = std::move(m);
    return Verdict::accepted;
}

}  // namespace dtcall::cluster
