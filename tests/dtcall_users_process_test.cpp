// dtcall-users and dtcalld with users_db, as processes: the tool's commands
// and errors, and a running dtcalld picking up its changes without a reload
// (an added user logs in at once, a removed one is kicked within a second),
// two writers at once, and a database that goes bad while serving. The
// binaries come from $DTCALLD, $DTCALL_KEYGEN and $DTCALL_USERS. The helpers
// are those of dtcalld_process_test.cpp.
#include <dtcall/client.hpp>
#include "crypto/crypto.hpp"
#include <dtcall/version.hpp>

#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <event2/event.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using test_support::TempDir;
using test_support::write_file;

constexpr auto patience = 5s;

std::string env_or_fail(const char* name) {
    const char* value = std::getenv(name);
    REQUIRE_MESSAGE(value != nullptr, name << " is not set (run through meson test)");
    return value;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// Every log file in the directory, concatenated (a SIGUSR1 may start a second).
std::string read_logs(const std::string& dir) {
    std::string all;
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d)) {
            std::string name = e->d_name;
            if (name.size() > 4 && name.compare(name.size() - 4, 4, ".log") == 0) all += read_file(dir + "/" + name);
        }
        closedir(d);
    }
    return all;
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

bool eventually(const std::function<bool()>& condition) {
    auto deadline = std::chrono::steady_clock::now() + patience;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition()) return true;
        std::this_thread::sleep_for(20ms);
    }
    return condition();
}

// A port that was free a moment ago: bind port 0, read it back, close.
std::uint16_t free_port(int type) {
    int fd = ::socket(AF_INET, type, 0);
    REQUIRE(fd >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    ::close(fd);
    return ntohs(address.sin_port);
}

bool tcp_connects(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return ok;
}

// A child process with stdout and stderr in files; killed if still running
// when it goes out of scope.
class Child {
public:
    // `open_files`: the child's RLIMIT_NOFILE (soft, hard), set before exec.
    Child(const std::vector<std::string>& argv, const std::string& out_dir,
          std::optional<rlimit> open_files = std::nullopt)
        : stdout_path_(out_dir + "/stdout.txt"), stderr_path_(out_dir + "/stderr.txt") {
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            int out = ::open(stdout_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            int err = ::open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (out < 0 || err < 0) ::_exit(126);
            ::dup2(out, STDOUT_FILENO);
            ::dup2(err, STDERR_FILENO);
            // Under systemd the test runner has it; dtcalld would then echo
            // its log to stderr and the "one stderr line" checks would be moot.
            ::unsetenv("JOURNAL_STREAM");
            if (open_files && ::setrlimit(RLIMIT_NOFILE, &*open_files) != 0) ::_exit(125);
            ::execv(args[0], args.data());
            ::_exit(127);
        }
    }
    ~Child() {
        if (!status_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    void signal(int number) const { REQUIRE(::kill(pid_, number) == 0); }

    // The exit status once it has exited, or nullopt after the bounded wait.
    std::optional<int> wait_exit() {
        eventually([this] {
            if (status_) return true;
            int raw = 0;
            if (::waitpid(pid_, &raw, WNOHANG) == pid_) status_ = raw;
            return status_.has_value();
        });
        if (!status_) return std::nullopt;
        if (WIFEXITED(*status_)) return WEXITSTATUS(*status_);
        return 128 + WTERMSIG(*status_);
    }
    bool running() {
        if (status_) return false;
        int raw = 0;
        if (::waitpid(pid_, &raw, WNOHANG) == pid_) status_ = raw;
        return !status_;
    }
    std::string out() const { return read_file(stdout_path_); }
    std::string err() const { return read_file(stderr_path_); }

private:
    std::string stdout_path_;
    std::string stderr_path_;
    pid_t pid_ = -1;
    std::optional<int> status_;
};

// A settings directory in the original dtoperator layout.
struct Settings {
    TempDir dir;
    std::string settings;
    std::string logs;
    std::uint16_t command_port = 0;
    std::uint16_t media_port = 0;

    explicit Settings(const std::string& conf_name = "dtcalld.conf") {
        settings = dir / "settings";
        logs = dir / "log";
        REQUIRE(::mkdir(settings.c_str(), 0700) == 0);
        REQUIRE(::mkdir(logs.c_str(), 0700) == 0);
        REQUIRE(dtcall::crypto_init());
        REQUIRE(dtcall::write_key_files(dtcall::KeyPair::generate(), settings + "/server_public.na",
                                        settings + "/server_private.na")
                    .ok());
        for (const char* user : {"alice", "bob"}) {
            std::string base = settings + "/" + user;
            REQUIRE(dtcall::write_key_files(dtcall::KeyPair::generate(), base + "_public.na", base + "_private.na").ok());
        }
        // Line 2 is broken on purpose: a warning, never a reason to stop.
        write_file(settings + "/users",
                   "alice > " + settings + "/alice_public.na\n"
                   "this line is broken\n"
                   "bob > " + settings + "/bob_public.na\n");
        command_port = free_port(SOCK_STREAM);
        media_port = free_port(SOCK_DGRAM);
        write_conf(conf_name,
                   "# made by dtcalld_process_test\n"
                   "command = " + std::to_string(command_port) + "\n"
                   "media = " + std::to_string(media_port) + "   # UDP\n"
                   "public_sodium = server_public.na\n"
                   "private_sodium = " + settings + "/server_private.na\n"
                   "listen = 127.0.0.1\n");
    }
    void write_conf(const std::string& name, const std::string& text) const { write_file(settings + "/" + name, text); }
    std::vector<std::string> argv() const { return {env_or_fail("DTCALLD"), "--settings", settings, "--log", logs}; }
};

// Logs `user` in to the dtcalld of `s` with the library's client, using the
// key files the Settings made: "logged in", "refused", or what went wrong.
std::string try_login(const Settings& s, const std::string& user) {
    auto server_key = dtcall::read_public_key_file(s.settings + "/server_public.na");
    auto user_key = dtcall::read_private_key_file(s.settings + "/" + user + "_private.na");
    REQUIRE(server_key.ok());
    REQUIRE(user_key.ok());
    dtcall::ClientConfig config;
    config.host = "127.0.0.1";
    config.command_port = s.command_port;
    config.media_port = s.media_port;
    config.server_key = *server_key;
    config.user = user;
    config.user_key = *user_key;
    config.login_timeout = 3s;

    event_base* base = event_base_new();
    REQUIRE(base != nullptr);
    std::string outcome = "no answer within 5 s";
    dtcall::ClientEvents events;
    events.logged_in = [&] { outcome = "logged in"; event_base_loopexit(base, nullptr); };
    events.login_failed = [&](const std::string&) { outcome = "refused"; event_base_loopexit(base, nullptr); };
    events.closed = [&](const std::string& reason) { outcome = "closed: " + reason; event_base_loopexit(base, nullptr); };
    {
        dtcall::Client client(base, config, events);
        auto connected = client.connect();
        if (!connected) {
            outcome = connected.error();
        } else {
            timeval limit{5, 0};
            event_base_loopexit(base, &limit);
            event_base_dispatch(base);
        }
    }
    event_base_free(base);
    return outcome;
}

int lines_in(const std::string& text) {
    int n = 0;
    for (char c : text) n += c == '\n';
    return n;
}

// Runs dtcalld on `settings`, expects a quick non-zero exit with exactly one
// stderr line containing `expected`.
void expect_refusal(const Settings& s, const std::string& expected) {
    Child dtcalld(s.argv(), s.dir.path);
    auto status = dtcalld.wait_exit();
    REQUIRE_MESSAGE(status.has_value(), "dtcalld did not exit");
    CHECK(*status == 1);
    std::string err = dtcalld.err();
    CHECK_MESSAGE(lines_in(err) == 1, err);
    CHECK_MESSAGE(contains(err, expected), err);
}


std::string users_tool() { return env_or_fail("DTCALL_USERS"); }

// One dtcall-users run to its end: exit status, stdout, stderr.
struct Run {
    int status = -1;
    std::string out;
    std::string err;
};

Run run_tool(const std::string& dir, const std::vector<std::string>& args) {
    static int n = 0;
    std::string out_dir = dir + "/run" + std::to_string(++n);
    REQUIRE(::mkdir(out_dir.c_str(), 0700) == 0);
    std::vector<std::string> argv{users_tool()};
    argv.insert(argv.end(), args.begin(), args.end());
    Child child(argv, out_dir);
    auto status = child.wait_exit();
    REQUIRE_MESSAGE(status.has_value(), "dtcall-users did not exit");
    return {*status, child.out(), child.err()};
}

// A settings dir whose conf takes the users from users_db (with alice and
// bob in it, added by the tool).
struct DbSettings : Settings {
    std::string db;
    DbSettings() {
        db = dir / "users.sqlite";
        for (const char* user : {"alice", "bob"}) {
            Run added = run_tool(dir.path, {"--db", db, "add", user, settings + "/" + user + "_public.na"});
            REQUIRE_MESSAGE(added.status == 0, added.err);
        }
        write_conf("dtcalld.conf", "command = " + std::to_string(command_port) + "\n"
                                   "media = " + std::to_string(media_port) + "\n"
                                   "public_sodium = server_public.na\n"
                                   "private_sodium = server_private.na\n"
                                   "listen = 127.0.0.1\n"
                                   "users_db = " + db + "\n");
    }
    void new_user(const std::string& name) const {
        REQUIRE(dtcall::write_key_files(dtcall::KeyPair::generate(), settings + "/" + name + "_public.na",
                                        settings + "/" + name + "_private.na")
                    .ok());
    }
};

void wait_ready(const Settings& s, Child& dtcalld) {
    REQUIRE_MESSAGE(eventually([&] { return contains(read_logs(s.logs), "ready: command port") || !dtcalld.running(); }),
                    (read_logs(s.logs) + dtcalld.err()));
    REQUIRE_MESSAGE(contains(read_logs(s.logs), "ready: command port"), (read_logs(s.logs) + dtcalld.err()));
}

}  // namespace

TEST_CASE("dtcall-users: add, list, list --json, remove, import") {
    TempDir dir;
    REQUIRE(dtcall::crypto_init());
    std::string db = dir / "users.sqlite";
    for (const char* user : {"alice", "bob", "carol"}) {
        REQUIRE(dtcall::write_key_files(dtcall::KeyPair::generate(), dir / (std::string(user) + "_public.na"),
                                        dir / (std::string(user) + "_private.na"))
                    .ok());
    }
    std::string alice_digits = dtcall::read_public_key_file(dir / "alice_public.na")->to_digits();

    Run added = run_tool(dir.path, {"--db", db, "add", "alice", dir / "alice_public.na"});
    CHECK_MESSAGE(added.status == 0, added.err);
    CHECK(added.out == "added alice\n");
    CHECK(added.err.empty());
    struct stat st {};
    REQUIRE(::stat(db.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);  // whatever the test's umask: the file lists every key

    Run listed = run_tool(dir.path, {"--db", db, "list"});
    CHECK(listed.status == 0);
    CHECK(std::regex_match(listed.out, std::regex("alice\t[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z\t" + alice_digits + "\n")));

    Run json = run_tool(dir.path, {"--db", db, "list", "--json"});
    CHECK(json.status == 0);
    CHECK_MESSAGE(std::regex_match(json.out, std::regex("\\[\n  \\{\"name\": \"alice\", \"public_key\": \"" + alice_digits +
                                                        "\", \"added_at\": [0-9]+, \"valid\": true\\}\n\\]\n")),
                  json.out);

    // A users file, relative key paths taken from its own directory.
    REQUIRE(::mkdir((dir / "etc").c_str(), 0700) == 0);
    REQUIRE(::rename((dir / "bob_public.na").c_str(), (dir / "etc/bob_public.na").c_str()) == 0);
    write_file(dir / "etc/users", "# users\n"
                                  "bob > bob_public.na\n"
                                  "carol > " + dir / "carol_public.na" + "\n"
                                  "this line is broken\n"
                                  "dave > dave_public.na\n"
                                  "alice > " + dir / "alice_public.na" + "\n");
    Run imported = run_tool(dir.path, {"--db", db, "import", dir / "etc/users"});
    CHECK_MESSAGE(imported.status == 0, imported.err);
    CHECK(imported.out == "imported 3 users from " + dir / "etc/users" + ", 2 lines skipped\n");
    CHECK_MESSAGE(contains(imported.err, "dtcall-users: " + dir / "etc/users" + ":4: expected"), imported.err);
    CHECK_MESSAGE(contains(imported.err, "dtcall-users: " + dir / "etc/users" + ":5: user dave skipped: "), imported.err);
    CHECK(lines_in(imported.err) == 2);
    Run all = run_tool(dir.path, {"--db", db, "list"});
    CHECK(lines_in(all.out) == 3);
    CHECK(all.out.rfind("alice\t", 0) == 0);
    CHECK(contains(all.out, "\nbob\t"));
    CHECK(contains(all.out, "\ncarol\t"));

    Run removed = run_tool(dir.path, {"--db", db, "remove", "bob"});
    CHECK(removed.status == 0);
    CHECK(removed.out == "removed bob\n");
    CHECK_FALSE(contains(run_tool(dir.path, {"--db", db, "list"}).out, "bob"));
}

TEST_CASE("dtcall-users: every error is one stderr line and exit 1") {
    TempDir dir;
    REQUIRE(dtcall::crypto_init());
    std::string db = dir / "users.sqlite";
    REQUIRE(dtcall::write_key_files(dtcall::KeyPair::generate(), dir / "a_public.na", dir / "a_private.na").ok());
    REQUIRE(run_tool(dir.path, {"--db", db, "add", "alice", dir / "a_public.na"}).status == 0);
    write_file(dir / "garbage.sqlite", std::string(4096, 'x'));

    struct Case {
        std::vector<std::string> args;
        std::string expected;
    };
    const Case cases[] = {
        {{}, "dtcall-users: no arguments (try --help)"},
        {{"list"}, "expected --db PATH first, found \"list\""},
        {{"--db"}, "--db needs a PATH"},
        {{"--db", db}, "no command (add, remove, list or import)"},
        {{"--db", db, "frob"}, "unknown command \"frob\""},
        {{"--db", db, "add", "alice"}, "add takes NAME PUBLIC_KEY_FILE, too few arguments"},
        {{"--db", db, "remove", "a", "b"}, "remove takes NAME, too many arguments"},
        {{"--db", db, "list", "--xml"}, "list takes only --json, found \"--xml\""},
        {{"--db", db, "add", "bad name", dir / "a_public.na"}, "\"bad name\" is not a valid user name"},
        {{"--db", db, "add", std::string(65, 'a'), dir / "a_public.na"}, "is not a valid user name"},
        {{"--db", db, "add", "bob", dir / "nope.na"}, dir / "nope.na"},
        {{"--db", db, "add", "bob", dir / "a_private.na"}, dir / "a_private.na"},
        {{"--db", db, "add", "alice", dir / "a_public.na"}, "user alice is already there"},
        {{"--db", db, "remove", "bob"}, db + ": no user bob"},
        {{"--db", dir / "none.sqlite", "list"}, dir / "none.sqlite" + ": No such file or directory"},
        {{"--db", dir / "garbage.sqlite", "list"}, dir / "garbage.sqlite" + ": cannot read: file is not a database"},
        {{"--db", dir / "garbage.sqlite", "add", "bob", dir / "a_public.na"}, dir / "garbage.sqlite" + ": "},
        {{"--db", db, "import", dir / "no-users"}, dir / "no-users"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.expected);
        Run run = run_tool(dir.path, c.args);
        CHECK(run.status == 1);
        CHECK(lines_in(run.err) == 1);
        CHECK(run.err.rfind("dtcall-users: ", 0) == 0);
        CHECK_MESSAGE(contains(run.err, c.expected), run.err);
        CHECK(run.out.empty());
    }
    // Nothing above created a database or changed the one there.
    CHECK(::access((dir / "none.sqlite").c_str(), F_OK) != 0);
    CHECK(lines_in(run_tool(dir.path, {"--db", db, "list"}).out) == 1);
}

TEST_CASE("dtcalld with users_db: an added user logs in at once, a removed one is kicked within a second") {
    DbSettings s;
    Child dtcalld(s.argv(), s.dir.path);
    wait_ready(s, dtcalld);
    CHECK(contains(read_logs(s.logs), s.db + ": 2 users"));
    CHECK(try_login(s, "alice") == "logged in");

    s.new_user("carol");
    CHECK(try_login(s, "carol") == "refused");
    Run added = run_tool(s.dir.path, {"--db", s.db, "add", "carol", s.settings + "/carol_public.na"});
    REQUIRE_MESSAGE(added.status == 0, added.err);
    CHECK(try_login(s, "carol") == "logged in");

    // alice, logged in, is removed: disconnected within a second, then refused.
    event_base* base = event_base_new();
    REQUIRE(base != nullptr);
    bool closed = false;
    {
        dtcall::ClientConfig config;
        config.command_port = s.command_port;
        config.media_port = s.media_port;
        config.server_key = *dtcall::read_public_key_file(s.settings + "/server_public.na");
        config.user = "alice";
        config.user_key = *dtcall::read_private_key_file(s.settings + "/alice_private.na");
        dtcall::ClientEvents events;
        events.logged_in = [&] { event_base_loopbreak(base); };
        events.closed = [&](const std::string&) {
            closed = true;
            event_base_loopbreak(base);
        };
        dtcall::Client alice(base, config, events);
        REQUIRE(alice.connect());
        timeval limit{5, 0};
        event_base_loopexit(base, &limit);
        event_base_dispatch(base);
        REQUIRE(alice.is_logged_in());

        Run removed = run_tool(s.dir.path, {"--db", s.db, "remove", "alice"});
        REQUIRE_MESSAGE(removed.status == 0, removed.err);
        auto removed_at = std::chrono::steady_clock::now();
        timeval second{1, 0};
        event_base_loopexit(base, &second);
        event_base_dispatch(base);
        CHECK_MESSAGE(closed, read_logs(s.logs));
        CHECK(std::chrono::steady_clock::now() - removed_at < 1s);
    }
    event_base_free(base);
    CHECK(contains(read_logs(s.logs), "alice is no longer in the user directory"));
    CHECK(try_login(s, "alice") == "refused");
    CHECK(try_login(s, "bob") == "logged in");

    // SIGHUP has nothing to reload and drops nobody.
    dtcalld.signal(SIGHUP);
    CHECK(eventually([&] { return contains(read_logs(s.logs), "SIGHUP: nothing to reload"); }));
    dtcalld.signal(SIGTERM);
    auto status = dtcalld.wait_exit();
    REQUIRE(status.has_value());
    CHECK(*status == 0);
}

TEST_CASE("two dtcall-users writing at once while dtcalld serves: no 'database is locked'") {
    DbSettings s;
    Child dtcalld(s.argv(), s.dir.path);
    wait_ready(s, dtcalld);
    // Each writer: a shell loop of 50 adds, the two loops at once.
    std::string key = s.settings + "/bob_public.na";
    std::string script = "i=0; while [ $i -lt 50 ]; do \"$0\" --db \"$1\" add \"$2$i\" \"$3\" >/dev/null || exit 1; "
                         "i=$((i+1)); done";
    REQUIRE(::mkdir((s.dir / "w1").c_str(), 0700) == 0);
    REQUIRE(::mkdir((s.dir / "w2").c_str(), 0700) == 0);
    Child one({"/bin/sh", "-c", script, users_tool(), s.db, "one-", key}, s.dir / "w1");
    Child two({"/bin/sh", "-c", script, users_tool(), s.db, "two-", key}, s.dir / "w2");
    // Meanwhile logins keep asking the directory.
    CHECK(try_login(s, "bob") == "logged in");
    auto first = one.wait_exit();
    auto second = two.wait_exit();
    if (!first) first = one.wait_exit();
    if (!second) second = two.wait_exit();
    REQUIRE(first.has_value());
    REQUIRE(second.has_value());
    CHECK_MESSAGE(*first == 0, one.err());
    CHECK_MESSAGE(*second == 0, two.err());
    CHECK_FALSE(contains(one.err() + two.err(), "locked"));
    CHECK(lines_in(run_tool(s.dir.path, {"--db", s.db, "list"}).out) == 102);
    CHECK_FALSE(contains(read_logs(s.logs), "locked"));
    CHECK(dtcalld.running());
}

TEST_CASE("a users_db replaced by garbage while serving: logins fail with a logged error, dtcalld stays up") {
    DbSettings s;
    Child dtcalld(s.argv(), s.dir.path);
    wait_ready(s, dtcalld);
    CHECK(try_login(s, "alice") == "logged in");
    write_file(s.dir / "garbage", std::string(8192, 'x'));
    REQUIRE(::rename((s.dir / "garbage").c_str(), s.db.c_str()) == 0);
    CHECK(eventually([&] { return contains(read_logs(s.logs), " error " + s.db + ": "); }));
    CHECK(try_login(s, "alice") != "logged in");
    CHECK_MESSAGE(contains(read_logs(s.logs), "user lookup of alice failed: " + s.db), read_logs(s.logs));
    CHECK(dtcalld.running());
    CHECK(tcp_connects(s.command_port));
    dtcalld.signal(SIGTERM);
    auto status = dtcalld.wait_exit();
    REQUIRE(status.has_value());
    CHECK(*status == 0);
}

TEST_CASE("dtcalld refuses a bad users_db, or users with users_db, with one stderr line") {
    DbSettings s;
    SUBCASE("garbage") {
        write_file(s.db, std::string(8192, 'x'));
        expect_refusal(s, "users_db: " + s.db + ": cannot read: file is not a database");
    }
    SUBCASE("missing") {
        REQUIRE(::unlink(s.db.c_str()) == 0);
        expect_refusal(s, "users_db: " + s.db + ": No such file or directory");
    }
    SUBCASE("both keys") {
        s.write_conf("dtcalld.conf", "public_sodium = server_public.na\nprivate_sodium = server_private.na\n"
                                     "users = users\nusers_db = " + s.db + "\n");
        expect_refusal(s, s.settings + "/dtcalld.conf:4: users_db: cannot be used together with users (line 3)");
    }
}
