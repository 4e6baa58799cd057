// The UDP path: a datagram from one of a few addresses, raw or sealed to the
// server (so the registration parser behind the seal is reached too).
#include "crypto/crypto.hpp"
#include "relay/media_relay.hpp"

#include <event2/event.h>

#include <cstring>
#include <netinet/in.h>

namespace {

struct FakeHost : dtcall::MediaRelay::Host {
    std::uint8_t tcp_key[32] = {1};
    dtcall::ReplayGuard guard{16};
    bool in_call = true;
    std::string peer = "bob";
    std::optional<KeyOwner> owner_of_session_key(const std::string& sk) override {
        if (sk.size() != 59 && sk != "alice") return std::nullopt;
        return KeyOwner{sk.size() == 59 ? "bob" : "alice", tcp_key, &guard};
    }
    bool media_registered(const std::string&, const std::string&) override { return in_call; }
    bool has_call(const std::string&) override { return in_call; }
    const std::string* relay_peer(const std::string& user) override { return user == "alice" ? &peer : nullptr; }
    std::time_t now() override { return 1700000000; }
    std::int64_t now_ms() override { return ++ms; }
    std::int64_t ms = 0;
};

struct World {
    event_base* base = event_base_new();
    dtcall::Config config;
    FakeHost host;
    dtcall::MediaRelay relay{base, config, host};
    World() {
        dtcall::crypto_init();
        config.server_keys = dtcall::KeyPair::generate();
        config.listen_addresses = {"127.0.0.1"};
        config.media_port = 0;
        (void)relay.open();
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static World world;  // one relay across inputs: table state accumulates like in life
    if (size < 2) return 0;
    sockaddr_in from{};
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl(0x7f000001);
    from.sin_port = htons(40000 + data[0] % 4);
    bool in_call = data[1] & 1;
    if (in_call != world.host.in_call) {  // what the router would tell the relay
        world.host.in_call = in_call;
        if (in_call) {
            world.relay.routes_changed("alice");
        } else {
            world.relay.release("alice");
            world.relay.release("bob");
        }
    }
    const std::uint8_t* body = data + 2;
    std::size_t length = size - 2;
    if (data[1] & 2) {
        dtcall::Bytes sealed = dtcall::seal_anonymous(world.config.server_keys.public_key, body, length);
        world.relay.handle_datagram(sealed.data(), sealed.size(), reinterpret_cast<sockaddr*>(&from), sizeof from);
    } else {
        world.relay.handle_datagram(body, length, reinterpret_cast<sockaddr*>(&from), sizeof from);
    }
    return 0;
}
