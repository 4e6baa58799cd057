// The installed API is a promise: include/dtcall/ holds exactly the public
// headers, and libdtcall.so exports only what they declare (DTCALL_API), so
// internal classes can change without changing the ABI.
#include <doctest/doctest.h>

#include <dtcall/dtcall.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace {

std::string env(const char* name) {
    const char* value = std::getenv(name);
    INFO(name << " is not set (run through meson test)");
    REQUIRE(value != nullptr);
    return value;
}

struct Symbol {
    char type;  // nm's letter: T code, D/B/R data, W/V weak (inline and template copies), u unique
    std::string name;
};

std::vector<Symbol> exported_symbols(const std::string& library) {
    std::string command = "nm -DC --defined-only '" + library + "' 2>&1";
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
    REQUIRE(pipe);
    std::vector<Symbol> symbols;
    char line[4096];
    while (std::fgets(line, sizeof line, pipe.get())) {
        std::string text(line);
        if (!text.empty() && text.back() == '\n') text.pop_back();
        // "ADDRESS TYPE NAME": keep the name.
        auto first = text.find(' ');
        auto second = first == std::string::npos ? first : text.find(' ', first + 1);
        if (second != std::string::npos) symbols.push_back({text[first + 1], text.substr(second + 1)});
    }
    return symbols;
}

// "std::...", or "RETURN-TYPE std::..." for a function template.
bool is_standard_library(const std::string& name) {
    if (name.rfind("std::", 0) == 0) return true;
    auto space = name.find(' ');
    return space != std::string::npos && name.compare(space + 1, 5, "std::") == 0 &&
           name.find('(') > space;  // the space is before the arguments: a return type
}

// A server configuration on 127.0.0.1, ports chosen by the kernel, no keys yet.
dtcall::Config loopback_config() {
    dtcall::Config config;
    config.listen_addresses = {"127.0.0.1"};
    config.command_port = 0;
    config.media_port = 0;
    return config;
}

}  // namespace

TEST_CASE("libdtcall.so exports the public API and nothing internal") {
    auto symbols = exported_symbols(env("DTCALL_SHARED_LIBRARY"));
    REQUIRE(symbols.size() > 20);
    auto exported = [&](const std::string& needle) {
        return std::any_of(symbols.begin(), symbols.end(),
                           [&](const Symbol& s) { return s.name.find(needle) != std::string::npos; });
    };
    // What an embedder links against.
    CHECK(exported("dtcall::Server::start()"));
    CHECK(exported("dtcall::Server::kick("));
    CHECK(exported("dtcall::Client::connect("));
    CHECK(exported("dtcall::read_public_key_file("));
    CHECK(exported("dtcall::version()"));
    CHECK(exported("typeinfo for dtcall::ServerObserver"));
    CHECK(exported("typeinfo for dtcall::UserDirectory"));
    // Internals: none may be exported.
    for (const char* internal : {"Session", "FrameDecoder", "MediaRelay", "CallRouter", "dtcall::wire::",
                                 "RateLimiter", "ReplayGuard", "SharedKey", "RelayThread", "::Impl", "stringify",
                                 "seal_", "open_secret_frame", "client_side", "CommandLink", "MediaLink",
                                 "read_bounded", "format_address", "MissedNotices", "Presence", "Admission",
                                 "SessionTable", "CallLedger"}) {
        for (const Symbol& symbol : symbols) {
            // The standard library's own templates, instantiated for an
            // internal type, are its business, not an entry point of ours
            // (clang emits some as strong symbols).
            if (is_standard_library(symbol.name)) continue;
            INFO("exported: " << symbol.name);
            CHECK(symbol.name.find(internal) == std::string::npos);
        }
    }
    // Every strong symbol belongs to dtcall (no stray helpers). Weak ones
    // are the standard library's template copies, which every C++ library
    // carries and the loader merges.
    for (const Symbol& symbol : symbols) {
        if (symbol.type == 'W' || symbol.type == 'V' || symbol.type == 'u') continue;
        INFO("exported: " << symbol.type << " " << symbol.name);
        CHECK(symbol.name.find("dtcall::") != std::string::npos);
    }
}

TEST_CASE("include/dtcall holds exactly the public headers") {
    std::string dir = env("DTCALL_SOURCE_ROOT") + "/include/dtcall";
    std::set<std::string> found;
    std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
    REQUIRE(d);
    while (dirent* entry = readdir(d.get())) {
        std::string name = entry->d_name;
        if (name != "." && name != "..") found.insert(name);
    }
    std::set<std::string> expected = {"client.hpp", "config.hpp",  "dtcall.hpp", "events.hpp",
                                      "export.hpp", "keys.hpp",    "log.hpp",    "result.hpp",
                                      "server.hpp", "user_directory.hpp", "version.hpp"};
    CHECK(found == expected);
}

TEST_CASE("value() of a failed Result is a clear abort, and the error says what kind") {
    dtcall::Status failed = dtcall::Error{dtcall::ErrorCode::not_found, "no such user: zed"};
    CHECK_FALSE(failed.ok());
    CHECK(failed.code() == dtcall::ErrorCode::not_found);
    CHECK(failed.error() == "no such user: zed");
    CHECK(std::string(dtcall::to_string(dtcall::ErrorCode::address_in_use)) == "address in use");
    dtcall::Result<int> fine = 7;
    CHECK(fine.value() == 7);
    CHECK(fine.code() == dtcall::ErrorCode::other);
}

TEST_CASE("errors say what kind: a taken port, a bad address, a missing or malformed key file") {
    REQUIRE(dtcall::crypto_init());
    dtcall::InMemoryUserDirectory users;
    dtcall::Config config = loopback_config();
    config.server_keys = dtcall::KeyPair::generate();
    dtcall::Server first(config, users);
    REQUIRE(first.start());
    CHECK(first.start().code() == dtcall::ErrorCode::invalid_state);

    dtcall::Config same_port = config;
    same_port.command_port = first.command_port();
    dtcall::Server second(same_port, users);
    dtcall::Status taken = second.start();
    CHECK(taken.code() == dtcall::ErrorCode::address_in_use);
    CHECK(taken.error().find("127.0.0.1") != std::string::npos);

    dtcall::Config bad = config;
    bad.listen_addresses = {"not-an-address"};
    dtcall::Server third(bad, users);
    CHECK(third.start().code() == dtcall::ErrorCode::bad_address);

    auto missing = dtcall::read_public_key_file("/nonexistent/dtcall/key.na");
    CHECK(missing.code() == dtcall::ErrorCode::not_found);
    CHECK(missing.error().find("/nonexistent/dtcall/key.na") != std::string::npos);
    CHECK(dtcall::parse_public_key_file("SODIUM PUBLIC KEY\n123").code() == dtcall::ErrorCode::bad_key);
    CHECK(dtcall::PublicKey::from_digits("12x").code() == dtcall::ErrorCode::bad_key);
}

TEST_CASE("a server without its key pair, or with a mismatched one, does not start") {
    REQUIRE(dtcall::crypto_init());
    dtcall::InMemoryUserDirectory users;
    dtcall::Config config = loopback_config();
    dtcall::Server unset(config, users);
    CHECK(unset.start().code() == dtcall::ErrorCode::bad_key);
    config.server_keys = dtcall::KeyPair::generate();
    config.server_keys.public_key = dtcall::KeyPair::generate().public_key;
    dtcall::Server mismatched(config, users);
    dtcall::Status started = mismatched.start();
    CHECK(started.code() == dtcall::ErrorCode::bad_key);
    CHECK(started.error().find("not the secret key's") != std::string::npos);
}

TEST_CASE("a directory's answer converts from a key or from nothing; log levels have names") {
    dtcall::PublicKey key = dtcall::KeyPair::generate().public_key;
    dtcall::UserLookup found = key;
    REQUIRE(found.ok());
    CHECK(*found.value() == key);
    dtcall::UserLookup unknown = std::nullopt;
    REQUIRE(unknown.ok());
    CHECK_FALSE(unknown.value().has_value());
    dtcall::UserLookup failed = dtcall::Error{dtcall::ErrorCode::unavailable, "store down"};
    CHECK(failed.code() == dtcall::ErrorCode::unavailable);
    CHECK(std::string(dtcall::to_string(dtcall::LogLevel::warning)) == "warning");
}
