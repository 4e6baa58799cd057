// The one relay loop: read a batch with recvmmsg, check each datagram's size,
// look its source up, forward or hand it to a fallback, count, send the batch
// with sendmmsg. The event-loop thread (MediaRelay) and each relay thread
// (RelayThread) run this same code and differ only in their Path: how a
// source is looked up (the relay's own routes or a published table), what
// happens to a datagram it cannot route (a registration attempt or a
// hand-off), and how they count (plain or atomic counters).
//
// Also here: the per-direction media figures of a call (FlowCounters), which
// every relaying thread adds to without a lock or a read-modify-write.
#pragma once

#include "datagram_batch.hpp"

#include <dtcall/events.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <ctime>
#include <memory>

#include <event2/event.h>
#include <sys/socket.h>

namespace dtcall {

// A coarse monotonic clock in milliseconds (a few ms of resolution, a fraction
// of the cost of a precise read): read once per batch for the gap figures.
inline std::int64_t coarse_now_ms() {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return std::int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// What one relaying thread saw of one direction of a call (media from one
// user). Only that thread writes it: relaxed loads and stores, no lock prefix.
struct FlowSlot {
    std::atomic<std::uint64_t> packets{0};
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<std::int64_t> last_ms{0};  // 0: no packet yet
    std::atomic<std::int64_t> longest_gap_ms{0};

    void count(std::size_t size, std::int64_t now_ms) {
        packets.store(packets.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        bytes.store(bytes.load(std::memory_order_relaxed) + size, std::memory_order_relaxed);
        std::int64_t last = last_ms.load(std::memory_order_relaxed);
        if (last == now_ms) return;  // the common case within a batch
        if (last != 0 && now_ms - last > longest_gap_ms.load(std::memory_order_relaxed))
            longest_gap_ms.store(now_ms - last, std::memory_order_relaxed);
        last_ms.store(now_ms, std::memory_order_relaxed);
    }
};

// The figures of one user's media: one slot per relaying thread (0 for the
// event-loop thread, 1.. for the relay threads), each on its own cache line,
// summed when asked. A gap is seen by the thread that relayed both packets
// around it; a source the kernel moves to another thread's socket (rare: the
// SO_REUSEPORT group changed) starts afresh there.
class FlowCounters {
public:
    explicit FlowCounters(unsigned slots) : slots_(new Padded[slots ? slots : 1]), count_(slots ? slots : 1) {}
    FlowSlot& slot(unsigned i) { return slots_[i < count_ ? i : 0].slot; }

    MediaFlow total() const {
        MediaFlow flow;
        std::int64_t longest = 0;
        for (unsigned i = 0; i < count_; ++i) {
            const FlowSlot& s = slots_[i].slot;
            flow.packets += s.packets.load(std::memory_order_relaxed);
            flow.bytes += s.bytes.load(std::memory_order_relaxed);
            longest = std::max<std::int64_t>(longest, s.longest_gap_ms.load(std::memory_order_relaxed));
        }
        flow.longest_gap = std::chrono::milliseconds(longest);
        return flow;
    }

private:
    struct alignas(64) Padded {
        FlowSlot slot;
    };
    std::unique_ptr<Padded[]> slots_;
    unsigned count_;
};

// Where a routed datagram goes.
struct RelayTarget {
    const sockaddr* address;
    socklen_t length;
    int fd;          // the socket it leaves from
    FlowSlot* flow;  // the sender's figures, this thread's slot
    const NodeWrap* wrap = nullptr;  // not null: to another node (cluster), wrapped
};

// What a batch cost; the Path adds it to its counters.
struct BatchCounts {
    std::uint64_t relayed = 0;
    std::uint64_t bytes = 0;
    std::uint64_t too_large = 0;  // over max_datagram, or cut short by the socket
    std::uint64_t empty = 0;      // zero bytes: junk
    std::uint64_t wrapped = 0;    // of `relayed`, sent on to another node
    std::uint64_t unwrappable = 0;  // for another node, too large once wrapped (dropped)
};

// Is a datagram of `size` bytes one to look at? The one size rule of the relay.
enum class SizeCheck { ok, empty, too_large };
inline SizeCheck check_size(std::size_t size, bool truncated, std::size_t max_datagram) {
    if (size == 0) return SizeCheck::empty;
    if (size > max_datagram || truncated) return SizeCheck::too_large;
    return SizeCheck::ok;
}

// Up to `batches` recvmmsg calls on `fd`. Path must provide:
//   void begin_batch();                           // before looking at a batch (clock, table)
//   bool find(const sockaddr* from, RelayTarget&);  // false: no route
//   void fallback(DatagramBatch&, unsigned i);    // a datagram with no route
//   void counted(const BatchCounts&);             // before the batch is sent
//   void refused(unsigned n);                     // sends the kernel refused (had been counted relayed)
//   std::int64_t now_ms() const;                  // the batch's time
// Returns true when the socket is (very likely) drained: a batch came back
// short. False: every round was full, more is waiting.
template <class Path>
bool relay_batches(DatagramBatch& batch, int fd, std::size_t max_datagram, int batches, Path& path) {
    for (int round = 0; round < batches; ++round) {
        unsigned received = batch.receive(fd);
        if (received == 0) return true;
        path.begin_batch();
        std::int64_t now = path.now_ms();
        BatchCounts counts;
        for (unsigned i = 0; i < received; ++i) {
            std::size_t size = batch.length(i);
            switch (check_size(size, batch.truncated(i), max_datagram)) {
            case SizeCheck::ok: break;
            case SizeCheck::empty: ++counts.empty; continue;
            case SizeCheck::too_large: ++counts.too_large; continue;
            }
            RelayTarget to;
            if (!path.find(batch.from(i), to)) {
                path.fallback(batch, i);
                continue;
            }
            if (!to.wrap) {
                batch.forward(i, to.address, to.length, to.fd);
            } else if (batch.forward_wrapped(i, *to.wrap, to.address, to.length, to.fd)) {
                ++counts.wrapped;
            } else {
                ++counts.unwrappable;
                continue;
            }
            to.flow->count(size, now);
            ++counts.relayed;
            counts.bytes += size;
        }
        // Counted before the datagrams leave, so that whoever receives one
        // and then reads the counters sees it counted.
        path.counted(counts);
        if (unsigned refused = batch.flush()) path.refused(refused);
        if (received < DatagramBatch::size) return true;
    }
    return false;
}

// After relay_batches() on a socket watched by `ev` (EV_READ | EV_PERSIST):
// while the socket has more to read it is taken out of the epoll set and the
// event is made active by hand, once per loop turn, so the rest of the loop
// still runs between rounds. An fd in an epoll set costs the kernel a wakeup
// callback, under a lock, for every datagram that arrives; a relay busy
// reading needs none (measured: about 5 % of the relay's CPU at saturation).
// Back in the set once a batch comes back short.
inline void keep_reading(event* ev, bool& in_epoll, bool drained) {
    if (drained) {
        if (!in_epoll) {
            event_add(ev, nullptr);
            in_epoll = true;
        }
        return;
    }
    if (in_epoll) {
        event_del(ev);
        in_epoll = false;
    }
    event_active(ev, EV_READ, 0);
}

}  // namespace dtcall
