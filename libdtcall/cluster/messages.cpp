#include "cluster/messages.hpp"

#include "cluster/redis_address.hpp"
#include "wire/wire.hpp"

#include <sodium.h>

#include <cstring>

namespace dtcall::cluster {
namespace {

constexpr std::size_t prefix_size = 4;  // magic, version, type
constexpr std::size_t min_media_size = media_overhead(1, 1) + 1;
constexpr std::size_t min_control_size = prefix_size + 1 + 1 + 8 + control_nonce_size + tag_size;

void put_u64(std::uint8_t* at, std::uint64_t v) {
    for (int i = 7; i >= 0; --i) {
        at[i] = std::uint8_t(v);
        v >>= 8;
    }
}

std::uint64_t get_u64(const std::uint8_t* at) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | at[i];
    return v;
}

bool valid_other(std::string_view other) { return other.empty() || wire::valid_user_name(other); }

// Reads fields front to back, never past `end`; the first failure sticks.
class Reader {
public:
    Reader(const std::uint8_t* at, const std::uint8_t* end) : at_(at), end_(end) {}
    bool ok() const { return ok_; }
    bool done() const { return at_ == end_; }
    std::uint8_t byte() {
        if (!need(1)) return 0;
        return *at_++;
    }
    std::uint64_t u64() {
        if (!need(8)) return 0;
        std::uint64_t v = get_u64(at_);
        at_ += 8;
        return v;
    }
    std::uint32_t u32() {
        if (!need(4)) return 0;
        std::uint32_t v = (std::uint32_t(at_[0]) << 24) | (std::uint32_t(at_[1]) << 16) |
                          (std::uint32_t(at_[2]) << 8) | at_[3];
        at_ += 4;
        return v;
    }
    std::string_view bytes(std::size_t n) {
        if (!need(n)) return {};
        std::string_view v(reinterpret_cast<const char*>(at_), n);
        at_ += n;
        return v;
    }
    // A length byte, then that many bytes.
    std::string_view name() { return bytes(byte()); }
    const std::uint8_t* position() const { return at_; }

private:
    bool need(std::size_t n) {
        if (!ok_ || std::size_t(end_ - at_) < n) {
            ok_ = false;
            return false;
        }
        return true;
    }
    const std::uint8_t* at_;
    const std::uint8_t* end_;
    bool ok_ = true;
};

// Magic, version and the type byte; the type is checked by the caller.
DecodeError check_prefix(const std::uint8_t* data, std::size_t size) {
    if (size < prefix_size) return DecodeError::too_short;
    if (data[0] != magic[0] || data[1] != magic[1]) return DecodeError::bad_magic;
    if (data[2] != format_version) return DecodeError::bad_version;
    return DecodeError::none;
}

bool tag_matches(const ClusterKey& key, const std::uint8_t* data, std::size_t size) {
    if (size < tag_size) return false;
    std::uint8_t expected[tag_size];
    compute_tag(key, data, size - tag_size, expected);
    return sodium_memcmp(expected, data + size - tag_size, tag_size) == 0;
}

void append(std::vector<std::uint8_t>& out, std::string_view s) { out.insert(out.end(), s.begin(), s.end()); }
void append_name(std::vector<std::uint8_t>& out, std::string_view s) {
    out.push_back(std::uint8_t(s.size()));
    append(out, s);
}

}  // namespace

const char* to_string(DecodeError error) {
    switch (error) {
    case DecodeError::none: return "none";
    case DecodeError::too_short: return "too_short";
    case DecodeError::too_long: return "too_long";
    case DecodeError::bad_magic: return "bad_magic";
    case DecodeError::bad_version: return "bad_version";
    case DecodeError::bad_type: return "bad_type";
    case DecodeError::bad_field: return "bad_field";
    case DecodeError::trailing_bytes: return "trailing_bytes";
    case DecodeError::bad_tag: return "bad_tag";
    }
    return "unknown";
}

bool valid_kind(std::string_view kind) {
    if (kind.empty() || kind.size() > max_kind_size) return false;
    for (char c : kind) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return true;
}

bool valid_node_address_text(std::string_view address) {
    if (address.empty() || address.size() > max_name_size) return false;
    for (char c : address) {
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' ||
                  c == ':' || c == '[' || c == ']';
        if (!ok) return false;
    }
    return true;
}

void compute_tag(const ClusterKey& key, const std::uint8_t* data, std::size_t size, std::uint8_t* tag) {
    crypto_generichash(tag, tag_size, data, size, key.data(), cluster_key_size);
}

// --- media ---

std::size_t encode_media(const ClusterKey& media_key, std::string_view sender, std::uint64_t sequence,
                         std::string_view target, const std::uint8_t* payload, std::size_t payload_size,
                         std::uint8_t* out, std::size_t capacity) {
    if (!valid_node_name(sender) || !wire::valid_user_name(target)) return 0;
    if (payload_size == 0 || payload_size > max_media_payload) return 0;
    std::size_t total = media_overhead(sender.size(), target.size()) + payload_size;
    if (total > capacity) return 0;
    std::uint8_t* at = out;
    *at++ = magic[0];
    *at++ = magic[1];
    *at++ = format_version;
    *at++ = std::uint8_t(MessageType::media);
    *at++ = std::uint8_t(sender.size());
    std::memcpy(at, sender.data(), sender.size());
    at += sender.size();
    put_u64(at, sequence);
    at += 8;
    *at++ = std::uint8_t(target.size());
    std::memcpy(at, target.data(), target.size());
    at += target.size();
    std::memmove(at, payload, payload_size);  // may be in place (payload already at this offset)
    at += payload_size;
    compute_tag(media_key, out, std::size_t(at - out), at);
    return total;
}

DecodeError decode_media(const ClusterKey& media_key, const std::uint8_t* data, std::size_t size, MediaDatagram& out) {
    if (auto prefix = check_prefix(data, size); prefix != DecodeError::none) return prefix;
    if (data[3] != std::uint8_t(MessageType::media)) return DecodeError::bad_type;
    if (size < min_media_size) return DecodeError::too_short;
    if (size > media_overhead(max_name_size, max_name_size) + max_media_payload) return DecodeError::too_long;
    Reader in(data + prefix_size, data + size - tag_size);
    MediaDatagram m;
    m.sender = in.name();
    m.sequence = in.u64();
    m.target = in.name();
    if (!in.ok() || !valid_node_name(m.sender) || !wire::valid_user_name(m.target)) return DecodeError::bad_field;
    std::size_t rest = std::size_t(data + size - tag_size - in.position());
    if (rest == 0) return DecodeError::too_short;  // no datagram inside
    m.payload = in.bytes(rest);
    if (!tag_matches(media_key, data, size)) return DecodeError::bad_tag;
    out = m;
    return DecodeError::none;
}

// --- control ---

ControlMessage make_control(MessageType type, std::string_view from, std::uint64_t now_ms) {
    ControlMessage m;
    m.type = type;
    m.from = std::string(from);
    m.timestamp_ms = now_ms;
    randombytes_buf(m.nonce.data(), m.nonce.size());
    return m;
}

std::vector<std::uint8_t> encode_control(const ClusterKey& control_key, const ControlMessage& m) {
    if (!valid_node_name(m.from)) return {};
    std::vector<std::uint8_t> out;
    out.reserve(min_control_size + m.from.size() + m.kind.size() + m.user.size() + m.other.size() + m.blob.size() +
                m.address.size() + 8);
    out.insert(out.end(), {magic[0], magic[1], format_version, std::uint8_t(m.type)});
    append_name(out, m.from);
    out.resize(out.size() + 8);
    put_u64(out.data() + out.size() - 8, m.timestamp_ms);
    out.insert(out.end(), m.nonce.begin(), m.nonce.end());
    switch (m.type) {
    case MessageType::notice: {
        if (!valid_kind(m.kind) || !wire::valid_user_name(m.user) || !valid_other(m.other)) return {};
        if (m.blob.size() > max_blob_size) return {};
        append_name(out, m.kind);
        append_name(out, m.user);
        append_name(out, m.other);
        std::uint32_t b = std::uint32_t(m.blob.size());
        out.insert(out.end(), {std::uint8_t(b >> 24), std::uint8_t(b >> 16), std::uint8_t(b >> 8), std::uint8_t(b)});
        append(out, m.blob);
        break;
    }
    case MessageType::user_left:
        if (!wire::valid_user_name(m.user)) return {};
        append_name(out, m.user);
        break;
    case MessageType::node_hello:
        if (!valid_node_address_text(m.address)) return {};
        append_name(out, m.address);
        break;
    case MessageType::node_bye: break;
    default: return {};  // media is not a control message
    }
    out.resize(out.size() + tag_size);
    compute_tag(control_key, out.data(), out.size() - tag_size, out.data() + out.size() - tag_size);
    return out;
}

DecodeError decode_control(const ClusterKey& control_key, const std::uint8_t* data, std::size_t size,
                           ControlMessage& out) {
    if (auto prefix = check_prefix(data, size); prefix != DecodeError::none) return prefix;
    MessageType type = MessageType(data[3]);
    if (type != MessageType::notice && type != MessageType::user_left && type != MessageType::node_hello &&
        type != MessageType::node_bye) {
        return DecodeError::bad_type;
    }
    if (size < min_control_size) return DecodeError::too_short;
    if (size > max_control_size) return DecodeError::too_long;
    Reader in(data + prefix_size, data + size - tag_size);
    std::string_view from = in.name();
    std::uint64_t timestamp = in.u64();
    std::string_view nonce = in.bytes(control_nonce_size);
    if (!in.ok() || !valid_node_name(from)) return DecodeError::bad_field;
    std::string_view kind, user, other, blob, address;
    switch (type) {
    case MessageType::notice:
        kind = in.name();
        user = in.name();
        other = in.name();
        blob = in.bytes(in.u32());  // bounded by what is left: a huge length just fails
        if (!in.ok() || !valid_kind(kind) || !wire::valid_user_name(user) || !valid_other(other) ||
            blob.size() > max_blob_size) {
            return DecodeError::bad_field;
        }
        break;
    case MessageType::user_left:
        user = in.name();
        if (!in.ok() || !wire::valid_user_name(user)) return DecodeError::bad_field;
        break;
    case MessageType::node_hello:
        address = in.name();
        if (!in.ok() || !valid_node_address_text(address)) return DecodeError::bad_field;
        break;
    default: break;
    }
    if (!in.done()) return DecodeError::trailing_bytes;
    if (!tag_matches(control_key, data, size)) return DecodeError::bad_tag;
    ControlMessage m;
    m.type = type;
    m.from = std::string(from);
    m.timestamp_ms = timestamp;
    std::memcpy(m.nonce.data(), nonce.data(), control_nonce_size);
    m.kind = std::string(kind);
    m.user = std::string(user);
    m.other = std::string(other);
    m.blob = std::string(blob);
    m.address = std::string(address);
    out = std::move(m);
    return DecodeError::none;
}

}  // namespace dtcall::cluster
