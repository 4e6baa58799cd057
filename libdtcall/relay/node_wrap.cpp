#include "relay/node_wrap.hpp"

#include <sodium.h>

#include <cstring>

namespace dtcall {

std::unique_ptr<NodeWrap> NodeWrap::make(NodeSender& sender, std::string_view target) {
    // encode_media's rules, checked the same way: a one-byte payload encodes
    // only when both names are valid.
    std::uint8_t probe[max_header + 1 + cluster::tag_size];
    std::uint8_t one = 0;
    std::size_t size = cluster::encode_media(sender.key, sender.name, 0, target, &one, 1, probe, sizeof probe);
    if (size == 0) return nullptr;
    auto wrap = std::make_unique<NodeWrap>();
    wrap->sender_ = &sender;
    wrap->header_size_ = size - 1 - cluster::tag_size;
    std::memcpy(wrap->header_.data(), probe, wrap->header_size_);
    wrap->sequence_at_ = 4 + 1 + sender.name.size();
    sodium_memzero(probe, sizeof probe);
    return wrap;
}

void NodeWrap::seal(const std::uint8_t* payload, std::size_t size, std::uint8_t* header, std::uint8_t* tag) const {
    std::memcpy(header, header_.data(), header_size_);
    std::uint64_t sequence = sender_->sequence.fetch_add(1, std::memory_order_relaxed);
    for (int i = 7; i >= 0; --i) {
        header[sequence_at_ + std::size_t(i)] = std::uint8_t(sequence);
        sequence >>= 8;
    }
    // The same keyed BLAKE2b as compute_tag() over header || payload, in
    // two parts instead of over a copy.
    crypto_generichash_state state;
    crypto_generichash_init(&state, sender_->key.data(), cluster::cluster_key_size, cluster::tag_size);
    crypto_generichash_update(&state, header, header_size_);
    crypto_generichash_update(&state, payload, size);
    crypto_generichash_final(&state, tag, cluster::tag_size);
}

}  // namespace dtcall
