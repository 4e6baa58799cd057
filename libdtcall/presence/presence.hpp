// Presence: who is online where, and getting a user's notices to them. The
// router asks it only "online?" and "deliver"; the server tells it who
// arrived and who left. A user who drops during a call is away for a grace
// period: its notices are kept (MissedNotices) and handed over if it comes
// back with keepudp; if it does not, the owner is told to end the call.
//
// An interface, so that presence can live elsewhere (a cluster shares it
// through Redis); LocalPresence keeps it in this process.
#pragma once

#include "router/call_router.hpp"
#include "wire/messages.hpp"

#include <dtcall/keys.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>

namespace dtcall {

class Presence {
public:
    // A user's live connection, as presence sees it (a Session).
    class Connection {
    public:
        virtual ~Connection() = default;
        virtual void send(const wire::Message& message) = 0;
        virtual const std::string& address() const = 0;  // "ip:port"
    };

    // What presence tells its owner.
    class Events {
    public:
        virtual ~Events() = default;
        // `user` dropped during a call and was not back within the grace period.
        virtual void grace_expired(const std::string& user) = 0;
    };

    // One online user.
    struct Entry {
        Connection* connection = nullptr;
        PublicKey key;  // what its login was checked against; `prepare` tells it to peers
        std::chrono::system_clock::time_point since;
        unsigned keepudp_reconnects = 0;  // keepudp logins since its last plain login
    };

    virtual ~Presence() = default;

    virtual bool online(const std::string& user) const = 0;
    // Sends the notice's message to `user`, or keeps it while `user` is away
    // in its grace period; otherwise it is dropped.
    virtual void deliver(const std::string& user, const Notice& notice) = 0;

    // `user` logged in on `connection`, its key checked against `key`. Returns
    // the connection it replaces (the caller closes it), or null. With keepudp
    // the notices missed while away follow at once; without, they are dropped.
    virtual Connection* arrived(const std::string& user, Connection& connection, const PublicKey& key,
                                bool keepudp) = 0;
    // `connection` of `user` is closing: offline from now. With a call
    // (`in_call`) the grace period starts; a connection that is no longer
    // the user's (replaced) changes nothing.
    virtual void left(const std::string& user, const Connection& connection, bool in_call) = 0;
    // The user's call is over: its grace period ends, nothing more is kept.
    virtual void call_over(const std::string& user) = 0;
    // Gone for good (kicked, revoked): offline, no grace, nothing kept.
    // Returns its connection if it was online (the caller closes it).
    virtual Connection* forget(const std::string& user) = 0;

    // The key of a user who is online or away in its grace period.
    virtual std::optional<PublicKey> key_of(const std::string& user) const = 0;
    virtual const Entry* entry(const std::string& user) const = 0;
    virtual void for_each_online(const std::function<void(const std::string&, const Entry&)>& visit) const = 0;
    virtual std::size_t online_count() const = 0;
    // Everyone offline, nothing kept (the server is stopping).
    virtual void clear() = 0;
};

}  // namespace dtcall
