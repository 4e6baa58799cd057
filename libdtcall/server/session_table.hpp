// The server's connections: each Session by id, freed only after the
// callback that closed it has returned, and the logged-in ones by session
// key for the UDP registration (a keyed hash, then a constant-time compare).
#pragma once

#include "session/session.hpp"

#include <sodium.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

struct event;
struct event_base;

namespace dtcall {

class SessionTable {
public:
    explicit SessionTable(event_base* base);
    ~SessionTable();
    SessionTable(const SessionTable&) = delete;
    SessionTable& operator=(const SessionTable&) = delete;

    Session& add(std::unique_ptr<Session> session);
    Session* find(std::uint64_t id) const;
    // The connection closed: freed once the current callback has returned.
    void retire(const Session& session);
    std::size_t size() const { return sessions_.size(); }
    bool empty() const { return sessions_.empty(); }
    // Visits every open session; the visitor may close (retire) any of them.
    void for_each(const std::function<void(Session&)>& visit);
    void clear();

    // The session key of a logged-in session, for owner_of_key().
    void index_key(Session& session);
    void forget_key(const Session& session);
    // The logged-in session holding `session_key`, or null.
    Session* owner_of_key(const std::string& session_key) const;

private:
    std::uint64_t key_hash(const std::string& session_key) const;
    static void on_reap(int, short, void* self);

    event* reaper_ = nullptr;
    std::unordered_map<std::uint64_t, std::unique_ptr<Session>> sessions_;
    std::vector<std::unique_ptr<Session>> graveyard_;
    std::unordered_map<std::uint64_t, Session*> by_key_;
    unsigned char hash_key_[crypto_shorthash_KEYBYTES];
};

}  // namespace dtcall
