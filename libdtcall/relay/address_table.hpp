// The media relay's per-packet lookup: binary address keys in a flat,
// open-addressing hash table. Lookups never allocate; only inserts may grow
// the table (at registration time, never per relayed packet).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>

namespace dtcall {

// IPv6 address (IPv4 as ::ffff:a.b.c.d, so a v4 peer is the same key on a
// v4 or a dual-stack socket) followed by the port, network order.
struct AddressKey {
    std::array<std::uint8_t, 18> bytes{};
    bool operator==(const AddressKey& o) const { return bytes == o.bytes; }
};

// False for families other than IPv4/IPv6.
inline bool make_address_key(const sockaddr* address, AddressKey& key) {
    if (address->sa_family == AF_INET) {
        auto* in = reinterpret_cast<const sockaddr_in*>(address);
        std::memset(key.bytes.data(), 0, 10);
        key.bytes[10] = key.bytes[11] = 0xff;
        std::memcpy(key.bytes.data() + 12, &in->sin_addr, 4);
        std::memcpy(key.bytes.data() + 16, &in->sin_port, 2);
        return true;
    }
    if (address->sa_family == AF_INET6) {
        auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
        std::memcpy(key.bytes.data(), &in6->sin6_addr, 16);
        std::memcpy(key.bytes.data() + 16, &in6->sin6_port, 2);
        return true;
    }
    return false;
}

class AddressTable {
public:
    static constexpr std::uint32_t none = 0xffffffffu;

    std::uint32_t find(const AddressKey& key) const {
        if (slots_.empty()) return none;
        for (std::size_t i = home(key);; i = (i + 1) & mask()) {
            const Slot& s = slots_[i];
            if (!s.used) return none;
            if (s.key == key) return s.value;
        }
    }

    void insert(const AddressKey& key, std::uint32_t value) {
        if ((count_ + 1) * 2 > slots_.size()) grow();
        for (std::size_t i = home(key);; i = (i + 1) & mask()) {
            Slot& s = slots_[i];
            if (!s.used || s.key == key) {
                if (!s.used) ++count_;
                s = Slot{key, value, true};
                return;
            }
        }
    }

    void erase(const AddressKey& key) {
        if (slots_.empty()) return;
        std::size_t i = home(key);
        for (;; i = (i + 1) & mask()) {
            if (!slots_[i].used) return;
            if (slots_[i].key == key) break;
        }
        // Backward-shift deletion keeps probe chains whole without tombstones.
        for (std::size_t j = (i + 1) & mask();; j = (j + 1) & mask()) {
            if (!slots_[j].used) break;
            std::size_t h = home(slots_[j].key);
            bool movable = (j > i) ? (h <= i || h > j) : (h <= i && h > j);
            if (movable) {
                slots_[i] = slots_[j];
                i = j;
            }
        }
        slots_[i].used = false;
        --count_;
    }

    std::size_t size() const { return count_; }

    // Room for `n` entries without growing.
    void reserve(std::size_t n) {
        std::size_t want = 16;
        while (want < 2 * n) want *= 2;
        if (want <= slots_.size()) return;
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(want, Slot{});
        count_ = 0;
        for (const Slot& s : old)
            if (s.used) insert(s.key, s.value);
    }

private:
    struct Slot {
        AddressKey key;
        std::uint32_t value;
        bool used;
    };

    std::size_t mask() const { return slots_.size() - 1; }
    std::size_t home(const AddressKey& key) const {
        // FNV-1a over 18 bytes, then a final mix: addresses differ mostly in
        // their last bytes (port, host), which this spreads over all bits.
        std::uint64_t h = 1469598103934665603ull;
        for (std::uint8_t b : key.bytes) h = (h ^ b) * 1099511628211ull;
        h ^= h >> 29;
        return std::size_t(h) & mask();
    }
    void grow() {
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(old.empty() ? 16 : old.size() * 2, Slot{});
        count_ = 0;
        for (const Slot& s : old)
            if (s.used) insert(s.key, s.value);
    }

    std::vector<Slot> slots_;
    std::size_t count_ = 0;
};

}  // namespace dtcall
