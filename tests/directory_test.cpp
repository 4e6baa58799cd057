// The users file (name > /path/to/key) and the in-memory directory.
#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <dtcall/user_directory.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace dtcall;

namespace {

using test_support::TempDir;
using test_support::write_file;

}  // namespace

TEST_CASE("users file: entries, comments, blank lines, warnings with line numbers") {
    auto parsed = parse_users_file("# users\n"
                                   "alice > /keys/alice_public.na\n"
                                   "\n"
                                   "  bob>bob_public.na   # inline comment\n"
                                   "no arrow here\n"
                                   "bad name > /x\n"
                                   "carol >\n"
                                   "dave > /keys/dave_public.na",
                                   "users");
    REQUIRE(parsed.entries.size() == 3);
    CHECK(parsed.entries[0].user == "alice");
    CHECK(parsed.entries[0].key_path == "/keys/alice_public.na");
    CHECK(parsed.entries[0].line == 2);
    CHECK(parsed.entries[1].user == "bob");
    CHECK(parsed.entries[1].key_path == "bob_public.na");
    CHECK(parsed.entries[2].line == 8);
    REQUIRE(parsed.warnings.size() == 3);
    CHECK(parsed.warnings[0].rfind("users:5: ", 0) == 0);
    CHECK(parsed.warnings[1].rfind("users:6: ", 0) == 0);
    CHECK(parsed.warnings[2].rfind("users:7: ", 0) == 0);
}

TEST_CASE("users file: garbage never crashes the parser") {
    std::string junk;
    for (int i = 0; i < 5000; ++i) junk.push_back(char((i * 7919) % 256));
    auto parsed = parse_users_file(junk, "junk");
    CHECK(parsed.entries.size() + parsed.warnings.size() > 0);
    CHECK(parse_users_file("", "empty").entries.empty());
    CHECK(parse_users_file(">>>>", "x").warnings.size() == 1);
}

TEST_CASE("UsersFile loads keys, warns on a bad one, reloads without losing the table on error") {
    TempDir dir;
    KeyPair alice = KeyPair::generate(), bob = KeyPair::generate();
    write_file(dir / "alice_public.na", public_key_file_text(alice.public_key));
    write_file(dir / "bob_public.na", public_key_file_text(bob.public_key));
    write_file(dir / "broken_public.na", "SODIUM PUBLIC KEY\n123");
    write_file(dir / "users", "alice > " + dir.path + "/alice_public.na\n"
                       "bob > bob_public.na\n"
                       "broken > broken_public.na\n"
                       "ghost > /nonexistent/ghost_public.na\n");
    UsersFile users(dir.path + "/users");
    std::vector<std::string> warnings;
    REQUIRE(users.reload(warnings));
    CHECK(users.size() == 2);
    CHECK(users.find("alice") == alice.public_key);
    CHECK(users.find("bob") == bob.public_key);
    CHECK_FALSE(users.find("broken"));
    CHECK_FALSE(users.find("carol"));
    REQUIRE(warnings.size() == 2);
    CHECK(warnings[0].find("users:3: user broken skipped") != std::string::npos);
    CHECK(warnings[1].find("users:4: user ghost skipped") != std::string::npos);

    write_file(dir / "users", "alice > alice_public.na\n");
    warnings.clear();
    REQUIRE(users.reload(warnings));
    CHECK(users.size() == 1);
    CHECK_FALSE(users.find("bob"));

    ::unlink((dir.path + "/users").c_str());
    auto failed = users.reload(warnings);
    CHECK_FALSE(failed);
    CHECK(failed.error().find(dir.path + "/users") != std::string::npos);
    CHECK(users.find("alice"));  // previous table kept
}

TEST_CASE("UsersFile refuses what is not a small regular file, and keeps its table") {
    TempDir dir;
    KeyPair alice = KeyPair::generate();
    write_file(dir / "alice_public.na", public_key_file_text(alice.public_key));
    write_file(dir / "users", "alice > alice_public.na\n");
    UsersFile users(dir.path + "/users");
    std::vector<std::string> warnings;
    REQUIRE(users.reload(warnings));
    for (std::string path : {std::string("/dev/zero"), dir.path, std::string("/nonexistent/users")}) {
        UsersFile odd(path);
        auto r = odd.reload(warnings);
        CHECK_FALSE(r);
        CHECK(r.error().find(path) == 0);
    }
    std::string fifo = dir.path + "/fifo";
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    UsersFile from_fifo(fifo);
    CHECK_FALSE(from_fifo.reload(warnings));  // does not wait for a writer
    CHECK(users.find("alice"));
}

TEST_CASE("InMemoryUserDirectory") {
    InMemoryUserDirectory users;
    KeyPair k = KeyPair::generate();
    users.add("alice", k.public_key);
    CHECK(users.find("alice") == k.public_key);
    users.remove("alice");
    CHECK_FALSE(users.find("alice"));
    std::vector<std::string> w;
    CHECK(users.reload(w));
}
