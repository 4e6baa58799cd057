#include "relay_thread.hpp"
#include "relay_core.hpp"

#include <event2/event.h>

#include <chrono>
#include <cstring>
#include <sys/eventfd.h>
#include <unistd.h>

namespace dtcall {
namespace {

// Per readiness event, before looking at the stop signal again.
constexpr int batches_per_wakeup = 8;

void signal_eventfd(int fd) {
    std::uint64_t one = 1;
    // A full counter (never, in practice) still leaves the fd readable.
    [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
}

}  // namespace

bool HandoffQueue::push(const std::uint8_t* data, std::size_t size, const sockaddr* from, int from_length,
                        unsigned socket_index, bool& was_empty, bool limit_hit) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (items_.size() >= capacity || size > Handoff::max_size) return false;
    was_empty = items_.empty();
    items_.emplace_back();
    Handoff& h = items_.back();
    if (size) std::memcpy(h.data, data, size);
    h.size = size;
    std::memset(&h.from, 0, sizeof h.from);
    std::memcpy(&h.from, from, std::min<std::size_t>(std::size_t(from_length), sizeof h.from));
    h.from_length = socklen_t(from_length);
    h.socket_index = socket_index;
    h.limit_hit = limit_hit;
    return true;
}

void HandoffQueue::take(std::vector<Handoff>& out) {
    out.clear();
    std::lock_guard<std::mutex> lock(mutex_);
    items_.swap(out);
    // The swapped-in vector may be fresh: keep pushes allocation-free.
    items_.reserve(capacity);
}

RelayThread::RelayThread(std::vector<int> fds, const ForwardTablePublication& table, std::size_t max_datagram,
                         double unregistered_per_second, int wake_fd, unsigned flow_slot)
    : fds_(std::move(fds)), table_(table), max_datagram_(max_datagram), wake_fd_(wake_fd), flow_slot_(flow_slot),
      unknown_sources_(unregistered_per_second) {}

bool RelayThread::start() {
    stop_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    base_ = event_base_new();
    if (stop_fd_ < 0 || !base_) return false;
    watches_.reserve(fds_.size());
    for (int fd : fds_) {
        watches_.push_back(Watch{this, fd, unsigned(watches_.size()), nullptr});
        Watch& w = watches_.back();
        w.ev = event_new(base_, fd, EV_READ | EV_PERSIST, &RelayThread::on_readable, &w);
        if (!w.ev || event_add(w.ev, nullptr) != 0) return false;
    }
    stop_ev_ = event_new(base_, stop_fd_, EV_READ, &RelayThread::on_stop, base_);
    if (!stop_ev_ || event_add(stop_ev_, nullptr) != 0) return false;
    try {
        // Everything above happens before the thread starts; from now on only
        // the thread touches base_, the watches and the batch.
        thread_ = std::thread([this] { event_base_dispatch(base_); });
    } catch (const std::system_error&) {
        return false;
    }
    return true;
}

RelayThread::~RelayThread() {
    if (thread_.joinable()) {
        signal_eventfd(stop_fd_);
        thread_.join();
    }
    for (Watch& w : watches_)
        if (w.ev) event_free(w.ev);
    if (stop_ev_) event_free(stop_ev_);
    if (base_) event_base_free(base_);
    if (stop_fd_ >= 0) ::close(stop_fd_);
    for (int fd : fds_) ::close(fd);
}

void RelayThread::on_stop(int, short, void* base) { event_base_loopbreak(static_cast<event_base*>(base)); }

void RelayThread::on_readable(int fd, short, void* arg) {
    auto* watch = static_cast<Watch*>(arg);
    keep_reading(watch->ev, watch->in_epoll, watch->thread->read_batches(fd, watch->index));
}

// The relay core's view of this thread: the published table, atomic
// counters, and a hand-off for what the table does not know.
struct RelayThread::Path {
    RelayThread& thread;
    const ForwardTable* table;
    unsigned socket_index;
    std::int64_t now = 0;

    void begin_batch() { now = coarse_now_ms(); }
    std::int64_t now_ms() const { return now; }
    bool find(const sockaddr* from, RelayTarget& to) {
        AddressKey key;
        if (!table || !make_address_key(from, key)) return false;
        const ForwardTable::Target* target = table->find(key);
        if (!target) return false;
        int fd = target->fd >= 0 ? target->fd : thread.fds_[target->socket_index];
        to = {&target->address.any, target->address.length, fd, &target->flow->slot(thread.flow_slot_),
              target->wrap};
        return true;
    }
    void fallback(DatagramBatch& batch, unsigned i) { thread.hand_off(batch, i, socket_index); }
    void counted(const BatchCounts& c) {
        Counters& mine = thread.counters_;
        if (c.relayed) {
            mine.relayed_packets.fetch_add(c.relayed, std::memory_order_relaxed);
            mine.relayed_bytes.fetch_add(c.bytes, std::memory_order_relaxed);
        }
        if (c.too_large) mine.too_large.fetch_add(c.too_large, std::memory_order_relaxed);
        if (c.wrapped) mine.node_sent.fetch_add(c.wrapped, std::memory_order_relaxed);
        if (c.unwrappable) mine.node_dropped.fetch_add(c.unwrappable, std::memory_order_relaxed);
        if (c.empty) mine.unroutable.fetch_add(c.empty, std::memory_order_relaxed);
    }
    void refused(unsigned n) {
        thread.counters_.relayed_packets.fetch_sub(n, std::memory_order_relaxed);
        thread.counters_.unroutable.fetch_add(n, std::memory_order_relaxed);
    }
};

bool RelayThread::read_batches(int fd, unsigned socket_index) {
    table_.refresh();
    Path path{*this, table_.table(), socket_index};
    return relay_batches(batch_, fd, max_datagram_, batches_per_wakeup, path);
}

void RelayThread::hand_off(DatagramBatch& batch, unsigned i, unsigned socket_index) {
    AddressKey source;
    if (!make_address_key(batch.from(i), source)) {
        counters_.unroutable.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now().time_since_epoch()).count();
    bool first_refusal = false;
    bool was_empty = false;
    // Another node's media (media port shared with the node leg) is not
    // held to the rate of unknown sources: the event-loop thread
    // authenticates it; the queue's bound still holds.
    bool node_media = looks_like_node_media(batch.data(i), batch.length(i));
    if (!node_media && !unknown_sources_.take(source, now, &first_refusal)) {
        counters_.rate_limited.fetch_add(1, std::memory_order_relaxed);
        if (first_refusal) {
            counters_.limit_hits.fetch_add(1, std::memory_order_relaxed);
            // Only the event-loop thread may call observers: tell it (best effort).
            if (handoffs_.push(nullptr, 0, batch.from(i), batch.from_length(i), socket_index, was_empty, true) &&
                was_empty)
                signal_eventfd(wake_fd_);
        }
        return;
    }
    if (!handoffs_.push(batch.data(i), batch.length(i), batch.from(i), batch.from_length(i), socket_index,
                        was_empty)) {
        counters_.unroutable.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    if (was_empty) signal_eventfd(wake_fd_);
}

}  // namespace dtcall
