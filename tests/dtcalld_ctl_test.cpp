// dtcall-ctl against a running dtcalld, both the built binaries ($DTCALLD,
// $DTCALL_CTL): a settings dir with `control = DIR/control`, real phones
// (dtcall::Client) that log in, call and send media, and every command of
// dtcall-ctl with its table, its --json (parsed) and its errors; the
// socket's own limits (long or bad requests, too many connections); a stale
// socket file; draining; and the per-call report line in the log.
#include <dtcall/client.hpp>
#include <dtcall/version.hpp>
#include "crypto/crypto.hpp"

#include <doctest/doctest.h>

#include "daemon_process.hpp"
#include "http_get.hpp"
#include "mini_json.hpp"
#include "temp_dir.hpp"

#include <event2/event.h>

#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

using namespace daemon_process;

namespace {

using test_support::Json;
using test_support::parse_json;
using test_support::TempDir;
using test_support::write_file;

// A settings directory (keys by dtcall-keygen) whose conf turns the control
// socket on.
struct Daemon {
    TempDir dir;
    std::string settings, logs, control;
    std::uint16_t command_port = 0, media_port = 0;
    std::unique_ptr<ChildProcess> process;

    explicit Daemon(const std::string& extra_conf = "", std::vector<std::string> users = {"alice", "bob", "carol"}) {
        settings = dir / "settings";
        logs = dir / "log";
        control = dir / "control";
        REQUIRE(::mkdir(settings.c_str(), 0700) == 0);
        REQUIRE(::mkdir(logs.c_str(), 0700) == 0);
        REQUIRE(dtcall::crypto_init());
        std::string user_lines;
        users.push_back("server");
        for (const std::string& user : users) {
            ChildProcess keygen({env_or_fail("DTCALL_KEYGEN"), user, settings},
                                ChildOutput::with_prefix(dir / ("keygen-" + user)));
            REQUIRE(keygen.wait_exit() == 0);
            if (user != "server") user_lines += user + " > " + user + "_public.na\n";
        }
        write_file(settings + "/users", user_lines);
        command_port = free_port(SOCK_STREAM);
        media_port = free_port(SOCK_DGRAM);
        write_file(settings + "/dtcalld.conf",
                   "command = " + std::to_string(command_port) + "\n"
                   "media = " + std::to_string(media_port) + "\n"
                   "public_sodium = server_public.na\n"
                   "private_sodium = server_private.na\n"
                   "listen = 127.0.0.1\n"
                   "control = " + control + "\n" + extra_conf);
    }
    // Starts dtcalld and waits for its "ready" line (or its exit).
    bool start() {
        process = std::make_unique<ChildProcess>(
            std::vector<std::string>{env_or_fail("DTCALLD"), "--settings", settings, "--log", logs},
            ChildOutput::with_prefix(dir / "dtcalld"));
        eventually([&] { return contains(read_logs(logs), "ready: command port") || !process->running(); });
        return contains(read_logs(logs), "ready: command port") && process->running();
    }
    std::string log() const { return read_logs(logs); }
};

struct Ctl {
    int status = -1;
    std::string out, err;
};

// Runs the built dtcall-ctl to its end.
Ctl run_ctl(const std::string& work_dir, std::vector<std::string> args) {
    static int runs = 0;
    args.insert(args.begin(), env_or_fail("DTCALL_CTL"));
    ChildProcess ctl(args, ChildOutput::with_prefix(work_dir + "/ctl-" + std::to_string(++runs)));
    auto status = ctl.wait_exit(15s);
    REQUIRE_MESSAGE(status.has_value(), "dtcall-ctl did not finish");
    return Ctl{*status, ctl.out(), ctl.err()};
}

Ctl ctl(const Daemon& d, std::vector<std::string> args) {
    args.insert(args.begin(), {"--control", d.control});
    return run_ctl(d.dir.path, args);
}

// Succeeds and prints one JSON document.
Json ctl_json(const Daemon& d, std::vector<std::string> args) {
    args.push_back("--json");
    Ctl r = ctl(d, args);
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(r.err.empty());
    try {
        return parse_json(r.out);
    } catch (const std::exception& e) {
        FAIL(e.what() << " in: " << r.out);
    }
    return {};
}

// Writes `request` raw to the control socket and reads until it closes.
std::string raw_request(const std::string& path, const std::string& request) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    timeval timeout{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string answer;
    char buffer[4096];
    for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) answer.append(buffer, std::size_t(n));
    ::close(fd);
    return answer;
}

int connect_unix(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    return fd;
}

// Phones on one event loop, driven by the test thread.
class Phones {
public:
    struct Phone {
        std::unique_ptr<dtcall::Client> client;
        bool logged_in = false, refused = false, closed = false, started = false, voice = false, ended = false;
        int received = 0;
    };

    explicit Phones(const Daemon& d) : d_(d), base_(event_base_new()) { REQUIRE(base_ != nullptr); }
    ~Phones() {
        phones_.clear();
        event_base_free(base_);
    }
    Phones(const Phones&) = delete;
    Phones& operator=(const Phones&) = delete;

    Phone& operator[](const std::string& user) { return phones_.at(user); }

    Phone& add(const std::string& user) {
        Phone& phone = phones_[user];
        dtcall::ClientConfig config;
        config.command_port = d_.command_port;
        config.media_port = d_.media_port;
        config.server_key = *dtcall::read_public_key_file(d_.settings + "/server_public.na");
        config.user = user;
        config.user_key = *dtcall::read_private_key_file(d_.settings + "/" + user + "_private.na");
        config.login_timeout = 3s;
        dtcall::ClientEvents events;
        events.logged_in = [&phone] { phone.logged_in = true; };
        events.login_failed = [&phone](const std::string&) { phone.refused = true; };
        events.closed = [&phone](const std::string&) { phone.closed = true; };
        events.incoming = [&phone](const std::string& caller) { (void)phone.client->accept(caller); };
        events.started = [&phone](const std::string&) { phone.started = true; };
        events.voice_key = [&phone](const std::string&) { phone.voice = true; };
        events.ended = [&phone](const std::string&) { phone.ended = true; };
        events.media = [&phone](std::uint32_t, const std::string&) { ++phone.received; };
        phone.client = std::make_unique<dtcall::Client>(base_, config, events);
        REQUIRE(phone.client->connect());
        return phone;
    }
    // Runs the loop until `condition` holds or the patience runs out.
    bool until(const std::function<bool()>& condition) {
        auto deadline = std::chrono::steady_clock::now() + patience;
        while (!condition() && std::chrono::steady_clock::now() < deadline) {
            timeval slice{0, 20000};
            event_base_loopexit(base_, &slice);
            event_base_dispatch(base_);
        }
        return condition();
    }
    bool login(const std::string& user) {
        Phone& phone = add(user);
        return until([&] { return phone.logged_in || phone.refused || phone.closed; }) && phone.logged_in;
    }
    // caller rings callee, who accepts; both reach `start` with a voice key.
    void call(const std::string& caller, const std::string& callee) {
        REQUIRE(phones_.at(caller).client->call(callee));
        Phone& a = phones_.at(caller);
        Phone& b = phones_.at(callee);
        REQUIRE(until([&] { return a.started && a.voice && b.started && b.voice; }));
    }
    // `count` media frames each way of `payload_size` bytes; all arrive.
    void talk(const std::string& one, const std::string& other, int count, std::size_t payload_size) {
        Phone& a = phones_.at(one);
        Phone& b = phones_.at(other);
        int a_before = a.received, b_before = b.received;
        for (int i = 0; i < count; ++i) {
            REQUIRE(a.client->send_media(std::string(payload_size, 'a')));
            REQUIRE(b.client->send_media(std::string(payload_size, 'b')));
            pump(20ms);
        }
        REQUIRE(until([&] { return a.received == a_before + count && b.received == b_before + count; }));
    }
    void pump(std::chrono::milliseconds time) {
        auto deadline = std::chrono::steady_clock::now() + time;
        while (std::chrono::steady_clock::now() < deadline) {
            timeval slice{0, 20000};
            event_base_loopexit(base_, &slice);
            event_base_dispatch(base_);
        }
    }

private:
    const Daemon& d_;
    event_base* base_;
    std::map<std::string, Phone> phones_;
};

}  // namespace

TEST_CASE("dtcall-ctl: status, users, calls, end, kick, reload, log-reopen, as tables and as JSON") {
    Daemon d;
    REQUIRE_MESSAGE(d.start(), (d.log() + d.process->err()));
    struct stat st {};
    REQUIRE(::stat(d.control.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(contains(d.log(), "control socket " + d.control + " (mode 0600)"));

    Ctl status = ctl(d, {"status"});
    CHECK(status.status == 0);
    CHECK(status.err.empty());
    CHECK(contains(status.out, std::string("version       ") + dtcall::version() + "\n"));
    CHECK(contains(status.out, "state         serving\n"));
    CHECK(contains(status.out, "users online  0\n"));
    Json s = ctl_json(d, {"status"});
    CHECK(s["version"].str() == dtcall::version());
    CHECK(s["state"].str() == "serving");
    CHECK(s["uptime_seconds"].num() >= 0);
    CHECK(s["users_online"].num() == 0);
    CHECK(s["calls"]["in_call"].num() == 0);

    Phones phones(d);
    REQUIRE(phones.login("alice"));
    REQUIRE(phones.login("bob"));
    REQUIRE(phones.login("carol"));
    phones.call("alice", "bob");
    phones.talk("alice", "bob", 12, 100);

    s = ctl_json(d, {"status"});
    CHECK(s["users_online"].num() == 3);
    CHECK(s["connections"].num() == 3);
    CHECK(s["calls"]["in_call"].num() == 1);
    CHECK(s["calls"]["ringing"].num() == 0);

    Json users = ctl_json(d, {"users"});
    REQUIRE(users["users"].array.size() == 3);
    std::map<std::string, Json> by_name;
    for (const Json& u : users["users"].array) by_name[u["user"].str()] = u;
    REQUIRE(by_name.count("alice") == 1);
    CHECK(by_name["alice"]["phase"].str() == "in_call");
    CHECK(by_name["alice"]["peer"].str() == "bob");
    CHECK(by_name["bob"]["peer"].str() == "alice");
    CHECK(by_name["carol"]["phase"].str() == "idle");
    CHECK(by_name["carol"]["peer"].is_null());
    CHECK(by_name["alice"]["node"].is_null());  // a single node
    CHECK(by_name["alice"]["address"].str().rfind("127.0.0.1:", 0) == 0);
    CHECK(by_name["alice"]["since"].str().size() == 20);  // YYYY-MM-DDTHH:MM:SSZ
    Ctl users_table = ctl(d, {"users"});
    CHECK(users_table.status == 0);
    CHECK(users_table.out.rfind("USER ", 0) == 0);
    CHECK(contains(users_table.out, " NODE "));
    CHECK(contains(users_table.out, "in_call bob\n"));
    CHECK(contains(users_table.out, "in_call alice\n"));

    Json calls = ctl_json(d, {"calls"});
    REQUIRE(calls["calls"].array.size() == 1);
    const Json& call = calls["calls"][0];
    CHECK(call["caller"].str() == "alice");
    CHECK(call["callee"].str() == "bob");
    CHECK(call["phase"].str() == "in_call");
    CHECK(call["caller_node"].is_null());
    CHECK(call["callee_node"].is_null());
    CHECK(call["duration_ms"].num() >= 0);
    CHECK_FALSE(call["started_at"].is_null());
    CHECK(call["caller_to_callee"]["packets"].num() == 12);
    CHECK(call["callee_to_caller"]["packets"].num() == 12);
    // Datagrams as relayed: the 100-byte payload plus the frame's overhead.
    double datagram = call["caller_to_callee"]["bytes"].num() / 12;
    CHECK(datagram > 100);
    CHECK(call["callee_to_caller"]["bytes"].num() == datagram * 12);
    CHECK(call["caller_to_callee"]["longest_gap_ms"].num() >= 0);
    CHECK(call["caller_media"]["address"].str().rfind("127.0.0.1:", 0) == 0);
    CHECK(call["callee_media"]["moves"].num() == 0);
    Ctl calls_table = ctl(d, {"calls"});
    CHECK(calls_table.status == 0);
    CHECK(calls_table.out.rfind("CALLER  CALLEE  NODE ", 0) == 0);
    CHECK(contains(calls_table.out, " 12/12 "));

    // Errors carry the library's message, one line, exit 1.
    Ctl no_call = ctl(d, {"end", "carol"});
    CHECK(no_call.status == 1);
    CHECK(no_call.out.empty());
    CHECK(no_call.err == "dtcall-ctl: user carol has no call\n");
    Ctl offline = ctl(d, {"kick", "dave"});
    CHECK(offline.status == 1);
    CHECK(offline.err == "dtcall-ctl: user dave is not online\n");
    Ctl offline_json = ctl(d, {"kick", "dave", "--json"});
    CHECK(offline_json.status == 1);
    CHECK(offline_json.out.empty());

    // end: both phones get `end`; the log gets the report with the counts.
    Ctl end = ctl(d, {"end", "alice"});
    CHECK(end.status == 0);
    CHECK(end.out == "ended the call of alice\n");
    CHECK(phones.until([&] { return phones["alice"].ended && phones["bob"].ended; }));
    CHECK(eventually([&] { return contains(d.log(), "call alice -> bob ended ("); }));
    std::string log = d.log();
    CHECK_MESSAGE(contains(log, "call alice -> bob ended (ended by server): setup "), log);
    std::string bytes = std::to_string(static_cast<long long>(datagram * 12));
    CHECK_MESSAGE(contains(log, "; alice -> bob 12 packets " + bytes + " bytes longest gap "), log);
    CHECK_MESSAGE(contains(log, "; bob -> alice 12 packets " + bytes + " bytes longest gap "), log);
    CHECK_MESSAGE(contains(log, "; media moves alice 0 bob 0"), log);
    CHECK(contains(log, "control: ended the call of alice"));
    CHECK(ctl_json(d, {"calls"})["calls"].array.empty());

    // kick: carol's connection closes.
    Json kicked = ctl_json(d, {"kick", "carol"});
    CHECK(kicked["result"].str() == "kicked carol");
    CHECK(phones.until([&] { return phones["carol"].closed; }));
    CHECK(eventually([&] { return ctl_json(d, {"users"})["users"].array.size() == 2; }));

    Ctl reload = ctl(d, {"reload"});
    CHECK(reload.status == 0);
    CHECK(reload.out == "reloaded " + d.settings + "/users: 3 users\n");

    Ctl reopen = ctl(d, {"log-reopen"});
    CHECK(reopen.status == 0);
    CHECK(reopen.out.rfind("started a new log file: " + d.logs + "/dtcalld-", 0) == 0);
    CHECK(eventually([&] { return contains(d.log(), "control: started a new log file"); }));

    d.process->signal(SIGTERM);
    CHECK(d.process->wait_exit() == 0);
    CHECK(::access(d.control.c_str(), F_OK) != 0);  // removed at exit
}

TEST_CASE("dtcall-ctl's errors: command line, missing socket, not a socket, no permission") {
    Daemon d;
    REQUIRE_MESSAGE(d.start(), (d.log() + d.process->err()));
    auto one_line = [](const Ctl& r) {
        CHECK(r.status == 1);
        CHECK(r.out.empty());
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
        CHECK(r.err.rfind("dtcall-ctl: ", 0) == 0);
        return r.err;
    };
    CHECK(one_line(ctl(d, {"bogus"})) == "dtcall-ctl: unknown command \"bogus\"\n");
    CHECK(contains(one_line(ctl(d, {"kick", "al_ice"})), "is not a user name"));
    CHECK(contains(one_line(ctl(d, {"kick", std::string(65, 'a')})), "is not a user name"));
    CHECK(contains(one_line(ctl(d, {"status", "extra"})), "status takes no argument"));
    CHECK(contains(one_line(run_ctl(d.dir.path, {})), "no command"));

    std::string missing = d.dir / "no-such-socket";
    CHECK(one_line(run_ctl(d.dir.path, {"--control", missing, "status"})) ==
          "dtcall-ctl: " + missing + ": no such socket (is dtcalld running with control = " + missing + "?)\n");
    std::string plain = d.dir / "plain-file";
    write_file(plain, "not a socket\n");
    CHECK(contains(one_line(run_ctl(d.dir.path, {"--control", plain, "status"})), plain + ": connection refused"));
    // Permission: a socket in a directory we may not search. Root passes
    // every permission check, so this part needs an unprivileged run.
    if (::geteuid() != 0) {
        std::string closed_dir = d.dir / "closed";
        REQUIRE(::mkdir(closed_dir.c_str(), 0700) == 0);
        REQUIRE(::chmod(closed_dir.c_str(), 0) == 0);
        CHECK(contains(one_line(run_ctl(d.dir.path, {"--control", closed_dir + "/control", "status"})),
                       "permission denied"));
        ::chmod(closed_dir.c_str(), 0700);
    } else {
        MESSAGE("running as root: the permission-denied case is not testable (root passes every mode check)");
    }
    CHECK(ctl(d, {"status"}).status == 0);  // the daemon is none the worse
}

TEST_CASE("the control socket: bad and oversized requests, too many connections, one request each") {
    Daemon d;
    REQUIRE_MESSAGE(d.start(), (d.log() + d.process->err()));
    CHECK(raw_request(d.control, "status\n").rfind("ok\nversion ", 0) == 0);
    CHECK(raw_request(d.control, "status json\r\n").rfind("ok\n{\"version\":", 0) == 0);
    CHECK(raw_request(d.control, "bogus\n") == "error unknown command \"bogus\"\n");
    CHECK(raw_request(d.control, "kick a/b\n") ==
          "error \"a/b\" is not a user name ([0-9A-Za-z+-], at most 64 characters)\n");
    CHECK(raw_request(d.control, std::string(2000, 'x')) == "error request too long (at most 1 KiB, one line)\n");
    CHECK(raw_request(d.control, "\n") == "error empty request\n");
    // A request without its newline, then the client's half-close: an error line.
    {
        int fd = connect_unix(d.control);
        timeval timeout{10, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        ::send(fd, "status", 6, MSG_NOSIGNAL);
        ::shutdown(fd, SHUT_WR);
        std::string answer;
        char buffer[256];
        for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) answer.append(buffer, std::size_t(n));
        ::close(fd);
        CHECK(answer == "error request without a final newline\n");
    }
    // One request per connection: the second line is not read.
    CHECK(raw_request(d.control, "users\nstatus\n") == "ok\nUSER  NODE  ADDRESS  SINCE  CALL\n");
    // A client that sends nothing is closed after 5 s (not waited for here);
    // four silent ones hold every slot, a fifth is told so and closed.
    std::vector<int> idle;
    for (int i = 0; i < 4; ++i) idle.push_back(connect_unix(d.control));
    std::this_thread::sleep_for(100ms);
    CHECK(raw_request(d.control, "status\n") == "error too many control connections\n");
    for (int fd : idle) ::close(fd);
    CHECK(eventually([&] { return raw_request(d.control, "status\n").rfind("ok\n", 0) == 0; }));
    CHECK(d.process->running());
}

TEST_CASE("a stale control socket is replaced, a live one or another file refuses the start, control_group") {
    SUBCASE("stale") {
        Daemon d;
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, d.control.c_str(), sizeof address.sun_path - 1);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        ::close(fd);  // the file stays: what a killed dtcalld leaves
        REQUIRE_MESSAGE(d.start(), (d.log() + d.process->err()));
        CHECK(ctl(d, {"status"}).status == 0);

        // A second dtcalld (other ports) with the same control path: refused.
        Daemon second;
        write_file(second.settings + "/dtcalld.conf",
                   read_file(second.settings + "/dtcalld.conf") + "control = " + d.control + "\n");
        ChildProcess other({env_or_fail("DTCALLD"), "--settings", second.settings, "--log", second.logs},
                           ChildOutput::with_prefix(second.dir / "second"));
        CHECK(other.wait_exit() == 1);
        CHECK_MESSAGE(contains(other.err(), d.control + ": in use"), other.err());
        CHECK(ctl(d, {"status"}).status == 0);  // the first one still answers
    }
    SUBCASE("not a socket") {
        Daemon d;
        write_file(d.control, "precious\n");
        ChildProcess dtcalld({env_or_fail("DTCALLD"), "--settings", d.settings, "--log", d.logs},
                             ChildOutput::with_prefix(d.dir / "dtcalld"));
        CHECK(dtcalld.wait_exit() == 1);
        CHECK_MESSAGE(contains(dtcalld.err(), d.control + ": exists and is not a socket"), dtcalld.err());
        CHECK(read_file(d.control) == "precious\n");
    }
    SUBCASE("control_group") {
        group* own = ::getgrgid(::getegid());
        REQUIRE(own != nullptr);
        Daemon d(std::string("control_group = ") + own->gr_name + "\n");
        REQUIRE_MESSAGE(d.start(), (d.log() + d.process->err()));
        struct stat st {};
        REQUIRE(::stat(d.control.c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0660);
        CHECK(st.st_gid == ::getegid());
    }
    SUBCASE("unknown group") {
        Daemon d("control_group = no-such-group-here\n");
        ChildProcess dtcalld({env_or_fail("DTCALLD"), "--settings", d.settings, "--log", d.logs},
                             ChildOutput::with_prefix(d.dir / "dtcalld"));
        CHECK(dtcalld.wait_exit() == 1);
        // The Daemon's conf has 6 lines, then the extra ones.
        CHECK_MESSAGE(contains(dtcalld.err(), d.settings + "/dtcalld.conf:7: control_group: no group \"no-such-group-here\""),
                      dtcalld.err());
    }
}

TEST_CASE("drain: the call in progress goes on, new logins and calls are refused, dtcalld exits 0 after it") {
    Daemon d("metrics = 127.0.0.1:0\n", {"alice", "bob", "carol", "dave"});
    REQUIRE_MESSAGE(d.start(), (d.log() + d.process->err()));
    std::smatch found;
    std::string started = d.log();
    REQUIRE(std::regex_search(started, found, std::regex("metrics on http://127\\.0\\.0\\.1:([0-9]+)/metrics")));
    auto metrics_port = std::uint16_t(std::stoi(found[1]));
    CHECK(test_support::http_get(metrics_port, "/healthz").status == 200);
    Phones phones(d);
    REQUIRE(phones.login("alice"));
    REQUIRE(phones.login("bob"));
    REQUIRE(phones.login("carol"));
    phones.call("alice", "bob");
    phones.talk("alice", "bob", 5, 80);

    Ctl drain = ctl(d, {"drain", "60"});
    CHECK(drain.status == 0);
    CHECK(drain.out == "draining\n");
    CHECK(ctl_json(d, {"status"})["state"].str() == "draining");
    CHECK(contains(d.log(), "control: draining; calls left after 60 s are ended"));
    // Load balancers polling /healthz stop sending users here.
    auto health = test_support::http_get(metrics_port, "/healthz");
    CHECK(health.status == 503);
    CHECK(health.body == "stopping");

    // A new login is refused.
    Phones late(d);
    CHECK_FALSE(late.login("dave"));
    // A new call is refused (carol was online before the drain).
    REQUIRE(phones["carol"].client->call("alice"));
    phones.pump(300ms);
    CHECK_FALSE(phones["carol"].started);

    // The call in progress goes on, media and all, and dtcalld with it.
    phones.talk("alice", "bob", 5, 80);
    CHECK(d.process->running());
    Json calls = ctl_json(d, {"calls"});
    REQUIRE(calls["calls"].array.size() == 1);
    CHECK(calls["calls"][0]["caller_to_callee"]["packets"].num() == 10);

    // The last call ends: dtcalld stops by itself, exit 0.
    REQUIRE(phones["alice"].client->end("bob"));
    phones.until([&] { return phones["bob"].ended; });
    CHECK(d.process->wait_exit() == 0);
    std::string log = d.log();
    CHECK_MESSAGE(contains(log, "call alice -> bob ended (hangup): "), log);
    CHECK_MESSAGE(contains(log, "; alice -> bob 10 packets "), log);
    CHECK_MESSAGE(contains(log, "; bob -> alice 10 packets "), log);
    CHECK(contains(log, "control: drained"));
    CHECK(contains(log, "info  stopped"));
    CHECK(::access(d.control.c_str(), F_OK) != 0);
}

TEST_CASE("drain with a time limit ends the calls still going, then dtcalld exits 0") {
    Daemon d;
    REQUIRE_MESSAGE(d.start(), (d.log() + d.process->err()));
    Phones phones(d);
    REQUIRE(phones.login("alice"));
    REQUIRE(phones.login("bob"));
    phones.call("alice", "bob");
    Json answer = ctl_json(d, {"drain", "1"});
    CHECK(answer["result"].str() == "draining");
    CHECK(phones.until([&] { return phones["alice"].ended && phones["bob"].ended; }));
    CHECK(d.process->wait_exit() == 0);
    CHECK(contains(d.log(), "call alice -> bob ended (server stopping)"));
}

TEST_CASE("drain from a client that hangs up without reading the answer: dtcalld still drains and exits 0") {
    Daemon d;
    REQUIRE_MESSAGE(d.start(), (d.log() + d.process->err()));
    int fd = connect_unix(d.control);
    REQUIRE(::send(fd, "drain 0\n", 8, MSG_NOSIGNAL) == 8);
    ::close(fd);
    CHECK(d.process->wait_exit() == 0);
    std::string log = d.log();
    CHECK_MESSAGE(contains(log, "control: draining; calls left after 0 s are ended"), log);
    CHECK_MESSAGE(contains(log, "control: drained"), log);
    CHECK(contains(log, "info  stopped"));
}
