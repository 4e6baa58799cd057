// Who may log in, and with which public key. The server asks a UserDirectory,
// asynchronously; embedders plug in their own (a database, a network store...).
// Two are shipped: an in-memory one and the original server's users file.
#pragma once

#include <dtcall/export.hpp>
#include <dtcall/keys.hpp>
#include <dtcall/result.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dtcall {

// What a lookup found: the user's key, nullopt for a user the directory does
// not have, or an Error (ErrorCode::unavailable) when the store could not
// answer (the login then fails with LoginFailure::directory_error).
using UserLookup = Result<std::optional<PublicKey>>;

class DTCALL_API UserDirectory {
public:
    using Answer = std::function<void(UserLookup)>;

    // Told when users leave the directory, so that servers can revoke them.
    class Watcher {
    public:
        virtual ~Watcher() = default;
        virtual void user_removed(const std::string& user) = 0;
    };

    virtual ~UserDirectory();

    // Looks `user` up and calls `answer` exactly once, on the event-loop
    // thread: at once (from inside lookup(), as the shipped directories do)
    // or later (a network store). The caller keeps nothing alive for it: a
    // Server whose session closed, or that was destroyed, meanwhile ignores
    // the answer, so a directory may answer late but must answer on the loop
    // thread and never after the directory itself is destroyed.
    virtual void lookup(const std::string& user, Answer answer) = 0;
    // Re-read the backing store. On error the previous table must stay in
    // use. Warnings (skipped entries) are appended to `warnings`. Users that
    // are gone afterwards are reported to the watchers.
    virtual Status reload(std::vector<std::string>& warnings) {
        (void)warnings;
        return Done{};
    }

    // Servers register themselves (not owned; remove before destruction).
    void add_watcher(Watcher* watcher);
    void remove_watcher(Watcher* watcher);

protected:
    // For implementations: `user` is no longer in the directory (removed, or
    // its key changed). Every watcher closes that user's connection.
    void notify_removed(const std::string& user);

private:
    std::vector<Watcher*> watchers_;
};

// Users held in memory, answered at once. remove() and a changed key revoke.
class DTCALL_API InMemoryUserDirectory : public UserDirectory {
public:
    void add(std::string user, const PublicKey& key);
    void remove(const std::string& user);
    std::optional<PublicKey> find(std::string_view user) const;
    void lookup(const std::string& user, Answer answer) override;

private:
    std::map<std::string, PublicKey, std::less<>> users_;
};

// One line of a users file, as parsed.
struct UsersFileEntry {
    std::string user;
    std::string key_path;
    int line = 0;
};

struct UsersFileParse {
    std::vector<UsersFileEntry> entries;
    std::vector<std::string> warnings;  // "FILE:LINE: ..." for each skipped line
};

// The original's users file: one `name > /path/to/name_public.na` per line,
// `#` starts a comment, blank lines ignored. A malformed line is a warning
// naming the line, never an error. Pure: reads no key files.
DTCALL_API UsersFileParse parse_users_file(std::string_view text, std::string_view file_name);

// The users file as a UserDirectory. Relative key paths are taken relative to
// the users file's own directory. A key file that cannot be read skips that
// user with a warning.
class DTCALL_API UsersFile : public UserDirectory {
public:
    explicit UsersFile(std::string path) : path_(std::move(path)) {}
    std::optional<PublicKey> find(std::string_view user) const;
    void lookup(const std::string& user, Answer answer) override;
    // Errors when the users file itself cannot be read (then nothing changes).
    Status reload(std::vector<std::string>& warnings) override;
    std::size_t size() const { return users_.size(); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    std::map<std::string, PublicKey, std::less<>> users_;
};

}  // namespace dtcall
