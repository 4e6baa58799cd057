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

TEST_CASE("Redis cost: a login is 2 commands (one round trip), a call set-up 7, as documented") {
    Cluster c(0);
    c.ttl = 60000ms;  // no heartbeat (every ttl/3) while counting
    c.add("node1");
    c.add("node2");
    REQUIRE(c.until([&] { return c.link(1).available() && c.link(2).available(); }));
    c.server(1).pump(300ms);  // the first connects' announcements are over
    auto total = [&] { return c.link(1).commands_sent() + c.link(2).commands_sent(); };
    RawPeer alice(c.server(1)), bob(c.server(2));
    std::uint64_t before = total();
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE(c.known("alice", 1));
    CHECK(total() - before == 2);  // HSET + PUBLISH, sent back to back
    REQUIRE_FALSE(bob.login("bob").empty());
    REQUIRE(c.known("bob", 2));
    before = total();
    alice.command("call|bob|" + alice.sk);
    CHECK(alice.next_body() == "available|bob");
    CHECK(bob.next_body() == "incoming|alice");
    bob.command("accept|alice|" + bob.sk);
    CHECK(alice.next_body() == "prepare|" + key_text(c.server(2), "bob") + "|bob");
    CHECK(bob.next_body() == "prepare|" + key_text(c.server(1), "alice") + "|alice");
    RawMedia bob_media(c.server(2));
    REQUIRE(bob_media.register_with(bob));
    alice.command("passthrough|bob|777|" + alice.sk);
    CHECK(bob.next_body() == "direct|777|alice");
    alice.command("ready|bob|" + alice.sk);
    bob.command("ready|alice|" + bob.sk);
    CHECK(alice.next_body() == "start|bob");
    CHECK(bob.next_body() == "start|alice");
    // EVAL (the claim), then incoming, cmd_accept, prepare, direct, cmd_ready, start.
    CHECK(total() - before == 7);
    before = total();
    alice.command("end|bob|" + alice.sk);
    CHECK(bob.next_body() == "end|alice");
    CHECK(total() - before == 2);  // PUBLISH end + EVAL release
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

namespace {

// A plain Redis connection on the cluster's redis-server, to read and write
// its keys as an operator (or an intruder) would.
struct RawRedis {
    Cluster& c;
    cluster::RedisLink link;
    explicit RawRedis(Cluster& cluster) : c(cluster), link(c.base, options(c)) {
        link.start();
        REQUIRE(c.until([&] { return link.connected(); }));
    }
    static cluster::RedisLink::Options options(Cluster& c) {
        cluster::RedisLink::Options o;
        o.address = *cluster::parse_redis_address("unix:" + c.redis.socket_path());
        return o;
    }
    cluster::RedisReply run(const std::vector<std::string>& args) {
        cluster::RedisReply out;
        bool done = false;
        REQUIRE(link.command(args, [&](const cluster::RedisReply& r) { out = r, done = true; }));
        REQUIRE(c.until([&] { return done; }));
        return out;
    }
};

bool lists(const cluster::RedisReply& set, const std::string& member) {
    for (const auto& e : set.elements)
        if (e.text == member) return true;
    return false;
}

// alice (node1) calls bob (node2), who accepts: a cross-node call is up.
void accepted_call(Cluster& c, RawPeer& alice, RawPeer& bob) {
    REQUIRE(c.until([&] { return c.link(1).available() && c.link(2).available(); }));
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE_FALSE(bob.login("bob").empty());
    REQUIRE(c.known("alice", 1));
    REQUIRE(c.known("bob", 2));
    alice.command("call|bob|" + alice.sk);
    REQUIRE(alice.next_body() == "available|bob");
    REQUIRE(bob.next_body() == "incoming|alice");
    bob.command("accept|alice|" + bob.sk);
    REQUIRE(alice.next_body() == "prepare|" + key_text(c.server(2), "bob") + "|bob");
    REQUIRE(bob.next_body() == "prepare|" + key_text(c.server(1), "alice") + "|alice");
}

}  // namespace

TEST_CASE("a node restarted within the ttl: the others forget its old users at once, and a call to them ends") {
    Cluster c(2);
    RawPeer alice(c.server(1));
    REQUIRE(c.until([&] { return c.link(1).available() && c.link(2).available(); }));
    REQUIRE_FALSE(alice.login("alice").empty());
    {
        RawPeer bob(c.server(2));
        REQUIRE_FALSE(bob.login("bob").empty());
        REQUIRE(c.known("bob", 2));
        c.nodes[1]->kill();
    }
    c.nodes.pop_back();
    c.add("node2");  // the same name, without bob, well within the ttl (1.5 s)
    CHECK(c.until([&] { return c.link(1).remote("bob") == nullptr; }, 700ms));
    alice.command("call|bob|" + alice.sk);
    CHECK(alice.next_body() == "end|bob");
    // The new node2 is known again, and its users work.
    RawPeer carol(c.server(2));
    REQUIRE_FALSE(carol.login("carol").empty());
    CHECK(c.known("carol", 2));
}

TEST_CASE("a clean stop is seen at once: the others forget the node and its users, and its keys are gone") {
    Cluster c(2);
    RawPeer bob(c.server(2));
    REQUIRE(c.until([&] { return c.link(1).available() && c.link(2).available(); }));
    REQUIRE_FALSE(bob.login("bob").empty());
    REQUIRE(c.known("bob", 2));
    REQUIRE(c.link(1).node_address("node2") != nullptr);
    c.link(2).stop();
    CHECK(c.until([&] { return c.link(1).remote("bob") == nullptr && c.link(1).node_address("node2") == nullptr; },
                  1000ms));
    RawRedis redis(c);
    CHECK_FALSE(lists(redis.run({"SMEMBERS", "dtcall:nodes"}), "node2"));
    CHECK(lists(redis.run({"SMEMBERS", "dtcall:nodes"}), "node1"));
    CHECK(redis.run({"EXISTS", "dtcall:users:node2", "dtcall:alive:node2"}).integer == 0);
}

TEST_CASE("what is read back from Redis is authenticated: a key or an address written there by hand is refused") {
    Cluster c(2);
    RawPeer bob(c.server(2));
    REQUIRE(c.until([&] { return c.link(1).available() && c.link(2).available(); }));
    REQUIRE_FALSE(bob.login("bob").empty());
    REQUIRE(c.known("bob", 2));
    RawRedis redis(c);
    std::string genuine = redis.run({"HGET", "dtcall:users:node2", "bob"}).text;
    // A raw key for bob; bob's genuine entry under another name; a forged
    // address; a node name that is no name.
    REQUIRE(redis.run({"HSET", "dtcall:users:node2", "bob", std::string(32, 'x'), "dave", genuine}).ok());
    REQUIRE(redis.run({"SADD", "dtcall:nodes", "bad\nname"}).ok());
    REQUIRE(redis.run({"SET", "dtcall:alive:node2", "10.9.9.9:9999", "PX", "100000"}).ok());
    c.add("node3");
    REQUIRE(c.until([&] { return c.link(3).available(); }));
    CHECK(c.until([&] { return c.link(3).stored_rejected() >= 3; }));
    c.server(1).pump(200ms);
    const auto* seen = c.link(3).remote("bob");
    const PublicKey& real = c.server(2).user_keys["bob"].public_key;
    CHECK((seen == nullptr || seen->key.bytes == real.bytes));
    CHECK(c.link(3).remote("dave") == nullptr);
    const std::string* address = c.link(3).node_address("node2");
    CHECK((address == nullptr || *address != "10.9.9.9:9999"));
    // bob logs in again (the new session replaces the old): node3 learns his real key.

    RawPeer bob2(c.server(2));
    REQUIRE_FALSE(bob2.login("bob").empty());
    REQUIRE(c.known("bob", 2));
    CHECK(c.link(3).remote("bob")->key.bytes == real.bytes);
}

TEST_CASE("a node that dies while Redis is away is noticed once Redis is back; the calls with its users end") {
    Cluster c(2);
    RawPeer alice(c.server(1)), bob(c.server(2));
    accepted_call(c, alice, bob);
    c.redis.stop();
    REQUIRE(c.until([&] { return !c.link(1).available() && !c.link(2).available(); }));
    c.nodes[1]->kill();
    // Redis lost is no reason to end a call: not during the outage, even past the ttl.
    CHECK(alice.next(2000ms) == std::nullopt);
    REQUIRE(c.redis.start() == "");
    REQUIRE(c.until([&] { return c.link(1).available(); }));
    auto back = std::chrono::steady_clock::now();
    std::string ended;
    CHECK(c.until([&] {
        ended = alice.next_body(5ms);
        return !ended.empty();
    }, 1500ms + 1500ms));
    CHECK(ended == "end|bob");
    MESSAGE("ended " << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - back)
                            .count()
                     << " ms after Redis was back");
}

TEST_CASE("a message for another node sent while Redis is away goes out when it is back") {
    Cluster c(2);
    RawPeer alice(c.server(1)), bob(c.server(2));
    accepted_call(c, alice, bob);
    c.redis.stop();
    REQUIRE(c.until([&] { return !c.link(1).available() && !c.link(2).available(); }));
    // alice hangs up: the cache no longer knows bob's node (Redis away), the
    // call does; the link keeps the `end` until Redis is back.
    alice.command("end|bob|" + alice.sk);
    CHECK(c.until([&] { return calls_now(*c.server(1).server) == 0; }));
    CHECK(bob.next(quiet) == std::nullopt);
    CHECK(c.link(1).queued() == 1);
    REQUIRE(c.redis.start() == "");
    CHECK(bob.next_body(3000ms) == "end|alice");
    CHECK(c.until([&] { return c.link(1).queued() == 0; }));
    CHECK(c.until([&] { return calls_now(*c.server(2).server) == 0; }));  // no ghost call on bob's node
}

TEST_CASE("dropped control messages: the first of each verdict is logged, not every one") {
    Cluster c(2);
    REQUIRE(c.until([&] { return c.link(1).available() && c.link(2).available(); }));
    ClusterKey other = ClusterKey::generate();
    RawRedis redis(c);
    for (int i = 0; i < 20; ++i) {
        auto m = cluster::make_control(cluster::MessageType::node_bye, "node7", 1);
        auto bytes = cluster::encode_control(ClusterKeys::derive(other).control, m);
        redis.run({"PUBLISH", "dtcall:to:node1", std::string(bytes.begin(), bytes.end())});
    }
    REQUIRE(c.until([&] { return c.link(1).received().forged == 20; }));
    CHECK(c.nodes[0]->logged("dropped a control message: forged, claimed to be from node node7") == 1);
    CHECK(c.nodes[0]->logged("dropped") == 1);
}

TEST_CASE("two processes with one node_name: the second says so") {
    Cluster c(2);
    REQUIRE(c.until([&] { return c.link(1).available() && c.link(2).available(); }));
    c.server(1).pump(600ms);  // node2's heartbeat stored its alive key
    c.add("node2");
    REQUIRE(c.until([&] { return c.link(3).available(); }));
    CHECK(c.until([&] { return c.nodes[2]->logged("another process seems to use node_name node2") == 1; }));
    CHECK(c.nodes[0]->logged("another process") == 0);
}

TEST_CASE("who came and went on a node while Redis was away is known to the others once it is back") {
    Cluster c(2);
    REQUIRE(c.until([&] { return c.link(1).available() && c.link(2).available(); }));
    RawPeer carol(c.server(2));
    REQUIRE_FALSE(carol.login("carol").empty());
    REQUIRE(c.known("carol", 2));
    c.redis.stop();
    REQUIRE(c.until([&] { return !c.link(1).available() && !c.link(2).available(); }));
    RawPeer bob(c.server(2));
    REQUIRE_FALSE(bob.login("bob").empty());  // arrives while Redis is away
    carol.drop();                             // leaves while Redis is away
    CHECK(c.until([&] { return c.server(2).server->online_users().size() == 1; }));
    REQUIRE(c.redis.start() == "");
    REQUIRE(c.until([&] { return c.link(1).available() && c.link(2).available(); }));
    CHECK(c.known("bob", 2));
    c.server(1).pump(300ms);
    CHECK(c.link(1).remote("carol") == nullptr);
    RawPeer alice(c.server(1));
    REQUIRE_FALSE(alice.login("alice").empty());
    alice.command("call|bob|" + alice.sk);
    CHECK(alice.next_body() == "available|bob");
    CHECK(bob.next_body() == "incoming|alice");
}
