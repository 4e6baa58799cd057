// One optional relay thread (Config::media_threads): its own event_base and
// one SO_REUSEPORT socket per listen address, so the kernel spreads peers
// over the event-loop thread's sockets and these by their address. It
// forwards what the published ForwardTable knows; everything else
// (registrations, media the table does not know yet) goes to the event-loop
// thread through a bounded hand-off queue, since only that thread may touch
// sessions and the router.
#pragma once

#include "cluster/messages.hpp"
#include "datagram_batch.hpp"
#include "forward_table.hpp"
#include "source_limiter.hpp"

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include <sys/socket.h>

struct event;
struct event_base;

namespace dtcall {

// A datagram the event-loop thread must look at: a registration, or media
// of a call the thread's table does not know yet (it is rebuilt at most so
// often). Up to a typical MTU; a bigger one the table cannot route is dropped.
struct Handoff {
    // A client's datagram up to a typical MTU, also when another node
    // wrapped it (the node leg on the media port).
    static constexpr std::size_t max_size = 1500 + cluster::media_overhead(cluster::max_name_size, cluster::max_name_size);
    std::uint8_t data[max_size];
    std::size_t size;
    sockaddr_storage from;
    socklen_t from_length;
    unsigned socket_index;
    // Not a datagram: the source just went over the unregistered rate (for
    // the observers' limit_hit, once per window per source).
    bool limit_hit;
};

class HandoffQueue {
public:
    static constexpr std::size_t capacity = 256;
    HandoffQueue() { items_.reserve(capacity); }
    // False when full (the datagram is dropped). `was_empty` tells the caller
    // to wake the event-loop thread; later pushes ride on that wake-up.
    bool push(const std::uint8_t* data, std::size_t size, const sockaddr* from, int from_length,
              unsigned socket_index, bool& was_empty, bool limit_hit = false);
    // Everything queued, swapped into `out` (whose old contents are dropped).
    void take(std::vector<Handoff>& out);

private:
    std::mutex mutex_;
    std::vector<Handoff> items_;
};

class RelayThread {
public:
    // Each written by this thread only. Dropped datagrams are the sum of the
    // three drop kinds (what it hands over is counted by the event-loop thread).
    struct Counters {
        std::atomic<std::uint64_t> relayed_packets{0};
        std::atomic<std::uint64_t> relayed_bytes{0};
        std::atomic<std::uint64_t> too_large{0};     // over max_datagram, or truncated
        std::atomic<std::uint64_t> unroutable{0};    // empty, not hand-off-able, queue full, refused by the kernel
        std::atomic<std::uint64_t> rate_limited{0};  // unknown sources over the unregistered rate
        std::atomic<std::uint64_t> limit_hits{0};    // sources that went over it (once per window each)
        std::atomic<std::uint64_t> node_sent{0};     // of relayed_packets, wrapped for another node
        std::atomic<std::uint64_t> node_dropped{0};  // for another node, too large once wrapped
    };

    // Takes `fds` (one per listen address, in the same order as the
    // event-loop thread's); `wake_fd` is an eventfd the event-loop thread
    // watches for hand-offs. `unregistered_per_second`: what one source the
    // table does not know may hand over (Config::unregistered_packets_per_second),
    // so one flooding source cannot fill the queue for everybody else.
    // `flow_slot`: this thread's slot in every FlowCounters (1 + its index).
    RelayThread(std::vector<int> fds, const ForwardTablePublication& table, std::size_t max_datagram,
                double unregistered_per_second, int wake_fd, unsigned flow_slot);
    ~RelayThread();  // stops and joins the thread, closes the sockets
    RelayThread(const RelayThread&) = delete;
    RelayThread& operator=(const RelayThread&) = delete;

    bool start();  // false when the thread or its event_base cannot be made
    HandoffQueue& handoffs() { return handoffs_; }
    const Counters& counters() const { return counters_; }

private:
    struct Watch {
        RelayThread* thread;
        int fd;
        unsigned index;  // in fds_: the listen address
        event* ev;
        bool in_epoll = true;  // see keep_reading()
    };
    static void on_readable(int fd, short, void* arg);
    static void on_stop(int fd, short, void* arg);
    struct Path;
    bool read_batches(int fd, unsigned socket_index);  // true: drained
    void hand_off(DatagramBatch& batch, unsigned i, unsigned socket_index);

    std::vector<int> fds_;
    ForwardTablePublication::Reader table_;
    std::size_t max_datagram_;
    int wake_fd_;
    unsigned flow_slot_;
    int stop_fd_ = -1;
    event_base* base_ = nullptr;
    std::vector<Watch> watches_;
    event* stop_ev_ = nullptr;
    DatagramBatch batch_;
    SourceLimiter unknown_sources_;
    HandoffQueue handoffs_;
    Counters counters_;
    std::thread thread_;
};

}  // namespace dtcall
