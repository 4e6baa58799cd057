// dtcall-users --db PATH add NAME PUBLIC_KEY_FILE | remove NAME | list [--json]
//              | import USERS_FILE
// Edits the SQLite user directory that dtcalld reads (users_db in
// dtcalld.conf); dtcalld sees each change within a second, no reload needed.
// See dtcall-users(8). Every error, usage errors too: one line on stderr, exit 1.
#include "users_db.hpp"

#include "crypto/crypto.hpp"
#include "io/read_bounded.hpp"
#include "wire/wire.hpp"
#include <dtcall/user_directory.hpp>
#include <dtcall/version.hpp>

#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

namespace {

using dtcalld::UsersDb;

const char* const usage =
    "usage: dtcall-users --db PATH add NAME PUBLIC_KEY_FILE\n"
    "       dtcall-users --db PATH remove NAME\n"
    "       dtcall-users --db PATH list [--json]\n"
    "       dtcall-users --db PATH import USERS_FILE\n"
    "       dtcall-users --help | --version\n"
    "\n"
    "Edits the user database dtcalld reads (users_db in dtcalld.conf). add and\n"
    "import create the file when it does not exist. A running dtcalld picks up\n"
    "every change within a second; a removed user is disconnected.\n";

constexpr std::size_t max_users_file = 64 * 1024 * 1024;

int fail(const std::string& reason) {
    std::fprintf(stderr, "dtcall-users: %s\n", reason.c_str());
    return 1;
}

int bad_usage(const std::string& reason) {
    std::fprintf(stderr, "dtcall-users: %s (try --help)\n", reason.c_str());
    return 1;
}

// Names and paths echoed in messages: printable, one line.
std::string shown(const std::string& text) {
    std::string out = "\"";
    for (std::size_t i = 0; i < text.size() && i < 80; ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        out += (c < 0x20 || c == 0x7f) ? '?' : char(c);
    }
    if (text.size() > 80) out += "...";
    return out + "\"";
}

std::string check_name(const std::string& name) {
    if (dtcall::wire::valid_user_name(name)) return {};
    return shown(name) + " is not a valid user name (1-64 characters of 0-9 A-Z a-z + -)";
}

std::string utc(std::int64_t t) {
    if (t <= 0) return "-";
    std::time_t when = std::time_t(t);
    std::tm tm{};
    gmtime_r(&when, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text;
}

std::string json_string(const std::string& text) {
    std::string out = "\"";
    for (unsigned char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c < 0x20) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\u%04x", c);
            out += esc;
        } else {
            out += char(c);
        }
    }
    return out + "\"";
}

int add(const std::string& db_path, const std::string& name, const std::string& key_file) {
    if (auto bad = check_name(name); !bad.empty()) return fail(bad);
    auto key = dtcall::read_public_key_file(key_file);
    if (!key) return fail(key.error());
    auto db = UsersDb::open(db_path, UsersDb::Mode::create);
    if (!db) return fail(db.error());
    if (auto added = db->add(name, *key); !added) return fail(added.error());
    std::printf("added %s\n", name.c_str());
    return 0;
}

int remove(const std::string& db_path, const std::string& name) {
    if (auto bad = check_name(name); !bad.empty()) return fail(bad);
    auto db = UsersDb::open(db_path, UsersDb::Mode::existing);
    if (!db) return fail(db.error());
    if (auto removed = db->remove(name); !removed) return fail(removed.error());
    std::printf("removed %s\n", name.c_str());
    return 0;
}

int list(const std::string& db_path, bool json) {
    auto db = UsersDb::open(db_path, UsersDb::Mode::existing);
    if (!db) return fail(db.error());
    auto rows = db->list();
    if (!rows) return fail(rows.error());
    std::string out = json ? "[" : "";
    bool first = true;
    for (const dtcalld::UserRow& row : *rows) {
        // A row someone wrote by hand may be unusable: say so, as dtcalld would.
        auto key = dtcalld::checked_row(row.name, row.public_key);
        if (json) {
            out += first ? "\n  " : ",\n  ";
            out += "{\"name\": " + json_string(row.name) + ", \"public_key\": " + json_string(row.public_key) +
                   ", \"added_at\": " + std::to_string(row.added_at) + ", \"valid\": " + (key ? "true" : "false") + "}";
        } else {
            out += row.name + "\t" + utc(row.added_at) + "\t" + (key ? row.public_key : "INVALID: " + key.error()) + "\n";
        }
        first = false;
    }
    if (json) out += first ? "]\n" : "\n]\n";
    std::fputs(out.c_str(), stdout);
    return 0;
}

int import(const std::string& db_path, const std::string& users_file) {
    auto text = dtcall::read_bounded(users_file, max_users_file, "users file");
    if (!text) return fail(text.error());
    dtcall::UsersFileParse parsed = dtcall::parse_users_file(*text, users_file);
    std::vector<std::string> skipped = parsed.warnings;
    std::string dir;
    if (std::size_t slash = users_file.rfind('/'); slash != std::string::npos) dir = users_file.substr(0, slash + 1);
    std::vector<std::pair<std::string, dtcall::PublicKey>> users;
    for (const dtcall::UsersFileEntry& entry : parsed.entries) {
        std::string key_path = entry.key_path[0] == '/' ? entry.key_path : dir + entry.key_path;
        auto key = dtcall::read_public_key_file(key_path);
        std::string where = users_file + ":" + std::to_string(entry.line) + ": ";
        if (!key) {
            skipped.push_back(where + "user " + entry.user + " skipped: " + key.error());
            continue;
        }
        users.emplace_back(entry.user, *key);
    }
    auto db = UsersDb::open(db_path, UsersDb::Mode::create);
    if (!db) return fail(db.error());
    if (auto put = db->put_all(users); !put) return fail(put.error());
    for (const std::string& line : skipped) std::fprintf(stderr, "dtcall-users: %s\n", line.c_str());
    std::printf("imported %zu users from %s, %zu lines skipped\n", users.size(), users_file.c_str(), skipped.size());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
        std::fputs(usage, stdout);
        return 0;
    }
    if (args.size() == 1 && (args[0] == "--version" || args[0] == "-V")) {
        std::printf("dtcall-users %s\n", dtcall::version());
        return 0;
    }
    std::string db_path;
    if (!args.empty() && args[0].rfind("--db=", 0) == 0) {
        db_path = args[0].substr(5);
        args.erase(args.begin());
    } else if (!args.empty() && args[0] == "--db") {
        if (args.size() < 2) return bad_usage("--db needs a PATH");
        db_path = args[1];
        args.erase(args.begin(), args.begin() + 2);
    } else {
        return bad_usage(args.empty() ? "no arguments" : "expected --db PATH first, found " + shown(args[0]));
    }
    if (db_path.empty()) return bad_usage("--db needs a PATH");
    if (args.empty()) return bad_usage("no command (add, remove, list or import)");
    std::string command = args[0];
    std::vector<std::string> rest(args.begin() + 1, args.end());
    auto expect = [&](std::size_t n, const char* form) -> std::string {
        if (rest.size() == n) return {};
        return command + " takes " + form + (rest.size() < n ? ", too few arguments" : ", too many arguments");
    };
    if (!dtcall::crypto_init()) return fail("libsodium cannot start (no entropy source?)");
    if (command == "add") {
        if (auto bad = expect(2, "NAME PUBLIC_KEY_FILE"); !bad.empty()) return bad_usage(bad);
        return add(db_path, rest[0], rest[1]);
    }
    if (command == "remove") {
        if (auto bad = expect(1, "NAME"); !bad.empty()) return bad_usage(bad);
        return remove(db_path, rest[0]);
    }
    if (command == "list") {
        if (rest.size() == 1 && rest[0] == "--json") return list(db_path, true);
        if (rest.empty()) return list(db_path, false);
        return bad_usage("list takes only --json, found " + shown(rest[0]));
    }
    if (command == "import") {
        if (auto bad = expect(1, "USERS_FILE"); !bad.empty()) return bad_usage(bad);
        return import(db_path, rest[0]);
    }
    return bad_usage("unknown command " + shown(command) + " (add, remove, list or import)");
}
