// IPv6 and mixed IPv4/IPv6 calls (loopback only: 127.0.0.1 and ::1).
#include <doctest/doctest.h>

#include "harness.hpp"

#include "relay/address.hpp"
#include "crypto/crypto.hpp"

#include "server/bound_socket.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

using namespace test_support;
using namespace dtcall;

namespace {

// alice and bob, each over its own address family, through to start.
struct MixedCall {
    RawPeer alice, bob;
    RawMedia alice_media, bob_media;
    bool established = false;
    MixedCall(TestServer& s, const char* alice_address, const char* bob_address)
        : alice(s, alice_address), bob(s, bob_address), alice_media(s, alice_address), bob_media(s, bob_address) {
        if (alice.login("alice").empty() || bob.login("bob").empty()) return;
        alice.command("call|bob|" + alice.sk);
        if (alice.next_body() != "available|bob" || bob.next_body() != "incoming|alice") return;
        bob.command("accept|alice|" + bob.sk);
        if (alice.next_body().rfind("prepare|", 0) != 0 || bob.next_body().rfind("prepare|", 0) != 0) return;
        if (!bob_media.register_with(bob) || !alice_media.register_with(alice)) return;
        alice.command("passthrough|bob|123|" + alice.sk);
        if (bob.next_body() != "direct|123|alice") return;
        alice.command("ready|bob|" + alice.sk);
        bob.command("ready|alice|" + bob.sk);
        established = alice.next_body() == "start|bob" && bob.next_body() == "start|alice";
    }
};

void media_both_ways(MixedCall& call) {
    call.alice_media.send(Bytes(160, 1));
    CHECK(call.bob_media.receive() == Bytes(160, 1));
    call.bob_media.send(Bytes(1400, 2));
    CHECK(call.alice_media.receive() == Bytes(1400, 2));
}

}  // namespace

TEST_CASE("a whole call over IPv6 (::1)") {
    TestServer s({"alice", "bob"}, {}, "::1");
    MixedCall call(s, "::1", "::1");
    REQUIRE(call.established);
    media_both_ways(call);
    CHECK(s.logged("alice logged in from [::1]:"));
    CHECK(s.logged("registered media from [::1]:"));
}

TEST_CASE("an IPv4 client and an IPv6 client call each other, media relayed between them") {
    TestServer s({"alice", "bob"}, [](Config& c) { c.listen_addresses = {"127.0.0.1", "::1"}; });
    MixedCall call(s, "127.0.0.1", "::1");
    REQUIRE(call.established);
    media_both_ways(call);
    CHECK(s.logged("alice logged in from 127.0.0.1:"));
    CHECK(s.logged("bob logged in from [::1]:"));
    CHECK(s.logged("listening on 127.0.0.1, ::1: TCP"));
    call.bob.command("end|alice|" + call.bob.sk);
    CHECK(call.alice.next_body() == "end|bob");
}

TEST_CASE("listen addresses: defaults, lists, errors") {
    auto dual = plan_listen_addresses({});
    REQUIRE(dual);
    REQUIRE(dual->size() == 1);
    CHECK(((*dual)[0].text == "::" || (*dual)[0].text == "0.0.0.0"));
    CHECK_FALSE((*dual)[0].v6_only);
    auto both = plan_listen_addresses({"0.0.0.0", "::"});
    REQUIRE(both);
    CHECK((*both)[1].v6_only);  // IPv4 is served by its own socket
    auto bracketed = plan_listen_addresses({"[::1]"});
    REQUIRE(bracketed);
    CHECK((*bracketed)[0].address.ss_family == AF_INET6);
    for (const char* bad : {"localhost", "127.0.3.4:80", "[::1]:80", "", "::1]"}) {
        auto r = plan_listen_addresses({bad});
        CHECK_FALSE(r);
        if (!r) CHECK(r.error().find("listen:") == 0);
    }
}

TEST_CASE("IPv4-mapped addresses are written as IPv4") {
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
    in6.sin6_port = htons(4242);
    CHECK(format_address(reinterpret_cast<sockaddr*>(&in6), sizeof in6) == "127.0.0.1:4242");
    CHECK(format_ip(reinterpret_cast<sockaddr*>(&in6), sizeof in6) == "127.0.0.1");
    CHECK(source_network(reinterpret_cast<sockaddr*>(&in6), sizeof in6) == "127.0.0.1");
    inet_pton(AF_INET6, "2001:db8:1:2:aaaa:bbbb:cccc:dddd", &in6.sin6_addr);
    CHECK(source_network(reinterpret_cast<sockaddr*>(&in6), sizeof in6) == "2001:db8:1:2::/64");
    inet_pton(AF_INET6, "::1", &in6.sin6_addr);
    CHECK(format_address(reinterpret_cast<sockaddr*>(&in6), sizeof in6) == "[::1]:4242");
    CHECK(format_ip(reinterpret_cast<sockaddr*>(&in6), sizeof in6) == "::1");
}

TEST_CASE("the same port on every address, and a clear error when one is taken") {
    TestServer s({"alice"}, [](Config& c) { c.listen_addresses = {"127.0.0.1", "::1"}; });
    RawPeer v4(s, "127.0.0.1"), v6(s, "::1");
    CHECK_FALSE(v4.login("alice").empty());
    CHECK_FALSE(v6.login("alice").empty());  // same port on ::1
    InMemoryUserDirectory users;
    Config config;
    config.server_keys = KeyPair::generate();
    config.listen_addresses = {"::1"};
    config.command_port = s.server->command_port();
    Server clash(config, users);
    auto started = clash.start();
    REQUIRE_FALSE(started);
    CHECK(started.error().find("command: TCP ::1 port " + std::to_string(s.server->command_port())) == 0);
}
