// dtcall-users and dtcalld with users_db, as processes: the tool's commands
// and errors, and a running dtcalld picking up its changes without a reload
// (an added user logs in at once, a removed one is kicked within a second),
// two writers at once, and a database that goes bad while serving. The
// binaries come from $DTCALLD, $DTCALL_KEYGEN and $DTCALL_USERS. The process
// helpers are in support/daemon_process.hpp.
#include <dtcall/keys.hpp>
#include "crypto/crypto.hpp"
#include <dtcall/version.hpp>

#include <doctest/doctest.h>

#include "daemon_process.hpp"
#include "temp_dir.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <string>
#include <vector>

using namespace std::chrono_literals;

using namespace daemon_process;
using test_support::TempDir;
using test_support::write_file;

namespace {

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
    ChildProcess child(argv, out_dir);
    auto status = child.wait_exit();
    REQUIRE_MESSAGE(status.has_value(), "dtcall-users did not exit");
    return {*status, child.out(), child.err()};
}

// A settings dir whose conf takes the users from users_db (with alice and
// bob in it, added by the tool).
struct DbSettingsDir : SettingsDir {
    std::string db;
    DbSettingsDir() {
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

void wait_ready(const SettingsDir& s, ChildProcess& dtcalld) {
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
    DbSettingsDir s;
    ChildProcess dtcalld(s.argv(), s.dir.path);
    wait_ready(s, dtcalld);
    CHECK(contains(read_logs(s.logs), s.db + ": 2 users"));
    CHECK(try_login(s, "alice") == "logged in");

    s.new_user("carol");
    CHECK(try_login(s, "carol") == "refused");
    Run added = run_tool(s.dir.path, {"--db", s.db, "add", "carol", s.settings + "/carol_public.na"});
    REQUIRE_MESSAGE(added.status == 0, added.err);
    CHECK(try_login(s, "carol") == "logged in");

    // alice, logged in, is removed: disconnected within a second, then refused.
    {
        HeldLogin alice(s, "alice");

        Run removed = run_tool(s.dir.path, {"--db", s.db, "remove", "alice"});
        REQUIRE_MESSAGE(removed.status == 0, removed.err);
        auto removed_at = std::chrono::steady_clock::now();
        alice.run_for(1s);
        CHECK_MESSAGE(alice.closed(), read_logs(s.logs));
        CHECK(std::chrono::steady_clock::now() - removed_at < 1s);
    }
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
    DbSettingsDir s;
    ChildProcess dtcalld(s.argv(), s.dir.path);
    wait_ready(s, dtcalld);
    // Each writer: a shell loop of 50 adds, the two loops at once.
    std::string key = s.settings + "/bob_public.na";
    std::string script = "i=0; while [ $i -lt 50 ]; do \"$0\" --db \"$1\" add \"$2$i\" \"$3\" >/dev/null || exit 1; "
                         "i=$((i+1)); done";
    REQUIRE(::mkdir((s.dir / "w1").c_str(), 0700) == 0);
    REQUIRE(::mkdir((s.dir / "w2").c_str(), 0700) == 0);
    ChildProcess one({"/bin/sh", "-c", script, users_tool(), s.db, "one-", key}, s.dir / "w1");
    ChildProcess two({"/bin/sh", "-c", script, users_tool(), s.db, "two-", key}, s.dir / "w2");
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
    DbSettingsDir s;
    ChildProcess dtcalld(s.argv(), s.dir.path);
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
    DbSettingsDir s;
    SUBCASE("garbage") {
        write_file(s.db, std::string(8192, 'x'));
        expect_refusal(s, s.settings + "/dtcalld.conf:6: users_db: " + s.db + ": cannot read: file is not a database");
    }
    SUBCASE("missing") {
        REQUIRE(::unlink(s.db.c_str()) == 0);
        expect_refusal(s, s.settings + "/dtcalld.conf:6: users_db: " + s.db + ": No such file or directory; create it with "
                          "dtcall-users --db " + s.db + " add|import");
    }
    SUBCASE("both keys") {
        s.write_conf("dtcalld.conf", "public_sodium = server_public.na\nprivate_sodium = server_private.na\n"
                                     "users = users\nusers_db = " + s.db + "\n");
        expect_refusal(s, s.settings + "/dtcalld.conf:4: users_db: cannot be used together with users (line 3)");
    }
}
