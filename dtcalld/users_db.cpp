#include "users_db.hpp"

#include "wire/wire.hpp"

#include <sqlite3.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <sys/stat.h>

namespace dtcalld {
namespace {

// One prepared statement, finalized however the function leaves.
class Statement {
public:
    Statement(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
    ~Statement() { sqlite3_finalize(stmt_); }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    bool prepared() const { return rc_ == SQLITE_OK; }
    void bind(int index, const std::string& text) {
        sqlite3_bind_text(stmt_, index, text.data(), int(text.size()), SQLITE_TRANSIENT);
    }
    void bind(int index, std::int64_t number) { sqlite3_bind_int64(stmt_, index, number); }
    int step() { return sqlite3_step(stmt_); }
    void reset() {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }
    std::string text(int column) const {
        const unsigned char* t = sqlite3_column_text(stmt_, column);
        return t ? std::string(reinterpret_cast<const char*>(t), std::size_t(sqlite3_column_bytes(stmt_, column)))
                 : std::string();
    }
    std::int64_t number(int column) const { return sqlite3_column_int64(stmt_, column); }

private:
    sqlite3_stmt* stmt_ = nullptr;
    int rc_ = SQLITE_ERROR;
};

// Rolls back unless committed (an error path leaves no transaction open).
class Transaction {
public:
    explicit Transaction(sqlite3* db) : db_(db) {}
    ~Transaction() {
        if (open_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    // IMMEDIATE: take the write lock now, waiting under the busy timeout; a
    // deferred transaction that upgrades later can fail at once with BUSY.
    int begin() {
        int rc = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
        open_ = rc == SQLITE_OK;
        return rc;
    }
    int commit() {
        int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
        if (rc == SQLITE_OK) open_ = false;
        return rc;
    }

private:
    sqlite3* db_;
    bool open_ = false;
};

const char* const create_schema =
    "CREATE TABLE IF NOT EXISTS users ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " public_key TEXT NOT NULL,"
    " added_at INTEGER)";

}  // namespace

dtcall::Result<dtcall::PublicKey> checked_row(const std::string& name, const std::string& digits) {
    if (!dtcall::wire::valid_user_name(name))
        return dtcall::Error{dtcall::ErrorCode::bad_key, "name is not 1-64 characters of [0-9A-Za-z+-]"};
    auto key = dtcall::PublicKey::from_digits(digits);
    if (!key) return dtcall::Error{dtcall::ErrorCode::bad_key, "public_key: " + key.error()};
    return *key;
}

UsersDb::UsersDb(UsersDb&& o) noexcept : path_(std::move(o.path_)), db_(o.db_) { o.db_ = nullptr; }

UsersDb& UsersDb::operator=(UsersDb&& o) noexcept {
    if (this != &o) {
        sqlite3_close_v2(db_);
        path_ = std::move(o.path_);
        db_ = o.db_;
        o.db_ = nullptr;
    }
    return *this;
}

UsersDb::~UsersDb() { sqlite3_close_v2(db_); }

dtcall::Error UsersDb::failure(const std::string& what) const {
    std::string reason = db_ ? sqlite3_errmsg(db_) : "out of memory";
    return dtcall::Error{dtcall::ErrorCode::unavailable, path_ + ": " + what + ": " + reason};
}

dtcall::Status UsersDb::exec(const char* sql) {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return failure(sql);
    return dtcall::Done{};
}

dtcall::Result<UsersDb> UsersDb::open(const std::string& path, Mode mode) {
    using dtcall::Error;
    using dtcall::ErrorCode;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (errno != ENOENT || mode != Mode::create)
            return Error{errno == ENOENT ? ErrorCode::not_found : ErrorCode::io, path + ": " + std::strerror(errno)};
    } else if (!S_ISREG(st.st_mode)) {
        return Error{ErrorCode::io, path + ": not a regular file"};
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (mode == Mode::create ? SQLITE_OPEN_CREATE : 0);
    sqlite3* raw = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    UsersDb db(path, raw);
    if (rc != SQLITE_OK) return db.failure("cannot open");
    sqlite3_extended_result_codes(raw, 1);
    sqlite3_busy_timeout(raw, int(users_db_busy_timeout.count()));

    // A file that is not a database fails here ("file is not a database").
    auto version = [&]() -> dtcall::Result<std::int64_t> {
        Statement s(raw, "PRAGMA user_version");
        if (!s.prepared() || s.step() != SQLITE_ROW) return db.failure("cannot read");
        return s.number(0);
    };
    auto tables = [&]() -> dtcall::Result<std::int64_t> {
        Statement s(raw, "SELECT count(*) FROM sqlite_master");
        if (!s.prepared() || s.step() != SQLITE_ROW) return db.failure("cannot read");
        return s.number(0);
    };
    auto schema = version();
    if (!schema) return Error{schema.failure()};
    if (*schema == 0 && mode == Mode::create) {
        // Another dtcall-users may be creating it this very moment: decide
        // under the write lock.
        Transaction t(raw);
        if (t.begin() != SQLITE_OK) return db.failure("cannot lock");
        auto now = version();
        auto count = tables();
        if (!now) return Error{now.failure()};
        if (!count) return Error{count.failure()};
        if (*now == 0 && *count == 0) {
            if (auto made = db.exec(create_schema); !made) return Error{made.failure()};
            if (auto set = db.exec("PRAGMA user_version = 1"); !set) return Error{set.failure()};
            // Every user and key is in it: the owner and its group only,
            // whatever the shell's umask (SQLite's -wal/-shm files follow).
            ::chmod(path.c_str(), 0640);
        }
        if (t.commit() != SQLITE_OK) return db.failure("cannot create the schema");
        schema = version();
        if (!schema) return Error{schema.failure()};
    }
    if (*schema == 0)
        return Error{ErrorCode::bad_config, path + ": not a dtcall users database (no schema version)"};
    if (*schema != users_db_schema_version)
        return Error{ErrorCode::bad_config, path + ": schema version " + std::to_string(*schema) +
                                                " is not the one this dtcall knows (" +
                                                std::to_string(users_db_schema_version) + ")"};
    if (mode == Mode::read_only) {
        // A damaged file is refused at start, not discovered user by user.
        Statement check(raw, "PRAGMA quick_check");
        if (!check.prepared() || check.step() != SQLITE_ROW) return db.failure("cannot check");
        if (check.text(0) != "ok") return Error{ErrorCode::unavailable, path + ": damaged: " + check.text(0)};
    } else {
        // Persistent in the file: readers and the writer stop blocking each other.
        std::string journal;
        {
            Statement now(raw, "PRAGMA journal_mode");
            if (!now.prepared() || now.step() != SQLITE_ROW) return db.failure("cannot read the journal mode");
            journal = now.text(0);
        }
        if (journal != "wal") {
            Statement wal(raw, "PRAGMA journal_mode = WAL");
            if (!wal.prepared() || wal.step() != SQLITE_ROW) return db.failure("cannot switch to WAL mode");
        }
    }
    auto probe = db.list();
    if (!probe) return Error{probe.failure()};
    return db;
}

dtcall::Result<std::optional<UserRow>> UsersDb::find(const std::string& name) {
    Statement s(db_, "SELECT name, public_key, added_at FROM users WHERE name = ?1");
    if (!s.prepared()) return failure("cannot look up " + name);
    s.bind(1, name);
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<UserRow>();
    if (rc != SQLITE_ROW) return failure("cannot look up " + name);
    return std::optional<UserRow>(UserRow{s.text(0), s.text(1), s.number(2)});
}

dtcall::Result<std::vector<UserRow>> UsersDb::list() {
    Statement s(db_, "SELECT name, public_key, added_at FROM users ORDER BY name");
    if (!s.prepared()) return failure("cannot list the users");
    std::vector<UserRow> rows;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) rows.push_back({s.text(0), s.text(1), s.number(2)});
    if (rc != SQLITE_DONE) return failure("cannot list the users");
    return rows;
}

dtcall::Result<std::int64_t> UsersDb::data_version() {
    Statement s(db_, "PRAGMA data_version");
    if (!s.prepared() || s.step() != SQLITE_ROW) return failure("cannot read the data version");
    return s.number(0);
}

dtcall::Status UsersDb::add(const std::string& name, const dtcall::PublicKey& key) {
    Transaction t(db_);
    if (t.begin() != SQLITE_OK) return failure("cannot lock");
    Statement s(db_, "INSERT INTO users (name, public_key, added_at) VALUES (?1, ?2, ?3)");
    if (!s.prepared()) return failure("cannot add " + name);
    s.bind(1, name);
    s.bind(2, key.to_digits());
    s.bind(3, std::int64_t(std::time(nullptr)));
    int rc = s.step();
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
        return dtcall::Error{dtcall::ErrorCode::invalid_state,
                             path_ + ": user " + name + " is already there (remove it first to change the key)"};
    if (rc != SQLITE_DONE) return failure("cannot add " + name);
    if (t.commit() != SQLITE_OK) return failure("cannot add " + name);
    return dtcall::Done{};
}

dtcall::Status UsersDb::remove(const std::string& name) {
    Transaction t(db_);
    if (t.begin() != SQLITE_OK) return failure("cannot lock");
    Statement s(db_, "DELETE FROM users WHERE name = ?1");
    if (!s.prepared()) return failure("cannot remove " + name);
    s.bind(1, name);
    if (s.step() != SQLITE_DONE) return failure("cannot remove " + name);
    if (sqlite3_changes(db_) == 0)
        return dtcall::Error{dtcall::ErrorCode::not_found, path_ + ": no user " + name};
    if (t.commit() != SQLITE_OK) return failure("cannot remove " + name);
    return dtcall::Done{};
}

dtcall::Status UsersDb::put_all(const std::vector<std::pair<std::string, dtcall::PublicKey>>& users) {
    Transaction t(db_);
    if (t.begin() != SQLITE_OK) return failure("cannot lock");
    // A re-imported user keeps its added_at unless the key changed.
    Statement s(db_,
                "INSERT INTO users (name, public_key, added_at) VALUES (?1, ?2, ?3) "
                "ON CONFLICT(name) DO UPDATE SET public_key = excluded.public_key, added_at = excluded.added_at "
                "WHERE public_key != excluded.public_key");
    if (!s.prepared()) return failure("cannot import");
    for (const auto& [name, key] : users) {
        s.reset();
        s.bind(1, name);
        s.bind(2, key.to_digits());
        s.bind(3, std::int64_t(std::time(nullptr)));
        if (s.step() != SQLITE_DONE) return failure("cannot import " + name);
    }
    if (t.commit() != SQLITE_OK) return failure("cannot import");
    return dtcall::Done{};
}

}  // namespace dtcalld
