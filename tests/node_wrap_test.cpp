// The relay's side of the node-to-node leg, without sockets: wrapping a
// client's datagram in place (header, the datagram, a tag in two parts)
// gives exactly cluster::encode_media's bytes; the sequence goes up by one
// per datagram; names out of the rules give no wrap; node addresses parse
// as IP:PORT only.
#include "cluster/messages.hpp"
#include "cluster/receiver.hpp"
#include "crypto/crypto.hpp"
#include "relay/address.hpp"
#include "relay/node_wrap.hpp"

#include <doctest/doctest.h>

#include <netinet/in.h>

#include <string>
#include <vector>

using namespace dtcall;

namespace {

std::vector<std::uint8_t> wrapped(const NodeWrap& wrap, const std::vector<std::uint8_t>& payload) {
    std::vector<std::uint8_t> header(NodeWrap::max_header), tag(cluster::tag_size);
    wrap.seal(payload.data(), payload.size(), header.data(), tag.data());
    std::vector<std::uint8_t> out(header.begin(), header.begin() + long(wrap.header_size()));
    out.insert(out.end(), payload.begin(), payload.end());
    out.insert(out.end(), tag.begin(), tag.end());
    return out;
}

}  // namespace

TEST_CASE("a wrapped datagram is encode_media's, byte for byte, and the receiver takes it once") {
    REQUIRE(crypto_init());
    NodeSender sender;
    sender.name = "node-1.example";
    sender.key = cluster::ClusterKey::generate();
    sender.sequence = 1000;
    auto wrap = NodeWrap::make(sender, "bob");
    REQUIRE(wrap);
    cluster::MediaReceiver receiver(sender.key);
    for (std::size_t size : {1u, 100u, 1400u, 60000u}) {
        CAPTURE(size);
        std::vector<std::uint8_t> payload(size);
        for (std::size_t i = 0; i < size; ++i) payload[i] = std::uint8_t(i * 7 + size);
        std::uint64_t sequence = sender.sequence.load();
        std::vector<std::uint8_t> bytes = wrapped(*wrap, payload);
        CHECK(sender.sequence.load() == sequence + 1);
        std::vector<std::uint8_t> expected(payload.size() + 200);
        expected.resize(cluster::encode_media(sender.key, sender.name, sequence, "bob", payload.data(), payload.size(),
                                              expected.data(), expected.size()));
        CHECK(bytes == expected);
        cluster::MediaDatagram m;
        CHECK(receiver.receive(bytes.data(), bytes.size(), m) == cluster::Verdict::accepted);
        CHECK(std::string(m.payload) == std::string(payload.begin(), payload.end()));
        CHECK(receiver.receive(bytes.data(), bytes.size(), m) == cluster::Verdict::replayed);
    }
    CHECK(wrap->fits(cluster::max_media_payload));
    CHECK_FALSE(wrap->fits(cluster::max_media_payload + 1));
}

TEST_CASE("no wrap for names out of the rules; node media is told from a registration by its first bytes") {
    REQUIRE(crypto_init());
    NodeSender sender;
    sender.key = cluster::ClusterKey::generate();
    sender.name = "node1";
    CHECK(NodeWrap::make(sender, "") == nullptr);
    CHECK(NodeWrap::make(sender, std::string(65, 'a')) == nullptr);
    CHECK(NodeWrap::make(sender, "bad|name") == nullptr);
    sender.name = "a node";
    CHECK(NodeWrap::make(sender, "bob") == nullptr);
    const std::uint8_t media[] = {0xD7, 0xC1, 0x01, 0x01, 0x00};
    const std::uint8_t control[] = {0xD7, 0xC1, 0x01, 0x10, 0x00};
    CHECK(looks_like_node_media(media, sizeof media));
    CHECK_FALSE(looks_like_node_media(media, 3));
    CHECK_FALSE(looks_like_node_media(control, sizeof control));
}

TEST_CASE("node addresses: IPv4:PORT and [IPv6]:PORT, numeric only") {
    sockaddr_storage a;
    socklen_t length = 0;
    REQUIRE(parse_address("127.0.0.1:1962", a, length));
    CHECK(a.ss_family == AF_INET);
    CHECK(length == sizeof(sockaddr_in));
    CHECK(ntohs(reinterpret_cast<sockaddr_in&>(a).sin_port) == 1962);
    REQUIRE(parse_address("[::1]:0", a, length));
    CHECK(a.ss_family == AF_INET6);
    CHECK(ntohs(reinterpret_cast<sockaddr_in6&>(a).sin6_port) == 0);
    for (const char* bad : {"", ":1", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:123456",
                            "localhost:80", "::1:80", "[::1]", "[127.0.0.1]:80", "127.0.0.1:8x", "127.0.0.1:-1"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_address(bad, a, length));
    }
}

TEST_CASE("an IPv4 node address through a dual-stack socket: ::ffff:a.b.c.d, same port; IPv6 unchanged") {
    sockaddr_storage a;
    socklen_t length = 0;
    REQUIRE(parse_address("127.0.0.1:1962", a, length));
    map_to_v6(a, length);
    CHECK(a.ss_family == AF_INET6);
    CHECK(length == sizeof(sockaddr_in6));
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a);
    CHECK(v6.sin6_addr.s6_addr[10] == 0xff);
    CHECK(v6.sin6_addr.s6_addr[11] == 0xff);
    CHECK(v6.sin6_addr.s6_addr[12] == 127);
    CHECK(v6.sin6_addr.s6_addr[15] == 1);
    CHECK(format_address(reinterpret_cast<sockaddr*>(&a), int(length)) == "127.0.0.1:1962");  // logs show it plain
    REQUIRE(parse_address("[::1]:1962", a, length));
    map_to_v6(a, length);
    CHECK(format_address(reinterpret_cast<sockaddr*>(&a), int(length)) == "[::1]:1962");
}
