// dtcalld's SQLite user directory (users_db in dtcalld.conf): the file that
// dtcall-users edits, read while dtcalld serves, so that changes take effect
// without a reload.
//
// Threading: SQLite calls block (disk, and the busy timeout while a writer
// holds a lock), and the event loop must not. A worker thread owns the read
// connection; lookup() queues the name and returns, the worker queries and
// queues the answer, and an eventfd read event on the loop delivers it (so
// answers, log lines and revocations all happen on the loop thread). Every
// `poll` the worker asks PRAGMA data_version (a counter, no table read) and
// only when another connection committed re-reads the names and keys, diffs
// them against its previous snapshot and reports users removed or re-keyed
// (notify_removed on the loop). A file that is replaced is reopened; a file
// that turns bad keeps the previous snapshot (nobody is revoked for it), and
// lookups answer ErrorCode::unavailable with a logged error until it is
// readable again.
#pragma once

#include <dtcall/log.hpp>
#include <dtcall/result.hpp>
#include <dtcall/user_directory.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

struct event_base;

namespace dtcalld {

// What stops dtcalld from using the database at `path` in WAL mode: the
// file (when it exists) or its directory not writable by this process
// (SQLite creates PATH-wal and PATH-shm beside it). One line naming what
// must be made writable; nullopt when both are.
std::optional<std::string> wal_access_problem(const std::string& path);

class SqliteUserDirectory : public dtcall::UserDirectory {
public:
    using Log = std::function<void(dtcall::LogLevel, const std::string&)>;

    // Opens and checks `path` and reads its users (blocking: call it before
    // the loop runs). The error is one line naming the file. `log` is called
    // on the loop thread.
    static dtcall::Result<std::unique_ptr<SqliteUserDirectory>> open(
        const std::string& path, Log log, std::chrono::milliseconds poll = std::chrono::milliseconds(300));

    // Starts the worker, answering through `base` (whose loop thread is then
    // the only one to call lookup()). Lookups need it started.
    dtcall::Status start(event_base* base);
    // Stops the worker and leaves `base`; lookups still pending are answered
    // with an error. Call it before `base` is freed; the destructor does too.
    void stop();
    ~SqliteUserDirectory() override;
    SqliteUserDirectory(const SqliteUserDirectory&) = delete;
    SqliteUserDirectory& operator=(const SqliteUserDirectory&) = delete;

    // Always answers later, from the loop, never from inside lookup().
    void lookup(const std::string& user, Answer answer) override;

    const std::string& path() const;
    // Usable users in the latest snapshot the loop has seen.
    std::size_t size() const;

    struct Impl;

private:
    explicit SqliteUserDirectory(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace dtcalld
