#include "sqlite_user_directory.hpp"

#include "users_db.hpp"

#include <event2/event.h>

#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <variant>
#include <vector>

namespace dtcalld {
namespace {

using dtcall::LogLevel;
using Clock = std::chrono::steady_clock;

// What the worker hands to the loop.
struct Answered {
    std::uint64_t id;
    dtcall::UserLookup found;
};
struct LogLine {
    LogLevel level;
    std::string text;
};
struct Removed {
    std::vector<std::string> users;
    std::size_t remaining;  // usable users in the new snapshot
};
using Outcome = std::variant<Answered, LogLine, Removed>;

struct Job {
    std::uint64_t id;
    std::string user;
};

// Name -> digits of the usable rows.
using Snapshot = std::map<std::string, std::string>;

// Which file, and whether it was written behind SQLite's back: a file
// renamed over ours, or garbage written into it, leaves an open connection
// reading stale pages from its cache. A checkpoint changes it too; then the
// reopen is merely unneeded.
struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    long mtime_s = 0;
    long mtime_ns = 0;
    bool operator==(const FileId& o) const {
        return dev == o.dev && ino == o.ino && size == o.size && mtime_s == o.mtime_s && mtime_ns == o.mtime_ns;
    }
};

std::optional<FileId> file_id(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    return FileId{st.st_dev, st.st_ino, st.st_size, long(st.st_mtim.tv_sec), long(st.st_mtim.tv_nsec)};
}

}  // namespace

struct SqliteUserDirectory::Impl {
    SqliteUserDirectory* owner = nullptr;
    event_base* base = nullptr;
    std::string path;
    Log log;
    std::chrono::milliseconds poll;

    // ---- shared between the loop and the worker (under mutex) ----
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<Job> jobs;
    std::deque<Outcome> outcomes;
    bool stopping = false;
    int wakeup_fd = -1;  // eventfd: the worker -> the loop

    // ---- the loop's ----
    event* wakeup_event = nullptr;
    std::uint64_t next_id = 0;
    std::map<std::uint64_t, Answer> pending;
    std::size_t users = 0;

    // ---- the worker's ----
    std::optional<UsersDb> db;
    std::optional<FileId> opened_file;
    std::int64_t seen_version = -1;  // -1: re-read on the next poll
    Snapshot snapshot;
    std::string last_problem;  // logged once, until it changes or clears
    std::thread worker;

    ~Impl() {
        if (wakeup_fd >= 0) ::close(wakeup_fd);
    }

    // ---- worker side ----
    void post(Outcome outcome) {
        {
            std::lock_guard<std::mutex> lock(mutex);
            outcomes.push_back(std::move(outcome));
        }
        std::uint64_t one = 1;
        // A full counter (impossible in practice) still leaves it readable.
        (void)!::write(wakeup_fd, &one, sizeof one);
    }

    void problem(const std::string& text) {
        if (text == last_problem) return;
        last_problem = text;
        post(LogLine{LogLevel::error, text + "; logins fail until it is readable again"});
    }

    void recovered() {
        if (last_problem.empty()) return;
        last_problem.clear();
        post(LogLine{LogLevel::info, path + ": readable again"});
    }

    // The connection, (re)opened when missing or when the file was replaced.
    UsersDb* connection() {
        auto now = file_id(path);
        if (db && (!now || !(*now == *opened_file))) {
            db.reset();  // renamed over, or deleted: what we have open is stale
            seen_version = -1;
        }
        if (!db) {
            auto opened = UsersDb::open(path, UsersDb::Mode::read_only);
            if (!opened) {
                problem(opened.error());
                return nullptr;
            }
            db.emplace(std::move(*opened));
            opened_file = file_id(path);
            seen_version = -1;
        }
        return &*db;
    }

    // After a failure the connection is dropped; the next use reopens it.
    void drop(const std::string& text) {
        problem(text);
        db.reset();
        seen_version = -1;
    }

    Snapshot usable(const std::vector<UserRow>& rows) {
        Snapshot out;
        for (const UserRow& row : rows) {
            auto key = checked_row(row.name, row.public_key);
            if (!key) {
                // Re-reads happen only after commits: one warning per change.
                post(LogLine{LogLevel::warning, path + ": user \"" + printable(row.name) +
                                                    "\" ignored (unknown until fixed): " + key.error()});
                continue;
            }
            out.emplace(row.name, row.public_key);
        }
        return out;
    }

    static std::string printable(const std::string& text) {
        std::string out;
        for (std::size_t i = 0; i < text.size() && i < 64; ++i) {
            auto c = static_cast<unsigned char>(text[i]);
            out += (c < 0x20 || c >= 0x7f || c == '"') ? '?' : char(c);
        }
        return out;
    }

    void check_for_changes() {
        UsersDb* d = connection();
        if (!d) return;
        auto version = d->data_version();
        if (!version) return drop(version.error());
        if (*version == seen_version) return recovered();
        auto rows = d->list();
        if (!rows) return drop(rows.error());
        seen_version = *version;
        recovered();
        Snapshot next = usable(*rows);
        Removed gone{{}, next.size()};
        for (const auto& [name, digits] : snapshot) {
            auto it = next.find(name);
            if (it == next.end() || it->second != digits) gone.users.push_back(name);
        }
        snapshot = std::move(next);
        post(std::move(gone));
    }

    dtcall::UserLookup look_up(const std::string& user) {
        UsersDb* d = connection();
        if (!d) return dtcall::Error{dtcall::ErrorCode::unavailable, last_problem};
        auto row = d->find(user);
        if (!row) {
            std::string text = row.error();
            drop(text);
            return dtcall::Error{dtcall::ErrorCode::unavailable, text};
        }
        if (!*row) return std::optional<dtcall::PublicKey>();
        auto key = checked_row((*row)->name, (*row)->public_key);
        if (!key) {
            post(LogLine{LogLevel::warning, path + ": user \"" + printable(user) +
                                                "\" ignored (unknown until fixed): " + key.error()});
            return std::optional<dtcall::PublicKey>();
        }
        return std::optional<dtcall::PublicKey>(*key);
    }

    void run() {
        auto next_poll = Clock::now() + poll;
        for (;;) {
            std::deque<Job> batch;
            {
                std::unique_lock<std::mutex> lock(mutex);
                wake.wait_until(lock, next_poll, [&] { return stopping || !jobs.empty(); });
                if (stopping) return;
                batch.swap(jobs);
            }
            for (const Job& job : batch) {
                dtcall::UserLookup found = look_up(job.user);
                if (!found) post(LogLine{LogLevel::error, "user lookup of " + job.user + " failed: " + found.error()});
                post(Answered{job.id, std::move(found)});
            }
            if (Clock::now() >= next_poll) {
                check_for_changes();
                next_poll = Clock::now() + poll;
            }
        }
    }

    // ---- loop side ----
    static void on_wakeup(evutil_socket_t fd, short, void* self) {
        std::uint64_t count = 0;
        (void)!::read(fd, &count, sizeof count);
        static_cast<Impl*>(self)->deliver();
    }

    void deliver() {
        std::deque<Outcome> batch;
        {
            std::lock_guard<std::mutex> lock(mutex);
            batch.swap(outcomes);
        }
        for (Outcome& outcome : batch) {
            if (auto* answered = std::get_if<Answered>(&outcome)) {
                auto it = pending.find(answered->id);
                if (it == pending.end()) continue;
                Answer answer = std::move(it->second);
                pending.erase(it);
                answer(std::move(answered->found));
            } else if (auto* line = std::get_if<LogLine>(&outcome)) {
                if (log) log(line->level, line->text);
            } else if (auto* removed = std::get_if<Removed>(&outcome)) {
                users = removed->remaining;
                for (const std::string& user : removed->users) owner->notify_removed(user);
            }
        }
    }
};

std::optional<std::string> wal_access_problem(const std::string& path) {
    std::string::size_type slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    const std::string why = " (SQLite's -wal and -shm files); see dtcall-users(8)";
    // access() also says EROFS for a read-only mount (systemd's ProtectSystem=).
    if (::access(path.c_str(), F_OK) == 0 && ::access(path.c_str(), W_OK) != 0) {
        return path + ": dtcalld needs write access to this file and to " + dir + why;
    }
    if (::access(dir.c_str(), W_OK | X_OK) != 0) return dir + ": dtcalld needs write access to this directory" + why;
    return std::nullopt;
}

dtcall::Result<std::unique_ptr<SqliteUserDirectory>> SqliteUserDirectory::open(const std::string& path, Log log,
                                                                               std::chrono::milliseconds poll) {
    if (auto problem = wal_access_problem(path)) return dtcall::Error{dtcall::ErrorCode::permission, *problem};
    auto impl = std::make_unique<Impl>();
    impl->path = path;
    impl->log = std::move(log);
    impl->poll = poll;

    auto db = UsersDb::open(path, UsersDb::Mode::read_only);
    if (!db) return dtcall::Error{db.failure()};
    impl->opened_file = file_id(path);
    auto version = db->data_version();
    if (!version) return dtcall::Error{version.failure()};
    auto rows = db->list();
    if (!rows) return dtcall::Error{rows.failure()};
    impl->seen_version = *version;
    impl->db.emplace(std::move(*db));

    impl->wakeup_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (impl->wakeup_fd < 0) return dtcall::Error{std::string("eventfd: ") + std::strerror(errno)};
    // Warnings for bad rows wait in the queue until the loop runs.
    impl->snapshot = impl->usable(*rows);
    impl->users = impl->snapshot.size();

    std::unique_ptr<SqliteUserDirectory> directory(new SqliteUserDirectory(std::move(impl)));
    directory->impl_->owner = directory.get();
    return directory;
}

SqliteUserDirectory::SqliteUserDirectory(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

dtcall::Status SqliteUserDirectory::start(event_base* base) {
    Impl* impl = impl_.get();
    if (impl->wakeup_event) return dtcall::Error{dtcall::ErrorCode::invalid_state, "already started"};
    impl->base = base;
    impl->wakeup_event = event_new(base, impl->wakeup_fd, EV_READ | EV_PERSIST, &Impl::on_wakeup, impl);
    if (!impl->wakeup_event || event_add(impl->wakeup_event, nullptr) != 0)
        return dtcall::Error{impl->path + ": cannot add the user directory's event"};
    impl->stopping = false;
    impl->worker = std::thread([impl] { impl->run(); });
    return dtcall::Done{};
}

void SqliteUserDirectory::stop() {
    {
        std::lock_guard<std::mutex> lock(impl_->mutex);
        impl_->stopping = true;
    }
    impl_->wake.notify_all();
    if (impl_->worker.joinable()) impl_->worker.join();
    if (impl_->wakeup_event) event_free(impl_->wakeup_event);
    impl_->wakeup_event = nullptr;
    // Exactly once, even now: whoever still waits hears "unavailable".
    auto pending = std::move(impl_->pending);
    impl_->pending.clear();
    for (auto& [id, answer] : pending)
        answer(dtcall::Error{dtcall::ErrorCode::unavailable, impl_->path + ": the user directory was closed"});
}

SqliteUserDirectory::~SqliteUserDirectory() { stop(); }

void SqliteUserDirectory::lookup(const std::string& user, Answer answer) {
    if (!impl_->wakeup_event) {
        answer(dtcall::Error{dtcall::ErrorCode::unavailable, impl_->path + ": the user directory is not started"});
        return;
    }
    std::uint64_t id = ++impl_->next_id;
    impl_->pending.emplace(id, std::move(answer));
    {
        std::lock_guard<std::mutex> lock(impl_->mutex);
        impl_->jobs.push_back({id, user});
    }
    impl_->wake.notify_one();
}

const std::string& SqliteUserDirectory::path() const { return impl_->path; }

std::size_t SqliteUserDirectory::size() const { return impl_->users; }

}  // namespace dtcalld
