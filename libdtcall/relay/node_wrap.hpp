// A client's datagram sent on to another node of a cluster, wrapped as the
// media message of cluster/messages.hpp without copying it: a header (magic,
// this node, a sequence number, the target user) before the datagram where
// it lies in the receive batch and a tag after it, sent as three iovecs.
// One NodeWrap per remote target (user), built once when its route is made;
// per packet only the sequence number and the tag are new.
#pragma once

#include "cluster/messages.hpp"
#include "cluster/receiver.hpp"

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace dtcall {

// Where node-to-node datagrams leave from, what they are tagged with, and
// the sequence every relaying thread of this node numbers them from (one
// counter, so the receiver's replay window sees one sender).
struct NodeSender {
    std::string name;  // this node
    cluster::ClusterKey key;  // the media key (ClusterKeys::media)
    std::atomic<std::uint64_t> sequence{cluster::initial_sequence()};
};

// Starts like a node-to-node media message (magic, version, type): on a
// media socket shared with the node leg, such a datagram is one for the node
// leg, not a registration attempt (a sealed registration starts with random
// bytes: 2^-32 of them look like this and then fail the tag).
inline bool looks_like_node_media(const std::uint8_t* data, std::size_t size) {
    return size >= 4 && data[0] == cluster::magic[0] && data[1] == cluster::magic[1] &&
           data[2] == cluster::format_version && data[3] == std::uint8_t(cluster::MessageType::media);
}

class NodeWrap {
public:
    static constexpr std::size_t max_header = cluster::media_overhead(cluster::max_name_size, cluster::max_name_size) -
                                              cluster::tag_size;
    // Null when a name breaks the rules of cluster/messages.hpp.
    static std::unique_ptr<NodeWrap> make(NodeSender& sender, std::string_view target);

    // Writes the header (header_size() bytes) and the tag over header and
    // payload; the payload itself goes out untouched.
    void seal(const std::uint8_t* payload, std::size_t size, std::uint8_t* header, std::uint8_t* tag) const;
    std::size_t header_size() const { return header_size_; }
    // Whether a payload of `size` still fits one UDP datagram once wrapped.
    bool fits(std::size_t size) const { return size <= cluster::max_media_payload; }

private:
    NodeSender* sender_ = nullptr;
    std::array<std::uint8_t, max_header> header_{};
    std::size_t header_size_ = 0;
    std::size_t sequence_at_ = 0;
};

}  // namespace dtcall
