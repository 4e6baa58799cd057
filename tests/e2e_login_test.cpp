// Handshake and login over real sockets (PROTOCOL.md sections 4, 5, 7 and
// defects D3-D6). Sequence of a good login:
//   client -> 80-byte seal(ephemeral_pk)        server -> 76-byte box frame(tcp key)
//   client -> ts|login1|alice                   server -> ts|login1resp|<732 digits>
//   client -> ts|login2|alice|<challenge>       server -> ts|login2resp|<59-char sk>
#include <doctest/doctest.h>

#include "harness.hpp"

#include "crypto/crypto.hpp"

#include <cstdlib>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

using namespace test_support;
using namespace dtcall;

TEST_CASE("a good login: blob and session key have the protocol's shapes") {
    TestServer s;
    RawPeer p(s);
    REQUIRE(p.handshake());
    CHECK(p.tcp_key.size() == 32);
    p.command("login1|alice");
    auto reply = p.next();
    REQUIRE(reply);
    auto fields = wire::parse_command(*reply, std::time(nullptr), 300);
    REQUIRE(fields.status == wire::ParseStatus::ok);
    CHECK(fields.command.size() == 3);  // clients need exactly 3 fields
    CHECK(fields.command.name() == "login1resp");
    CHECK(fields.command.fields[2].size() == 732);
    auto blob = unstringify(fields.command.fields[2]);
    REQUIRE(blob);
    auto challenge = open_box_frame(s.user_keys["alice"].secret_key, s.keys.public_key, blob->data(), blob->size());
    REQUIRE(challenge);
    CHECK(challenge->size() == 200);
    CHECK(wire::allowed_command_text(*challenge));
    CHECK(challenge->find('|') == std::string::npos);
    p.command("login2|alice|" + *challenge);
    auto ok = p.next_body();
    REQUIRE(ok.rfind("login2resp|", 0) == 0);
    std::string sk = ok.substr(11);
    CHECK(sk.size() == 59);
    CHECK(wire::valid_user_name(sk));
    CHECK(s.server->stats().logged_in == 1);
    CHECK(s.logged("alice logged in"));
    for (const auto& line : s.log) {
        CHECK(line.find(sk) == std::string::npos);
        CHECK(line.find(*challenge) == std::string::npos);
    }
}

TEST_CASE("login1 for an unknown user: invalid, then closed") {
    TestServer s;
    RawPeer p(s);
    REQUIRE(p.handshake());
    p.command("login1|mallory");
    CHECK(p.next_body() == "invalid");
    CHECK(p.closed());
}

TEST_CASE("login2 failures: invalid and closed") {
    TestServer s;
    SUBCASE("wrong challenge") {
        RawPeer p(s);
        REQUIRE(p.handshake());
        p.command("login1|alice");
        REQUIRE(p.next_body().rfind("login1resp|", 0) == 0);
        p.command("login2|alice|" + std::string(200, 'A'));
        CHECK(p.next_body() == "invalid");
        CHECK(p.closed());
    }
    SUBCASE("no login1 before") {
        RawPeer p(s);
        REQUIRE(p.handshake());
        p.command("login2|alice|abc");
        CHECK(p.next_body() == "invalid");
        CHECK(p.closed());
    }
    SUBCASE("challenge answered for another user") {
        RawPeer p(s);
        REQUIRE(p.handshake());
        p.command("login1|alice");
        auto reply = p.next_body();
        auto blob = unstringify(reply.substr(11));
        auto challenge = open_box_frame(s.user_keys["alice"].secret_key, s.keys.public_key, blob->data(), blob->size());
        REQUIRE(challenge);
        p.command("login2|bob|" + *challenge);
        CHECK(p.next_body() == "invalid");
        CHECK(p.closed());
    }
    RawPeer fresh(s);
    CHECK_FALSE(fresh.login("alice").empty());
}

TEST_CASE("D4: a stranger's login1 does not void a pending challenge") {
    TestServer s;
    RawPeer alice(s), stranger(s);
    REQUIRE(alice.handshake());
    alice.command("login1|alice");
    auto reply = alice.next_body();
    REQUIRE(stranger.handshake());
    stranger.command("login1|alice");
    REQUIRE(stranger.next_body().rfind("login1resp|", 0) == 0);
    auto blob = unstringify(reply.substr(11));
    auto challenge = open_box_frame(s.user_keys["alice"].secret_key, s.keys.public_key, blob->data(), blob->size());
    alice.command("login2|alice|" + *challenge);
    CHECK(alice.next_body().rfind("login2resp|", 0) == 0);
}

TEST_CASE("D3/D5: a logged-in connection cannot log in again; it keeps working") {
    TestServer s;
    RawPeer p(s);
    REQUIRE_FALSE(p.login("alice").empty());
    p.command("login1|bob");
    CHECK(p.next_body() == "invalid");
    p.command("login2|bob|xyz");
    CHECK(p.next_body() == "invalid");
    CHECK_FALSE(p.closed(quiet));
    RawPeer bob(s);
    REQUIRE_FALSE(bob.login("bob").empty());
    p.command("call|bob|" + p.sk);
    CHECK(p.next_body() == "available|bob");
}

TEST_CASE("a new login of the same user closes the old connection; its key dies") {
    TestServer s;
    RawPeer first(s);
    std::string old_sk = first.login("alice");
    REQUIRE_FALSE(old_sk.empty());
    RawPeer second(s);
    REQUIRE_FALSE(second.login("alice").empty());
    CHECK(first.closed());
    CHECK(s.server->stats().logged_in == 1);
    second.command("call|bob|" + old_sk);  // the old key, on the new connection
    CHECK(second.next_body() == "invalid");
}

TEST_CASE("session key checks: wrong key, another connection's key, before login") {
    TestServer s;
    RawPeer alice(s), bob(s), anon(s);
    REQUIRE_FALSE(alice.login("alice").empty());
    REQUIRE_FALSE(bob.login("bob").empty());
    alice.command("call|bob|" + std::string(59, 'x'));
    CHECK(alice.next_body() == "invalid");
    alice.command("call|bob|" + bob.sk);
    CHECK(alice.next_body() == "invalid");
    REQUIRE(anon.handshake());
    anon.command("call|bob|" + bob.sk);
    CHECK(anon.next_body() == "invalid");
    CHECK(bob.next_body(quiet) == "");  // nobody rang bob
}

TEST_CASE("silently dropped: bad timestamps, bad characters, D, unknown and malformed commands") {
    TestServer s;
    RawPeer p(s);
    REQUIRE_FALSE(p.login("alice").empty());
    p.send_text(s.timestamp(-1000) + "|call|bob|" + p.sk);
    p.send_text(s.timestamp(+1000) + "|call|bob|" + p.sk);
    p.send_text("abc|call|bob|" + p.sk);
    p.send_text(s.timestamp() + "|call|bob |" + p.sk);
    p.send_text(s.timestamp() + "|call|bob\n|" + p.sk);
    p.send_text("D");
    p.send_text(s.timestamp() + "|dance|bob|" + p.sk);
    p.send_text(s.timestamp() + "|login2|alice");           // D6: would crash the original
    p.send_text(s.timestamp() + "|passthrough|bob|" + p.sk);  // D7
    p.send_text(s.timestamp() + "|call||bob|" + p.sk);
    p.send_text(s.timestamp() + "|call|bob|" + p.sk + "|x|y");
    CHECK(p.next(quiet) == std::nullopt);
    CHECK(s.logged("unknown command \"dance\""));
    RawPeer bob(s);
    REQUIRE_FALSE(bob.login("bob").empty());
    p.command("call|bob|" + p.sk);
    CHECK(p.next_body() == "available|bob");
}

TEST_CASE("frames split into single bytes and coalesced frames are both understood") {
    TestServer s;
    RawPeer p(s);
    REQUIRE(p.handshake());
    Bytes login1 = seal_secret_frame(p.tcp_key.data(), s.timestamp() + "|login1|alice");
    for (std::uint8_t b : login1) p.send_bytes(Bytes{b});
    auto reply = p.next_body();
    REQUIRE(reply.rfind("login1resp|", 0) == 0);
    auto blob = unstringify(reply.substr(11));
    auto challenge = open_box_frame(s.user_keys["alice"].secret_key, s.keys.public_key, blob->data(), blob->size());
    Bytes both = seal_secret_frame(p.tcp_key.data(), "D");
    Bytes login2 = seal_secret_frame(p.tcp_key.data(), s.timestamp() + "|login2|alice|" + *challenge);
    both.insert(both.end(), login2.begin(), login2.end());
    p.send_bytes(both);
    CHECK(p.next_body().rfind("login2resp|", 0) == 0);
}

TEST_CASE("handshake: garbage or a short seal is closed; the next client is served") {
    TestServer s;
    {
        RawPeer p(s);
        p.send_bytes(Bytes(80, 0x41));
        CHECK(p.closed());
    }
    {
        RawPeer p(s);
        p.send_bytes(Bytes(40, 0x42));  // truncated seal, then silence
    }
    {
        RawPeer p(s);
        REQUIRE(p.handshake());
        p.send_bytes(Bytes(200, 0));  // L = 0 after the handshake
        CHECK(p.closed());
    }
    RawPeer fresh(s);
    CHECK_FALSE(fresh.login("alice").empty());
}

TEST_CASE("a frame announcing more than the limit closes the connection") {
    TestServer s;
    RawPeer p(s);
    REQUIRE(p.handshake());
    Bytes header(28, 0);
    header[24] = 0x10;  // 256 MiB announced
    p.send_bytes(header);
    CHECK(p.closed());
    RawPeer q(s);
    REQUIRE(q.handshake());
    q.send_text(s.timestamp() + "|login1|" + std::string(600, 'a'));  // over the pre-login limit
    CHECK(q.closed());
    RawPeer fresh(s);
    CHECK_FALSE(fresh.login("alice").empty());
}

TEST_CASE("a connection that does not finish logging in is closed at the deadline") {
    TestServer s({"alice"}, [](Config& c) { c.login_timeout = 200ms; });
    RawPeer silent(s);
    RawPeer half(s);
    REQUIRE(half.handshake());
    CHECK(silent.closed(2000ms));
    CHECK(half.closed(2000ms));
    RawPeer p(s);
    CHECK_FALSE(p.login("alice").empty());
    CHECK_FALSE(p.closed(400ms));  // logged in: the deadline no longer applies
}

TEST_CASE("idle timeout closes a logged-in connection that sends nothing, D keeps it") {
    TestServer s({"alice", "bob"}, [](Config& c) { c.idle_timeout = 800ms; });
    RawPeer quiet_one(s), chatty(s);
    REQUIRE_FALSE(quiet_one.login("alice").empty());
    REQUIRE_FALSE(chatty.login("bob").empty());
    for (int i = 0; i < 7; ++i) {
        chatty.send_text("D");
        s.pump(150ms);
    }
    CHECK(quiet_one.closed(2000ms));
    CHECK_FALSE(chatty.closed(100ms));
}

TEST_CASE("connection cap: connections past max_connections are refused, others served") {
    TestServer s({"alice"}, [](Config& c) { c.max_connections = 3; });
    RawPeer a(s), b(s), c(s), d(s);
    CHECK(d.closed(1000ms));
    CHECK_FALSE(a.login("alice").empty());
}

namespace {

// The server's end of each accepted command connection, found among this
// process's descriptors (the Server runs in-process): TCP sockets bound to
// the command port that are not the listener. Their keepalive options.
struct KeepaliveSeen {
    int keepalive = -1, idle = -1, interval = -1, probes = -1;
};
std::vector<KeepaliveSeen> server_side_keepalive(std::uint16_t command_port) {
    std::vector<KeepaliveSeen> seen;
    DIR* fds = opendir("/proc/self/fd");
    REQUIRE(fds != nullptr);
    while (dirent* e = readdir(fds)) {
        int fd = std::atoi(e->d_name);
        if (fd <= 2 || fd == dirfd(fds)) continue;
        sockaddr_in local{};
        socklen_t length = sizeof local;
        if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0 || local.sin_family != AF_INET) continue;
        if (ntohs(local.sin_port) != command_port) continue;
        int listening = 0, type = 0;
        socklen_t n = sizeof listening;
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &n);
        n = sizeof type;
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &n);
        if (listening || type != SOCK_STREAM) continue;
        KeepaliveSeen k;
        n = sizeof(int);
        getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &k.keepalive, &n);
        getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &k.idle, &n);
        getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &k.interval, &n);
        getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &k.probes, &n);
        seen.push_back(k);
    }
    closedir(fds);
    return seen;
}

}  // namespace

TEST_CASE("every accepted command connection gets TCP keepalive (tcp_keepalive), none when 0") {
    SUBCASE("tcp_keepalive = 45 s") {
        TestServer s({"alice"}, [](Config& c) { c.tcp_keepalive = 45s; });
        RawPeer a(s), b(s);
        REQUIRE_FALSE(a.login("alice").empty());
        s.pump(50ms);  // b accepted too
        auto seen = server_side_keepalive(s.server->command_port());
        REQUIRE(seen.size() == 2);
        for (const KeepaliveSeen& k : seen) {
            CHECK(k.keepalive == 1);
            CHECK(k.idle == 45);
            CHECK(k.interval == 10);
            CHECK(k.probes == 6);
        }
    }
    SUBCASE("tcp_keepalive = 0: off") {
        TestServer s({"alice"}, [](Config& c) { c.tcp_keepalive = 0s; });
        RawPeer a(s);
        REQUIRE_FALSE(a.login("alice").empty());
        auto seen = server_side_keepalive(s.server->command_port());
        REQUIRE(seen.size() == 1);
        CHECK(seen[0].keepalive == 0);
    }
}
