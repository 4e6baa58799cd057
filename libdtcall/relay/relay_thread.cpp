#include "relay_thread.hpp"

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
                        unsigned socket_index, bool& was_empty) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (items_.size() >= capacity || size > Handoff::max_size) return false;
    was_empty = items_.empty();
    items_.emplace_back();
    Handoff& h = items_.back();
    std::memcpy(h.data, data, size);
    h.size = size;
    std::memset(&h.from, 0, sizeof h.from);
    std::memcpy(&h.from, from, std::min<std::size_t>(std::size_t(from_length), sizeof h.from));
    h.from_length = socklen_t(from_length);
    h.socket_index = socket_index;
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
                         double unregistered_per_second, int wake_fd)
    : fds_(std::move(fds)), table_(table), max_datagram_(max_datagram), wake_fd_(wake_fd),
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
    watch->thread->read_batches(fd, watch->index);
}

void RelayThread::read_batches(int fd, unsigned socket_index) {
    table_.refresh();
    const ForwardTable* table = table_.table();
    for (int round = 0; round < batches_per_wakeup; ++round) {
        unsigned received = batch_.receive(fd);
        std::uint64_t relayed = 0, bytes = 0, dropped = 0;
        for (unsigned i = 0; i < received; ++i) {
            std::size_t size = batch_.length(i);
            if (size == 0 || size > max_datagram_ || batch_.truncated(i)) {
                ++dropped;
                continue;
            }
            AddressKey key;
            if (!make_address_key(batch_.from(i), key)) {
                ++dropped;
                continue;
            }
            const ForwardTable::Target* target = table ? table->find(key) : nullptr;
            if (!target) {
                hand_off(i, key, socket_index);
                continue;
            }
            batch_.forward(i, &target->address.any, target->address.length, fds_[target->socket_index]);
            ++relayed;
            bytes += size;
        }
        // Counted before the datagrams leave, so that whoever receives one
        // and then reads the counters sees it counted.
        counters_.relayed_packets.fetch_add(relayed, std::memory_order_relaxed);
        counters_.relayed_bytes.fetch_add(bytes, std::memory_order_relaxed);
        if (unsigned refused = batch_.flush()) {
            counters_.relayed_packets.fetch_sub(refused, std::memory_order_relaxed);
            dropped += refused;
        }
        counters_.dropped_packets.fetch_add(dropped, std::memory_order_relaxed);
        if (received < DatagramBatch::size) break;
    }
}

void RelayThread::hand_off(unsigned i, const AddressKey& source, unsigned socket_index) {
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now().time_since_epoch()).count();
    if (!unknown_sources_.take(source, now)) {
        counters_.rate_limited_packets.fetch_add(1, std::memory_order_relaxed);
        counters_.dropped_packets.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    bool was_empty = false;
    if (!handoffs_.push(batch_.data(i), batch_.length(i), batch_.from(i), batch_.from_length(i), socket_index,
                        was_empty)) {
        counters_.dropped_packets.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    if (was_empty) signal_eventfd(wake_fd_);
}

}  // namespace dtcall
