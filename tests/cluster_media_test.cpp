// Media across nodes: A -> node1 -> node2 -> B and back, the client's
// datagrams unchanged end to end; the node-to-node leg authenticated (a
// forged or replayed datagram is dropped and counted); NAT rebinding on
// either side; a node that dies mid-call. Real redis-server, real UDP.
#include "test_cluster.hpp"

#include "cluster/messages.hpp"
#include "cluster/receiver.hpp"

#include <event2/util.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace test_support;
using namespace dtcall;

namespace {

// alice on node `a` calls bob on node `b`, through `start`, both media registered.
struct CrossCall {
    Cluster& c;
    RawPeer alice, bob;
    RawMedia alice_media, bob_media;
    bool established = false;

    CrossCall(Cluster& cluster, int a, int b)
        : c(cluster), alice(c.server(a)), bob(c.server(b)), alice_media(c.server(a)), bob_media(c.server(b)) {
        REQUIRE(c.until([&] {
            for (std::size_t i = 1; i <= c.nodes.size(); ++i)
                if (!c.link(int(i)).available()) return false;
            return true;
        }));
        REQUIRE_FALSE(alice.login("alice").empty());
        REQUIRE_FALSE(bob.login("bob").empty());
        REQUIRE(c.known("alice", a));
        REQUIRE(c.known("bob", b));
        alice.command("call|bob|" + alice.sk);
        REQUIRE(alice.next_body() == "available|bob");
        REQUIRE(bob.next_body() == "incoming|alice");
        bob.command("accept|alice|" + bob.sk);
        REQUIRE(alice.next_body() == "prepare|" + key_text(c.server(b), "bob") + "|bob");
        REQUIRE(bob.next_body() == "prepare|" + key_text(c.server(a), "alice") + "|alice");
        REQUIRE(alice_media.register_with(alice));
        REQUIRE(bob_media.register_with(bob));
        alice.command("passthrough|bob|777|" + alice.sk);
        REQUIRE(bob.next_body() == "direct|777|alice");
        alice.command("ready|bob|" + alice.sk);
        bob.command("ready|alice|" + bob.sk);
        REQUIRE(alice.next_body() == "start|bob");
        REQUIRE(bob.next_body() == "start|alice");
        established = true;
    }
};

Bytes pattern(std::size_t size, int seed) {
    Bytes b(size);
    for (std::size_t i = 0; i < size; ++i) b[i] = std::uint8_t(i * 31 + std::size_t(seed));
    return b;
}

// A datagram to a node's node-to-node address, from a socket of our own.
void send_to_node(const std::string& address, const std::vector<std::uint8_t>& bytes) {
    sockaddr_storage to{};
    int length = sizeof to;
    REQUIRE(evutil_parse_sockaddr_port(address.c_str(), reinterpret_cast<sockaddr*>(&to), &length) == 0);
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fd >= 0);
    CHECK(::sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&to), socklen_t(length)) ==
          ssize_t(bytes.size()));
    ::close(fd);
}

std::vector<std::uint8_t> wrapped(const cluster::ClusterKey& media_key, const std::string& sender,
                                  std::uint64_t sequence, const std::string& target, const Bytes& payload) {
    std::vector<std::uint8_t> out(payload.size() + 200);
    std::size_t size = cluster::encode_media(media_key, sender, sequence, target, payload.data(), payload.size(),
                                             out.data(), out.size());
    REQUIRE(size > 0);
    out.resize(size);
    return out;
}

// Five datagrams each way; with `small`, none over what a phone sends (1400 bytes).
void both_ways(CrossCall& call, int seed, bool small = false) {
    for (std::size_t size : {1u, 100u, 1400u, 9000u, 60000u}) {
        if (small && size > 1400) size = 1400 - size % 100;
        Bytes payload = pattern(size, seed);
        call.alice_media.send(payload);
        CHECK(call.bob_media.receive() == payload);
        call.bob_media.send(payload);
        CHECK(call.alice_media.receive() == payload);
    }
}

}  // namespace

TEST_CASE("media across two nodes: both ways, byte for byte, counted on each node") {
    Cluster c(2);
    CrossCall call(c, 1, 2);
    REQUIRE(call.established);
    both_ways(call, 1);
    ServerStats one = c.server(1).server->stats(), two = c.server(2).server->stats();
    CHECK(one.node_packets_sent == 5);
    CHECK(one.node_packets_received == 5);
    CHECK(two.node_packets_sent == 5);
    CHECK(two.node_packets_received == 5);
    CHECK(one.node_packets_forged + one.node_packets_dropped + two.node_packets_forged + two.node_packets_dropped == 0);
    // Each node lists the call with both nodes, and what it relayed.
    auto calls = c.server(1).server->calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].caller_node == "node1");
    CHECK(calls[0].callee_node == "node2");
    CHECK(calls[0].caller_to_callee.packets == 5);
    CHECK(calls[0].callee_to_caller.packets == 5);
    auto theirs = c.server(2).server->calls();
    REQUIRE(theirs.size() == 1);
    CHECK(theirs[0].caller == "alice");
    CHECK(theirs[0].callee == "bob");
    CHECK(theirs[0].phase == CallPhase::in_call);
    CHECK(theirs[0].caller_node == "node1");
    CHECK(theirs[0].callee_node == "node2");
    CHECK(theirs[0].callee_to_caller.packets == 5);
    auto users = c.server(2).server->online_users();
    REQUIRE(users.size() == 1);
    CHECK(users[0].node == "node2");
    CHECK(users[0].peer == "alice");

    // The end takes the routes away on both nodes.
    call.bob.command("end|alice|" + call.bob.sk);
    CHECK(call.alice.next_body() == "end|bob");
    call.alice_media.send(Bytes(50, 9));
    CHECK(call.bob_media.receive(quiet) == std::nullopt);
    CHECK(c.server(2).server->calls().empty());
}

TEST_CASE("three nodes: callers and callees on different nodes, media both ways on each pair") {
    Cluster c(3);
    for (auto pair : {std::pair{1, 2}, std::pair{2, 3}, std::pair{3, 1}}) {
        int a = pair.first, b = pair.second;  // plain names: lambdas capture them (clang 14)
        CAPTURE(a);
        CAPTURE(b);
        CrossCall call(c, a, b);
        REQUIRE(call.established);
        both_ways(call, a * 10 + b);
        call.alice.command("end|bob|" + call.alice.sk);
        CHECK(call.bob.next_body() == "end|alice");
        // Logged out before the next pair logs in elsewhere.
        call.alice.drop();
        call.bob.drop();
        CHECK(c.until([&] { return c.link(1).remote("alice") == nullptr || a == 1; }));
        c.server(1).pump(200ms);
    }
}

TEST_CASE("media across nodes with relay threads on both nodes") {
    Cluster c(2, [](Config& config) { config.media_threads = 2; });
    CrossCall call(c, 1, 2);
    REQUIRE(call.established);
    c.server(1).pump(400ms);  // the threads' tables are published (at most 250 ms apart)
    for (int i = 0; i < 20; ++i) {
        Bytes payload = pattern(200, i);
        call.alice_media.send(payload);
        CHECK(call.bob_media.receive() == payload);
        call.bob_media.send(payload);
        CHECK(call.alice_media.receive() == payload);
    }
    CHECK(c.server(1).server->stats().node_packets_sent == 20);
    CHECK(c.server(2).server->stats().node_packets_sent == 20);
}

TEST_CASE("a NAT rebinding on either side: the new address gets the media, the old one nothing") {
    Cluster c(2);
    CrossCall call(c, 1, 2);
    REQUIRE(call.established);
    RawMedia bob_moved(c.server(2));
    REQUIRE(bob_moved.register_with(call.bob));
    call.alice_media.send(Bytes(80, 3));
    CHECK(bob_moved.receive() == Bytes(80, 3));
    CHECK(call.bob_media.receive(quiet) == std::nullopt);
    RawMedia alice_moved(c.server(1));
    REQUIRE(alice_moved.register_with(call.alice));
    bob_moved.send(Bytes(90, 4));
    INFO("node2 sent " << c.server(2).server->stats().node_packets_sent << ", node1 received "
                       << c.server(1).server->stats().node_packets_received << ", dropped "
                       << c.server(1).server->stats().node_packets_dropped);
    CHECK(alice_moved.receive() == Bytes(90, 4));
    CHECK(call.alice_media.receive(quiet) == std::nullopt);
    alice_moved.send(Bytes(70, 5));
    CHECK(bob_moved.receive() == Bytes(70, 5));
}

TEST_CASE("node-to-node datagrams: forged, replayed, for nobody, or junk are dropped and counted; the call goes on") {
    Cluster c(2);
    CrossCall call(c, 1, 2);
    REQUIRE(call.established);
    const std::string node2 = c.link(2).own_address();
    ServerStats before = c.server(2).server->stats();
    // Tagged with another cluster's key: forged.
    auto other = cluster::ClusterKeys::derive(cluster::ClusterKey::generate()).media;
    send_to_node(node2, wrapped(other, "node1", cluster::initial_sequence() + 1000000, "bob", Bytes(60, 1)));
    CHECK(call.bob_media.receive(quiet) == std::nullopt);
    CHECK(c.server(2).server->stats().node_packets_forged == before.node_packets_forged + 1);
    // Authentic (made with the cluster key), then the same bytes again: replayed.
    auto media = cluster::ClusterKeys::derive(c.key).media;
    auto genuine = wrapped(media, "node9", 42, "bob", Bytes(60, 2));
    send_to_node(node2, genuine);
    CHECK(call.bob_media.receive() == Bytes(60, 2));
    send_to_node(node2, genuine);
    CHECK(call.bob_media.receive(quiet) == std::nullopt);
    // For a user who is not in a call here, and junk of several sizes.
    send_to_node(node2, wrapped(media, "node9", 43, "carol", Bytes(60, 3)));
    for (std::size_t size : {1u, 4u, 40u, 500u}) send_to_node(node2, std::vector<std::uint8_t>(size, 0xD7));
    c.server(2).pump(100ms);
    ServerStats after = c.server(2).server->stats();
    CHECK(after.node_packets_forged == before.node_packets_forged + 1);
    CHECK(after.node_packets_dropped == before.node_packets_dropped + 6);
    CHECK(after.node_packets_received == before.node_packets_received + 1);
    // The real leg is untouched.
    call.alice_media.send(Bytes(30, 7));
    CHECK(call.bob_media.receive() == Bytes(30, 7));
}

TEST_CASE("Redis lost mid-call: media across nodes goes on; the call ends normally") {
    Cluster c(2);
    CrossCall call(c, 1, 2);
    REQUIRE(call.established);
    c.redis.stop();
    REQUIRE(c.until([&] { return !c.link(1).available() && !c.link(2).available(); }));
    both_ways(call, 5);
    // Notices cross through Redis: with it gone, each side's own node still
    // takes the hang-up, and the caller's node (which owns the call) ends it.
    call.alice.command("end|bob|" + call.alice.sk);
    CHECK(c.until([&] { return calls_now(*c.server(1).server) == 0; }));
}

TEST_CASE("the node leg on the media port itself: node datagrams and clients' media share one socket") {
    // Two free UDP ports, taken and let go (the servers bind them next).
    auto free_port = [] {
        int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof a;
        ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &length);
        ::close(fd);
        return ntohs(a.sin_port);
    };
    for (unsigned threads : {0u, 2u}) {
        CAPTURE(threads);
        Cluster c(0);
        for (int i = 1; i <= 2; ++i) {
            std::uint16_t port = free_port();
            c.tweak = [port, threads](Config& config) {
                config.media_port = port;
                config.media_threads = threads;
            };
            c.node_address = "127.0.0.1:" + std::to_string(port);
            c.add("node" + std::to_string(i));
            CHECK(c.link(i).own_address() == c.node_address);
            CHECK(c.server(i).server->media_port() == port);
        }
        CrossCall call(c, 1, 2);
        REQUIRE(call.established);
        if (threads) c.server(1).pump(400ms);
        // Through relay threads, what arrives on a shared port from another
        // node reaches the event-loop thread as a hand-off: up to a phone's
        // datagram, wrapped (a port of its own for the node leg has no limit).
        both_ways(call, 7, threads > 0);
        CHECK(c.server(1).server->stats().node_packets_received == 5);
        CHECK(c.server(2).server->stats().node_packets_received == 5);
        // From a stranger, on the shared port: bytes that start like node
        // media (junk, and a datagram tagged with another key) are dropped
        // and counted, never taken for a registration; the call goes on.
        ServerStats before = c.server(2).server->stats();
        std::string media_port = "127.0.0.1:" + std::to_string(c.server(2).server->media_port());
        send_to_node(media_port, {0xD7, 0xC1, 0x01, 0x01});
        send_to_node(media_port, std::vector<std::uint8_t>(300, 0xD7));
        auto other = cluster::ClusterKeys::derive(cluster::ClusterKey::generate()).media;
        send_to_node(media_port, wrapped(other, "node1", cluster::initial_sequence() + 1000000, "bob", Bytes(60, 1)));
        CHECK(call.bob_media.receive(quiet) == std::nullopt);
        ServerStats after = c.server(2).server->stats();
        CHECK(after.node_packets_forged == before.node_packets_forged + 1);
        CHECK(after.registrations_refused == before.registrations_refused);
        call.alice_media.send(Bytes(40, 9));
        CHECK(call.bob_media.receive() == Bytes(40, 9));
    }
}

TEST_CASE("a node dies mid-call: the survivor's call ends within the ttl and a few seconds") {
    // The caller's node (the owner) dies, and then the callee's.
    for (int dying : {1, 2}) {
        CAPTURE(dying);
        Cluster c(2);
        CrossCall call(c, 1, 2);
        REQUIRE(call.established);
        int survivor = 3 - dying;
        RawPeer& left = survivor == 1 ? call.alice : call.bob;
        c.nodes[std::size_t(dying - 1)]->kill();  // as SIGKILL: no goodbye
        auto started = std::chrono::steady_clock::now();
        std::string ended;
        REQUIRE(c.until([&] {
            ended = left.next_body(5ms);
            return !ended.empty();
        }, 1500ms + 3000ms));
        CHECK(ended == (survivor == 1 ? "end|bob" : "end|alice"));
        MESSAGE("ended for the survivor after " << std::chrono::duration_cast<std::chrono::milliseconds>(
                                                      std::chrono::steady_clock::now() - started).count() << " ms");
        CHECK(calls_now(*c.server(survivor).server) == 0);
    }
}
