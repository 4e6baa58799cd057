// What nodes of a cluster say to each other (internal), as bytes: the
// node-to-node media datagram and the control messages published through
// Redis. Pure: no sockets, no clock (times come in as arguments), no Redis.
//
// Every message starts with the magic D7 C1, the format version 1 and a type
// byte, and ends with a 16-byte tag: keyed BLAKE2b (crypto_generichash, 128-bit
// output) over every byte before it, with a key derived from the cluster key
// (ClusterKeys: one for media, one for control, so neither passes for the
// other). Integers are big-endian; a "name" is a length byte then that many
// bytes.
//
// Media (type 0x01), on the node-to-node UDP leg:
//   D7 C1 01 01 | n u8 | sender node name (n = 1-64) | sequence u64
//   | m u8 | target user name (m = 1-64) | the client's datagram (>= 1 byte,
//   unchanged) | tag[16]
//   Overhead: 30 + n + m bytes.
// Control (types 0x10-0x13), published through Redis:
//   D7 C1 01 TT | n u8 | from node name | timestamp u64 (Unix ms) | nonce[16]
//   | body | tag[16]
//   0x10 notice:     k u8 | kind (1-32 of [a-z0-9_]) | u u8 | user | o u8 |
//                    other (0-64: empty or a user name) | b u32 | blob (<= 64 KiB)
//   0x11 user_left:  u u8 | user
//   0x12 node_hello: a u8 | address (1-64 of [0-9A-Fa-f.:[]], "IP:PORT")
//   0x13 node_bye:   (nothing)
//
// Decoding is total: any bytes give a message or a DecodeError; it reads
// only inside the given buffer and allocates at most the buffer's size.
// Structure is checked before the tag (so a fuzzer explores the parser),
// and nothing decoded is returned unless the tag verifies.
#pragma once

#include "cluster/cluster_key.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dtcall::cluster {

constexpr std::uint8_t magic[2] = {0xD7, 0xC1};
constexpr std::uint8_t format_version = 1;
constexpr std::size_t tag_size = 16;
constexpr std::size_t control_nonce_size = 16;
constexpr std::size_t max_name_size = 64;
constexpr std::size_t max_kind_size = 32;
constexpr std::size_t max_blob_size = 64 * 1024;
// The largest datagram a node forwards (what fits in one UDP datagram
// once the header is added: 65507 - 30 - 64 - 64).
constexpr std::size_t max_media_payload = 65507 - 30 - 2 * max_name_size;
constexpr std::size_t max_control_size =
    4 + 1 + max_name_size + 8 + control_nonce_size + 1 + max_kind_size + 2 * (1 + max_name_size) + 4 + max_blob_size +
    tag_size;

enum class MessageType : std::uint8_t {
    media = 0x01,
    notice = 0x10,
    user_left = 0x11,
    node_hello = 0x12,
    node_bye = 0x13,
};

enum class DecodeError {
    none,
    too_short,      // shorter than the smallest message of its kind
    too_long,       // longer than the largest
    bad_magic,      // not D7 C1
    bad_version,    // a version this node does not speak
    bad_type,       // unknown type, or a control type where media was expected (and back)
    bad_field,      // a name, kind, address or length out of its rules
    trailing_bytes, // bytes between the last field and the tag
    bad_tag,        // does not authenticate: forged, damaged, or another cluster's key
};
const char* to_string(DecodeError error);

// A decoded media datagram: views into the bytes given to decode_media.
struct MediaDatagram {
    std::string_view sender;
    std::uint64_t sequence = 0;
    std::string_view target;
    std::string_view payload;
};

constexpr std::size_t media_overhead(std::size_t sender_size, std::size_t target_size) {
    return 4 + 1 + sender_size + 8 + 1 + target_size + tag_size;
}

// Writes the datagram into out[0, capacity) and returns its size, or 0 when
// a field breaks the rules above or it does not fit. Allocation-free: this is
// the media path.
std::size_t encode_media(const ClusterKey& media_key, std::string_view sender, std::uint64_t sequence,
                         std::string_view target, const std::uint8_t* payload, std::size_t payload_size,
                         std::uint8_t* out, std::size_t capacity);
DecodeError decode_media(const ClusterKey& media_key, const std::uint8_t* data, std::size_t size, MediaDatagram& out);

struct ControlMessage {
    MessageType type = MessageType::node_bye;
    std::string from;  // the publishing node
    std::uint64_t timestamp_ms = 0;
    std::array<std::uint8_t, control_nonce_size> nonce{};
    std::string kind;     // notice
    std::string user;     // notice, user_left
    std::string other;    // notice (may be empty)
    std::string blob;     // notice (may be empty)
    std::string address;  // node_hello
};

// A message of `type` from `from` at `now_ms` with a fresh random nonce
// (crypto_init() first); the caller fills the body.
ControlMessage make_control(MessageType type, std::string_view from, std::uint64_t now_ms);

// The bytes to publish, or an empty vector when a field breaks the rules.
std::vector<std::uint8_t> encode_control(const ClusterKey& control_key, const ControlMessage& message);
DecodeError decode_control(const ClusterKey& control_key, const std::uint8_t* data, std::size_t size,
                           ControlMessage& out);

// The tag over data[0, size): exposed for tests and the fuzz target (which
// re-tags fuzzed bytes to reach the code behind the tag check).
void compute_tag(const ClusterKey& key, const std::uint8_t* data, std::size_t size, std::uint8_t* tag);

// Field rules, shared with the encoders' callers.
bool valid_kind(std::string_view kind);
bool valid_node_address_text(std::string_view address);

}  // namespace dtcall::cluster
