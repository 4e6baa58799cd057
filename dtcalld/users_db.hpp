// The SQLite user directory's file: what dtcall-users writes and dtcalld
// reads. One table,
//   users(name TEXT PRIMARY KEY, public_key TEXT NOT NULL, added_at INTEGER)
// public_key being the key's 96 digits; PRAGMA user_version holds the schema
// version. The file is in WAL mode, so readers (dtcalld) and one writer
// (dtcall-users) never wait for each other, and every connection has a busy
// timeout, so two writers queue instead of failing with "database is locked".
// Errors are one line naming the file. Blocking: never call these on an
// event-loop thread.
#pragma once

#include <dtcall/keys.hpp>
#include <dtcall/result.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace dtcalld {

constexpr int users_db_schema_version = 1;
// How long a connection waits for another one's lock before giving up.
constexpr std::chrono::milliseconds users_db_busy_timeout{10000};

struct UserRow {
    std::string name;
    std::string public_key;  // as stored: 96 digits when the row is sound
    std::int64_t added_at = 0;
};

// A row as the daemon uses it: the key, or why the row is unusable.
dtcall::Result<dtcall::PublicKey> checked_row(const std::string& name, const std::string& digits);

class UsersDb {
public:
    enum class Mode {
        create,     // dtcall-users add/import: a missing file is created with the schema
        existing,   // dtcall-users list/remove: a missing file is an error
        read_only,  // dtcalld: an existing file with our schema, never written
    };
    static dtcall::Result<UsersDb> open(const std::string& path, Mode mode);

    UsersDb(UsersDb&&) noexcept;
    UsersDb& operator=(UsersDb&&) noexcept;
    ~UsersDb();

    const std::string& path() const { return path_; }

    // nullopt: no such user; an error: the store could not answer.
    dtcall::Result<std::optional<UserRow>> find(const std::string& name);
    dtcall::Result<std::vector<UserRow>> list();
    // SQLite's counter of commits by other connections (PRAGMA data_version).
    dtcall::Result<std::int64_t> data_version();

    // Writes, each one transaction. add() refuses a name already present.
    dtcall::Status add(const std::string& name, const dtcall::PublicKey& key);
    dtcall::Status remove(const std::string& name);
    // Adds or replaces every row in one transaction.
    dtcall::Status put_all(const std::vector<std::pair<std::string, dtcall::PublicKey>>& users);

private:
    UsersDb(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
    dtcall::Error failure(const std::string& what) const;
    dtcall::Status exec(const char* sql);

    std::string path_;
    sqlite3* db_ = nullptr;
};

}  // namespace dtcalld
