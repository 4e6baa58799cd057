// dtcalld's SQLite user directory (users_db) in-process: real files in a temp
// dir, the directory answering on a real event_base, other connections (as
// dtcall-users would be) changing the file meanwhile.
#include "sqlite_user_directory.hpp"
#include "users_db.hpp"

#include "crypto/crypto.hpp"

#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <event2/event.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using dtcalld::SqliteUserDirectory;
using dtcalld::UsersDb;
using test_support::TempDir;
using test_support::write_file;

namespace {

struct Loop {
    event_base* base = event_base_new();
    ~Loop() { event_base_free(base); }
    // Runs the loop until `done` or `limit`; true when done.
    bool until(const std::function<bool()>& done, std::chrono::milliseconds limit = 3000ms) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (!done() && std::chrono::steady_clock::now() < deadline) {
            event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
            std::this_thread::sleep_for(2ms);
        }
        return done();
    }
};

struct Logged {
    std::vector<std::string> lines;
    SqliteUserDirectory::Log sink() {
        return [this](dtcall::LogLevel level, const std::string& line) {
            lines.push_back(std::string(level == dtcall::LogLevel::error     ? "error "
                                        : level == dtcall::LogLevel::warning ? "warn "
                                                                             : "info ") +
                            line);
        };
    }
    bool has(const std::string& part) const {
        for (const auto& l : lines)
            if (l.find(part) != std::string::npos) return true;
        return false;
    }
};

struct Revoked : dtcall::UserDirectory::Watcher {
    std::vector<std::string> users;
    void user_removed(const std::string& user) override { users.push_back(user); }
};

// What one lookup answered, once the loop delivered it.
struct Asked {
    bool answered = false;
    bool inside_lookup = false;  // ask() is still inside lookup()
    bool during_call = false;
    std::optional<dtcall::UserLookup> found;
};

// `out` outlives the answer (the callback may run after ask() returned).
void ask(SqliteUserDirectory& dir, const std::string& user, Asked& out) {
    out.inside_lookup = true;
    dir.lookup(user, [&out](dtcall::UserLookup found) {
        out.answered = true;
        out.during_call = out.inside_lookup;
        out.found.emplace(std::move(found));
    });
    out.inside_lookup = false;
}

dtcall::UserLookup lookup(Loop& loop, SqliteUserDirectory& dir, const std::string& user) {
    Asked asked;
    ask(dir, user, asked);
    REQUIRE(loop.until([&] { return asked.answered; }));
    return *asked.found;
}

void raw_sql(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char* error = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    std::string message = error ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    REQUIRE_MESSAGE(rc == SQLITE_OK, message);
}

struct Fixture {
    TempDir dir;
    std::string path = dir / "users.sqlite";
    dtcall::PublicKey alice = dtcall::KeyPair::generate().public_key;
    dtcall::PublicKey bob = dtcall::KeyPair::generate().public_key;
    Fixture() {
        REQUIRE(dtcall::crypto_init());
        auto db = UsersDb::open(path, UsersDb::Mode::create);
        REQUIRE_MESSAGE(db.ok(), db.error());
        REQUIRE(db->add("alice", alice).ok());
        REQUIRE(db->add("bob", bob).ok());
    }
    UsersDb writer() {
        auto db = UsersDb::open(path, UsersDb::Mode::existing);
        REQUIRE_MESSAGE(db.ok(), db.error());
        return std::move(*db);
    }
};

}  // namespace

TEST_CASE("a lookup is answered later, on the loop: the key, or unknown") {
    Fixture f;
    Loop loop;
    Logged log;
    auto dir = SqliteUserDirectory::open(f.path, log.sink());
    REQUIRE_MESSAGE(dir.ok(), dir.error());
    CHECK((*dir)->size() == 2);
    REQUIRE((*dir)->start(loop.base).ok());

    Asked asked;
    ask(**dir, "alice", asked);
    CHECK_FALSE(asked.answered);  // never from inside lookup()
    REQUIRE(loop.until([&] { return asked.answered; }));
    CHECK_FALSE(asked.during_call);
    REQUIRE(asked.found->ok());
    REQUIRE(asked.found->value().has_value());
    CHECK(*asked.found->value() == f.alice);

    auto nobody = lookup(loop, **dir, "mallory");
    REQUIRE(nobody.ok());
    CHECK_FALSE(nobody->has_value());
}

TEST_CASE("a user added by another connection can be found at once") {
    Fixture f;
    Loop loop;
    auto dir = SqliteUserDirectory::open(f.path, nullptr);
    REQUIRE(dir.ok());
    REQUIRE((*dir)->start(loop.base).ok());
    CHECK_FALSE(lookup(loop, **dir, "carol")->has_value());
    auto carol = dtcall::KeyPair::generate().public_key;
    REQUIRE(f.writer().add("carol", carol).ok());
    auto found = lookup(loop, **dir, "carol");
    REQUIRE(found.ok());
    REQUIRE(found->has_value());
    CHECK(**found == carol);
}

TEST_CASE("a removed or re-keyed user is reported to the watchers within a second") {
    Fixture f;
    Loop loop;
    auto dir = SqliteUserDirectory::open(f.path, nullptr);
    REQUIRE(dir.ok());
    Revoked revoked;
    (*dir)->add_watcher(&revoked);
    REQUIRE((*dir)->start(loop.base).ok());
    loop.until([] { return false; }, 400ms);  // a poll or so with nothing to tell
    CHECK(revoked.users.empty());

    auto removed_at = std::chrono::steady_clock::now();
    REQUIRE(f.writer().remove("alice").ok());
    REQUIRE(loop.until([&] { return !revoked.users.empty(); }, 1000ms));
    CHECK(std::chrono::steady_clock::now() - removed_at < 1s);
    CHECK(revoked.users == std::vector<std::string>{"alice"});
    CHECK((*dir)->size() == 1);

    // A new key for bob: whoever logged in with the old one goes too.
    raw_sql(f.path, "UPDATE users SET public_key = '" + dtcall::KeyPair::generate().public_key.to_digits() +
                        "' WHERE name = 'bob'");
    REQUIRE(loop.until([&] { return revoked.users.size() == 2; }, 1000ms));
    CHECK(revoked.users[1] == "bob");
    (*dir)->remove_watcher(&revoked);
}

TEST_CASE("a bad row makes that user unknown with a warning, never a crash") {
    Fixture f;
    raw_sql(f.path, "INSERT INTO users (name, public_key, added_at) VALUES ('carol', '12345', 0),"
                    " ('bad name', '" + f.alice.to_digits() + "', 0)");
    Loop loop;
    Logged log;
    auto dir = SqliteUserDirectory::open(f.path, log.sink());
    REQUIRE_MESSAGE(dir.ok(), dir.error());
    CHECK((*dir)->size() == 2);
    REQUIRE((*dir)->start(loop.base).ok());
    auto carol = lookup(loop, **dir, "carol");
    REQUIRE(carol.ok());
    CHECK_FALSE(carol->has_value());
    CHECK(log.has("warn " + f.path + ": user \"carol\" ignored (unknown until fixed): public_key: "));
    CHECK(log.has("warn " + f.path + ": user \"bad name\" ignored"));
    CHECK(lookup(loop, **dir, "alice")->has_value());
}

TEST_CASE("a missing, corrupt or foreign file is refused at open with one line naming it") {
    TempDir dir;
    std::string path = dir / "users.sqlite";
    auto refused = [&](const std::string& expected) {
        auto opened = SqliteUserDirectory::open(path, nullptr);
        REQUIRE_FALSE(opened.ok());
        CHECK(opened.error().find('\n') == std::string::npos);
        CHECK_MESSAGE(opened.error().rfind(path + ": ", 0) == 0, opened.error());
        CHECK_MESSAGE(opened.error().find(expected) != std::string::npos, opened.error());
    };
    SUBCASE("missing") { refused("No such file or directory"); }
    SUBCASE("garbage") {
        write_file(path, std::string(8192, 'x'));
        refused("file is not a database");
    }
    SUBCASE("another application's database") {
        raw_sql(path, "CREATE TABLE t(x)");
        refused("not a dtcall users database");
    }
    SUBCASE("a newer schema") {
        raw_sql(path, "CREATE TABLE users(name TEXT PRIMARY KEY, public_key TEXT NOT NULL, added_at INTEGER);"
                      " PRAGMA user_version = 7");
        refused("schema version 7");
    }
    SUBCASE("unreadable") {
        REQUIRE(UsersDb::open(path, UsersDb::Mode::create).ok());
        REQUIRE(::chmod(path.c_str(), 0) == 0);
        if (::geteuid() == 0) {
            MESSAGE("skipped as root: the file stays readable");
        } else {
            refused(path);
        }
    }
}

namespace {

// wal_access_problem() as an unprivileged user: root may write anywhere, so
// as root a child process that became nobody (65534) asks.
std::optional<std::string> wal_problem_unprivileged(const std::string& path) {
    if (::geteuid() != 0) return dtcalld::wal_access_problem(path);
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(pipe_fds[0]);
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
        auto problem = dtcalld::wal_access_problem(path);
        std::string text = problem ? "1" + *problem : "0";
        [[maybe_unused]] auto n = ::write(pipe_fds[1], text.data(), text.size());
        ::_exit(0);
    }
    ::close(pipe_fds[1]);
    std::string text;
    char buffer[512];
    for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) text.append(buffer, std::size_t(n));
    ::close(pipe_fds[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    REQUIRE_FALSE(text.empty());
    if (text[0] == '0') return std::nullopt;
    return text.substr(1);
}

}  // namespace

TEST_CASE("users_db in a directory or a file dtcalld cannot write: one line naming the directory") {
    TempDir dir;
    std::string path = dir / "users.sqlite";
    REQUIRE(UsersDb::open(path, UsersDb::Mode::create).ok());
    CHECK_FALSE(dtcalld::wal_access_problem(path));
    // Usable by anyone: then only the modes set below decide.
    REQUIRE(::chmod(dir.path.c_str(), 0777) == 0);
    REQUIRE(::chmod(path.c_str(), 0666) == 0);
    CHECK_FALSE(wal_problem_unprivileged(path));

    SUBCASE("a read-only directory") {
        REQUIRE(::chmod(dir.path.c_str(), 0555) == 0);
        auto problem = wal_problem_unprivileged(path);
        REQUIRE(problem);
        CHECK(*problem == dir.path + ": dtcalld needs write access to this directory (SQLite's -wal and -shm files); "
                                     "see dtcall-users(8)");
        // dtcalld refuses to start with it.
        if (::geteuid() != 0) {
            auto opened = SqliteUserDirectory::open(path, nullptr);
            REQUIRE_FALSE(opened.ok());
            CHECK(opened.error() == *problem);
        }
    }
    SUBCASE("a read-only database file") {
        REQUIRE(::chmod(path.c_str(), 0444) == 0);
        auto problem = wal_problem_unprivileged(path);
        REQUIRE(problem);
        CHECK(problem->find('\n') == std::string::npos);
        CHECK_MESSAGE(problem->find(dir.path) != std::string::npos, *problem);
        CHECK_MESSAGE(problem->find("dtcalld needs write access to this") != std::string::npos, *problem);
    }
    ::chmod(dir.path.c_str(), 0700);
}

TEST_CASE("a file that goes bad while serving: lookups answer unavailable, logged, nothing revoked") {
    Fixture f;
    Loop loop;
    Logged log;
    auto dir = SqliteUserDirectory::open(f.path, log.sink(), 100ms);
    REQUIRE(dir.ok());
    Revoked revoked;
    (*dir)->add_watcher(&revoked);
    REQUIRE((*dir)->start(loop.base).ok());
    REQUIRE(lookup(loop, **dir, "alice")->has_value());

    SUBCASE("garbage written over it") {
        write_file(f.path, std::string(8192, 'x'));
        std::remove((f.path + "-wal").c_str());
        std::remove((f.path + "-shm").c_str());
    }
    SUBCASE("garbage renamed over it") {
        write_file(f.dir / "garbage", std::string(8192, 'x'));
        REQUIRE(::rename((f.dir / "garbage").c_str(), f.path.c_str()) == 0);
    }
    SUBCASE("deleted") {
        REQUIRE(::unlink(f.path.c_str()) == 0);
    }
    REQUIRE(loop.until([&] { return log.has("error " + f.path); }, 1000ms));
    auto found = lookup(loop, **dir, "alice");
    REQUIRE_FALSE(found.ok());
    CHECK(found.code() == dtcall::ErrorCode::unavailable);
    CHECK(found.error().find(f.path) != std::string::npos);
    CHECK(log.has("error user lookup of alice failed: "));
    CHECK(revoked.users.empty());  // a broken file revokes nobody

    // Put back, it serves again.
    std::remove((f.path + "-wal").c_str());
    std::remove((f.path + "-shm").c_str());
    std::remove(f.path.c_str());
    auto db = UsersDb::open(f.path, UsersDb::Mode::create);
    REQUIRE(db.ok());
    REQUIRE(db->add("alice", f.alice).ok());
    REQUIRE(loop.until([&] { return log.has("info " + f.path + ": readable again"); }, 1000ms));
    auto again = lookup(loop, **dir, "alice");
    REQUIRE(again.ok());
    CHECK(again->has_value());
    CHECK(revoked.users == std::vector<std::string>{"bob"});  // the new file has no bob
    (*dir)->remove_watcher(&revoked);
}

TEST_CASE("stop() answers what is still pending, once") {
    Fixture f;
    Loop loop;
    auto dir = SqliteUserDirectory::open(f.path, nullptr);
    REQUIRE(dir.ok());
    REQUIRE((*dir)->start(loop.base).ok());
    int answers = 0;
    std::optional<dtcall::UserLookup> last;
    (*dir)->lookup("alice", [&](dtcall::UserLookup found) {
        ++answers;
        last.emplace(std::move(found));
    });
    (*dir)->stop();  // before the loop could deliver
    CHECK(answers == 1);
    loop.until([] { return false; }, 100ms);
    CHECK(answers == 1);
    (*dir)->stop();
    dir->reset();
    CHECK(answers == 1);
}

TEST_CASE("two writers at once queue under the busy timeout: no 'database is locked'") {
    Fixture f;
    std::vector<std::string> errors[2];
    auto writer = [&](int which) {
        for (int i = 0; i < 50; ++i) {
            auto db = UsersDb::open(f.path, UsersDb::Mode::create);
            if (!db) {
                errors[which].push_back(db.error());
                continue;
            }
            auto added = db->add("w" + std::to_string(which) + "-" + std::to_string(i),
                                 dtcall::KeyPair::generate().public_key);
            if (!added) errors[which].push_back(added.error());
        }
    };
    std::thread one(writer, 0), two(writer, 1);
    one.join();
    two.join();
    CHECK_MESSAGE(errors[0].empty(), (errors[0].empty() ? "" : errors[0][0]));
    CHECK_MESSAGE(errors[1].empty(), (errors[1].empty() ? "" : errors[1][0]));
    auto rows = f.writer().list();
    REQUIRE(rows.ok());
    CHECK(rows->size() == 102);
}
