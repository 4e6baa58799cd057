// Keys the generator needs, with the X25519 work done up front. A login costs
// the server 3 X25519 operations; done naively it would cost the client 5
// (ephemeral key, sealed hello, handshake reply, challenge), and the
// generator, not the server, would set the pace. So the generator keeps:
//   - a pool of hellos: ephemeral key pairs, each already sealed to the server
//     and with its shared key for the handshake reply precomputed; a hello is
//     reused by later connections (the server opens and answers every copy
//     afresh, so its work per login is unchanged);
//   - per user, the shared key with the server that opens the challenge box.
// A client never encrypts anything twice under one nonce: replies and
// challenges are the server's frames with the server's random nonces.
#pragma once

#include "crypto/crypto.hpp"
#include <dtcall/result.hpp>

#include <array>
#include <cstddef>
#include <string>
#include <vector>

namespace dtbench {

using SharedKey = std::array<std::uint8_t, 32>;

// crypto_box_beforenm: the key both sides of a box derive.
SharedKey shared_key(const dtcall::SecretKey& mine, const dtcall::PublicKey& theirs);

struct BenchUser {
    std::string name;
    dtcall::KeyPair keys;
    SharedKey with_server{};  // opens login1resp
};

// `count` throwaway users named PREFIX000001, PREFIX000002, ...
std::vector<BenchUser> make_users(std::size_t count, const dtcall::PublicKey& server, const std::string& prefix);

// Every NAME_private.na in `dir`, sorted by name. Errors name the file.
dtcall::Result<std::vector<BenchUser>> load_users(const std::string& dir, const dtcall::PublicKey& server);

struct Hello {
    std::array<std::uint8_t, dtcall::key_size + dtcall::seal_overhead> sealed{};  // 80 bytes, sent raw
    SharedKey reply_key{};  // opens the server's 76-byte handshake frame
};

class HelloPool {
public:
    HelloPool(const dtcall::PublicKey& server, std::size_t size);
    const Hello& next();
    std::size_t size() const { return hellos_.size(); }

private:
    std::vector<Hello> hellos_;
    std::size_t next_ = 0;
};

}  // namespace dtbench
