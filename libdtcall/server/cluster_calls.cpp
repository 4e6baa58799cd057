#include "server/cluster_calls.hpp"

namespace dtcall {

ClusterCalls::ClusterCalls(ClusterLink& link, LocalPresence& local, CallRouter& router, MediaRelay& relay,
                           UserTimers& held_direct, const Config& config, Host& host)
    : link_(link), local_(local), presence_(local, link), router_(router), relay_(relay), held_direct_(held_direct),
      config_(config), host_(host) {
    // `prepare` tells a peer's key; a peer on another node has it in the cache.
    local_.set_remote_keys([this](const std::string& user) -> std::optional<PublicKey> {
        if (const ClusterLink::RemoteUser* remote = link_.remote(user)) return remote->key;
        return std::nullopt;
    });
    presence_.set_last_known_node([this](const std::string& user) -> std::string {
        const std::string* node = call_node(user);
        return node ? *node : std::string();
    });
    link_.attach(this);
}

ClusterCalls::~ClusterCalls() {
    link_.attach(nullptr);
    local_.set_remote_keys(nullptr);
}

std::string ClusterCalls::node_of(const std::string& user) const {
    if (here(user)) return link_.node_name();
    if (const ClusterLink::RemoteUser* remote = link_.remote(user)) return remote->node;
    const std::string* node = call_node(user);  // while the cache does not know it (Redis away)
    return node ? *node : std::string();
}

// The node of `user`, another node's user in a call with one of ours, as
// the call knows it: a party of a call this node owns where it was when it
// rang; the caller of a call another node owns is on that node.
const std::string* ClusterCalls::call_node(const std::string& user) const {
    if (auto it = party_nodes_.find(user); it != party_nodes_.end()) return &it->second;
    for (const auto& [local, leg] : legs_)
        if (leg.peer == user) return &leg.owner;
    return nullptr;
}

const ClusterCalls::RemoteLeg* ClusterCalls::leg(const std::string& user) const {
    auto it = legs_.find(user);
    return it == legs_.end() ? nullptr : &it->second;
}

ClusterCalls::RemoteLeg* ClusterCalls::find(const std::string& user) {
    auto it = legs_.find(user);
    return it == legs_.end() ? nullptr : &it->second;
}

Status ClusterCalls::open_node_leg() {
    auto bound = relay_.open_node_leg(link_.node_name(), link_.media_key(), link_.own_address());
    if (!bound) return bound.failure();
    link_.bound(*bound);
    host_.log(LogLevel::info, "node " + link_.node_name() + ": media from other nodes on UDP " + *bound);
    return Done{};
}

// ---- what the Server hears ----

std::optional<bool> ClusterCalls::command(const std::string& user, wire::Verb verb, const std::string& other) {
    if (RemoteLeg* leg = find(user)) return forward(user, *leg, verb, other);
    // A hang-up while the call is still being claimed: the call rings, then
    // ends at once, as on one node where both were read together.
    if (auto it = claiming_.find(user); it != claiming_.end() && verb == wire::Verb::end && other == it->second.callee) {
        it->second.cancelled = true;
        return true;
    }
    if (verb == wire::Verb::call) return call(user, other);
    return std::nullopt;
}

void ClusterCalls::logged_in(const std::string& user, bool keepudp) {
    // A call another node owns: without keepudp it ends for the peer there.
    if (!keepudp && find(user)) end_leg(user, "cmd_relogin");
}

void ClusterCalls::vanished(const std::string& user) {
    if (find(user)) end_leg(user, "cmd_vanished");
}

bool ClusterCalls::media_registered(const std::string& user) {
    RemoteLeg* leg = find(user);
    if (!leg) return false;
    // Its node holds `direct` (PROTOCOL.md: until the callee's media registers).
    leg->media = true;
    held_direct_.cancel(user);
    release_direct(user);
    return true;
}

const std::string* ClusterCalls::relay_peer(const std::string& user, bool& handled) const {
    const RemoteLeg* found = leg(user);
    handled = found != nullptr;
    return found && found->ready ? &found->peer : nullptr;
}

std::optional<std::string> ClusterCalls::remote_node_address(const std::string& user) const {
    if (here(user)) return std::nullopt;
    const std::string* node = nullptr;
    if (const ClusterLink::RemoteUser* remote = link_.remote(user)) node = &remote->node;
    if (!node) node = call_node(user);  // the cache may have lost it: Redis away
    if (!node) return std::nullopt;
    const std::string* address = link_.node_address(*node);
    if (!address) return std::nullopt;
    return *address;
}

bool ClusterCalls::direct_held(const std::string& user) {
    // A callee on another node: `direct` goes there now and its node holds
    // it until the callee's media registers (remote_notice).
    if (here(user)) return false;
    router_.release_held_direct(user);
    return true;
}

bool ClusterCalls::release_direct(const std::string& user) {
    RemoteLeg* leg = find(user);
    if (!leg || !leg->held_direct) return false;
    Notice notice = std::move(*leg->held_direct);
    leg->held_direct.reset();
    local_.deliver(user, notice);
    return true;
}

void ClusterCalls::list_calls(std::vector<CallInfo>& into) const {
    for (const auto& [user, leg] : legs_) {
        CallInfo info;
        info.caller = leg.peer;
        info.callee = user;
        info.phase = leg.phase;
        info.rung_at = leg.rung_at;
        info.started_at = leg.started_at;
        MediaRelay::FlowFigures mine = relay_.flow(user);
        MediaRelay::FlowFigures peer = relay_.flow(leg.peer);  // what came from its node for this user
        info.callee_to_caller = mine.flow;
        info.callee_media = mine.endpoint;
        info.caller_to_callee = peer.flow;
        info.caller_node = leg.owner;
        info.callee_node = link_.node_name();
        into.push_back(std::move(info));
    }
}

void ClusterCalls::call_ended(const std::string& caller, const std::string& callee) {
    link_.release_call(caller, callee);
    party_nodes_.erase(caller);
    party_nodes_.erase(callee);
}

void ClusterCalls::end_all() {
    std::vector<std::pair<std::string, std::string>> calls;
    for (const auto& [user, leg] : legs_) calls.emplace_back(user, leg.peer);
    for (const auto& [user, peer] : calls) {
        local_.deliver(user, Notice{Notice::Kind::end, peer, {}});
        end_leg(user, "cmd_stopping");
    }
}

bool ClusterCalls::end_call(const std::string& user) {
    RemoteLeg* leg = find(user);
    if (!leg) return false;
    // The owner's router ends it as on one node: `end` to both, through here for ours.
    link_.send(leg->owner, "cmd_end_by_server", user, leg->peer, {});
    return true;
}

// ---- remote legs ----

// The remote call of `user` is over here; `command` tells its owner why.
void ClusterCalls::end_leg(const std::string& user, const char* command) {
    auto it = legs_.find(user);
    if (it == legs_.end()) return;
    RemoteLeg leg = std::move(it->second);
    legs_.erase(it);
    held_direct_.cancel(user);
    relay_.release(user);
    if (!here(leg.peer)) relay_.release(leg.peer);  // its route entry here
    if (command) link_.send(leg.owner, command, user, leg.peer, {});
    presence_.call_over(user);
}

// A command of a user whose call another node owns. Checked here as far as
// the leg knows; the owner's router checks the rest.
bool ClusterCalls::forward(const std::string& user, RemoteLeg& leg, wire::Verb verb, const std::string& other) {
    if (verb == wire::Verb::call) return router_.call(user, other, false);  // in a call: busy (D1)
    if (other != leg.peer) return false;
    switch (verb) {
    case wire::Verb::accept:
        if (leg.phase != CallPhase::ringing) return false;
        link_.send(leg.owner, "cmd_accept", user, other, {});
        return true;
    case wire::Verb::ready:
        if (leg.phase == CallPhase::ringing) return false;
        link_.send(leg.owner, "cmd_ready", user, other, {});
        if (!leg.ready) {
            leg.ready = true;
            relay_.routes_changed(user);
        }
        return true;
    case wire::Verb::end: end_leg(user, "cmd_end"); return true;
    default: return false;  // passthrough is the caller's, whose node owns the call
    }
}

// `call` on a cluster node: both parties are claimed in Redis first
// (atomic: of two callers on two nodes only one rings a callee), then the
// router rings as on one node, or answers `end` as for a busy callee.
bool ClusterCalls::call(const std::string& caller, const std::string& callee) {
    if (legs_.count(callee)) return router_.call(caller, callee, false);
    // What the router refuses anyway is refused without a round trip;
    // without Redis, only this node's users can be called.
    if (!link_.available() || caller == callee || router_.phase(caller) != CallPhase::idle ||
        !presence_.online(callee))
        return router_.call(caller, callee);
    if (claiming_.count(caller)) return router_.call(caller, callee, false);  // one claim at a time
    claiming_[caller] = Claiming{callee, false};
    std::weak_ptr<ClusterCalls*> token = alive_;
    link_.claim_call(caller, callee, [token, caller, callee](bool claimed) {
        auto still = token.lock();
        if (!still) return;
        ClusterCalls& self = **still;
        bool cancelled = self.claiming_[caller].cancelled;
        self.claiming_.erase(caller);
        if (!self.presence_.online(caller) || self.legs_.count(caller)) {
            if (claimed) self.link_.release_call(caller, callee);
            return;  // the caller went meanwhile
        }
        if (claimed) self.party_nodes_[callee] = self.node_of(callee);
        self.router_.call(caller, callee, claimed && !self.legs_.count(callee));
        if (claimed && self.router_.peer(caller) != callee) {
            self.link_.release_call(caller, callee);
            self.party_nodes_.erase(callee);
        }
        if (cancelled && self.router_.peer(caller) == callee) self.router_.end(caller, callee);
    });
    return true;
}

// ---- ClusterLink::Host ----

void ClusterCalls::node_message(const std::string& from, const std::string& kind, const std::string& user,
                                const std::string& other, const std::string& blob) {
    if (auto notice = notice_kind_named(kind)) return remote_notice(from, user, Notice{*notice, other, blob});
    // A command for a call this node owns, from the callee's node.
    if (router_.peer(user) != other || here(user)) return;  // stale: that call is over
    if (kind == "cmd_accept") router_.accept(user, other);
    else if (kind == "cmd_ready") router_.ready(user, other);
    else if (kind == "cmd_end") router_.end(user, other);
    else if (kind == "cmd_vanished") router_.vanished(user);
    else if (kind == "cmd_relogin") router_.logged_in(user, false);
    else if (kind == "cmd_stopping") router_.server_stopping(user);
    else if (kind == "cmd_end_by_server") router_.end_by_server(user);
}

// A notice for a user of this node from the node that owns its call,
// delivered here (pacing and grace stay with the user's own node).
void ClusterCalls::remote_notice(const std::string& from, const std::string& user, Notice notice) {
    // A call this node cannot deliver (the user is not here, or is in
    // another call Redis did not know of: placed while Redis was away):
    // the owner ends it, or its caller would wait forever.
    auto refuse = [&] {
        if (notice.kind != Notice::Kind::end) link_.send(from, "cmd_vanished", user, notice.other, {});
    };
    if (!here(user)) return refuse();
    RemoteLeg* leg = find(user);
    if (leg && leg->peer != notice.other) {
        if (notice.kind == Notice::Kind::incoming) refuse();
        return;  // about another call: stale
    }
    if (!leg && notice.kind != Notice::Kind::incoming && notice.kind != Notice::Kind::end &&
        notice.kind != Notice::Kind::available)
        return refuse();  // a call this node never rang (or already ended)
    switch (notice.kind) {
    case Notice::Kind::incoming:
        if (leg) return;  // the same call again (a message sent twice across a lost connection)
        if (router_.phase(user) != CallPhase::idle || host_.draining()) return refuse();
        legs_.emplace(user, RemoteLeg{from, notice.other, CallPhase::ringing, false, false, std::nullopt,
                                      std::chrono::system_clock::now(), {}});
        break;
    case Notice::Kind::prepare:
        if (leg) leg->phase = CallPhase::accepted;
        break;
    case Notice::Kind::start:
        if (leg) {
            leg->phase = CallPhase::in_call;
            leg->started_at = std::chrono::system_clock::now();
        }
        break;
    case Notice::Kind::direct:
        if (leg && !leg->media) {
            leg->held_direct = std::move(notice);
            held_direct_.arm(user, config_.direct_hold);
            return;
        }
        break;
    case Notice::Kind::end:
        local_.deliver(user, notice);
        if (leg) end_leg(user, nullptr);
        return;
    case Notice::Kind::available: break;
    }
    local_.deliver(user, notice);
}

// `user` logged in on another node: its session here is replaced, as a
// second login on one node replaces the first, and its call ends for the
// peer: a call does not move between nodes, so with keepudp too both get
// `end` (what PROTOCOL.md's keepudp gives when the call cannot survive).
void ClusterCalls::remote_arrival(const std::string& user, const std::string& node, bool keepudp) {
    if (!here(user)) {
        // A party of a call this node owns, logged in on another node than
        // the one it was on (its own died, or it moved): the call ends. A
        // login back on its own node is that node's to judge (keepudp).
        auto was = party_nodes_.find(user);
        if (router_.phase(user) != CallPhase::idle && (was == party_nodes_.end() || was->second != node))
            end_moved(user, keepudp);
        return;
    }
    host_.log(LogLevel::info, user + " logged in on node " + node);
    host_.replaced_elsewhere(user);
    if (router_.phase(user) != CallPhase::idle) end_moved(user, keepudp);
    if (find(user)) end_leg(user, "cmd_relogin");
    presence_.forget(user);
}

// A call this node owns, whose party `user` logged in on another node: it
// cannot follow (calls do not move between nodes). Without keepudp the peer
// gets `end`, as for a re-login on one node; with keepudp the user expected
// the call to go on, so it gets `end` too (through its new node).
void ClusterCalls::end_moved(const std::string& user, bool keepudp) {
    std::optional<std::string> peer = router_.peer(user);
    if (!peer) return;
    if (keepudp) presence_.deliver(user, Notice{Notice::Kind::end, *peer, {}});
    router_.logged_in(user, false);
}

// `node` is gone (not heard from for a ttl): calls with its users end.
// Calls this node owns end for our user as if the peer vanished, unless the
// peer is back meanwhile (a keepudp login here keeps the call); calls the
// lost node owned end for our users with `end` from here.
void ClusterCalls::node_lost(const std::string& node) {
    relay_.forget_node(node);  // its media replay window goes with it (a restart starts afresh)
    // Only parties that were on that node (the cache may be incomplete:
    // Redis just came back).
    std::vector<std::string> gone;
    router_.for_each_call([&](const std::string& caller, const std::string& callee, CallPhase) {
        for (const std::string* party : {&caller, &callee}) {
            auto was = party_nodes_.find(*party);
            if (!here(*party) && was != party_nodes_.end() && was->second == node) gone.push_back(*party);
        }
    });
    for (const std::string& user : gone) {
        host_.log(LogLevel::info, user + " was on lost node " + node + "; ending its call");
        router_.vanished(user);
    }
    std::vector<std::pair<std::string, std::string>> orphaned;
    for (const auto& [user, leg] : legs_)
        if (leg.owner == node) orphaned.emplace_back(user, leg.peer);
    for (const auto& [user, peer] : orphaned) {
        host_.log(LogLevel::info, "the call of " + user + " was owned by lost node " + node + "; ending it");
        local_.deliver(user, Notice{Notice::Kind::end, peer, {}});
        end_leg(user, nullptr);
    }
}

}  // namespace dtcall
