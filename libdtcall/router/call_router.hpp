// CallRouter: the one owner of call state (PROTOCOL.md sections 7 and 8).
// Pure logic: it is told what users said and tells an Outbox whom to notify.
// No sockets, no clock, no libevent; unit-tested on its own.
//
//   idle --call--> ringing --accept--> accepted --ready(both)--> in call
//     ^                |                   |                        |
//     +----- end / relogin without keepudp / grace expiry ----------+
#pragma once

#include <dtcall/events.hpp>
#include "wire/messages.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

namespace dtcall {

// What the router asks the outside world to send. `other` is the peer named
// in the message; `blob` is only used by `direct`.
struct Notice {
    using Kind = wire::NoticeKind;  // what it becomes on the wire is wire's business
    Kind kind;
    std::string other;
    std::string blob;
};

enum class CallRole { caller, callee };

class CallRouter {
public:
    // Where notices go, and the hooks the router needs from its host. The
    // "online" question and delivery go through here so that presence can
    // later live elsewhere (another node) without touching the call rules.
    class Outbox {
    public:
        virtual ~Outbox() = default;
        virtual bool online(const std::string& user) = 0;
        virtual void deliver(const std::string& user, const Notice& notice) = 0;
        // `direct` for `user` is held until its media registers; the host
        // should call release_held_direct(user) after a short bound.
        virtual void direct_held(const std::string& user) = 0;
        // The user's media address (if any) is no longer valid.
        virtual void media_released(const std::string& user) = 0;
        // relay_peer()'s answer for `user` changed: its `ready`. The other
        // change, an ended call, says media_released for both parties (before
        // call_ended). A relay that caches routes learns of every change from
        // these two; it never polls.
        virtual void relay_peer_changed(const std::string& user) { (void)user; }
        // For observers: calls rung, accepted, started, ended.
        virtual void call_rung(const std::string& caller, const std::string& callee) = 0;
        virtual void call_accepted(const std::string& caller, const std::string& callee) = 0;
        virtual void call_started(const std::string& caller, const std::string& callee) = 0;
        virtual void call_ended(const std::string& caller, const std::string& callee,
                                EndReason reason) = 0;
        // A call that never rang (busy, refused): the caller got `end`; any
        // call either party has goes on untouched.
        virtual void call_refused(const std::string& caller, const std::string& callee, EndReason reason) = 0;
    };

    // May `caller` ring `callee`? Unset = everybody may call everybody.
    using Policy = std::function<CallDecision(const std::string& caller, const std::string& callee)>;

    explicit CallRouter(Outbox& outbox) : outbox_(outbox) {}
    void set_policy(Policy policy) { policy_ = std::move(policy); }

    // Each returns false when the command is not valid now; the session then
    // answers `invalid`. A refused `call` is not "invalid": the caller gets
    // `end|B` instead, and the call returns true.
    // `claimed` false: a cluster found either party in a call on another
    // node (the busy check is in Redis); the caller gets `end` as for busy.
    bool call(const std::string& caller, const std::string& callee, bool claimed = true);
    bool accept(const std::string& callee, const std::string& caller);
    bool passthrough(const std::string& caller, const std::string& callee, const std::string& blob);
    bool ready(const std::string& user, const std::string& other);
    bool end(const std::string& user, const std::string& other);

    // A successful login2. Without keepudp an ongoing call is ended for the peer.
    void logged_in(const std::string& user, bool keepudp);
    // The user is gone for good (grace period over, or removed): end its call.
    void vanished(const std::string& user);
    // The operator ends `user`'s call: both parties get `end`, as a hang-up
    // would give the peer. False when `user` has no call.
    bool end_by_server(const std::string& user);
    // The server is stopping: every call ends, both parties are told.
    void end_all();
    // The user's server is stopping (a cluster: another node): its call ends
    // for the peer as end_all() would end it (EndReason::server_stopping).
    void server_stopping(const std::string& user);

    // The media path of `user` registered. False when the user has no call (the
    // registration is then dropped and not acked).
    bool media_registered(const std::string& user);
    // Sends a held `direct` now (media never registered within the bound).
    void release_held_direct(const std::string& user);

    // Whom media from `user` goes to: the peer, once `user` has sent ready.
    const std::string* relay_peer(const std::string& user) const;

    CallPhase phase(const std::string& user) const;
    std::optional<std::string> peer(const std::string& user) const;
    std::size_t calls() const { return legs_.size() / 2; }
    // Calls by phase, kept as they change (stats and metrics ask often).
    struct PhaseCounts {
        std::size_t ringing = 0, accepted = 0, in_call = 0;
    };
    const PhaseCounts& phase_counts() const { return phases_; }
    // Calls that ended, refused ones included (each call_ended() told).
    std::uint64_t calls_ended() const { return calls_ended_; }
    // Every call, once, as (caller, callee, phase of the caller's leg).
    template <class F>
    void for_each_call(F&& f) const {
        for (const auto& [user, leg] : legs_)
            if (leg.role == CallRole::caller) f(user, leg.peer, leg.phase);
    }

private:
    struct Leg {
        std::string peer;
        CallRole role;
        CallPhase phase;
        bool ready = false;
        bool media = false;
        std::optional<std::string> held_direct;  // on the callee's leg
    };

    Leg* paired(const std::string& user, const std::string& other);
    void clear(const std::string& user, EndReason reason, bool notify_peer);
    void deliver_direct(const std::string& callee, Leg& leg);

    Outbox& outbox_;
    Policy policy_;
    std::unordered_map<std::string, Leg> legs_;
    PhaseCounts phases_;
    std::uint64_t calls_ended_ = 0;
};

}  // namespace dtcall
