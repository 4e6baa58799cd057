#include "presence/local_presence.hpp"

namespace dtcall {

LocalPresence::LocalPresence(event_base* base, std::chrono::milliseconds grace, Events& events)
    : grace_(grace), events_(events), grace_timers_(base, this, &LocalPresence::on_grace_over) {}

std::int64_t LocalPresence::now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void LocalPresence::deliver(const std::string& user, const Notice& notice) {
    auto it = online_.find(user);
    if (it != online_.end()) {
        std::optional<PublicKey> other_key = key_of(notice.other);
        if (!other_key && remote_keys_) other_key = remote_keys_(notice.other);
        it->second.connection->send(wire::notice_message(notice.kind, notice.other, notice.blob, other_key));
        return;
    }
    // Dropped during a call: sent when it is back with keepudp.
    if (away_.count(user)) missed_.keep(user, notice, now_ms(), now_ms() + grace_.count());
}

Presence::Connection* LocalPresence::arrived(const std::string& user, Connection& connection, const PublicKey& key,
                                             bool keepudp) {
    Connection* replaced = nullptr;
    Entry entry;
    entry.connection = &connection;
    entry.key = key;
    entry.since = std::chrono::system_clock::now();
    auto previous = online_.find(user);
    if (previous != online_.end()) {
        if (previous->second.connection != &connection) replaced = previous->second.connection;
        if (keepudp) entry.keepudp_reconnects = previous->second.keepudp_reconnects + 1;
        online_.erase(previous);
    }
    auto away = away_.find(user);
    if (away != away_.end()) {
        if (keepudp) entry.keepudp_reconnects = away->second.keepudp_reconnects + 1;
        away_.erase(away);
    }
    grace_timers_.cancel(user);
    online_[user] = entry;
    if (keepudp) {
        for (const Notice& notice : missed_.take(user, now_ms())) deliver(user, notice);
    } else {
        missed_.forget(user);  // the client starts afresh, outside any call
    }
    return replaced;
}

void LocalPresence::left(const std::string& user, const Connection& connection, bool in_call) {
    auto it = online_.find(user);
    if (it == online_.end() || it->second.connection != &connection) return;
    Entry entry = it->second;
    online_.erase(it);
    if (!in_call) return;
    // PROTOCOL.md 7.3: the call stays for a keepudp reconnect, but not forever.
    entry.connection = nullptr;
    away_[user] = entry;
    grace_timers_.arm(user, grace_);
}

void LocalPresence::call_over(const std::string& user) {
    grace_timers_.cancel(user);
    away_.erase(user);
    // What it was told while away stays for a keepudp return (the `end`).
}

Presence::Connection* LocalPresence::forget(const std::string& user) {
    Connection* connection = nullptr;
    auto it = online_.find(user);
    if (it != online_.end()) {
        connection = it->second.connection;
        online_.erase(it);
    }
    away_.erase(user);
    grace_timers_.cancel(user);
    missed_.forget(user);
    return connection;
}

std::optional<PublicKey> LocalPresence::key_of(const std::string& user) const {
    if (auto it = online_.find(user); it != online_.end()) return it->second.key;
    if (auto it = away_.find(user); it != away_.end()) return it->second.key;
    return std::nullopt;
}

const Presence::Entry* LocalPresence::entry(const std::string& user) const {
    auto it = online_.find(user);
    return it == online_.end() ? nullptr : &it->second;
}

void LocalPresence::for_each_online(const std::function<void(const std::string&, const Entry&)>& visit) const {
    for (const auto& [user, entry] : online_) visit(user, entry);
}

void LocalPresence::clear() {
    online_.clear();
    away_.clear();
    grace_timers_.clear();
    missed_.clear();
}

void LocalPresence::on_grace_over(void* self, const std::string& user) {
    auto* presence = static_cast<LocalPresence*>(self);
    if (presence->online_.count(user)) return;
    presence->away_.erase(user);
    presence->events_.grace_expired(user);
    presence->missed_.forget(user);  // a later keepudp login must not hear of that call
}

}  // namespace dtcall
