// dtcalld and dtcall-keygen as processes, the way an operator meets them: a
// settings directory in the original layout, signals, exit statuses, and the
// one stderr line a bad conf gets. The binaries come from $DTCALLD and
// $DTCALL_KEYGEN (set by tests/meson.build). Loopback only; every wait is
// bounded and every child is killed at the end.
#include <dtcall/client.hpp>
#include "cluster/cluster_key.hpp"
#include "crypto/crypto.hpp"
#include <dtcall/version.hpp>

#include <doctest/doctest.h>

#include "daemon_process.hpp"
#include "http_get.hpp"
#include "promtool.hpp"
#include "temp_dir.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <optional>
#include <regex>
#include <string>
#include <vector>

using namespace std::chrono_literals;

using namespace daemon_process;
using test_support::TempDir;
using test_support::write_file;

TEST_CASE("dtcalld serves, warns about a broken users line, reloads on HUP, stops on TERM") {
    SettingsDir s;
    ChildProcess dtcalld(s.argv(), s.dir.path);
    std::string ready = "ready: command port " + std::to_string(s.command_port) + " (TCP), media port " +
                        std::to_string(s.media_port) + " (UDP)";
    REQUIRE_MESSAGE(eventually([&] { return contains(read_logs(s.logs), ready) || !dtcalld.running(); }),
                    (read_logs(s.logs) + dtcalld.err()));
    REQUIRE_MESSAGE(contains(read_logs(s.logs), ready), (read_logs(s.logs) + dtcalld.err()));
    CHECK(tcp_connects(s.command_port));

    std::string log = read_logs(s.logs);
    CHECK_MESSAGE(contains(log, " warn  " + s.settings + "/users:2: "), log);
    CHECK_MESSAGE(contains(log, s.settings + "/users: 2 users"), log);
    CHECK(dtcalld.err().empty());  // stderr is not a terminal: everything went to the log
    CHECK_MESSAGE(contains(log, " info  open files limit: "), log);

    // The users file in the original format really lets its users in.
    CHECK(try_login(s, "alice") == "logged in");
    CHECK(try_login(s, "bob") == "logged in");
    CHECK(contains(read_logs(s.logs), "alice logged in from 127.0.0.1:"));

    // Add a user, then HUP: the reload is logged with the new count, and the
    // new user can log in without a restart.
    std::string users = read_file(s.settings + "/users");
    REQUIRE(dtcall::write_key_files(dtcall::KeyPair::generate(), s.settings + "/carol_public.na",
                                    s.settings + "/carol_private.na")
                .ok());
    CHECK(try_login(s, "carol") == "refused");
    write_file(s.settings + "/users", users + "carol > carol_public.na\n");

    // alice stays connected across the reload: nobody is dropped.
    {
        HeldLogin held(s, "alice");
        auto logouts = [&] {
            std::string log = read_logs(s.logs);
            std::size_t n = 0;
            for (std::size_t at = log.find("alice logged out"); at != std::string::npos;
                 at = log.find("alice logged out", at + 1))
                ++n;
            return n;
        };
        std::size_t logouts_before = logouts();

        dtcalld.signal(SIGHUP);
        CHECK_MESSAGE(eventually([&] { return contains(read_logs(s.logs), s.settings + "/users: 3 users"); }),
                      read_logs(s.logs));
        CHECK(contains(read_logs(s.logs), "SIGHUP: reloading"));
        CHECK(try_login(s, "carol") == "logged in");
        REQUIRE(held.client().heartbeat());
        held.run_for(300ms);
        CHECK(held.client().is_logged_in());
        CHECK_FALSE(held.closed());
        CHECK(logouts() == logouts_before);
    }

    dtcalld.signal(SIGUSR1);
    CHECK(eventually([&] { return contains(read_logs(s.logs), "SIGUSR1: started a new log file"); }));

    dtcalld.signal(SIGTERM);
    auto status = dtcalld.wait_exit();
    REQUIRE_MESSAGE(status.has_value(), "dtcalld did not stop on SIGTERM");
    CHECK(*status == 0);
    CHECK(contains(read_logs(s.logs), "SIGTERM: stopping"));
    CHECK(contains(read_logs(s.logs), "info  stopped"));
    CHECK_FALSE(tcp_connects(s.command_port));

    // After real logins, no run long enough to be a session key, a challenge
    // or a key blob is in the log.
    CHECK_FALSE(std::regex_search(read_logs(s.logs), std::regex("[0-9A-Za-z]{32}")));
}

TEST_CASE("a user removed from the users file is disconnected within a second of SIGHUP") {
    SettingsDir s;
    ChildProcess dtcalld(s.argv(), s.dir.path);
    REQUIRE_MESSAGE(eventually([&] { return contains(read_logs(s.logs), "ready: command port") || !dtcalld.running(); }),
                    (read_logs(s.logs) + dtcalld.err()));
    {
        HeldLogin alice(s, "alice");

        write_file(s.settings + "/users", "bob > " + s.settings + "/bob_public.na\n");
        dtcalld.signal(SIGHUP);
        auto signalled = std::chrono::steady_clock::now();
        alice.run_for(1s);
        CHECK_MESSAGE(alice.closed(), read_logs(s.logs));
        CHECK(std::chrono::steady_clock::now() - signalled < 1s);
    }
    CHECK(contains(read_logs(s.logs), "alice is no longer in the user directory"));
    CHECK(contains(read_logs(s.logs), "alice logged out (revoked)"));
    CHECK(try_login(s, "alice") == "refused");
    CHECK(try_login(s, "bob") == "logged in");
    dtcalld.signal(SIGTERM);
    auto status = dtcalld.wait_exit();
    REQUIRE(status.has_value());
    CHECK(*status == 0);
}

TEST_CASE("an original settings dir with dtoperator.conf works unchanged; SIGINT stops it") {
    SettingsDir s("dtoperator.conf");
    ChildProcess dtcalld(s.argv(), s.dir.path);
    REQUIRE_MESSAGE(eventually([&] { return contains(read_logs(s.logs), "ready: ") || !dtcalld.running(); }),
                    dtcalld.err());
    std::string log = read_logs(s.logs);
    REQUIRE_MESSAGE(contains(log, "ready: command port " + std::to_string(s.command_port)), (log + dtcalld.err()));
    CHECK(contains(log, "settings from " + s.settings + "/dtoperator.conf"));
    CHECK(tcp_connects(s.command_port));
    dtcalld.signal(SIGINT);
    auto status = dtcalld.wait_exit();
    REQUIRE(status.has_value());
    CHECK(*status == 0);
}

TEST_CASE("a bad conf stops dtcalld with one stderr line naming file and line") {
    SettingsDir s;
    std::string conf = s.settings + "/dtcalld.conf";

    SUBCASE("a port that is not a number") {
        s.write_conf("dtcalld.conf", "# x\n\ncommand = abc\n");
        expect_refusal(s, conf + ":3: command: \"abc\" is not a port number (1-65535)");
    }
    SUBCASE("port 0") {
        s.write_conf("dtcalld.conf", "media = 0\n");
        expect_refusal(s, conf + ":1: media: \"0\" is not a port number");
    }
    SUBCASE("a missing key file") {
        s.write_conf("dtcalld.conf", "public_sodium = server_public.na\nprivate_sodium = gone.na\n");
        expect_refusal(s, conf + ":2: private_sodium: " + s.settings + "/gone.na: cannot open");
    }
    SUBCASE("a malformed key file") {
        write_file(s.settings + "/server_private.na", "SODIUM PRIVATE KEY\n12345");
        expect_refusal(s, conf + ":5: private_sodium: " + s.settings + "/server_private.na: ");
    }
    SUBCASE("a private key group or others can read") {
        std::string key = s.settings + "/server_private.na";
        REQUIRE(::chmod(key.c_str(), 0644) == 0);
        expect_refusal(s, conf + ":5: private_sodium: " + key +
                              ": readable by group or others (mode 0644); run: chmod 600 " + key);
    }
    SUBCASE("a public key that does not match the private one") {
        REQUIRE(dtcall::write_key_files(dtcall::KeyPair::generate(), s.settings + "/x_public.na",
                                        s.settings + "/x_private.na")
                    .ok());
        s.write_conf("dtcalld.conf", "public_sodium = x_public.na\nprivate_sodium = server_private.na\n");
        expect_refusal(s, conf + ":1: public_sodium: ");
    }
    SUBCASE("no conf file at all") {
        REQUIRE(::unlink(conf.c_str()) == 0);
        expect_refusal(s, s.settings + ": has neither dtcalld.conf nor dtoperator.conf");
    }
    SUBCASE("no users file") {
        REQUIRE(::unlink((s.settings + "/users").c_str()) == 0);
        expect_refusal(s, s.settings + "/users");
    }
}

TEST_CASE("a control socket in a missing directory, or a missing settings directory, is one line naming it") {
    SettingsDir s;
    SUBCASE("control in a directory that does not exist: the conf line, and that dtcalld does not create it") {
        std::string control = s.dir / "no-such-dir/control";
        s.write_conf("dtcalld.conf", read_file(s.settings + "/dtcalld.conf") + "control = " + control + "\n");
        expect_refusal(s, s.settings + "/dtcalld.conf:7: control: " + control + ": No such file or directory; the directory " +
                              s.dir / "no-such-dir" +
                              " must exist (dtcalld does not create it; under systemd, RuntimeDirectory=dtcalld makes "
                              "/run/dtcalld)");
    }
    SUBCASE("--settings naming a directory that does not exist") {
        std::vector<std::string> argv = s.argv();
        REQUIRE(argv.at(1) == "--settings");
        argv.at(2) = s.dir / "no-such-settings";
        ChildProcess dtcalld(argv, s.dir.path);
        auto status = dtcalld.wait_exit();
        REQUIRE_MESSAGE(status.has_value(), "dtcalld did not exit");
        CHECK(*status == 1);
        CHECK_MESSAGE(lines_in(dtcalld.err()) == 1, dtcalld.err());
        CHECK_MESSAGE(contains(dtcalld.err(), "settings directory " + s.dir / "no-such-settings" +
                                                  ": No such file or directory"),
                      dtcalld.err());
    }
}

TEST_CASE("a log directory that cannot be used is refused at start") {
    SettingsDir s;
    std::vector<std::string> argv = s.argv();
    argv.back() = s.dir / "no-such-dir";
    ChildProcess dtcalld(argv, s.dir.path);
    auto status = dtcalld.wait_exit();
    REQUIRE(status.has_value());
    CHECK(*status == 1);
    CHECK(lines_in(dtcalld.err()) == 1);
    CHECK(contains(dtcalld.err(), s.dir / "no-such-dir"));
}

namespace {

// A socket of `type` bound to 127.0.0.1:port (listening when TCP), so that
// dtcalld finds the port taken; -1 when the port could not be had.
int take_port(int type, std::uint16_t port) {
    int fd = ::socket(AF_INET, type, 0);
    if (fd < 0) return -1;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        (type == SOCK_STREAM && ::listen(fd, 1) != 0)) {
        ::close(fd);
        return -1;
    }
    return fd;
}

}  // namespace

TEST_CASE("a port already taken is refused with a line naming the conf file, line and key") {
    SettingsDir s;  // command is on line 2 of its conf, media on line 3
    SUBCASE("command") {
        int blocker = take_port(SOCK_STREAM, s.command_port);
        REQUIRE(blocker >= 0);
        expect_refusal(s, s.settings + "/dtcalld.conf:2: command: TCP 127.0.0.1 port " +
                              std::to_string(s.command_port) + ": cannot bind: Address already in use");
        ::close(blocker);
    }
    SUBCASE("media") {
        int blocker = take_port(SOCK_DGRAM, s.media_port);
        REQUIRE(blocker >= 0);
        expect_refusal(s, s.settings + "/dtcalld.conf:3: media: UDP 127.0.0.1 port " + std::to_string(s.media_port) +
                              ": cannot bind: Address already in use");
        ::close(blocker);
    }
    SUBCASE("node_address") {
        std::uint16_t port = free_port(SOCK_DGRAM);
        int blocker = take_port(SOCK_DGRAM, port);
        REQUIRE(blocker >= 0);
        REQUIRE(dtcall::cluster::write_cluster_key_file(dtcall::cluster::ClusterKey::generate(),
                                                        s.settings + "/cluster.key").ok());
        s.write_conf("dtcalld.conf", read_file(s.settings + "/dtcalld.conf") +
                                         "cluster_redis = unix:/nonexistent/redis.sock\nnode_name = n1\n"
                                         "node_address = 127.0.0.1:" + std::to_string(port) +
                                         "\ncluster_key = cluster.key\n");
        // The SettingsDir's conf has 6 lines: node_address is line 9.
        expect_refusal(s, s.settings + "/dtcalld.conf:9: node_address: 127.0.0.1:" + std::to_string(port) +
                              ": cannot bind UDP: Address already in use");
        ::close(blocker);
    }
}

TEST_CASE("dtcalld --version, --help and a wrong argument") {
    TempDir dir;
    {
        ChildProcess version({env_or_fail("DTCALLD"), "--version"}, dir.path);
        REQUIRE(version.wait_exit() == std::optional<int>(0));
        CHECK(version.out() == std::string("dtcalld ") + dtcall::version() + "\n");
    }
    {
        ChildProcess help({env_or_fail("DTCALLD"), "--help"}, dir.path);
        REQUIRE(help.wait_exit() == std::optional<int>(0));
        CHECK(contains(help.out(), "--settings DIR"));
    }
    {
        ChildProcess wrong({env_or_fail("DTCALLD"), "--bogus"}, dir.path);
        REQUIRE(wrong.wait_exit() == std::optional<int>(2));
        CHECK(wrong.err() == "dtcalld: unknown argument \"--bogus\" (try --help)\n");
    }
}

TEST_CASE("dtcall-keygen writes a canonical key pair, private 0600, and never overwrites") {
    TempDir dir;
    std::string keygen = env_or_fail("DTCALL_KEYGEN");
    {
        ChildProcess run({keygen, "alice", dir.path}, dir.path);
        REQUIRE(run.wait_exit() == std::optional<int>(0));
        CHECK(contains(run.out(), "alice > "));
    }
    std::string pub = read_file(dir / "alice_public.na");
    std::string priv = read_file(dir / "alice_private.na");
    CHECK(pub.size() == 114);
    CHECK(priv.size() == 115);
    CHECK(pub.rfind("SODIUM PUBLIC KEY\n", 0) == 0);
    CHECK(priv.rfind("SODIUM PRIVATE KEY\n", 0) == 0);
    struct stat st {};
    REQUIRE(::stat((dir / "alice_private.na").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    auto secret = dtcall::read_private_key_file(dir / "alice_private.na");
    auto public_key = dtcall::read_public_key_file(dir / "alice_public.na");
    REQUIRE(secret.ok());
    REQUIRE(public_key.ok());
    CHECK(dtcall::KeyPair::from_secret(*secret).public_key == *public_key);

    {
        ChildProcess again({keygen, "alice", dir.path}, dir.path);
        REQUIRE(again.wait_exit() == std::optional<int>(1));
        CHECK(lines_in(again.err()) == 1);
        CHECK(contains(again.err(), "already exists"));
        CHECK(read_file(dir / "alice_public.na") == pub);
        CHECK(read_file(dir / "alice_private.na") == priv);
    }
    {
        ChildProcess bad_name({keygen, "al ice", dir.path}, dir.path);
        REQUIRE(bad_name.wait_exit() == std::optional<int>(1));
        CHECK(lines_in(bad_name.err()) == 1);
        CHECK(contains(bad_name.err(), "not a valid name"));
    }
    {
        ChildProcess no_dir({keygen, "bob", dir / "missing"}, dir.path);
        REQUIRE(no_dir.wait_exit() == std::optional<int>(1));
        CHECK(contains(no_dir.err(), dir / "missing"));
    }
    {
        ChildProcess usage({keygen}, dir.path);
        REQUIRE(usage.wait_exit() == std::optional<int>(2));
    }
}

TEST_CASE("dtcalld raises its open-files limit to the hard one and warns when max_connections does not fit") {
    SettingsDir s;
    std::string conf = read_file(s.settings + "/dtcalld.conf");
    // Each SUBCASE runs on fresh SettingsDir (doctest re-enters the test case).
    auto start = [&](rlim_t soft, rlim_t hard) {
        ChildProcess dtcalld(s.argv(), s.dir.path, rlimit{soft, hard});
        REQUIRE_MESSAGE(eventually([&] { return contains(read_logs(s.logs), "ready: ") || !dtcalld.running(); }),
                        dtcalld.err());
        dtcalld.signal(SIGTERM);
        CHECK(dtcalld.wait_exit() == std::optional<int>(0));
        return read_logs(s.logs);
    };

    SUBCASE("the default max_connections (19000) under a hard limit of 300") {
        std::string log = start(100, 300);
        CHECK_MESSAGE(contains(log, " info  open files limit: 300 (raised from 100)"), log);
        CHECK_MESSAGE(contains(log, " warn  " + s.settings + "/dtcalld.conf: (default) max_connections: 19000 "
                                    "connections need 19064 open files, but the limit is 300, room for 236 connections"),
                      log);
    }
    SUBCASE("max_connections from the conf, named by its line") {
        s.write_conf("dtcalld.conf", conf + "max_connections = 500\n");
        std::string log = start(300, 300);
        CHECK_MESSAGE(contains(log, " info  open files limit: 300\n"), log);
        CHECK_MESSAGE(contains(log, " warn  " + s.settings + "/dtcalld.conf:7: max_connections: 500 connections"), log);
    }
    SUBCASE("a max_connections that fits: no warning") {
        s.write_conf("dtcalld.conf", conf + "max_connections = 236\n");
        std::string log = start(300, 300);
        CHECK_MESSAGE(contains(log, " info  open files limit: 300\n"), log);
        CHECK_FALSE_MESSAGE(contains(log, "max_connections"), log);
    }
}

TEST_CASE("dtcall-keygen --cluster-key writes a 0600 cluster key dtcalld accepts, and never overwrites") {
    TempDir dir;
    std::string keygen = env_or_fail("DTCALL_KEYGEN");
    const std::string key = dir / "cluster.key";
    {
        mode_t old = ::umask(0);  // the file is 0600 whatever the umask
        ChildProcess run({keygen, "--cluster-key", key}, dir.path);
        ::umask(old);
        REQUIRE(run.wait_exit() == std::optional<int>(0));
        CHECK(contains(run.out(), "wrote " + key + " (mode 0600)"));
    }
    std::string text = read_file(key);
    CHECK(text.size() == 115);
    CHECK(text.rfind("DTCALL CLUSTER KEY\n", 0) == 0);
    struct stat st {};
    REQUIRE(::stat(key.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    REQUIRE(dtcall::cluster::read_cluster_key_file(key).ok());
    {
        ChildProcess again({keygen, "--cluster-key", key}, dir.path);
        REQUIRE(again.wait_exit() == std::optional<int>(1));
        CHECK(lines_in(again.err()) == 1);
        CHECK(contains(again.err(), key + ": already exists, not overwriting"));
        CHECK(read_file(key) == text);
    }
    {
        ChildProcess other({keygen, "--cluster-key", dir / "b.key"}, dir.path);
        REQUIRE(other.wait_exit() == std::optional<int>(0));
        CHECK(read_file(dir / "b.key") != text);  // random each time
    }
    for (std::vector<std::string> wrong : {std::vector<std::string>{keygen, "--cluster-key"},
                                           std::vector<std::string>{keygen, "--cluster-key", key, "x"},
                                           std::vector<std::string>{keygen, "--bogus"}}) {
        ChildProcess usage(wrong, dir.path);
        REQUIRE(usage.wait_exit() == std::optional<int>(2));
    }
    {
        ChildProcess missing_dir({keygen, "--cluster-key", dir / "no/such.key"}, dir.path);
        REQUIRE(missing_dir.wait_exit() == std::optional<int>(1));
        CHECK(contains(missing_dir.err(), dir / "no/such.key: cannot create"));
    }
}

TEST_CASE("dtcalld with the cluster keys and no Redis says where it connects, and serves as one node") {
    SettingsDir s;
    std::string conf = read_file(s.settings + "/dtcalld.conf");
    REQUIRE(dtcall::cluster::write_cluster_key_file(dtcall::cluster::ClusterKey::generate(),
                                                    s.settings + "/cluster.key").ok());
    std::string node_address = "127.0.0.1:" + std::to_string(free_port(SOCK_DGRAM));
    s.write_conf("dtcalld.conf", conf + "cluster_redis = unix:/nonexistent/redis.sock\nnode_name = n1\n"
                                        "node_address = " + node_address + "\ncluster_key = cluster.key\n");
    {
        ChildProcess dtcalld(s.argv(), s.dir.path);
        REQUIRE_MESSAGE(eventually([&] { return contains(read_logs(s.logs), "ready: ") || !dtcalld.running(); }),
                        (read_logs(s.logs) + dtcalld.err()));
        CHECK(try_login(s, "alice") == "logged in");
        dtcalld.signal(SIGTERM);
        CHECK(dtcalld.wait_exit() == std::optional<int>(0));
        std::string log = read_logs(s.logs);
        CHECK_MESSAGE(contains(log, " info  cluster: node n1, Redis at unix:/nonexistent/redis.sock, node address " +
                                        node_address + ", ttl 15 s\n"),
                      log);
        CHECK_MESSAGE(contains(log, "redis (unix:/nonexistent/redis.sock): cannot connect"), log);
        CHECK_FALSE(contains(log, "not active"));
    }
    // A key file others may read: refused at start, naming the fix.
    REQUIRE(::chmod((s.settings + "/cluster.key").c_str(), 0644) == 0);
    ChildProcess refused(s.argv(), s.dir.path);
    CHECK(refused.wait_exit() == std::optional<int>(1));
    CHECK_MESSAGE(contains(refused.err() + read_logs(s.logs), "run: chmod 600 " + s.settings + "/cluster.key"),
                  refused.err());
}

TEST_CASE("dtcall-keygen under umask 0 still writes the private key 0600 and the public one 0644") {
    TempDir dir;
    mode_t old = ::umask(0);  // inherited by the child; this test process is single-threaded
    ChildProcess run({env_or_fail("DTCALL_KEYGEN"), "carol", dir.path}, dir.path);
    ::umask(old);
    REQUIRE(run.wait_exit() == std::optional<int>(0));
    struct stat st {};
    REQUIRE(::stat((dir / "carol_private.na").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    REQUIRE(::stat((dir / "carol_public.na").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0644);
}

TEST_CASE("metrics = 127.0.0.1:0: the bound port is logged, /metrics counts logins, /healthz ok, 404, cut-offs") {
    SettingsDir s;
    std::string conf = read_file(s.settings + "/dtcalld.conf");
    s.write_conf("dtcalld.conf", conf + "metrics = 127.0.0.1:0\n");
    ChildProcess dtcalld(s.argv(), s.dir.path);
    REQUIRE_MESSAGE(eventually([&] { return contains(read_logs(s.logs), "ready: ") || !dtcalld.running(); }),
                    (read_logs(s.logs) + dtcalld.err()));
    std::smatch found;
    std::string log = read_logs(s.logs);
    REQUIRE_MESSAGE(std::regex_search(log, found, std::regex(" info  metrics on http://127\\.0\\.0\\.1:([0-9]+)/metrics\n")),
                    log);
    auto port = std::uint16_t(std::stoi(found[1]));
    REQUIRE(port != 0);

    auto health = test_support::http_get(port, "/healthz");
    CHECK(health.status == 200);
    CHECK(health.body == "ok");
    CHECK(test_support::http_get(port, "/").status == 404);
    CHECK(test_support::http_get(port, "/metrics", "POST").status == 405);
    auto oversized = test_support::http_exchange(
        port, "GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n" + std::string(2000, 'x'));
    CHECK(oversized.status == 413);
    CHECK(oversized.closed);

    CHECK(try_login(s, "alice") == "logged in");
    REQUIRE(dtcall::write_key_files(dtcall::KeyPair::generate(), s.settings + "/carol_public.na",
                                    s.settings + "/carol_private.na")
                .ok());
    CHECK(try_login(s, "carol") == "refused");  // not in the users file
    auto scrape = test_support::http_get(port, "/metrics");
    REQUIRE(scrape.status == 200);
    CHECK(contains(scrape.head, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    CHECK_MESSAGE(contains(scrape.body, "\ndtcall_logins_total{result=\"ok\"} 1\n"), scrape.body);
    CHECK(contains(scrape.body, "\ndtcall_logins_total{result=\"failed\"} 1\n"));
    CHECK(contains(scrape.body, "\ndtcall_login_failures_total{reason=\"unknown_user\"} 1\n"));
    CHECK(contains(scrape.body, std::string("\ndtcall_build_info{version=\"") + dtcall::version() + "\"} 1\n"));
    CHECK(contains(scrape.body, "\nprocess_resident_memory_bytes "));
    CHECK(contains(scrape.body, "\nprocess_open_fds "));
    CHECK(contains(scrape.body, "\nprocess_start_time_seconds "));
    test_support::check_with_promtool(scrape.body);

    dtcalld.signal(SIGTERM);
    CHECK(dtcalld.wait_exit() == std::optional<int>(0));
}

TEST_CASE("a metrics port already taken stops dtcalld with a line naming the address") {
    SettingsDir s;
    int blocker = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(blocker >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(blocker, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(blocker, 1) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(blocker, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    std::string taken = "127.0.0.1:" + std::to_string(ntohs(address.sin_port));
    s.write_conf("dtcalld.conf", read_file(s.settings + "/dtcalld.conf") + "metrics = " + taken + "\n");
    // The SettingsDir's conf has 6 lines: metrics is line 7.
    expect_refusal(s, s.settings + "/dtcalld.conf:7: metrics: cannot listen on " + taken + ": Address already in use");
    ::close(blocker);
}

namespace {

// systemd's end of sd_notify(3): a datagram socket of the test, a file in
// its temp dir or an abstract name ("@..."), as $NOTIFY_SOCKET names it.
class NotifyListener {
public:
    explicit NotifyListener(const std::string& name) : name_(name) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_un at{};
        at.sun_family = AF_UNIX;
        REQUIRE(name.size() < sizeof at.sun_path);
        std::memcpy(at.sun_path, name.data(), name.size());
        if (name[0] == '@') at.sun_path[0] = '\0';
        auto length = socklen_t(offsetof(sockaddr_un, sun_path) + name.size() + (name[0] == '@' ? 0 : 1));
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&at), length) == 0);
    }
    ~NotifyListener() { ::close(fd_); }
    NotifyListener(const NotifyListener&) = delete;
    NotifyListener& operator=(const NotifyListener&) = delete;

    const std::string& name() const { return name_; }

    // The next datagram within `limit`, or nullopt.
    std::optional<std::string> next(std::chrono::milliseconds limit = 5000ms) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, int(limit.count())) != 1) return std::nullopt;
        char buffer[4096];
        ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
        if (n < 0) return std::nullopt;
        return std::string(buffer, std::size_t(n));
    }
    // The next datagram that is not WATCHDOG=1 (counting those it skips).
    std::optional<std::string> next_news(std::chrono::milliseconds limit = 5000ms) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (true) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return std::nullopt;
            auto message = next(left);
            if (!message || *message != "WATCHDOG=1") return message;
            ++watchdogs;
        }
    }
    int watchdogs = 0;

private:
    std::string name_;
    int fd_ = -1;
};

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

}  // namespace

TEST_CASE("NOTIFY_SOCKET: READY=1 once bound, STATUS= refreshed, RELOADING=1 then READY=1 on HUP, STOPPING=1 on TERM") {
    SettingsDir s;
    NotifyListener systemd(s.dir / "notify");
    ChildProcess dtcalld(s.argv(), s.dir.path, std::nullopt, {{"NOTIFY_SOCKET", systemd.name()}});

    auto ready = systemd.next();
    REQUIRE_MESSAGE(ready.has_value(), (read_logs(s.logs) + dtcalld.err()));
    CHECK(*ready == "READY=1\nSTATUS=0 users online, 0 calls (0 ringing), 0 connections");
    CHECK(tcp_connects(s.command_port));  // bound before READY=1
    std::string log = read_logs(s.logs);
    CHECK_MESSAGE(contains(log, " info  systemd: notifying " + systemd.name() + "\n"), log);

    // A connection that stays (not logged in: closed after login_timeout,
    // 15 s): the next refresh, within Lifecycle::status_period (5 s), says so.
    int held = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(held >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(s.command_port);
    REQUIRE(::connect(held, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    auto status = systemd.next(7000ms);
    CHECK(status == std::optional<std::string>("STATUS=0 users online, 0 calls (0 ringing), 1 connection"));
    ::close(held);

    // A refresh may come between (the held connection closing): skip those.
    auto next_change = [&] {
        auto message = systemd.next();
        while (message && starts_with(*message, "STATUS=")) message = systemd.next();
        return message;
    };
    dtcalld.signal(SIGHUP);
    auto reloading = next_change();
    REQUIRE(reloading.has_value());
    CHECK_MESSAGE(std::regex_match(*reloading, std::regex("RELOADING=1\nMONOTONIC_USEC=[0-9]+")), *reloading);
    auto reloaded = next_change();
    REQUIRE(reloaded.has_value());
    CHECK_MESSAGE(starts_with(*reloaded, "READY=1\nSTATUS=0 users online, 0 calls"), *reloaded);

    dtcalld.signal(SIGTERM);
    auto stopping = next_change();
    CHECK(stopping == std::optional<std::string>("STOPPING=1\nSTATUS=stopping (SIGTERM)"));
    CHECK(dtcalld.wait_exit() == std::optional<int>(0));
    CHECK(systemd.watchdogs == 0);  // no WATCHDOG_USEC: no watchdog
    CHECK(dtcalld.err().empty());
}

TEST_CASE("WATCHDOG_USEC=200000: WATCHDOG=1 every ~100 ms, to an abstract NOTIFY_SOCKET; not for another WATCHDOG_PID") {
    SettingsDir s;
    NotifyListener systemd("@dtcall-process-test-" + std::to_string(::getpid()));
    SUBCASE("WATCHDOG_PID unset: ours") {
        ChildProcess dtcalld(s.argv(), s.dir.path, std::nullopt,
                      {{"NOTIFY_SOCKET", systemd.name()}, {"WATCHDOG_USEC", "200000"}});
        auto ready = systemd.next_news();
        REQUIRE_MESSAGE(ready.has_value(), (read_logs(s.logs) + dtcalld.err()));
        CHECK(starts_with(*ready, "READY=1\n"));
        // One second: about ten beats; a loaded machine may lose a few.
        CHECK_FALSE(systemd.next_news(1000ms).has_value());
        CHECK_MESSAGE(systemd.watchdogs >= 5, systemd.watchdogs);
        CHECK_MESSAGE(systemd.watchdogs <= 13, systemd.watchdogs);
        CHECK(contains(read_logs(s.logs), "systemd: notifying " + systemd.name() + ", watchdog every 100 ms\n"));
        dtcalld.signal(SIGTERM);
        CHECK(systemd.next_news() == std::optional<std::string>("STOPPING=1\nSTATUS=stopping (SIGTERM)"));
        CHECK(dtcalld.wait_exit() == std::optional<int>(0));
    }
    SUBCASE("WATCHDOG_PID of another process: not ours, no WATCHDOG=1") {
        ChildProcess dtcalld(s.argv(), s.dir.path, std::nullopt,
                      {{"NOTIFY_SOCKET", systemd.name()}, {"WATCHDOG_USEC", "200000"}, {"WATCHDOG_PID", "1"}});
        auto ready = systemd.next_news();
        REQUIRE(ready.has_value());
        CHECK(starts_with(*ready, "READY=1\n"));
        CHECK_FALSE(systemd.next_news(500ms).has_value());
        CHECK(systemd.watchdogs == 0);
        dtcalld.signal(SIGTERM);
        CHECK(dtcalld.wait_exit() == std::optional<int>(0));
    }
}

TEST_CASE("a NOTIFY_SOCKET that cannot be used is a warning; dtcalld serves on") {
    SettingsDir s;
    ChildProcess dtcalld(s.argv(), s.dir.path, std::nullopt, {{"NOTIFY_SOCKET", "not/absolute"}});
    REQUIRE(eventually([&] { return contains(read_logs(s.logs), "ready: ") || !dtcalld.running(); }));
    CHECK(dtcalld.running());
    std::string log = read_logs(s.logs);
    CHECK_MESSAGE(contains(log, " warn  NOTIFY_SOCKET=not/absolute: not a socket path or @name; systemd will not hear"), log);
    dtcalld.signal(SIGTERM);
    CHECK(dtcalld.wait_exit() == std::optional<int>(0));
}
