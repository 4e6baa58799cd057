// Server::Impl wires the parts together and runs the lifecycle; each part
// has one job:
//   SessionTable   the connections (by id, by session key), freed safely
//   Admission      who may connect and try to log in (caps, failed logins)
//   Presence       who is online where, notices, the grace period
//   CallRouter     the call rules (the one owner of call state)
//   MediaRelay     the UDP socket(s)
//   CallLedger     call times and media figures for calls() and reports
//   ObserverList   the embedder's observers
// What is left here is glue: the three host interfaces the parts call back
// through, start/stop/drain, and the control surface.
#include <dtcall/server.hpp>

#include "crypto/shared_key_cache.hpp"
#include "presence/cluster_presence.hpp"
#include "presence/local_presence.hpp"
#include "server/cluster_attach.hpp"
#include "relay/address.hpp"
#include "relay/media_relay.hpp"
#include "server/admission.hpp"
#include "server/bound_socket.hpp"
#include "server/call_ledger.hpp"
#include "server/keepalive.hpp"
#include "server/observer_list.hpp"
#include "server/session_table.hpp"
#include "server/user_timers.hpp"
#include "session/session.hpp"

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <ctime>
#include <memory>
#include <unordered_map>
#include <vector>

namespace dtcall {
namespace {

std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

struct DTCALL_HIDDEN Server::Impl final : Session::Host,
                                          MediaRelay::Host,
                                          CallRouter::Outbox,
                                          Presence::Events,
                                          UserDirectory::Watcher,
                                          ClusterLink::Host {
    // A call of a user of this node that another node owns (cluster only).
    struct RemoteLeg {
        std::string owner;  // the node whose router holds the call
        std::string peer;
        CallPhase phase = CallPhase::ringing;
        bool media = false;
        bool ready = false;  // its media goes to the peer's node (as relay_peer on one node)
        std::optional<Notice> held_direct;
        std::chrono::system_clock::time_point rung_at = std::chrono::system_clock::now();
        std::chrono::system_clock::time_point started_at{};
    };
    Impl(Config config, UserDirectory& dir, event_base* given)
        : cfg(std::move(config)), users(dir), owned_base(given ? nullptr : event_base_new(), event_base_free),
          base(given ? given : owned_base.get()), sessions(base), admission(cfg), local_presence(base, cfg.call_grace, *this), router(*this),
          relay(base, cfg, *this), held_direct(base, this, [](void* self, const std::string& user) {
              static_cast<Impl*>(self)->release_direct(user);
          }) {
        crypto_init();
        router.set_policy([this](const std::string& caller, const std::string& callee) { return decide(caller, callee); });
        users.add_watcher(this);
    }

    ~Impl() override {
        if (cluster) cluster->attach(nullptr);
        users.remove_watcher(this);
        shut_down();
    }

    // ---- lifecycle ----
    Status start() {
        if (!crypto_init()) return Error{ErrorCode::other, "libsodium could not be initialised"};
        if (!listeners.empty()) return Error{ErrorCode::invalid_state, "server already started"};
        if (stopping || stopped) return Error{ErrorCode::invalid_state, "a server starts once; this one was stopped"};
        // Clients pin the server's public key: a missing or mismatched pair
        // would fail every handshake, far from its cause.
        if (cfg.server_keys.public_key == PublicKey{})
            return Error{ErrorCode::bad_key, "server_keys is not set (KeyPair::generate(), or KeyPair::from_secret "
                                             "of the key read_private_key_file() gives)"};
        if (KeyPair::from_secret(cfg.server_keys.secret_key).public_key != cfg.server_keys.public_key)
            return Error{ErrorCode::bad_key, "server_keys: the public key is not the secret key's"};
        auto plan = plan_listen_addresses(cfg.listen_addresses);
        if (!plan) return plan.failure();
        std::uint16_t port = cfg.command_port;
        std::string where;
        for (const ListenAddress& address : *plan) {
            auto fd = open_bound_socket(address, port, SOCK_STREAM, 1024, "command");
            if (!fd) {
                close_listeners();
                return fd.failure();
            }
            if (port == 0) port = bound_port(*fd);  // the same port on every address
            evconnlistener* listener = evconnlistener_new(base, &Impl::on_accept, this,
                                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, *fd);
            if (!listener) {
                evutil_closesocket(*fd);
                close_listeners();
                return Error{ErrorCode::io, "command: cannot listen on TCP " + address.text};
            }
            evconnlistener_set_error_cb(listener, &Impl::on_accept_error);
            listeners.push_back(listener);
            where += (where.empty() ? "" : ", ") + address.text;
        }
        command_port = port;
        auto opened = relay.open();
        if (!opened) {
            close_listeners();
            return opened;
        }
        if (cluster) {
            auto node_leg = relay.open_node_leg(cluster->node_name(), cluster->media_key(), cluster->own_address());
            if (!node_leg) {
                relay.close();
                close_listeners();
                return node_leg.failure();
            }
            cluster->bound(*node_leg);
            log(LogLevel::info, "node " + cluster->node_name() + ": media from other nodes on UDP " + *node_leg);
        }
        log(LogLevel::info, "listening on " + where + ": TCP " + std::to_string(command_port) + ", UDP " +
                                std::to_string(relay.port()));
        return Done{};
    }

    void close_listeners() {
        for (evconnlistener* listener : listeners) evconnlistener_free(listener);
        listeners.clear();
    }

    // See Server::stop() for the order of events.
    void stop_politely() {
        if (stopping) return;
        stopping = true;
        // A drain under way ends here: its `done` runs with stop's.
        if (drain) {
            stop_done.push_back(std::move(drain->done));
            event_del(drain->check.get());  // freed with the drain in shut_down()
        }
        close_listeners();
        router.end_all();
        sessions.for_each([](Session& session) { session.close(Session::CloseReason::server_stopping); });
        // Finishing frees every session, so it never runs inside a caller's
        // callback: it is an event, due when the last connection has flushed
        // and closed, or after 2 s (peers that do not read cannot hold it up).
        stop_deadline.reset(evtimer_new(base, [](int, short, void* self) { static_cast<Impl*>(self)->finish_stop(); }, this));
        timeval limit{2, 0};
        evtimer_add(stop_deadline.get(), &limit);
        if (sessions.empty()) event_active(stop_deadline.get(), EV_TIMEOUT, 0);
    }

    void finish_stop() {
        stop_deadline.reset();
        shut_down();
        stopped = true;
        if (owned_base) event_base_loopexit(base, nullptr);
        auto done = std::move(stop_done);
        for (auto& f : done)
            if (f) f();
    }

    void shut_down() {
        close_listeners();
        resume_accepting.reset();
        drain.reset();
        stop_deadline.reset();
        relay.close();
        presence->clear();
        held_direct.clear();
        ledger.clear();
        sessions.clear();
    }

    // ---- accepting ----
    static void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* address, int length, void* self) {
        auto* impl = static_cast<Impl*>(self);
        std::string source = source_network(address, length);
        if (auto refused = impl->admission.admit(source, impl->sessions.size())) {
            evutil_closesocket(fd);
            impl->hit_limit(*refused, source);
            // One line while the cap holds, not one per refusal.
            if (impl->admission.first_refusal(*refused, source))
                impl->log(LogLevel::warning, *refused == Limit::connections
                                                 ? "connection limit reached; refusing new connections"
                                                 : source + " has too many connections that are not logged in; refusing more");
            return;
        }
        evutil_make_socket_nonblocking(fd);
        // Signaling is a trickle; a small kernel send buffer lets the output
        // bound notice a client that stopped reading in kilobytes, not megabytes.
        int send_buffer = 64 * 1024;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof send_buffer);
        // Each frame is written whole and should leave at once; Nagle would
        // hold it for the client's delayed ack (~40 ms).
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        // A phone that vanished without closing stops counting as online.
        apply_keepalive(fd, keepalive_plan(impl->cfg.tcp_keepalive));
        impl->sessions.add(std::make_unique<Session>(impl->base, fd, address, length, *impl, ++impl->next_id));
    }

    // Out of file descriptors: stop accepting for a moment instead of spinning.
    static void on_accept_error(evconnlistener* listener, void* self) {
        auto* impl = static_cast<Impl*>(self);
        int err = EVUTIL_SOCKET_ERROR();
        impl->log(LogLevel::warning, std::string("accept failed: ") + evutil_socket_error_to_string(err) +
                                         "; pausing accepts for 1 s");
        evconnlistener_disable(listener);
        if (!impl->resume_accepting)
            impl->resume_accepting.reset(evtimer_new(impl->base, [](int, short, void* arg) {
                for (evconnlistener* l : static_cast<Impl*>(arg)->listeners) evconnlistener_enable(l);
            }, impl));
        timeval second{1, 0};
        evtimer_add(impl->resume_accepting.get(), &second);
    }

    // ---- Session::Host ----
    const Config& config() const override { return cfg; }
    // The answer may come at once or later: it holds the session's id and a
    // token of this Server, never a Session* or an Impl* that may be gone.
    void look_up_user(Session& session, const std::string& user) override {
        std::weak_ptr<Impl*> token = alive;
        std::uint64_t id = session.id();
        users.lookup(user, [token, id, user](UserLookup found) {
            auto still = token.lock();
            if (!still) return;  // the Server was destroyed meanwhile
            Session* waiting = (*still)->sessions.find(id);
            if (waiting) waiting->user_looked_up(user, found);  // else: it closed meanwhile
        });
    }
    const SharedKey* user_box_key(const PublicKey& user_key) override {
        return box_keys.get(cfg.server_keys.secret_key, user_key);
    }

    void session_logged_in(Session& session, bool keepudp) override {
        const std::string& user = session.user();
        admission.authenticated_or_closed(session.ip());
        // The old connection logs out first (LogoutReason::replaced).
        if (const Presence::Entry* previous = presence->entry(user); previous && previous->connection != &session)
            static_cast<Session*>(previous->connection)->close(Session::CloseReason::replaced);
        // Presence keeps the key the login was checked against: `prepare`
        // hands it to this user's peers (through a grace period too). With
        // keepudp it hands over what the user missed while away.
        presence->arrived(user, session, session.user_key(), keepudp);
        sessions.index_key(session);
        ++logins;
        log(LogLevel::info, user + " logged in from " + session.address() + (keepudp ? " (keepudp)" : ""));
        observers.notify([&](ServerObserver& o) { o.logged_in(user, session.address()); });
        router.logged_in(user, keepudp);
        // A call another node owns: without keepudp it ends for the peer there.
        if (RemoteLeg* leg = remote_leg(user); leg && !keepudp) end_remote_leg(user, "cmd_relogin");
    }

    bool session_command(Session& session, wire::Verb verb, const wire::Command& command) override {
        const std::string& user = session.user();
        const std::string& other = command.fields[2];
        if (cluster) {
            if (RemoteLeg* leg = remote_leg(user)) return forward_command(user, *leg, verb, other, command);
            if (verb == wire::Verb::call) return cluster_call(user, other);
        }
        switch (verb) {
        case wire::Verb::call: return router.call(user, other);
        // prepare carries both public keys, those their logins found; a user
        // who left the directory since was revoked and is offline.
        case wire::Verb::accept: return router.accept(user, other);
        case wire::Verb::passthrough: return router.passthrough(user, other, command.fields[3]);
        case wire::Verb::ready: return router.ready(user, other);
        case wire::Verb::end: return router.end(user, other);
        default: return false;
        }
    }

    double seconds_now() const { return double(steady_ms()) / 1000.0; }

    bool login_allowed(Session& session, const std::string& user) override {
        // A draining server takes back only users whose call goes on.
        if (drain && phase_of(user) == CallPhase::idle) {
            note_login_failure(session, user, LoginFailure::refused);
            return false;
        }
        double now = seconds_now();
        auto verdict = admission.may_try_login(session.ip(), user, now);
        if (verdict == Admission::LoginVerdict::allowed) return true;
        note_login_failure(session, user, LoginFailure::rate_limited);
        hit_limit(Limit::failed_logins, session.ip());
        // One line per key per window, not one per attempt.
        if (admission.first_login_refusal(verdict, session.ip(), user, now))
            log(LogLevel::warning, verdict == Admission::LoginVerdict::source_refused
                                       ? "too many failed logins from " + session.ip() + "; refusing for a while"
                                       : "too many failed logins for user " + user +
                                             "; refusing sources that failed for it, for a while");
        return false;
    }

    void login_failed(Session& session, const std::string& user, LoginFailure reason) override {
        // What the client got wrong costs it tokens; a directory that could
        // not answer is not the client's fault.
        if (reason != LoginFailure::directory_error) admission.login_failed(session.ip(), user, seconds_now());
        note_login_failure(session, user, reason);
    }

    void note_login_failure(Session& session, const std::string& user, LoginFailure reason) {
        ++login_failures;
        observers.notify([&](ServerObserver& o) { o.login_failed(user, session.address(), reason); });
    }

    void hit_limit(Limit limit, const std::string& address) {
        ++limit_hits[static_cast<std::size_t>(limit)];
        observers.notify([&](ServerObserver& o) { o.limit_hit(limit, address); });
    }

    // From the moment a connection starts closing, its user is offline and
    // its session key dead (not only once the last bytes are flushed).
    void session_closing(Session& session, Session::CloseReason reason) override {
        if (session.closed_from() != Session::State::logged_in) return;
        const std::string& user = session.user();
        const Presence::Entry* entry = presence->entry(user);
        if (!entry || entry->connection != &session) return;
        sessions.forget_key(session);
        // PROTOCOL.md 7.3: the call stays for a keepudp reconnect, but not forever.
        presence->left(user, session, phase_of(user) != CallPhase::idle);
        LogoutReason why = Session::logout_reason(reason);
        log(LogLevel::info, user + " logged out (" + to_string(why) + ")");
        observers.notify([&](ServerObserver& o) { o.logged_out(user, why); });
    }

    void session_closed(Session& session) override {
        // Counted as unauthenticated until the login was announced (a login2resp
        // that overflowed closes from logged_in without it).
        if (!session.login_announced()) admission.authenticated_or_closed(session.ip());
        if (session.close_reason() == Session::CloseReason::output_overflow)
            hit_limit(Limit::output_bytes, session.address());
        else if (session.close_reason() == Session::CloseReason::frame_too_large)
            hit_limit(Limit::frame_size, session.address());
        session_closing(session, session.close_reason());
        sessions.retire(session);
        if (stopping && sessions.empty() && stop_deadline) event_active(stop_deadline.get(), EV_TIMEOUT, 0);
    }

    void log(LogLevel level, const std::string& line) override {
        if (sink) sink(level, line);
    }
    void command_replayed(Session&) override { ++commands_replayed; }

    // Disconnects `user` at once; its call ends for the peer as if the user
    // vanished (no grace period). Kick and revocation.
    void drop_user(const std::string& user, Session::CloseReason reason) {
        if (const Presence::Entry* entry = presence->entry(user))
            static_cast<Session*>(entry->connection)->close(reason);
        presence->forget(user);
        router.vanished(user);
        if (remote_leg(user)) end_remote_leg(user, "cmd_vanished");
    }

    // ---- UserDirectory::Watcher ----
    void user_removed(const std::string& user) override {
        // Logins under way for that name end too: their challenge was sealed
        // to the old key, or the answer is about to say "unknown".
        sessions.for_each([&](Session& session) {
            Session::State state = session.state();
            if ((state == Session::State::looking_up || state == Session::State::awaiting_login2) &&
                session.pending_user() == user)
                session.close(Session::CloseReason::revoked);
        });
        if (!presence->online(user) && router.phase(user) == CallPhase::idle) return;
        log(LogLevel::info, user + " is no longer in the user directory; disconnecting");
        drop_user(user, Session::CloseReason::revoked);
    }

    // ---- Presence::Events ----
    void grace_expired(const std::string& user) override {
        log(LogLevel::info, user + " did not come back within the grace period; ending the call");
        router.vanished(user);
        if (remote_leg(user)) end_remote_leg(user, "cmd_vanished");
    }

    // ---- MediaRelay::Host ----
    std::optional<KeyOwner> owner_of_session_key(const std::string& sk) override {
        Session* owner = sessions.owner_of_key(sk);
        if (!owner) return std::nullopt;
        return KeyOwner{owner->user(), owner->tcp_key(), &owner->registration_replays()};
    }
    bool media_registered(const std::string& user, const std::string& address) override {
        if (RemoteLeg* leg = remote_leg(user)) {
            // Its node holds `direct` (PROTOCOL.md: until the callee's media registers).
            leg->media = true;
            held_direct.cancel(user);
            release_direct(user);
        } else if (!router.media_registered(user)) {
            return false;
        }
        log(LogLevel::info, user + " registered media from " + address);
        observers.notify([&](ServerObserver& o) { o.media_registered(user, address); });
        return true;
    }
    const std::string* relay_peer(const std::string& user) override {
        if (RemoteLeg* leg = remote_leg(user)) return leg->ready ? &leg->peer : nullptr;
        return router.relay_peer(user);
    }
    std::optional<std::string> remote_node_address(const std::string& user) override {
        if (!cluster || cluster_presence->here(user)) return std::nullopt;
        const std::string* node = nullptr;
        if (const ClusterLink::RemoteUser* remote = cluster->remote(user)) node = &remote->node;
        // The caller of a call another node owns is on that node.
        for (const auto& [local, leg] : remote_legs)
            if (!node && leg.peer == user) node = &leg.owner;
        if (!node) return std::nullopt;
        const std::string* address = cluster->node_address(*node);
        if (!address) return std::nullopt;
        return *address;
    }
    bool has_call(const std::string& user) override { return phase_of(user) != CallPhase::idle; }
    void unregistered_limit_hit(const std::string& address) override {
        observers.notify([&](ServerObserver& o) { o.limit_hit(Limit::unregistered_datagrams, address); });
    }
    std::time_t now() override { return std::time(nullptr); }
    std::int64_t now_ms() override { return steady_ms(); }

    // ---- CallRouter::Outbox ----
    bool online(const std::string& user) override { return presence->online(user); }
    void deliver(const std::string& user, const Notice& notice) override { presence->deliver(user, notice); }
    void direct_held(const std::string& user) override {
        // A callee on another node: `direct` goes there now and its node holds
        // it until the callee's media registers (remote_notice).
        if (cluster && !cluster_presence->here(user)) return router.release_held_direct(user);
        held_direct.arm(user, cfg.direct_hold);
    }
    void relay_peer_changed(const std::string& user) override { relay.routes_changed(user); }
    void media_released(const std::string& user) override {
        ledger.media_released(user, relay.flow(user));
        relay.release(user);
        held_direct.cancel(user);
    }
    void call_rung(const std::string& a, const std::string& b) override {
        ledger.rung(a, std::chrono::system_clock::now());
        log(LogLevel::info, a + " rings " + b);
        observers.notify([&](ServerObserver& o) { o.call_rung(a, b); });
    }
    void call_accepted(const std::string& a, const std::string& b) override {
        ledger.accepted(a);
        log(LogLevel::info, b + " accepted the call from " + a);
        observers.notify([&](ServerObserver& o) { o.call_accepted(a, b); });
    }
    void call_started(const std::string& a, const std::string& b) override {
        ledger.started(a, std::chrono::system_clock::now());
        log(LogLevel::info, "call " + a + " -> " + b + " started");
        observers.notify([&](ServerObserver& o) { o.call_started(a, b); });
    }
    // The caller got `end` at once: report a call that lasted no time,
    // without touching either party's call or grace period.
    void call_refused(const std::string& a, const std::string& b, EndReason reason) override {
        log(LogLevel::info, "call " + a + " -> " + b + " refused: " + to_string(reason));
        CallReport report;
        report.reason = reason;
        report.ended_at = std::chrono::system_clock::now();
        report.call.caller = a;
        report.call.callee = b;
        report.call.rung_at = report.ended_at;
        observers.notify([&](ServerObserver& o) { o.call_ended(report); });
    }
    void call_ended(const std::string& a, const std::string& b, EndReason reason) override {
        log(LogLevel::info, "call " + a + " -> " + b + " ended: " + to_string(reason));
        if (cluster) cluster->release_call(a, b);
        presence->call_over(a);
        presence->call_over(b);
        CallReport report =
            ledger.ended(a, b, reason, std::chrono::system_clock::now(), ledger.released_or(a, relay.flow(a)),
                         ledger.released_or(b, relay.flow(b)));
        observers.notify([&](ServerObserver& o) { o.call_ended(report); });
    }

    // ---- cluster (only after attach_cluster) ----
    //
    // The caller's node owns a call: its router holds both legs, delivers the
    // callee's notices through the callee's node (ClusterPresence::deliver),
    // and takes the callee's commands from there (node_message). The callee's
    // node keeps a RemoteLeg: whose call it is, to forward the callee's
    // commands, and to hold `direct` until the callee's media registers.
    static void attach(Server& server, ClusterLink& link) { server.impl_->use_cluster(link); }

    void use_cluster(ClusterLink& link) {
        cluster = &link;
        cluster_presence = std::make_unique<ClusterPresence>(local_presence, link);
        presence = cluster_presence.get();
        local_presence.set_remote_keys([this](const std::string& user) -> std::optional<PublicKey> {
            if (const ClusterLink::RemoteUser* remote = cluster->remote(user)) return remote->key;
            return std::nullopt;
        });
        link.attach(this);
    }

    // The node `user` is on, as far as this node knows ("" when offline).
    std::string node_of(const std::string& user) const {
        if (cluster_presence->here(user)) return cluster->node_name();
        if (const ClusterLink::RemoteUser* remote = cluster->remote(user)) return remote->node;
        return {};
    }

    RemoteLeg* remote_leg(const std::string& user) {
        auto it = remote_legs.find(user);
        return it == remote_legs.end() ? nullptr : &it->second;
    }

    CallPhase phase_of(const std::string& user) const {
        CallPhase phase = router.phase(user);
        if (phase != CallPhase::idle) return phase;
        auto it = remote_legs.find(user);
        return it == remote_legs.end() ? CallPhase::idle : it->second.phase;
    }

    // The remote call of `user` is over here; `command` tells its owner why.
    void end_remote_leg(const std::string& user, const char* command) {
        auto it = remote_legs.find(user);
        if (it == remote_legs.end()) return;
        RemoteLeg leg = std::move(it->second);
        remote_legs.erase(it);
        held_direct.cancel(user);
        relay.release(user);
        if (!cluster_presence->here(leg.peer)) relay.release(leg.peer);  // its route entry here
        if (command) cluster->send(leg.owner, command, user, leg.peer, {});
        presence->call_over(user);
    }

    // A command of a user whose call another node owns. Checked here as far as
    // the leg knows; the owner's router checks the rest.
    bool forward_command(const std::string& user, RemoteLeg& leg, wire::Verb verb, const std::string& other,
                         const wire::Command& command) {
        (void)command;
        if (verb == wire::Verb::call) return router.call(user, other, false);  // in a call: busy (D1)
        if (other != leg.peer) return false;
        switch (verb) {
        case wire::Verb::accept:
            if (leg.phase != CallPhase::ringing) return false;
            cluster->send(leg.owner, "cmd_accept", user, other, {});
            return true;
        case wire::Verb::ready:
            if (leg.phase == CallPhase::ringing) return false;
            cluster->send(leg.owner, "cmd_ready", user, other, {});
            if (!leg.ready) {
                leg.ready = true;
                relay.routes_changed(user);
            }
            return true;
        case wire::Verb::end: end_remote_leg(user, "cmd_end"); return true;
        default: return false;  // passthrough is the caller's, whose node owns the call
        }
    }

    // `call` on a cluster node: both parties are claimed in Redis first
    // (atomic: of two callers on two nodes only one rings a callee), then the
    // router rings as on one node, or answers `end` as for a busy callee.
    bool cluster_call(const std::string& caller, const std::string& callee) {
        if (remote_legs.count(callee)) return router.call(caller, callee, false);
        // What the router refuses anyway is refused without a round trip;
        // without Redis, only this node's users can be called.
        if (!cluster->available() || caller == callee || router.phase(caller) != CallPhase::idle ||
            !presence->online(callee))
            return router.call(caller, callee);
        std::weak_ptr<Impl*> token = alive;
        cluster->claim_call(caller, callee, [token, caller, callee](bool claimed) {
            auto still = token.lock();
            if (!still) return;
            Impl& impl = **still;
            if (!impl.presence->online(caller) || impl.remote_legs.count(caller)) {
                if (claimed) impl.cluster->release_call(caller, callee);
                return;  // the caller went meanwhile
            }
            impl.router.call(caller, callee, claimed && !impl.remote_legs.count(callee));
            if (claimed && impl.router.peer(caller) != callee) impl.cluster->release_call(caller, callee);
        });
        return true;
    }

    // ---- ClusterLink::Host ----
    void node_message(const std::string& from, const std::string& kind, const std::string& user,
                      const std::string& other, const std::string& blob) override {
        if (auto notice = notice_kind_named(kind)) return remote_notice(from, user, Notice{*notice, other, blob});
        // A command for a call this node owns, from the callee's node.
        if (router.peer(user) != other || cluster_presence->here(user)) return;  // stale: that call is over
        if (kind == "cmd_accept") router.accept(user, other);
        else if (kind == "cmd_ready") router.ready(user, other);
        else if (kind == "cmd_end") router.end(user, other);
        else if (kind == "cmd_vanished") router.vanished(user);
        else if (kind == "cmd_relogin") router.logged_in(user, false);
    }

    // A notice for a user of this node from the node that owns its call,
    // delivered here (pacing and grace stay with the user's own node).
    void remote_notice(const std::string& from, const std::string& user, Notice notice) {
        if (!cluster_presence->here(user)) return;
        RemoteLeg* leg = remote_leg(user);
        if (leg && leg->peer != notice.other) return;  // about another call: stale
        switch (notice.kind) {
        case Notice::Kind::incoming:
            if (leg || router.phase(user) != CallPhase::idle) return;  // Redis said free: stale
            remote_legs.emplace(user, RemoteLeg{from, notice.other, CallPhase::ringing, false, false, std::nullopt,
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
                held_direct.arm(user, cfg.direct_hold);
                return;
            }
            break;
        case Notice::Kind::end:
            local_presence.deliver(user, notice);
            if (leg) end_remote_leg(user, nullptr);
            return;
        case Notice::Kind::available: break;
        }
        local_presence.deliver(user, notice);
    }

    // `user` logged in on another node: its session here is replaced, as a
    // second login on one node replaces the first, and its call ends for the
    // peer: a call does not move between nodes, so with keepudp too both get
    // `end` (what PROTOCOL.md's keepudp gives when the call cannot survive).
    void remote_arrival(const std::string& user, const std::string& node) override {
        if (!cluster_presence->here(user)) {
            // A party of a call this node owns, back on a third node (its own died).
            if (router.phase(user) != CallPhase::idle) router.logged_in(user, false);
            return;
        }
        log(LogLevel::info, user + " logged in on node " + node);
        if (const Presence::Entry* entry = local_presence.entry(user))
            static_cast<Session*>(entry->connection)->close(Session::CloseReason::replaced);
        if (router.phase(user) != CallPhase::idle) router.logged_in(user, false);
        if (remote_leg(user)) end_remote_leg(user, "cmd_relogin");
        presence->forget(user);
    }

    // `node` is gone (not heard from for a ttl): calls with its users end.
    // Calls this node owns end for our user as if the peer vanished, unless
    // the peer is back here meanwhile (a keepudp login here keeps the call);
    // calls the lost node owned end for our users with `end` from here.
    void node_lost(const std::string& node) override {
        std::vector<std::string> gone;
        router.for_each_call([&](const std::string& caller, const std::string& callee, CallPhase) {
            for (const std::string* party : {&caller, &callee})
                if (!cluster_presence->here(*party) && !cluster->remote(*party)) gone.push_back(*party);
        });
        for (const std::string& user : gone) {
            log(LogLevel::info, user + " was on lost node " + node + "; ending its call");
            router.vanished(user);
        }
        std::vector<std::pair<std::string, std::string>> orphaned;
        for (const auto& [user, leg] : remote_legs)
            if (leg.owner == node) orphaned.emplace_back(user, leg.peer);
        for (const auto& [user, peer] : orphaned) {
            log(LogLevel::info, "the call of " + user + " was owned by lost node " + node + "; ending it");
            local_presence.deliver(user, Notice{Notice::Kind::end, peer, {}});
            end_remote_leg(user, nullptr);
        }
    }

    // `direct` held for `user` goes now: its media registered, or the bound passed.
    void release_direct(const std::string& user) {
        if (RemoteLeg* leg = remote_leg(user); leg && leg->held_direct) {
            Notice notice = std::move(*leg->held_direct);
            leg->held_direct.reset();
            local_presence.deliver(user, notice);
            return;
        }
        router.release_held_direct(user);
    }

    // The router's one policy: a draining server places no call; then the embedder's.
    CallDecision decide(const std::string& caller, const std::string& callee) {
        if (drain) return CallDecision::busy;
        if (!policy) return CallDecision::allow;
        const Presence::Entry* entry = presence->entry(caller);
        return policy(CallRequest{caller, callee, entry ? entry->connection->address() : std::string()});
    }

    // Checked a few times a second: a counter, not a walk over users.
    static void on_drain_check(evutil_socket_t, short, void* self) {
        auto* impl = static_cast<Impl*>(self);
        bool over = std::chrono::steady_clock::now() >= impl->drain->deadline;
        if (impl->router.calls() != 0 && !over) return;
        if (impl->router.calls() != 0) impl->log(LogLevel::info, "drain time is up; ending the remaining calls");
        event_del(impl->drain->check.get());
        impl->stop_politely();  // takes the drain's `done` along
    }

    using EventPtr = std::unique_ptr<event, void (*)(event*)>;
    struct Drain {
        std::chrono::steady_clock::time_point deadline;
        std::function<void()> done;
        EventPtr check{nullptr, event_free};
    };

    Config cfg;
    UserDirectory& users;
    // A base the Server made goes last: every part below holds events on it.
    std::unique_ptr<event_base, void (*)(event_base*)> owned_base;
    event_base* base;
    SessionTable sessions;
    Admission admission;
    LocalPresence local_presence;
    Presence* presence = &local_presence;  // ClusterPresence in a cluster
    CallRouter router;
    MediaRelay relay;
    UserTimers held_direct;
    CallLedger ledger;
    SharedKeyCache box_keys;
    ObserverList observers;
    LogSink sink;
    CallPolicy policy;
    // Only with attach_cluster(): the link, the presence that consults it,
    // and the calls of this node's users that another node owns.
    ClusterLink* cluster = nullptr;
    std::unique_ptr<ClusterPresence> cluster_presence;
    std::unordered_map<std::string, RemoteLeg> remote_legs;

    std::vector<evconnlistener*> listeners;
    EventPtr resume_accepting{nullptr, event_free};
    EventPtr stop_deadline{nullptr, event_free};
    std::vector<std::function<void()>> stop_done;
    std::unique_ptr<Drain> drain;
    bool stopping = false;
    bool stopped = false;  // finish_stop() ran
    std::uint16_t command_port = 0;
    std::uint64_t next_id = 0;
    std::uint64_t logins = 0;
    std::uint64_t login_failures = 0;
    std::uint64_t commands_replayed = 0;
    std::array<std::uint64_t, limit_count> limit_hits{};
    // Directory answers hold a weak copy: once the Server is gone they do nothing.
    std::shared_ptr<Impl*> alive = std::make_shared<Impl*>(this);
};

void attach_cluster(Server& server, ClusterLink& link) { Server::Impl::attach(server, link); }

Server::Server(Config config, UserDirectory& users, event_base* base)
    : impl_(std::make_unique<Impl>(std::move(config), users, base)) {}
Server::~Server() = default;

void Server::add_observer(ServerObserver* observer) { impl_->observers.add(observer); }
void Server::remove_observer(ServerObserver* observer) { impl_->observers.remove(observer); }
void Server::set_log(LogSink sink) { impl_->sink = std::move(sink); }
void Server::set_policy(CallPolicy policy) { impl_->policy = std::move(policy); }
Status Server::start() { return impl_->start(); }
void Server::run() { event_base_dispatch(impl_->base); }

void Server::stop(std::function<void()> done) {
    if (impl_->stopped) {
        // Already stopped: `done` still runs, from the loop, as promised.
        if (!done) return;
        auto* pending = new std::function<void()>(std::move(done));
        event_base_once(impl_->base, -1, EV_TIMEOUT, [](evutil_socket_t, short, void* arg) {
            std::unique_ptr<std::function<void()>> f(static_cast<std::function<void()>*>(arg));
            (*f)();
        }, pending, nullptr);
        return;
    }
    impl_->stop_done.push_back(std::move(done));
    impl_->stop_politely();
}

void Server::drain(std::chrono::seconds limit, std::function<void()> done) {
    if (impl_->stopping || impl_->stopped) return stop(std::move(done));
    if (impl_->drain) {
        // Draining already: a shorter limit replaces the longer one.
        auto deadline = std::chrono::steady_clock::now() + limit;
        if (deadline < impl_->drain->deadline) {
            impl_->drain->deadline = deadline;
            impl_->log(LogLevel::info, "draining: the remaining calls are ended in at most " +
                                           std::to_string(limit.count()) + " s");
        }
        impl_->stop_done.push_back(std::move(done));
        return;
    }
    impl_->log(LogLevel::info, "draining: no new calls or logins; stopping when the last call ends, at most in " +
                                   std::to_string(limit.count()) + " s");
    impl_->drain = std::make_unique<Impl::Drain>();
    impl_->drain->deadline = std::chrono::steady_clock::now() + limit;
    impl_->drain->done = std::move(done);
    impl_->drain->check.reset(event_new(impl_->base, -1, EV_PERSIST, &Impl::on_drain_check, impl_.get()));
    timeval quarter{0, 250000};
    event_add(impl_->drain->check.get(), &quarter);
    event_active(impl_->drain->check.get(), EV_TIMEOUT, 0);
}

bool Server::draining() const { return impl_->drain != nullptr; }

Status Server::reload_users() {
    std::vector<std::string> warnings;
    Status status = impl_->users.reload(warnings);
    if (status) impl_->box_keys.clear();
    for (const std::string& w : warnings) impl_->log(LogLevel::warning, w);
    if (status) impl_->log(LogLevel::info, "users reloaded");
    else impl_->log(LogLevel::error, "users not reloaded: " + status.error());
    return status;
}

// ---- control ----

std::vector<OnlineUser> Server::online_users() const {
    std::vector<OnlineUser> users;
    users.reserve(impl_->presence->online_count());
    impl_->presence->for_each_online([&](const std::string& name, const Presence::Entry& entry) {
        OnlineUser u;
        u.user = name;
        u.address = entry.connection->address();
        u.since = entry.since;
        u.keepudp_reconnects = entry.keepudp_reconnects;
        u.phase = impl_->router.phase(name);
        if (auto peer = impl_->router.peer(name)) u.peer = *peer;
        if (auto it = impl_->remote_legs.find(name); it != impl_->remote_legs.end()) {
            u.phase = it->second.phase;
            u.peer = it->second.peer;
        }
        if (impl_->cluster) u.node = impl_->cluster->node_name();
        users.push_back(std::move(u));
    });
    return users;
}

std::vector<CallInfo> Server::calls() const {
    std::vector<CallInfo> calls;
    impl_->router.for_each_call([&](const std::string& caller, const std::string& callee, CallPhase phase) {
        calls.push_back(impl_->ledger.info(caller, callee, phase, impl_->relay.flow(caller), impl_->relay.flow(callee)));
        if (impl_->cluster) {
            calls.back().caller_node = impl_->node_of(caller);
            calls.back().callee_node = impl_->node_of(callee);
        }
    });
    // Calls of users of this node that another node owns: as far as this node sees them.
    for (const auto& [user, leg] : impl_->remote_legs) {
        CallInfo info;
        info.caller = leg.peer;
        info.callee = user;
        info.phase = leg.phase;
        info.rung_at = leg.rung_at;
        info.started_at = leg.started_at;
        MediaRelay::FlowFigures mine = impl_->relay.flow(user);
        MediaRelay::FlowFigures peer = impl_->relay.flow(leg.peer);
        info.callee_to_caller = mine.flow;
        info.callee_media = mine.endpoint;
        info.caller_to_callee = peer.flow;
        info.caller_node = leg.owner;
        info.callee_node = impl_->cluster->node_name();
        calls.push_back(std::move(info));
    }
    return calls;
}

Status Server::kick(const std::string& user) {
    if (!impl_->presence->entry(user)) return Error{ErrorCode::not_found, "user " + user + " is not online"};
    impl_->log(LogLevel::info, "kicking " + user);
    impl_->drop_user(user, Session::CloseReason::kicked);
    return Done{};
}

Status Server::end_call(const std::string& user) {
    if (!impl_->router.end_by_server(user)) return Error{ErrorCode::not_found, "user " + user + " has no call"};
    return Done{};
}

std::uint16_t Server::command_port() const { return impl_->command_port; }
std::uint16_t Server::media_port() const { return impl_->relay.port(); }
event_base* Server::base() const { return impl_->base; }

ServerStats Server::stats() const {
    ServerStats s;
    s.connections = impl_->sessions.size();
    s.logged_in = impl_->presence->online_count();
    s.logins = impl_->logins;
    s.login_failures = impl_->login_failures;
    s.commands_replayed = impl_->commands_replayed;
    s.limit_hits = impl_->limit_hits;
    CallRouter::PhaseCounts phases = impl_->router.phase_counts();
    s.calls_ringing = phases.ringing;
    s.calls_accepted = phases.accepted;
    s.calls_in_progress = phases.in_call;
    s.calls_ended = impl_->router.calls_ended();
    const auto& relay = impl_->relay.stats();
    s.media_packets_relayed = relay.relayed_packets;
    s.media_packets_relayed_by_threads = relay.relayed_by_threads;
    s.media_table_publishes = relay.table_publishes;
    s.media_bytes_relayed = relay.relayed_bytes;
    s.media_packets_dropped = relay.dropped_packets;
    s.media_rate_limited = relay.rate_limited_packets;
    s.media_too_large = relay.too_large;
    s.media_unroutable = relay.unroutable;
    s.registrations_refused = relay.refused_registrations;
    s.registrations_acked = relay.registrations;
    s.registrations_replayed = relay.replayed_registrations;
    s.media_registered = impl_->relay.registered();
    s.limit_hits[static_cast<std::size_t>(Limit::unregistered_datagrams)] = relay.limit_hits;
    s.node_packets_sent = relay.node_sent;
    s.node_packets_received = relay.node_received;
    s.node_packets_forged = relay.node_forged;
    s.node_packets_dropped = relay.node_dropped;
    return s;
}

}  // namespace dtcall
