#include "server/session_table.hpp"

#include <event2/event.h>

namespace dtcall {

SessionTable::SessionTable(event_base* base) : reaper_(event_new(base, -1, 0, &SessionTable::on_reap, this)) {
    // Keyed per server: nobody can aim session keys at one hash bucket.
    randombytes_buf(hash_key_, sizeof hash_key_);
}

SessionTable::~SessionTable() {
    clear();
    if (reaper_) event_free(reaper_);
    sodium_memzero(hash_key_, sizeof hash_key_);
}

Session& SessionTable::add(std::unique_ptr<Session> session) {
    Session& added = *session;
    sessions_[added.id()] = std::move(session);
    return added;
}

Session* SessionTable::find(std::uint64_t id) const {
    auto it = sessions_.find(id);
    return it == sessions_.end() ? nullptr : it->second.get();
}

// Sessions close from inside their own callbacks; free them afterwards.
void SessionTable::retire(const Session& session) {
    forget_key(session);
    auto it = sessions_.find(session.id());
    if (it == sessions_.end()) return;
    graveyard_.push_back(std::move(it->second));
    sessions_.erase(it);
    event_active(reaper_, EV_TIMEOUT, 0);
}

void SessionTable::on_reap(int, short, void* self) { static_cast<SessionTable*>(self)->graveyard_.clear(); }

void SessionTable::for_each(const std::function<void(Session&)>& visit) {
    std::vector<Session*> open;
    open.reserve(sessions_.size());
    for (auto& [id, session] : sessions_) open.push_back(session.get());
    for (Session* session : open)
        if (sessions_.count(session->id())) visit(*session);
}

void SessionTable::clear() {
    by_key_.clear();
    sessions_.clear();
    graveyard_.clear();
}

std::uint64_t SessionTable::key_hash(const std::string& session_key) const {
    std::uint64_t h = 0;
    crypto_shorthash(reinterpret_cast<unsigned char*>(&h), reinterpret_cast<const unsigned char*>(session_key.data()),
                     session_key.size(), hash_key_);
    return h;
}

void SessionTable::index_key(Session& session) { by_key_[key_hash(session.session_key())] = &session; }

void SessionTable::forget_key(const Session& session) {
    if (session.session_key().empty()) return;
    auto it = by_key_.find(key_hash(session.session_key()));
    if (it != by_key_.end() && it->second == &session) by_key_.erase(it);
}

Session* SessionTable::owner_of_key(const std::string& session_key) const {
    auto it = by_key_.find(key_hash(session_key));
    if (it == by_key_.end() || !secure_equal(it->second->session_key(), session_key)) return nullptr;
    return it->second;
}

}  // namespace dtcall
