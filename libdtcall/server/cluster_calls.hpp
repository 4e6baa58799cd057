// The calls of one node of a cluster (internal; a Server has one only after
// attach_cluster()). The Server's parts stay as on one node; this part adds
// what crosses nodes:
//
// The caller's node owns a call: its CallRouter holds both legs, delivers
// the callee's notices through the callee's node (ClusterPresence::deliver)
// and takes the callee's commands from there (node_message). The callee's
// node keeps a RemoteLeg: whose call it is, to forward the callee's
// commands, to hold `direct` until the callee's media registers, and to send
// the callee's media to the owner's node once the callee is `ready`.
//
//   call      both parties claimed in Redis first (atomic busy check), then
//             the owner's router rings as on one node
//   notices   owner -> callee's node -> LocalPresence (pacing, grace, missed
//             notices stay with the user's own node)
//   commands  callee's node -> owner ("cmd_accept", "cmd_ready", "cmd_end",
//             "cmd_vanished", "cmd_relogin")
//   media     client -> its node -> (wrapped, MediaRelay's node leg) -> the
//             peer's node -> peer
//   failures  a login elsewhere ends the call (calls do not move between
//             nodes); a lost node's calls end for the survivors
#pragma once

#include "cluster/cluster_link.hpp"
#include "presence/cluster_presence.hpp"
#include "presence/local_presence.hpp"
#include "relay/media_relay.hpp"
#include "router/call_router.hpp"
#include "server/user_timers.hpp"
#include "wire/wire.hpp"

#include <dtcall/config.hpp>
#include <dtcall/events.hpp>
#include <dtcall/log.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace dtcall {

class ClusterCalls final : public ClusterLink::Host {
public:
    // What it asks of the Server.
    class Host {
    public:
        virtual ~Host() = default;
        // `user` logged in on another node: close its connection here (replaced).
        virtual void replaced_elsewhere(const std::string& user) = 0;
        virtual void log(LogLevel level, const std::string& line) = 0;
        // A draining Server rings none of its users (as it places no call).
        virtual bool draining() const = 0;
    };

    // A call of a user of this node that another node owns.
    struct RemoteLeg {
        std::string owner;  // the node whose router holds the call
        std::string peer;
        CallPhase phase = CallPhase::ringing;
        bool media = false;  // its media registered here
        bool ready = false;  // its media goes to the peer's node (as relay_peer on one node)
        std::optional<Notice> held_direct;
        std::chrono::system_clock::time_point rung_at;
        std::chrono::system_clock::time_point started_at{};
    };

    ClusterCalls(ClusterLink& link, LocalPresence& local, CallRouter& router, MediaRelay& relay,
                 UserTimers& held_direct, const Config& config, Host& host);
    ~ClusterCalls() override;
    ClusterCalls(const ClusterCalls&) = delete;
    ClusterCalls& operator=(const ClusterCalls&) = delete;

    Presence& presence() { return presence_; }
    bool here(const std::string& user) const { return presence_.here(user); }
    const std::string& node_name() const { return link_.node_name(); }
    // The node `user` is on, as far as this node knows ("" when offline).
    std::string node_of(const std::string& user) const;
    const RemoteLeg* leg(const std::string& user) const;

    // After the media sockets are open: bind node_address, tell the link.
    Status open_node_leg();

    // A command of a logged-in user of this node: handled here (a call to
    // claim, a command for a call another node owns), or nullopt: the router's.
    std::optional<bool> command(const std::string& user, wire::Verb verb, const std::string& other);
    // What the Server hears that concerns remote legs too.
    void logged_in(const std::string& user, bool keepudp);
    void vanished(const std::string& user);  // kicked, revoked, grace over
    // The user's media registered: true when its call is another node's.
    bool media_registered(const std::string& user);
    // For the relay: whom a remote leg's media goes to (null: not ready, or
    // not a remote leg: `handled` false), and where a user of another node is.
    const std::string* relay_peer(const std::string& user, bool& handled) const;
    std::optional<std::string> remote_node_address(const std::string& user) const;
    // The router holds `direct` for `user`: true when this part took it (the
    // callee is on another node, whose own node holds it).
    bool direct_held(const std::string& user);
    // The held `direct` of a remote leg goes now; false when there is none.
    bool release_direct(const std::string& user);
    // A call this node owned is over.
    void call_ended(const std::string& caller, const std::string& callee);
    // The Server stops: calls other nodes own end for our users (`end`) and
    // their owners hear it (EndReason::server_stopping there).
    void end_all();
    // Server::end_call() for a user whose call another node owns: the owner
    // ends it for both. False when the user has no such call.
    bool end_call(const std::string& user);
    std::size_t remote_calls() const { return legs_.size(); }
    // Calls of this node's users that other nodes own, as Server::calls() lists them.
    void list_calls(std::vector<CallInfo>& into) const;

    // ---- ClusterLink::Host ----
    void node_message(const std::string& from, const std::string& kind, const std::string& user,
                      const std::string& other, const std::string& blob) override;
    void remote_arrival(const std::string& user, const std::string& node, bool keepudp) override;
    void node_lost(const std::string& node) override;

private:
    RemoteLeg* find(const std::string& user);
    const std::string* call_node(const std::string& user) const;
    void end_leg(const std::string& user, const char* command);
    bool forward(const std::string& user, RemoteLeg& leg, wire::Verb verb, const std::string& other);
    bool call(const std::string& caller, const std::string& callee);
    void remote_notice(const std::string& from, const std::string& user, Notice notice);
    void end_moved(const std::string& user, bool keepudp);

    ClusterLink& link_;
    LocalPresence& local_;
    ClusterPresence presence_;
    CallRouter& router_;
    MediaRelay& relay_;
    UserTimers& held_direct_;
    const Config& config_;
    Host& host_;
    std::unordered_map<std::string, RemoteLeg> legs_;
    // Callers whose busy claim is in Redis: whom they call, and whether an
    // `end` came meanwhile (a `call` and an `end` read together).
    struct Claiming {
        std::string callee;
        bool cancelled = false;
    };
    std::unordered_map<std::string, Claiming> claiming_;
    // The node of the other party of each call this node owns, as it was
    // when it rang: a login of that user on another node ends the call, a
    // login (keepudp) back on the same node does not.
    std::unordered_map<std::string, std::string> party_nodes_;
    // Redis answers hold a weak copy: once this part is gone they do nothing.
    std::shared_ptr<ClusterCalls*> alive_ = std::make_shared<ClusterCalls*>(this);
};

}  // namespace dtcall
