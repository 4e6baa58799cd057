// dtcalld nodes as a cluster, as processes: two or three real dtcalld
// ($DTCALLD) sharing one real redis-server on a Unix socket in a temp dir,
// and phones (the library's dtcall::Client) logged in to each. Loopback
// only, every wait bounded, every child killed at the end. Signaling only:
// media between nodes is not tested here.
//
//   alice --- dtcalld n1 ---.                    .--- dtcalld n2 --- bob
//   carol ---'              '--- redis-server ---'
//
//   alice: call|bob  ->  n1 claims both in Redis, publishes to n2  ->  bob: incoming|alice
//   bob: accept|alice -> both: prepare; media registers on each node;
//   direct to bob; both: start. end from either side.
#include <dtcall/client.hpp>
#include "cluster/cluster_key.hpp"
#include "crypto/crypto.hpp"

#include <doctest/doctest.h>

#include "daemon_process.hpp"
#include "redis_server.hpp"
#include "temp_dir.hpp"

#include <event2/event.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace daemon_process;
using test_support::RedisServer;
using test_support::TempDir;
using test_support::write_file;

namespace {

const std::vector<std::string> user_names = {"alice", "bob", "carol", "dave"};

// What every node shares: the server key pair, the users (one users file,
// the users' key pairs beside it) and the cluster key. The nodes' confs
// name these files by absolute path, as if each node had a copy.
struct SharedFiles {
    TempDir dir;
    SharedFiles() {
        REQUIRE(dtcall::crypto_init());
        REQUIRE(dtcall::write_key_files(dtcall::KeyPair::generate(), dir / "server_public.na",
                                        dir / "server_private.na")
                    .ok());
        std::string users;
        for (const std::string& user : user_names) {
            REQUIRE(dtcall::write_key_files(dtcall::KeyPair::generate(), dir / (user + "_public.na"),
                                            dir / (user + "_private.na"))
                        .ok());
            users += user + " > " + dir / (user + "_public.na") + "\n";
        }
        write_file(dir / "users", users);
        REQUIRE(dtcall::cluster::write_cluster_key_file(dtcall::cluster::ClusterKey::generate(), dir / "cluster.key")
                    .ok());
    }
};

// One node: its settings dir (a conf naming the shared files), its log dir,
// free loopback ports, and the running dtcalld once started.
struct Node {
    TempDir dir;
    std::string name;
    std::string settings = dir / "settings";
    std::string logs = dir / "log";
    std::uint16_t command_port = free_port(SOCK_STREAM);
    std::uint16_t media_port = free_port(SOCK_DGRAM);
    std::string node_address = "127.0.0.1:" + std::to_string(free_port(SOCK_DGRAM));
    std::unique_ptr<ChildProcess> process;

    Node(const SharedFiles& shared, const std::string& node_name, const std::string& redis_socket, int ttl) : name(node_name) {
        REQUIRE(::mkdir(settings.c_str(), 0700) == 0);
        REQUIRE(::mkdir(logs.c_str(), 0700) == 0);
        write_file(settings + "/dtcalld.conf",
                   "command = " + std::to_string(command_port) + "\n"
                   "media = " + std::to_string(media_port) + "\n"
                   "listen = 127.0.0.1\n"
                   "public_sodium = " + shared.dir / "server_public.na\n"
                   "private_sodium = " + shared.dir / "server_private.na\n"
                   "users = " + shared.dir / "users\n"
                   "cluster_redis = unix:" + redis_socket + "\n"
                   "node_name = " + node_name + "\n"
                   "node_address = " + node_address + "\n"
                   "cluster_key = " + shared.dir / "cluster.key\n"
                   "cluster_ttl = " + std::to_string(ttl) + "\n");
    }
    ~Node() {
        if (process && process->running()) {
            process->signal(SIGTERM);
            process->wait_exit();
        }
    }
    std::string log() const { return read_logs(logs); }
    void start() {
        process = std::make_unique<ChildProcess>(
            std::vector<std::string>{env_or_fail("DTCALLD"), "--settings", settings, "--log", logs}, dir.path);
        REQUIRE_MESSAGE(eventually([&] { return contains(log(), "ready: command port") || !process->running(); }),
                        (name + ": " + log() + process->err()));
        REQUIRE_MESSAGE(contains(log(), "ready: command port"), (name + ": " + log() + process->err()));
    }
    // The node's link to Redis is up (its commands connection says so).
    bool connected() const { return contains(log(), "): connected"); }
};

// How often `needle` occurs in `text`.
std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
}

// A phone: the library's client logged in to one node, recording what it
// hears as "available|bob", "incoming|alice", "prepare|bob", "voice_key|bob",
// "started|bob", "ended|bob", "closed|WHY".
struct Phone {
    std::string user;
    std::vector<std::string> heard;
    std::unique_ptr<dtcall::Client> client;

    Phone(event_base* base, const SharedFiles& shared, const Node& node, const std::string& name) : user(name) {
        dtcall::ClientConfig config;
        config.host = "127.0.0.1";
        config.command_port = node.command_port;
        config.media_port = node.media_port;
        config.server_key = *dtcall::read_public_key_file(shared.dir / "server_public.na");
        config.user = name;
        config.user_key = *dtcall::read_private_key_file(shared.dir / (name + "_private.na"));
        config.login_timeout = 3s;
        dtcall::ClientEvents events;
        auto note = [this](const std::string& what) { heard.push_back(what); };
        events.logged_in = [note] { note("logged_in"); };
        events.login_failed = [note](const std::string& why) { note("login_failed|" + why); };
        events.available = [note](const std::string& peer) { note("available|" + peer); };
        events.incoming = [note](const std::string& peer) { note("incoming|" + peer); };
        events.prepare = [note](const std::string& peer, const dtcall::PublicKey&) { note("prepare|" + peer); };
        events.voice_key = [note](const std::string& peer) { note("voice_key|" + peer); };
        events.started = [note](const std::string& peer) { note("started|" + peer); };
        events.ended = [note](const std::string& peer) { note("ended|" + peer); };
        events.closed = [note](const std::string& why) { note("closed|" + why); };
        client = std::make_unique<dtcall::Client>(base, config, events);
        REQUIRE(client->connect());
    }
    bool heard_since(std::size_t mark, const std::string& what) const {
        for (std::size_t i = mark; i < heard.size(); ++i)
            if (heard[i] == what) return true;
        return false;
    }
    // The call notices heard since `mark`, in order (media registration left out).
    std::vector<std::string> notices_since(std::size_t mark) const {
        std::vector<std::string> out;
        for (std::size_t i = mark; i < heard.size(); ++i)
            if (heard[i].rfind("media", 0) != 0) out.push_back(heard[i]);
        return out;
    }
};

// The phones' event loop, in this test process.
struct Loop {
    event_base* base = event_base_new();
    ~Loop() { event_base_free(base); }
    // Runs the loop until `done` or `limit`; done's last answer.
    bool until(const std::function<bool()>& done, std::chrono::milliseconds limit = patience) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (!done()) {
            if (std::chrono::steady_clock::now() >= deadline) return false;
            timeval slice{0, 20000};
            event_base_loopexit(base, &slice);
            if (event_base_dispatch(base) == 1) std::this_thread::sleep_for(20ms);  // nothing pending
        }
        return true;
    }
    void run_for(std::chrono::milliseconds time) {
        until([] { return false; }, time);
    }
};

// `caller` calls `callee` until it rings (`incoming` at the callee): a call to
// a user the caller's node does not know yet gets `end` at once and is tried
// again. The index of the caller's first notice of the call that rang.
std::optional<std::size_t> ring(Loop& loop, Phone& caller, Phone& callee, std::chrono::milliseconds limit = 10s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        std::size_t caller_mark = caller.heard.size(), callee_mark = callee.heard.size();
        REQUIRE(caller.client->call(callee.user));
        bool answered = loop.until([&] {
            return callee.heard_since(callee_mark, "incoming|" + caller.user) ||
                   caller.heard_since(caller_mark, "ended|" + callee.user);
        });
        if (callee.heard_since(callee_mark, "incoming|" + caller.user)) return caller_mark;
        REQUIRE_MESSAGE(answered, caller.user << " heard neither incoming nor end calling " << callee.user);
        loop.run_for(200ms);
    }
    return std::nullopt;
}

// From ringing to `start` on both, then `end` from the caller: the notices
// each phone hears, in order, are those of a call on one node.
void talk_and_hang_up(Loop& loop, Phone& caller, Phone& callee, std::size_t caller_mark) {
    std::size_t callee_mark = callee.heard.size() - 1;  // its `incoming`
    REQUIRE(callee.client->accept(caller.user));
    REQUIRE_MESSAGE(loop.until([&] {
        return caller.heard_since(caller_mark, "started|" + callee.user) &&
               callee.heard_since(callee_mark, "started|" + caller.user);
    }),
                    "caller: " << doctest::toString(caller.heard) << " callee: " << doctest::toString(callee.heard));
    CHECK(caller.notices_since(caller_mark) == std::vector<std::string>{"available|" + callee.user, "prepare|" + callee.user,
                                                                       "voice_key|" + callee.user, "started|" + callee.user});
    CHECK(callee.notices_since(callee_mark) == std::vector<std::string>{"incoming|" + caller.user, "prepare|" + caller.user,
                                                                       "voice_key|" + caller.user, "started|" + caller.user});
    REQUIRE(caller.client->end(callee.user));
    CHECK(loop.until([&] { return callee.heard_since(callee_mark, "ended|" + caller.user); }));
}

}  // namespace

TEST_CASE("two dtcalld nodes sharing Redis: a user on node 1 calls a user on node 2, the whole flow") {
    SharedFiles shared;
    TempDir redis_dir;
    RedisServer redis(redis_dir.path);
    REQUIRE(redis.start() == "");
    Node n1(shared, "n1", redis.socket_path(), 15), n2(shared, "n2", redis.socket_path(), 15);
    n1.start();
    n2.start();
    CHECK_MESSAGE(contains(n1.log(), "info  cluster: node n1, Redis at unix:" + redis.socket_path() + ", node address " +
                                         n1.node_address + ", ttl 15 s\n"),
                  n1.log());
    REQUIRE_MESSAGE(eventually([&] { return n1.connected() && n2.connected(); }), (n1.log() + n2.log()));
    CHECK_FALSE(contains(n1.log() + n2.log(), "cannot connect"));

    Loop loop;
    Phone alice(loop.base, shared, n1, "alice"), bob(loop.base, shared, n2, "bob");
    REQUIRE(loop.until([&] { return alice.heard_since(0, "logged_in") && bob.heard_since(0, "logged_in"); }));

    auto rang = ring(loop, alice, bob);
    REQUIRE_MESSAGE(rang.has_value(), (n1.log() + n2.log()));
    talk_and_hang_up(loop, alice, bob, *rang);

    // And the other way round, ended by the callee this time.
    std::size_t alice_mark = alice.heard.size();
    auto back = ring(loop, bob, alice);
    REQUIRE(back.has_value());
    REQUIRE(alice.client->accept("bob"));
    REQUIRE(loop.until([&] { return alice.heard_since(alice_mark, "started|bob") && bob.heard_since(*back, "started|alice"); }));
    REQUIRE(alice.client->end("bob"));
    CHECK(loop.until([&] { return bob.heard_since(*back, "ended|alice"); }));

    CHECK(contains(n1.log(), "alice logged in from 127.0.0.1:"));
    CHECK(contains(n2.log(), "bob logged in from 127.0.0.1:"));
    n1.process->signal(SIGTERM);
    n2.process->signal(SIGTERM);
    CHECK(n1.process->wait_exit() == std::optional<int>(0));
    CHECK(n2.process->wait_exit() == std::optional<int>(0));
}

TEST_CASE("Redis down when the nodes start: they serve local calls, log it once, and join when Redis comes") {
    SharedFiles shared;
    TempDir redis_dir;
    RedisServer redis(redis_dir.path);  // not started yet
    Node n1(shared, "n1", redis.socket_path(), 15), n2(shared, "n2", redis.socket_path(), 15);
    n1.start();
    n2.start();

    Loop loop;
    Phone alice(loop.base, shared, n1, "alice"), carol(loop.base, shared, n1, "carol"), bob(loop.base, shared, n2, "bob");
    REQUIRE(loop.until([&] {
        return alice.heard_since(0, "logged_in") && carol.heard_since(0, "logged_in") && bob.heard_since(0, "logged_in");
    }));
    // A local call works without Redis.
    auto local = ring(loop, alice, carol, 3s);
    REQUIRE_MESSAGE(local.has_value(), n1.log());
    talk_and_hang_up(loop, alice, carol, *local);
    // A user on the other node looks offline: `end` at once.
    std::size_t mark = alice.heard.size();
    REQUIRE(alice.client->call("bob"));
    CHECK(loop.until([&] { return alice.heard_since(mark, "ended|bob"); }, 1s));
    CHECK_FALSE(alice.heard_since(mark, "available|bob"));

    // Several retries have failed by now (100, 200, 400, 800 ms...): one line.
    loop.run_for(1600ms);
    std::string cannot = "redis (unix:" + redis.socket_path() + "): cannot connect";
    CHECK_MESSAGE(count_of(n1.log(), cannot) == 1, n1.log());
    CHECK_MESSAGE(count_of(n2.log(), cannot) == 1, n2.log());
    CHECK(count_of(n1.log(), "retrying in the background") == 1);

    REQUIRE(redis.start() == "");
    REQUIRE_MESSAGE(loop.until([&] {
        return contains(n1.log(), "): connected again after") && contains(n2.log(), "): connected again after");
    }, 10s),
                    (n1.log() + n2.log()));
    // bob was announced again when n2 reached Redis: alice can call him.
    auto rang = ring(loop, alice, bob, 10s);
    REQUIRE_MESSAGE(rang.has_value(), (n1.log() + n2.log()));
    talk_and_hang_up(loop, alice, bob, *rang);
}

TEST_CASE("a node killed with SIGKILL: its users look offline to the survivor within the ttl") {
    SharedFiles shared;
    TempDir redis_dir;
    RedisServer redis(redis_dir.path);
    REQUIRE(redis.start() == "");
    const int ttl = 2;
    Node n1(shared, "n1", redis.socket_path(), ttl), n2(shared, "n2", redis.socket_path(), ttl);
    n1.start();
    n2.start();
    REQUIRE_MESSAGE(eventually([&] { return n1.connected() && n2.connected(); }), (n1.log() + n2.log()));

    Loop loop;
    Phone alice(loop.base, shared, n1, "alice"), bob(loop.base, shared, n2, "bob");
    REQUIRE(loop.until([&] { return alice.heard_since(0, "logged_in") && bob.heard_since(0, "logged_in"); }));
    auto rang = ring(loop, alice, bob);
    REQUIRE_MESSAGE(rang.has_value(), (n1.log() + n2.log()));
    REQUIRE(alice.client->end("bob"));
    loop.run_for(300ms);

    n2.process->signal(SIGKILL);
    auto killed = std::chrono::steady_clock::now();
    REQUIRE(n2.process->wait_exit() == std::optional<int>(128 + SIGKILL));
    // Until n1 has noticed, a call rings a user nobody will answer: hang up
    // and try again. Once it has, the call ends at once.
    bool offline = false;
    while (!offline && std::chrono::steady_clock::now() - killed < std::chrono::seconds(ttl + 4)) {
        std::size_t mark = alice.heard.size();
        REQUIRE(alice.client->call("bob"));
        REQUIRE(loop.until([&] { return alice.heard_since(mark, "ended|bob") || alice.heard_since(mark, "available|bob"); }));
        if (alice.heard_since(mark, "available|bob")) {
            REQUIRE(alice.client->end("bob"));
            loop.run_for(250ms);
            continue;
        }
        offline = true;
    }
    auto noticed = std::chrono::steady_clock::now() - killed;
    REQUIRE_MESSAGE(offline, n1.log());
    MESSAGE("n1 saw n2's users offline " << std::chrono::duration_cast<std::chrono::milliseconds>(noticed).count()
                                         << " ms after the kill (ttl " << ttl << " s)");
    CHECK(noticed <= std::chrono::seconds(ttl + 3));
    CHECK_MESSAGE(contains(n1.log(), "node n2 not heard from for"), n1.log());
    // ...and stays so: another attempt gets `end` at once too.
    std::size_t mark = alice.heard.size();
    auto asked = std::chrono::steady_clock::now();
    REQUIRE(alice.client->call("bob"));
    REQUIRE(loop.until([&] { return alice.heard_since(mark, "ended|bob"); }, 1s));
    CHECK(std::chrono::steady_clock::now() - asked < 500ms);
    CHECK_FALSE(alice.heard_since(mark, "available|bob"));
}

// The lost-node handling (ClusterLink::Host::node_lost): without it the
// survivor's call would wait for its peer until call_grace.
TEST_CASE("a node killed mid-call: the call ends for the survivor within ttl + a few seconds") {
    SharedFiles shared;
    TempDir redis_dir;
    RedisServer redis(redis_dir.path);
    REQUIRE(redis.start() == "");
    const int ttl = 2;
    Node n1(shared, "n1", redis.socket_path(), ttl), n2(shared, "n2", redis.socket_path(), ttl);
    n1.start();
    n2.start();
    REQUIRE_MESSAGE(eventually([&] { return n1.connected() && n2.connected(); }), (n1.log() + n2.log()));

    Loop loop;
    Phone alice(loop.base, shared, n1, "alice"), bob(loop.base, shared, n2, "bob");
    REQUIRE(loop.until([&] { return alice.heard_since(0, "logged_in") && bob.heard_since(0, "logged_in"); }));
    auto rang = ring(loop, alice, bob);
    REQUIRE_MESSAGE(rang.has_value(), (n1.log() + n2.log()));
    REQUIRE(bob.client->accept("alice"));
    REQUIRE(loop.until([&] { return alice.heard_since(*rang, "started|bob"); }));

    std::size_t mark = alice.heard.size();
    n2.process->signal(SIGKILL);
    REQUIRE(n2.process->wait_exit() == std::optional<int>(128 + SIGKILL));
    CHECK_MESSAGE(loop.until([&] { return alice.heard_since(mark, "ended|bob"); }, std::chrono::seconds(ttl + 5)),
                  n1.log());
}

TEST_CASE("cluster_redis by host name: looked up once at start, the log says the name and the address") {
    SharedFiles shared;
    std::uint16_t port = free_port(SOCK_STREAM);  // nothing listens there: Redis is away
    Node n1(shared, "n1", "/unused", 15);
    std::string conf = read_file(n1.settings + "/dtcalld.conf");
    auto at = conf.find("cluster_redis = ");
    REQUIRE(at != std::string::npos);
    conf.replace(at, conf.find('\n', at) - at, "cluster_redis = localhost:" + std::to_string(port));
    write_file(n1.settings + "/dtcalld.conf", conf);
    n1.start();
    std::string p = std::to_string(port);
    REQUIRE_MESSAGE(eventually([&] { return contains(n1.log(), "cannot connect"); }), n1.log());
    std::string log = n1.log();
    CHECK_MESSAGE((contains(log, "cluster: node n1, Redis at localhost:" + p + " (127.0.0.1:" + p +
                                     ", looked up once at start)") ||
                   contains(log, "cluster: node n1, Redis at localhost:" + p + " ([::1]:" + p +
                                     ", looked up once at start)")),
                  log);
    CHECK(count_of(log, "cannot connect") == 1);
    Loop loop;
    Phone alice(loop.base, shared, n1, "alice");
    CHECK(loop.until([&] { return alice.heard_since(0, "logged_in"); }));
}
