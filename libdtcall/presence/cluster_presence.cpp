#include "presence/cluster_presence.hpp"

namespace dtcall {

ClusterPresence::ClusterPresence(LocalPresence& local, ClusterLink& link) : local_(local), link_(link) {}

bool ClusterPresence::online(const std::string& user) const {
    return local_.online(user) || (!here(user) && link_.remote(user) != nullptr);
}

void ClusterPresence::deliver(const std::string& user, const Notice& notice) {
    if (here(user)) return local_.deliver(user, notice);
    // Delivered on the user's own node, through its LocalPresence.
    if (const ClusterLink::RemoteUser* remote = link_.remote(user))
        return link_.send(remote->node, notice_kind_name(notice.kind), user, notice.other, notice.blob);
    // Not in the cache (Redis away: the link keeps what it cannot publish
    // and sends it when Redis is back).
    if (last_known_)
        if (std::string node = last_known_(user); !node.empty())
            link_.send(node, notice_kind_name(notice.kind), user, notice.other, notice.blob);
}

Presence::Connection* ClusterPresence::arrived(const std::string& user, Connection& connection, const PublicKey& key,
                                               bool keepudp) {
    Connection* replaced = local_.arrived(user, connection, key, keepudp);
    announced_.insert(user);
    link_.announce(user, key, keepudp);
    return replaced;
}

void ClusterPresence::left(const std::string& user, const Connection& connection, bool in_call) {
    local_.left(user, connection, in_call);
    withdraw_if_gone(user);
}

void ClusterPresence::call_over(const std::string& user) {
    local_.call_over(user);
    withdraw_if_gone(user);
}

Presence::Connection* ClusterPresence::forget(const std::string& user) {
    Connection* connection = local_.forget(user);
    withdraw_if_gone(user);
    return connection;
}

std::optional<PublicKey> ClusterPresence::key_of(const std::string& user) const {
    if (auto key = local_.key_of(user)) return key;
    if (const ClusterLink::RemoteUser* remote = link_.remote(user)) return remote->key;
    return std::nullopt;
}

void ClusterPresence::clear() {
    for (const std::string& user : announced_) link_.withdraw(user);
    announced_.clear();
    local_.clear();
}

void ClusterPresence::withdraw_if_gone(const std::string& user) {
    if (here(user) || !announced_.count(user)) return;
    announced_.erase(user);
    link_.withdraw(user);
}

}  // namespace dtcall
