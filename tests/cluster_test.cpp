// Presence and call signaling across nodes: several Servers in one process,
// on one event_base, sharing one real redis-server (support/redis_server.*),
// each made a node with attach_cluster() and a RedisCluster. Raw clients
// check the protocol's notices, in order, on each node.
//
//   alice --- node1 ---.                 .--- node2 --- bob
//                      '--- redis-server -'
//   call|bob      claim (EVAL)  ->  incoming via dtcall:to:node2
//   available|bob                        incoming|alice
//                 <- cmd_accept       accept|alice
//   prepare|KEYbob|bob  -> prepare    prepare|KEYalice|alice
//   ... ready / start on both, end from either side.
#include "test_cluster.hpp"

using namespace test_support;
using namespace dtcall;
using dtcall::cluster::RedisCluster;
using dtcall::cluster::ClusterKey;
using dtcall::cluster::ClusterKeys;


TEST_CASE("a call across nodes: the same notices in the same order on each client; end from either side") {
    Cluster c(2);
    RawPeer alice(c.server(1)), bob(c.server(2));
    REQUIRE(c.until([&] { return c.link(1).available() && c.link(2).available(); }));
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE_FALSE(bob.login("bob").empty());
    REQUIRE(c.known("alice", 1));
    REQUIRE(c.known("bob", 2));

    for (int round = 0; round < 2; ++round) {
        std::uint64_t before = c.link(1).commands_sent() + c.link(2).commands_sent();
        alice.command("call|bob|" + alice.sk);
        CHECK(alice.next_body() == "available|bob");
        CHECK(bob.next_body() == "incoming|alice");
        bob.command("accept|alice|" + bob.sk);
        CHECK(alice.next_body() == "prepare|" + key_text(c.server(2), "bob") + "|bob");
        CHECK(bob.next_body() == "prepare|" + key_text(c.server(1), "alice") + "|alice");
        alice.command("passthrough|bob|777|" + alice.sk);
        CHECK(bob.next(quiet) == std::nullopt);  // held on bob's node: its media is not registered
        RawMedia bob_media(c.server(2));
        REQUIRE(bob_media.register_with(bob));
        CHECK(bob.next_body() == "direct|777|alice");
        alice.command("ready|bob|" + alice.sk);
        CHECK(alice.next(quiet) == std::nullopt);  // start waits for both
        bob.command("ready|alice|" + bob.sk);
        CHECK(alice.next_body() == "start|bob");
        CHECK(bob.next_body() == "start|alice");
        // The set-up cost in Redis commands, both nodes together (heartbeats aside).
        std::uint64_t used = c.link(1).commands_sent() + c.link(2).commands_sent() - before;
        CHECK(used <= 8 + 8);  // heartbeats of two nodes during the quiet waits included
        MESSAGE("redis commands during set-up (heartbeats included): " << used);
        CHECK(phase_of(*c.server(1).server, "alice") == CallPhase::in_call);

        if (round == 0) {
            alice.command("end|bob|" + alice.sk);
            CHECK(bob.next_body() == "end|alice");
            CHECK(alice.next(quiet) == std::nullopt);
        } else {
            bob.command("end|alice|" + bob.sk);
            CHECK(alice.next_body() == "end|bob");
            CHECK(bob.next(quiet) == std::nullopt);
        }
        CHECK(calls_now(*c.server(1).server) == 0);
    }
}

TEST_CASE("decline across nodes, and a callee busy on its own node") {
    Cluster c(2);
    RawPeer alice(c.server(1)), bob(c.server(2)), carol(c.server(2));
    REQUIRE(c.until([&] { return c.link(1).available() && c.link(2).available(); }));
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE_FALSE(bob.login("bob").empty());
    REQUIRE_FALSE(carol.login("carol").empty());
    REQUIRE(c.known("bob", 2));
    REQUIRE(c.known("carol", 2));
    alice.command("call|bob|" + alice.sk);
    CHECK(alice.next_body() == "available|bob");
    CHECK(bob.next_body() == "incoming|alice");
    bob.command("end|alice|" + bob.sk);
    CHECK(alice.next_body() == "end|bob");
    // bob and carol talk on node2; alice on node1 finds bob busy.
    carol.command("call|bob|" + carol.sk);
    CHECK(carol.next_body() == "available|bob");
    CHECK(bob.next_body() == "incoming|carol");
    alice.command("call|bob|" + alice.sk);
    CHECK(alice.next_body() == "end|bob");
    CHECK(bob.next(quiet) == std::nullopt);
}

TEST_CASE("the busy race: two callers on two nodes ring one idle user at once, exactly one rings") {
    Cluster c(3);
    RawPeer alice(c.server(1)), bob(c.server(2)), carol(c.server(3));
    REQUIRE(c.until([&] { return c.link(1).available() && c.link(2).available() && c.link(3).available(); }));
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE_FALSE(bob.login("bob").empty());
    REQUIRE_FALSE(carol.login("carol").empty());
    REQUIRE(c.known("bob", 2));
    // Both commands are on the wire before either node's loop runs.
    alice.command("call|bob|" + alice.sk);
    carol.command("call|bob|" + carol.sk);
    std::string a = alice.next_body(), k = carol.next_body();
    INFO("alice: " << a << ", carol: " << k);
    CHECK(((a == "available|bob" && k == "end|bob") || (a == "end|bob" && k == "available|bob")));
    std::string rung = bob.next_body();
    CHECK((rung == "incoming|alice" || rung == "incoming|carol"));
    CHECK(bob.next(quiet) == std::nullopt);
    CHECK(calls_now(*c.server(1).server) + calls_now(*c.server(3).server) == 1);
}

TEST_CASE("a second login on another node replaces the first, which closes as replaced") {
    Cluster c(2);
    REQUIRE(c.until([&] { return c.link(1).available() && c.link(2).available(); }));
    RawPeer bob1(c.server(1));
    REQUIRE_FALSE(bob1.login("bob").empty());
    REQUIRE(c.known("bob", 1));
    // The same user, same key, on node2 (the directory is shared in a real cluster).
    c.server(2).user_keys["bob"] = c.server(1).user_keys["bob"];
    c.server(2).users.add("bob", c.server(1).user_keys["bob"].public_key);
    RawPeer bob2(c.server(2));
    REQUIRE_FALSE(bob2.login("bob").empty());
    CHECK(bob1.closed());
    CHECK(c.until([&] { return c.server(1).logged("bob logged out (replaced)"); }));
    CHECK(c.known("bob", 2));
    CHECK(c.server(1).server->online_users().empty());
}

TEST_CASE("Redis stopped: local calls go on, a cross-node peer is offline; restarted: cross-node calls work again") {
    Cluster c(2);
    RawPeer alice(c.server(1)), carol(c.server(1)), bob(c.server(2));
    REQUIRE(c.until([&] { return c.link(1).available() && c.link(2).available(); }));
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE_FALSE(carol.login("carol").empty());
    REQUIRE_FALSE(bob.login("bob").empty());
    REQUIRE(c.known("bob", 2));

    c.redis.stop();
    REQUIRE(c.until([&] { return !c.link(1).available() && !c.link(2).available(); }));
    CHECK(c.link(1).remote("bob") == nullptr);
    alice.command("call|carol|" + alice.sk);
    CHECK(alice.next_body() == "available|carol");
    CHECK(carol.next_body() == "incoming|alice");
    carol.command("accept|alice|" + carol.sk);
    CHECK(alice.next_body() == "prepare|" + key_text(c.server(1), "carol") + "|carol");
    CHECK(carol.next_body() == "prepare|" + key_text(c.server(1), "alice") + "|alice");
    alice.command("end|carol|" + alice.sk);
    CHECK(carol.next_body() == "end|alice");
    alice.command("call|bob|" + alice.sk);
    CHECK(alice.next_body() == "end|bob");
    CHECK(bob.next(quiet) == std::nullopt);

    REQUIRE(c.redis.start() == "");
    REQUIRE(c.until([&] { return c.link(1).available() && c.link(2).available(); }));
    REQUIRE(c.known("bob", 2));  // re-announced
    REQUIRE(c.known("alice", 1));
    alice.command("call|bob|" + alice.sk);
    CHECK(alice.next_body() == "available|bob");
    CHECK(bob.next_body() == "incoming|alice");
    bob.command("accept|alice|" + bob.sk);
    CHECK(alice.next_body() == "prepare|" + key_text(c.server(2), "bob") + "|bob");
    CHECK(bob.next_body() == "prepare|" + key_text(c.server(1), "alice") + "|alice");
}

TEST_CASE("a forged publish is dropped and counted") {
    Cluster c(2);
    REQUIRE(c.until([&] { return c.link(1).available() && c.link(2).available(); }));
    // A message tagged with another key, published on node1's channel.
    ClusterKey other = ClusterKey::generate();
    auto m = cluster::make_control(cluster::MessageType::notice, "node2", 1);
    m.kind = "incoming";
    m.user = "alice";
    m.other = "bob";
    auto bytes = cluster::encode_control(ClusterKeys::derive(other).control, m);
    cluster::RedisLink::Options raw_options;
    raw_options.address = *cluster::parse_redis_address("unix:" + c.redis.socket_path());
    cluster::RedisLink raw(c.base, raw_options);
    raw.start();
    REQUIRE(c.until([&] { return raw.connected(); }));
    raw.command({"PUBLISH", "dtcall:to:node1", std::string(bytes.begin(), bytes.end())}, [](const cluster::RedisReply&) {});
    CHECK(c.until([&] { return c.link(1).received().forged == 1; }));
}
