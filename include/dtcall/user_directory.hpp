// Who may log in, and with which public key. The server asks a UserDirectory;
// embedders plug in their own (a database, an LDAP bridge...). Two are shipped:
// an in-memory one and the original server's users file.
#pragma once

#include <dtcall/export.hpp>
#include <dtcall/keys.hpp>
#include <dtcall/result.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dtcall {

class DTCALL_API UserDirectory {
public:
    virtual ~UserDirectory() = default;
    // The user's public key, or nullopt for an unknown user. Called on the
    // event-loop thread for each login1/login2/accept; keep it fast.
    virtual std::optional<PublicKey> find(std::string_view user) const = 0;
    // Re-read the backing store. On error the previous table must stay in use.
    // Warnings (skipped entries) are appended to `warnings`.
    virtual Status reload(std::vector<std::string>& warnings) {
        (void)warnings;
        return Done{};
    }
};

class DTCALL_API InMemoryUserDirectory : public UserDirectory {
public:
    void add(std::string user, const PublicKey& key) { users_[std::move(user)] = key; }
    void remove(const std::string& user) { users_.erase(user); }
    std::optional<PublicKey> find(std::string_view user) const override;

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
    std::optional<PublicKey> find(std::string_view user) const override;
    // Errors when the users file itself cannot be read (then nothing changes).
    Status reload(std::vector<std::string>& warnings) override;
    std::size_t size() const { return users_.size(); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    std::map<std::string, PublicKey, std::less<>> users_;
};

}  // namespace dtcall
