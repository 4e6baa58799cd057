// What relay threads read: an immutable snapshot of "media from this address
// goes to that address", built by the event-loop thread whenever routing
// changes, and handed to the threads without a lock on the per-packet path.
#pragma once

#include "address_table.hpp"
#include "relay_core.hpp"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>

namespace dtcall {

// An IPv4 or IPv6 socket address in 28 bytes rather than sockaddr_storage's 128.
struct CompactAddress {
    union {
        sockaddr any;
        sockaddr_in v4;
        sockaddr_in6 v6;
    };
    socklen_t length;

    static CompactAddress of(const sockaddr_storage& address, socklen_t length) {
        CompactAddress a;
        a.length = length <= sizeof a.v6 ? length : socklen_t(sizeof a.v6);
        std::memcpy(&a.v6, &address, a.length);
        return a;
    }
};

struct ForwardTable {
    struct Target {
        CompactAddress address;
        unsigned socket_index;  // which listen address it registered on
        FlowCounters* flow;     // the source user's media figures (kept alive by `flows`)
        int fd = -1;            // >= 0: leaves from this socket instead (to another node)
        const NodeWrap* wrap = nullptr;  // to another node: wrapped (kept alive by `wraps`)
    };
    AddressTable by_source;  // source address -> index into targets
    std::vector<Target> targets;
    // The figures the targets point at: they outlive the user's release while
    // a thread still reads this table.
    std::vector<std::shared_ptr<FlowCounters>> flows;
    std::vector<std::shared_ptr<const NodeWrap>> wraps;

    const Target* find(const AddressKey& source) const {
        std::uint32_t index = by_source.find(source);
        return index == AddressTable::none ? nullptr : &targets[index];
    }
};

// The latest snapshot. The publisher (one thread) replaces it; each reader
// checks the version once per batch of datagrams with one atomic load and
// takes the mutex only when the table changed, i.e. at call set-up and
// tear-down rates, never per packet. A snapshot a reader still holds stays
// alive (shared_ptr) until it lets go.
class ForwardTablePublication {
public:
    void publish(std::shared_ptr<const ForwardTable> table) {
        std::lock_guard<std::mutex> lock(mutex_);
        table_ = std::move(table);
        version_.store(version_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }

    // A reader's view: refresh() before each batch, then use table().
    class Reader {
    public:
        explicit Reader(const ForwardTablePublication& from) : from_(from) {}
        void refresh() {
            if (from_.version_.load(std::memory_order_acquire) == seen_) return;
            std::lock_guard<std::mutex> lock(from_.mutex_);
            table_ = from_.table_;
            seen_ = from_.version_.load(std::memory_order_relaxed);
        }
        const ForwardTable* table() const { return table_.get(); }

    private:
        const ForwardTablePublication& from_;
        std::uint64_t seen_ = 0;
        std::shared_ptr<const ForwardTable> table_;
    };

private:
    mutable std::mutex mutex_;
    std::shared_ptr<const ForwardTable> table_;
    std::atomic<std::uint64_t> version_{0};
};

}  // namespace dtcall
