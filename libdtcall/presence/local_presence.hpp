// Presence kept in this process (the single-node server): a table of online
// users, the users away in their grace period with their keys and missed
// notices, and one grace timer per away user on the server's event_base.
#pragma once

#include "presence/presence.hpp"
#include "presence/missed_notices.hpp"
#include "server/user_timers.hpp"

#include <unordered_map>

struct event_base;

namespace dtcall {

class LocalPresence final : public Presence {
public:
    LocalPresence(event_base* base, std::chrono::milliseconds grace, Events& events);

    bool online(const std::string& user) const override { return online_.count(user) != 0; }
    void deliver(const std::string& user, const Notice& notice) override;
    Connection* arrived(const std::string& user, Connection& connection, const PublicKey& key, bool keepudp) override;
    void left(const std::string& user, const Connection& connection, bool in_call) override;
    void call_over(const std::string& user) override;
    Connection* forget(const std::string& user) override;
    std::optional<PublicKey> key_of(const std::string& user) const override;
    const Entry* entry(const std::string& user) const override;
    void for_each_online(const std::function<void(const std::string&, const Entry&)>& visit) const override;
    std::size_t online_count() const override { return online_.size(); }
    void clear() override;

    std::size_t away_count() const { return away_.size(); }
    // Where the key of a peer that is not here comes from (a cluster: the
    // peer's node announced it). Unset on a single node.
    void set_remote_keys(std::function<std::optional<PublicKey>(const std::string&)> remote_keys) {
        remote_keys_ = std::move(remote_keys);
    }

private:
    static void on_grace_over(void* self, const std::string& user);
    static std::int64_t now_ms();

    std::chrono::milliseconds grace_;
    Events& events_;
    std::unordered_map<std::string, Entry> online_;
    std::unordered_map<std::string, Entry> away_;  // dropped during a call; connection is null
    MissedNotices missed_;
    UserTimers grace_timers_;
    std::function<std::optional<PublicKey>(const std::string&)> remote_keys_;
};

}  // namespace dtcall
