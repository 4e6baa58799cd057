// The cluster key (internal): the secret every node of a cluster shares, in
// its own file (`cluster_key` in dtcalld.conf(5), made by
// `dtcall-keygen --cluster-key FILE`). Nodes never use it directly: each use
// gets its own key derived from it (ClusterKeys), so a media datagram can
// never pass for a control message or the other way round.
//
// File format: the line "DTCALL CLUSTER KEY", a newline, then 32 random
// bytes as 96 decimal digits, three per byte ("007", "255"), like the
// server's key files; no newline at the end (one is tolerated on reading).
#pragma once

#include <dtcall/result.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dtcall::cluster {

constexpr std::size_t cluster_key_size = 32;
constexpr std::string_view cluster_key_header = "DTCALL CLUSTER KEY\n";

// 32 secret bytes that wipe themselves (sodium_memzero) when they go away.
class ClusterKey {
public:
    ClusterKey() = default;
    explicit ClusterKey(const std::uint8_t* bytes);
    ClusterKey(const ClusterKey& o);
    ClusterKey& operator=(const ClusterKey& o);
    ~ClusterKey();
    static ClusterKey generate();  // randombytes_buf; crypto_init() first
    const std::uint8_t* data() const { return bytes_.data(); }
    std::uint8_t* data() { return bytes_.data(); }

private:
    std::array<std::uint8_t, cluster_key_size> bytes_{};
};

// The keys derived from the cluster key (crypto_kdf_derive_from_key, one
// context per use). Wiped with the object.
struct ClusterKeys {
    ClusterKey media;    // node-to-node media datagrams
    ClusterKey control;  // messages published through Redis
    static ClusterKeys derive(const ClusterKey& key);
};

// Canonical text: header + 96 digits, no trailing newline.
std::string cluster_key_file_text(const ClusterKey& key);
// Parse file text; the error says what is wrong, never echoing digits.
Result<ClusterKey> parse_cluster_key_file(std::string_view text);
// Read from disk. Refuses a file readable or writable by group or others with
// one line naming the file, its mode and the fix ("run: chmod 600 FILE"),
// before reading a byte of it. The text read is wiped.
Result<ClusterKey> read_cluster_key_file(const std::string& path);
// Write a new key file, mode 0600; refuses to overwrite an existing file.
Status write_cluster_key_file(const ClusterKey& key, const std::string& path);

// The mode check alone (also used for the server's private key): Done when
// only the owner may read or write `path`, or when it cannot be stat()ed
// (the reader then reports it).
Status check_owner_only(const std::string& path);

}  // namespace dtcall::cluster
