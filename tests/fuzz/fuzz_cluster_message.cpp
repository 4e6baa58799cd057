// The cluster message decoders (libdtcall/cluster/messages.hpp) and the
// receivers behind them: any bytes give a message or a typed error. Each input
// is tried as it is (almost always bad_tag: the parser before the tag check is
// what gets explored) and once more re-tagged with the key, so the code
// behind the tag check (field copies, replay windows) is reached too.
// The seeds in corpus/cluster_message/ are tagged with this key: 32 bytes 0x2A.
#include "cluster/messages.hpp"
#include "cluster/receiver.hpp"
#include "relay/address.hpp"
#include "relay/node_wrap.hpp"

#include <sodium.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace {

using namespace dtcall::cluster;

struct World {
    ClusterKey key;
    MediaReceiver media;
    ControlReceiver control;
    World() : key(make_key()), media(key, 8), control(key, 30000, 8, 64) { (void)sodium_init(); }
    static ClusterKey make_key() {
        std::uint8_t bytes[cluster_key_size];
        std::memset(bytes, 0x2A, sizeof bytes);
        return ClusterKey(bytes);
    }
};

void check_media(World& w, const std::uint8_t* data, std::size_t size) {
    MediaDatagram m;
    if (decode_media(w.key, data, size, m) == DecodeError::none) {
        // Views stay inside the input, and the message re-encodes to itself.
        const char* begin = reinterpret_cast<const char*>(data);
        if (m.payload.data() < begin || m.payload.data() + m.payload.size() > begin + size) __builtin_trap();
        std::vector<std::uint8_t> again(size);
        std::size_t n = encode_media(w.key, m.sender, m.sequence, m.target,
                                     reinterpret_cast<const std::uint8_t*>(m.payload.data()), m.payload.size(),
                                     again.data(), again.size());
        if (n != size || std::memcmp(again.data(), data, size) != 0) __builtin_trap();
        // The relay's wrapping (header, payload in place, tag in two parts)
        // gives the same bytes as encode_media.
        dtcall::NodeSender sender;
        sender.name = std::string(m.sender);
        sender.key = w.key;
        sender.sequence = m.sequence;
        auto wrap = dtcall::NodeWrap::make(sender, m.target);
        if (!wrap) __builtin_trap();
        std::vector<std::uint8_t> header(dtcall::NodeWrap::max_header), tag(tag_size);
        wrap->seal(reinterpret_cast<const std::uint8_t*>(m.payload.data()), m.payload.size(), header.data(), tag.data());
        if (wrap->header_size() + m.payload.size() + tag_size != size ||
            std::memcmp(header.data(), data, wrap->header_size()) != 0 ||
            std::memcmp(tag.data(), data + size - tag_size, tag_size) != 0)
            __builtin_trap();
    }
    (void)w.media.receive(data, size, m);
}

void check_control(World& w, const std::uint8_t* data, std::size_t size) {
    ControlMessage c;
    if (decode_control(w.key, data, size, c) == DecodeError::none) {
        std::vector<std::uint8_t> again = encode_control(w.key, c);
        if (again.size() != size || std::memcmp(again.data(), data, size) != 0) __builtin_trap();
        // A hello's address is what media for that node's users is sent to.
        sockaddr_storage address;
        socklen_t length = 0;
        (void)dtcall::parse_address(c.address, address, length);
    }
    (void)w.control.receive(data, size, c.timestamp_ms, c);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static World world;
    check_media(world, data, size);
    check_control(world, data, size);
    if (size >= tag_size) {
        std::vector<std::uint8_t> tagged(data, data + size);
        compute_tag(world.key, tagged.data(), size - tag_size, tagged.data() + size - tag_size);
        check_media(world, tagged.data(), size);
        check_control(world, tagged.data(), size);
    }
    return 0;
}
