// Presence for one node of a cluster: LocalPresence keeps this node's users
// (connections, grace periods, missed notices, so pacing stays per client on
// its own node); the ClusterLink knows the users of the other nodes (a cache
// fed by Redis pub/sub, so online() stays synchronous for the router).
//
// A user is announced cluster-wide while it is online here and while it is
// away in its grace period (its node still takes its notices); it is
// withdrawn when it leaves outside a call or when its call is over.
#pragma once

#include "cluster/cluster_link.hpp"
#include "presence/local_presence.hpp"

#include <set>

namespace dtcall {

class ClusterPresence final : public Presence {
public:
    ClusterPresence(LocalPresence& local, ClusterLink& link);

    bool online(const std::string& user) const override;
    void deliver(const std::string& user, const Notice& notice) override;
    Connection* arrived(const std::string& user, Connection& connection, const PublicKey& key, bool keepudp) override;
    void left(const std::string& user, const Connection& connection, bool in_call) override;
    void call_over(const std::string& user) override;
    Connection* forget(const std::string& user) override;
    std::optional<PublicKey> key_of(const std::string& user) const override;
    const Entry* entry(const std::string& user) const override { return local_.entry(user); }
    void for_each_online(const std::function<void(const std::string&, const Entry&)>& visit) const override {
        local_.for_each_online(visit);
    }
    std::size_t online_count() const override { return local_.online_count(); }
    void clear() override;

    // Here: online on this node or away in its grace period here.
    bool here(const std::string& user) const { return local_.key_of(user).has_value(); }
    // Where a user the cache does not know (Redis away) was last seen, for
    // notices about a call that is up (its `end` must still reach it): the
    // owner of this presence answers from its calls; "" when unknown.
    void set_last_known_node(std::function<std::string(const std::string&)> where) { last_known_ = std::move(where); }

private:
    void withdraw_if_gone(const std::string& user);

    LocalPresence& local_;
    ClusterLink& link_;
    std::set<std::string> announced_;
    std::function<std::string(const std::string&)> last_known_;
};

}  // namespace dtcall
