#include "router/call_router.hpp"

namespace dtcall {

CallRouter::Leg* CallRouter::paired(const std::string& user, const std::string& other) {
    auto it = legs_.find(user);
    if (it == legs_.end() || it->second.peer != other) return nullptr;
    return &it->second;
}

bool CallRouter::call(const std::string& caller, const std::string& callee, bool claimed) {
    // D1: both parties must be idle; the original only checked the callee.
    // The policy is asked only about calls that could ring.
    bool possible = caller != callee && !legs_.count(caller) && !legs_.count(callee) && claimed &&
                    outbox_.online(callee);
    CallDecision decision = !possible ? CallDecision::busy : policy_ ? policy_(caller, callee) : CallDecision::allow;
    bool refused_by_policy = decision == CallDecision::refuse;
    if (decision != CallDecision::allow) {
        outbox_.deliver(caller, {Notice::Kind::end, callee, {}});
        ++calls_ended_;
        // Not a call that rang: nothing of the parties' calls (if any) changes.
        outbox_.call_refused(caller, callee, refused_by_policy ? EndReason::refused : EndReason::busy);
        return true;
    }
    ++phases_.ringing;
    legs_[caller] = Leg{callee, CallRole::caller, CallPhase::ringing, false, false, std::nullopt};
    legs_[callee] = Leg{caller, CallRole::callee, CallPhase::ringing, false, false, std::nullopt};
    // Each delivery may close a connection whose observers end the call
    // (Server::kick from logged_out): check the call is still there.
    outbox_.deliver(caller, {Notice::Kind::available, callee, {}});
    if (!paired(caller, callee)) return true;
    outbox_.deliver(callee, {Notice::Kind::incoming, caller, {}});
    if (!paired(caller, callee)) return true;
    outbox_.call_rung(caller, callee);
    return true;
}

bool CallRouter::accept(const std::string& callee, const std::string& caller) {
    // D2: only the callee may accept, and only a ringing call.
    Leg* leg = paired(callee, caller);
    if (!leg || leg->role != CallRole::callee || leg->phase != CallPhase::ringing) return false;
    leg->phase = CallPhase::accepted;
    legs_[caller].phase = CallPhase::accepted;
    --phases_.ringing;
    ++phases_.accepted;
    outbox_.deliver(caller, {Notice::Kind::prepare, callee, {}});
    if (!paired(caller, callee)) return true;
    outbox_.deliver(callee, {Notice::Kind::prepare, caller, {}});
    if (!paired(caller, callee)) return true;
    outbox_.call_accepted(caller, callee);
    return true;
}

bool CallRouter::passthrough(const std::string& caller, const std::string& callee, const std::string& blob) {
    // D2: only the caller hands over the voice key, and only once accepted.
    Leg* leg = paired(caller, callee);
    if (!leg || leg->role != CallRole::caller || leg->phase == CallPhase::ringing) return false;
    Leg& callee_leg = legs_[callee];
    callee_leg.held_direct = blob;
    if (callee_leg.media) deliver_direct(callee, callee_leg);
    else outbox_.direct_held(callee);
    return true;
}

void CallRouter::deliver_direct(const std::string& callee, Leg& leg) {
    std::string blob = std::move(*leg.held_direct);
    leg.held_direct.reset();
    outbox_.deliver(callee, {Notice::Kind::direct, leg.peer, std::move(blob)});
}

bool CallRouter::ready(const std::string& user, const std::string& other) {
    Leg* leg = paired(user, other);
    if (!leg || leg->phase == CallPhase::ringing) return false;
    if (leg->ready) return true;  // a repeated ready changes nothing
    leg->ready = true;
    outbox_.relay_peer_changed(user);
    Leg& other_leg = legs_[other];
    if (!other_leg.ready) return true;
    leg->phase = other_leg.phase = CallPhase::in_call;
    --phases_.accepted;
    ++phases_.in_call;
    bool user_is_caller = leg->role == CallRole::caller;
    // `leg` may not survive a delivery (see call()).
    outbox_.deliver(user, {Notice::Kind::start, other, {}});
    if (!paired(user, other)) return true;
    outbox_.deliver(other, {Notice::Kind::start, user, {}});
    if (!paired(user, other)) return true;
    if (user_is_caller) outbox_.call_started(user, other);
    else outbox_.call_started(other, user);
    return true;
}

bool CallRouter::end(const std::string& user, const std::string& other) {
    Leg* leg = paired(user, other);
    if (!leg) return false;
    EndReason reason = EndReason::hangup;
    if (leg->phase == CallPhase::ringing)
        reason = leg->role == CallRole::callee ? EndReason::declined : EndReason::cancelled;
    clear(user, reason, true);
    return true;
}

void CallRouter::logged_in(const std::string& user, bool keepudp) {
    if (!keepudp && legs_.count(user)) clear(user, EndReason::relogin, true);
}

void CallRouter::vanished(const std::string& user) {
    if (legs_.count(user)) clear(user, EndReason::peer_vanished, true);
}

bool CallRouter::end_by_server(const std::string& user) {
    auto it = legs_.find(user);
    if (it == legs_.end()) return false;
    outbox_.deliver(user, {Notice::Kind::end, it->second.peer, {}});
    clear(user, EndReason::ended_by_server, true);
    return true;
}

void CallRouter::server_stopping(const std::string& user) {
    if (legs_.count(user)) clear(user, EndReason::server_stopping, true);
}

void CallRouter::end_all() {
    while (!legs_.empty()) {
        auto it = legs_.begin();
        std::string user = it->first;
        std::string other = it->second.peer;
        outbox_.deliver(user, {Notice::Kind::end, other, {}});
        clear(user, EndReason::server_stopping, true);
    }
}

void CallRouter::clear(const std::string& user, EndReason reason, bool notify_peer) {
    auto it = legs_.find(user);
    if (it == legs_.end()) return;
    std::string other = it->second.peer;
    bool user_is_caller = it->second.role == CallRole::caller;
    switch (it->second.phase) {
    case CallPhase::ringing: --phases_.ringing; break;
    case CallPhase::accepted: --phases_.accepted; break;
    case CallPhase::in_call: --phases_.in_call; break;
    case CallPhase::idle: break;
    }
    ++calls_ended_;
    legs_.erase(it);
    legs_.erase(other);
    if (notify_peer) outbox_.deliver(other, {Notice::Kind::end, user, {}});
    outbox_.media_released(user);
    outbox_.media_released(other);
    if (user_is_caller) outbox_.call_ended(user, other, reason);
    else outbox_.call_ended(other, user, reason);
}

bool CallRouter::media_registered(const std::string& user) {
    auto it = legs_.find(user);
    if (it == legs_.end()) return false;
    it->second.media = true;
    if (it->second.held_direct) deliver_direct(user, it->second);
    return true;
}

void CallRouter::release_held_direct(const std::string& user) {
    auto it = legs_.find(user);
    if (it != legs_.end() && it->second.held_direct) deliver_direct(user, it->second);
}

const std::string* CallRouter::relay_peer(const std::string& user) const {
    auto it = legs_.find(user);
    // As the original: a user is "in call" for media once it sent ready.
    if (it == legs_.end() || !it->second.ready) return nullptr;
    return &it->second.peer;
}

CallPhase CallRouter::phase(const std::string& user) const {
    auto it = legs_.find(user);
    return it == legs_.end() ? CallPhase::idle : it->second.phase;
}

std::optional<std::string> CallRouter::peer(const std::string& user) const {
    auto it = legs_.find(user);
    if (it == legs_.end()) return std::nullopt;
    return it->second.peer;
}

}  // namespace dtcall
