#include <dtcall/user_directory.hpp>
#include "wire/wire.hpp"

#include "io/read_bounded.hpp"

#include <algorithm>

namespace dtcall {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

std::string where(std::string_view file, int line) {
    return std::string(file) + ":" + std::to_string(line) + ": ";
}

constexpr std::size_t max_users_file = 64 * 1024 * 1024;

}  // namespace

UserDirectory::~UserDirectory() = default;

void UserDirectory::add_watcher(Watcher* watcher) {
    if (watcher && std::find(watchers_.begin(), watchers_.end(), watcher) == watchers_.end())
        watchers_.push_back(watcher);
}

void UserDirectory::remove_watcher(Watcher* watcher) {
    watchers_.erase(std::remove(watchers_.begin(), watchers_.end(), watcher), watchers_.end());
}

void UserDirectory::notify_removed(const std::string& user) {
    // A watcher may remove itself (or another) while told: iterate over a
    // copy, skipping those removed meanwhile.
    std::vector<Watcher*> now = watchers_;
    for (Watcher* watcher : now)
        if (std::find(watchers_.begin(), watchers_.end(), watcher) != watchers_.end()) watcher->user_removed(user);
}

void InMemoryUserDirectory::add(std::string user, const PublicKey& key) {
    auto it = users_.find(user);
    bool changed = it != users_.end() && it->second != key;
    std::string name = user;
    users_[std::move(user)] = key;
    // Who logged in with the old key is not who holds the new one.
    if (changed) notify_removed(name);
}

void InMemoryUserDirectory::remove(const std::string& user) {
    if (users_.erase(user) != 0) notify_removed(user);
}

std::optional<PublicKey> InMemoryUserDirectory::find(std::string_view user) const {
    auto it = users_.find(user);
    if (it == users_.end()) return std::nullopt;
    return it->second;
}

void InMemoryUserDirectory::lookup(const std::string& user, Answer answer) { answer(UserLookup(find(user))); }

UsersFileParse parse_users_file(std::string_view text, std::string_view file_name) {
    UsersFileParse out;
    int line_number = 0;
    while (!text.empty()) {
        ++line_number;
        std::size_t eol = text.find('\n');
        std::string_view line = text.substr(0, eol);
        text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
        std::size_t hash = line.find('#');
        if (hash != std::string_view::npos) line = line.substr(0, hash);
        line = trim(line);
        if (line.empty()) continue;
        std::size_t arrow = line.find('>');
        if (arrow == std::string_view::npos) {
            out.warnings.push_back(where(file_name, line_number) + "expected \"name > /path/to/name_public.na\"; line skipped");
            continue;
        }
        std::string_view user = trim(line.substr(0, arrow));
        std::string_view path = trim(line.substr(arrow + 1));
        if (!wire::valid_user_name(user)) {
            out.warnings.push_back(where(file_name, line_number) + "user name must be 1-64 characters of [0-9A-Za-z+-]; line skipped");
            continue;
        }
        if (path.empty()) {
            out.warnings.push_back(where(file_name, line_number) + "user " + std::string(user) + " has no key file path; line skipped");
            continue;
        }
        out.entries.push_back({std::string(user), std::string(path), line_number});
    }
    return out;
}

std::optional<PublicKey> UsersFile::find(std::string_view user) const {
    auto it = users_.find(user);
    if (it == users_.end()) return std::nullopt;
    return it->second;
}

void UsersFile::lookup(const std::string& user, Answer answer) { answer(UserLookup(find(user))); }

Status UsersFile::reload(std::vector<std::string>& warnings) {
    auto text = read_bounded(path_, max_users_file, "users file");
    if (!text) return text.failure();
    UsersFileParse parsed = parse_users_file(*text, path_);
    warnings.insert(warnings.end(), parsed.warnings.begin(), parsed.warnings.end());

    std::string dir;
    std::size_t slash = path_.rfind('/');
    if (slash != std::string::npos) dir = path_.substr(0, slash + 1);

    std::map<std::string, PublicKey, std::less<>> users;
    for (const UsersFileEntry& entry : parsed.entries) {
        std::string key_path = entry.key_path[0] == '/' ? entry.key_path : dir + entry.key_path;
        auto key = read_public_key_file(key_path);
        if (!key) {
            warnings.push_back(where(path_, entry.line) + "user " + entry.user + " skipped: " + key.error());
            continue;
        }
        if (users.count(entry.user)) {
            warnings.push_back(where(path_, entry.line) + "user " + entry.user + " listed again; this line wins");
        }
        users[entry.user] = *key;
    }
    // Users gone, or with another key, are revoked once the new table is in
    // use (so a watcher's lookups already see it).
    std::vector<std::string> removed;
    for (const auto& [user, key] : users_) {
        auto now = users.find(user);
        if (now == users.end() || now->second != key) removed.push_back(user);
    }
    users_ = std::move(users);
    for (const std::string& user : removed) notify_removed(user);
    return Done{};
}

}  // namespace dtcall
