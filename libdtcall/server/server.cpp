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
#include "server/cluster_calls.hpp"
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
                                          ClusterCalls::Host {
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
            if (auto node_leg = cluster->open_node_leg(); !node_leg) {
                relay.close();
                close_listeners();
                return node_leg;
            }
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
        if (cluster) cluster->end_all();
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
        if (cluster) cluster->logged_in(user, keepudp);
    }

    bool session_command(Session& session, wire::Verb verb, const wire::Command& command) override {
        const std::string& user = session.user();
        const std::string& other = command.fields[2];
        if (cluster)
            if (auto handled = cluster->command(user, verb, other)) return *handled;
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
        if (cluster) cluster->vanished(user);
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
        if (cluster) cluster->vanished(user);
    }

    // ---- MediaRelay::Host ----
    std::optional<KeyOwner> owner_of_session_key(const std::string& sk) override {
        Session* owner = sessions.owner_of_key(sk);
        if (!owner) return std::nullopt;
        return KeyOwner{owner->user(), owner->tcp_key(), &owner->registration_replays()};
    }
    bool media_registered(const std::string& user, const std::string& address) override {
        bool remote = cluster && cluster->media_registered(user);
        if (!remote && !router.media_registered(user)) return false;
        log(LogLevel::info, user + " registered media from " + address);
        observers.notify([&](ServerObserver& o) { o.media_registered(user, address); });
        return true;
    }
    const std::string* relay_peer(const std::string& user) override {
        bool remote = false;
        if (cluster)
            if (const std::string* peer = cluster->relay_peer(user, remote); remote) return peer;
        return router.relay_peer(user);
    }
    std::optional<std::string> remote_node_address(const std::string& user) override {
        return cluster ? cluster->remote_node_address(user) : std::nullopt;
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
        if (cluster && cluster->direct_held(user)) return;
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
        if (cluster) cluster->call_ended(a, b);
        presence->call_over(a);
        presence->call_over(b);
        CallReport report =
            ledger.ended(a, b, reason, std::chrono::system_clock::now(), ledger.released_or(a, relay.flow(a)),
                         ledger.released_or(b, relay.flow(b)));
        observers.notify([&](ServerObserver& o) { o.call_ended(report); });
    }

    // ---- cluster (only after attach_cluster) ----
    static void attach(Server& server, ClusterLink& link) { server.impl_->use_cluster(link); }

    void use_cluster(ClusterLink& link) {
        cluster = std::make_unique<ClusterCalls>(link, local_presence, router, relay, held_direct, cfg, *this);
        presence = &cluster->presence();
    }

    CallPhase phase_of(const std::string& user) const {
        CallPhase phase = router.phase(user);
        if (phase != CallPhase::idle || !cluster) return phase;
        const ClusterCalls::RemoteLeg* leg = cluster->leg(user);
        return leg ? leg->phase : CallPhase::idle;
    }

    // ---- ClusterCalls::Host ----
    bool draining() const override { return drain != nullptr; }
    void replaced_elsewhere(const std::string& user) override {
        if (const Presence::Entry* entry = local_presence.entry(user))
            static_cast<Session*>(entry->connection)->close(Session::CloseReason::replaced);
    }

    // `direct` held for `user` goes now: its media registered, or the bound passed.
    void release_direct(const std::string& user) {
        if (cluster && cluster->release_direct(user)) return;
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
        // Calls of our users that other nodes own count too: a stop would cut them.
        std::size_t calls = impl->router.calls() + (impl->cluster ? impl->cluster->remote_calls() : 0);
        if (calls != 0 && !over) return;
        if (calls != 0) impl->log(LogLevel::info, "drain time is up; ending the remaining calls");
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
    // Only with attach_cluster(): what crosses nodes.
    std::unique_ptr<ClusterCalls> cluster;

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
        if (impl_->cluster) {
            if (const ClusterCalls::RemoteLeg* leg = impl_->cluster->leg(name)) {
                u.phase = leg->phase;
                u.peer = leg->peer;
            }
            u.node = impl_->cluster->node_name();
        }
        users.push_back(std::move(u));
    });
    return users;
}

std::vector<CallInfo> Server::calls() const {
    std::vector<CallInfo> calls;
    impl_->router.for_each_call([&](const std::string& caller, const std::string& callee, CallPhase phase) {
        calls.push_back(impl_->ledger.info(caller, callee, phase, impl_->relay.flow(caller), impl_->relay.flow(callee)));
        if (impl_->cluster) {
            calls.back().caller_node = impl_->cluster->node_of(caller);
            calls.back().callee_node = impl_->cluster->node_of(callee);
        }
    });
    // Calls of users of this node that another node owns: as far as this node sees them.
    if (impl_->cluster) impl_->cluster->list_calls(calls);
    return calls;
}

Status Server::kick(const std::string& user) {
    if (!impl_->presence->entry(user)) return Error{ErrorCode::not_found, "user " + user + " is not online"};
    impl_->log(LogLevel::info, "kicking " + user);
    impl_->drop_user(user, Session::CloseReason::kicked);
    return Done{};
}

Status Server::end_call(const std::string& user) {
    if (!impl_->router.end_by_server(user) && !(impl_->cluster && impl_->cluster->end_call(user)))
        return Error{ErrorCode::not_found, "user " + user + " has no call"};
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
