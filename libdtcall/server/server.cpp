#include <dtcall/server.hpp>

#include "relay/address.hpp"
#include "relay/media_relay.hpp"
#include "server/rate_limiter.hpp"
#include "session/session.hpp"

#include "bound_socket.hpp"
#include "../crypto/shared_key_cache.hpp"
#include "missed_notices.hpp"
#include "user_timers.hpp"

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace dtcall {

struct DTCALL_HIDDEN Server::Impl final : Session::Host, MediaRelay::Host, CallRouter::Outbox, UserDirectory::Watcher {
    Impl(Config config, UserDirectory& dir, event_base* given)
        : cfg(std::move(config)), users(dir), base(given ? given : event_base_new()), own_base(!given),
          router(*this), relay(base, cfg, *this),
          held_direct(base, this, [](void* self, const std::string& user) {
              static_cast<Impl*>(self)->router.release_held_direct(user);
          }),
          grace(base, this, [](void* self, const std::string& user) {
              auto* impl = static_cast<Impl*>(self);
              if (impl->online_.count(user)) return;
              impl->log(LogLevel::info, user + " did not come back within the grace period; ending the call");
              impl->router.vanished(user);
              impl->missed_.forget(user);  // a later keepudp login must not hear of that call
              impl->user_keys_.erase(user);
          }) {
        crypto_init();
        router.set_policy([this](const std::string& caller, const std::string& callee) { return decide(caller, callee); });
        double refill = cfg.failed_logins_per_minute / 60.0;
        failed_by_ip_ = std::make_unique<RateLimiter>(cfg.failed_login_burst, refill);
        failed_by_user_ = std::make_unique<RateLimiter>(cfg.failed_login_burst, refill);
        failed_by_user_source_ = std::make_unique<RateLimiter>(1, refill);
        randombytes_buf(session_key_hash_key_, sizeof session_key_hash_key_);
        reaper_ = event_new(base, -1, 0, &Impl::on_reap, this);
        users.add_watcher(this);
    }

    ~Impl() override {
        users.remove_watcher(this);
        if (stop_deadline_) event_free(stop_deadline_);
        shut_down();
        held_direct.clear();
        grace.clear();
        if (reaper_) event_free(reaper_);
        relay.close();
        if (own_base) event_base_free(base);
        sodium_memzero(session_key_hash_key_, sizeof session_key_hash_key_);
    }

    // ---- lifecycle ----
    Status start() {
        if (!crypto_init()) return Error{ErrorCode::other, "libsodium could not be initialised"};
        if (!listeners_.empty()) return Error{ErrorCode::invalid_state, "server already started"};
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
                return Error{"command: cannot listen on TCP " + address.text};
            }
            evconnlistener_set_error_cb(listener, &Impl::on_accept_error);
            listeners_.push_back(listener);
            where += (where.empty() ? "" : ", ") + address.text;
        }
        command_port_ = port;
        auto opened = relay.open();
        if (!opened) {
            close_listeners();
            return opened;
        }
        log(LogLevel::info, "listening on " + where + ": TCP " + std::to_string(command_port_) + ", UDP " +
                                std::to_string(relay.port()));
        return Done{};
    }

    void close_listeners() {
        for (evconnlistener* listener : listeners_) evconnlistener_free(listener);
        listeners_.clear();
    }

    void stop_politely() {
        if (stopping_) return;
        stopping_ = true;
        close_listeners();
        router.end_all();
        std::vector<Session*> open;
        for (auto& [id, session] : sessions_) open.push_back(session.get());
        for (Session* session : open) session->close(Session::CloseReason::server_stopping);
        // Finishing frees every session, so it never runs inside a caller's
        // callback: it is an event, due when the last connection has flushed
        // and closed, or after 2 s (peers that do not read cannot hold it up).
        stop_deadline_ = evtimer_new(base, [](int, short, void* self) { static_cast<Impl*>(self)->finish_stop(); }, this);
        timeval limit{2, 0};
        evtimer_add(stop_deadline_, &limit);
        if (sessions_.empty()) event_active(stop_deadline_, EV_TIMEOUT, 0);
    }

    void finish_stop() {
        if (stop_deadline_) event_free(stop_deadline_);
        stop_deadline_ = nullptr;
        shut_down();
        stopped_ = true;
        if (own_base) event_base_loopexit(base, nullptr);
        auto done = std::move(stop_done_);
        for (auto& f : done)
            if (f) f();
    }

    void shut_down() {
        close_listeners();
        if (resume_accepting_) event_free(resume_accepting_);
        resume_accepting_ = nullptr;
        relay.close();
        online_.clear();
        user_keys_.clear();
        by_key_.clear();
        held_direct.clear();
        grace.clear();
        missed_.clear();
        sessions_.clear();
        graveyard_.clear();
    }

    // ---- accepting ----
    static void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* address, int length, void* self) {
        auto* impl = static_cast<Impl*>(self);
        if (impl->sessions_.size() >= impl->cfg.max_connections) {
            evutil_closesocket(fd);
            impl->hit_limit(Limit::connections, source_network(address, length));
            if (!impl->at_capacity_logged_) impl->log(LogLevel::warning, "connection limit reached; refusing new connections");
            impl->at_capacity_logged_ = true;
            return;
        }
        impl->at_capacity_logged_ = false;
        std::string ip = source_network(address, length);
        std::size_t& unauthenticated = impl->unauthenticated_by_ip_[ip];
        if (unauthenticated >= impl->cfg.max_unauthenticated_per_ip) {
            evutil_closesocket(fd);
            impl->hit_limit(Limit::unauthenticated_per_source, ip);
            // One line while the source stays at its cap, not one per refusal.
            if (impl->at_cap_logged_.insert(ip).second)
                impl->log(LogLevel::warning, ip + " has too many connections that are not logged in; refusing more");
            return;
        }
        ++unauthenticated;
        evutil_make_socket_nonblocking(fd);
        // Signaling is a trickle; a small kernel send buffer lets the output
        // bound notice a client that stopped reading in kilobytes, not megabytes.
        int send_buffer = 64 * 1024;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof send_buffer);
        // Each frame is written whole and should leave at once; Nagle would
        // hold it for the client's delayed ack (~40 ms).
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        std::uint64_t id = ++impl->next_id_;
        impl->sessions_[id] = std::make_unique<Session>(impl->base, fd, address, length, *impl, id);
    }

    // Out of file descriptors: stop accepting for a moment instead of spinning.
    static void on_accept_error(evconnlistener* listener, void* self) {
        auto* impl = static_cast<Impl*>(self);
        int err = EVUTIL_SOCKET_ERROR();
        impl->log(LogLevel::warning, std::string("accept failed: ") + evutil_socket_error_to_string(err) +
                                         "; pausing accepts for 1 s");
        evconnlistener_disable(listener);
        if (!impl->resume_accepting_)
            impl->resume_accepting_ = evtimer_new(impl->base, [](int, short, void* arg) {
                for (evconnlistener* l : static_cast<Impl*>(arg)->listeners_) evconnlistener_enable(l);
            }, impl);
        timeval second{1, 0};
        evtimer_add(impl->resume_accepting_, &second);
    }

    // Sessions close from inside their own callbacks; free them afterwards.
    static void on_reap(int, short, void* self) { static_cast<Impl*>(self)->graveyard_.clear(); }

    // ---- Session::Host ----
    const Config& config() const override { return cfg; }
    // The answer may come at once or later: it holds the session's id and a
    // token of this Server, never a Session* or an Impl* that may be gone.
    void look_up_user(Session& session, const std::string& user) override {
        std::weak_ptr<Impl*> token = alive_;
        std::uint64_t id = session.id();
        users.lookup(user, [token, id, user](UserLookup found) {
            auto alive = token.lock();
            if (!alive) return;  // the Server was destroyed meanwhile
            Impl* impl = *alive;
            auto it = impl->sessions_.find(id);
            if (it == impl->sessions_.end()) return;  // the connection closed meanwhile
            it->second->user_looked_up(user, found);
        });
    }
    const SharedKey* user_box_key(const PublicKey& user_key) override {
        return user_box_keys_.get(cfg.server_keys.secret_key, user_key);
    }

    void session_logged_in(Session& session, bool keepudp) override {
        const std::string& user = session.user();
        release_unauthenticated(session.ip());
        auto previous = online_.find(user);
        // The old connection logs out first (LogoutReason::replaced).
        if (previous != online_.end() && previous->second != &session)
            previous->second->close(Session::CloseReason::replaced);
        online_[user] = &session;
        // prepare hands it to this user's peers, for as long as the user is
        // online or within a call's grace period.
        user_keys_[user] = session.user_key();
        ++logins_;
        by_key_[key_hash(session.session_key())] = &session;
        grace.cancel(user);
        log(LogLevel::info, user + " logged in from " + session.address() + (keepudp ? " (keepudp)" : ""));
        for_each_observer([&](ServerObserver& o) { o.logged_in(user, session.address()); });
        router.logged_in(user, keepudp);
        if (keepudp) {
            for (const Notice& notice : missed_.take(user, now_ms())) deliver(user, notice);
        } else {
            missed_.forget(user);  // the client starts afresh, outside any call
        }
    }

    bool session_command(Session& session, wire::Verb verb, const wire::Command& command) override {
        const std::string& user = session.user();
        const std::string& other = command.fields[2];
        switch (verb) {
        case wire::Verb::call: return router.call(user, other);
        case wire::Verb::accept:
            // prepare carries both public keys, those their logins found; a
            // user who left the directory since was revoked and is offline.
            return router.accept(user, other);
        case wire::Verb::passthrough: return router.passthrough(user, other, command.fields[3]);
        case wire::Verb::ready: return router.ready(user, other);
        case wire::Verb::end: return router.end(user, other);
        default: return false;
        }
    }

    void release_unauthenticated(const std::string& ip) {
        auto it = unauthenticated_by_ip_.find(ip);
        if (it == unauthenticated_by_ip_.end()) return;
        if (--it->second < cfg.max_unauthenticated_per_ip) at_cap_logged_.erase(ip);
        if (it->second == 0) unauthenticated_by_ip_.erase(it);
    }

    double seconds_now() { return double(now_ms()) / 1000.0; }

    bool login_allowed(Session& session, const std::string& user) override {
        double now = seconds_now();
        bool ip_ok = failed_by_ip_->has_token(session.ip(), now);
        // A user name out of failures refuses only the sources that failed for
        // it themselves: the real user, who never fails, is never locked out.
        bool user_ok = failed_by_user_->has_token(user, now) ||
                       failed_by_user_source_->has_token(user_key(session, user), now);
        if (ip_ok && user_ok) return true;
        note_login_failure(session, user, LoginFailure::rate_limited);
        hit_limit(Limit::failed_logins, session.ip());
        // One line per key per window, not one per attempt.
        if (!ip_ok && failed_by_ip_->first_refusal(session.ip(), now))
            log(LogLevel::warning, "too many failed logins from " + session.ip() + "; refusing for a while");
        if (!user_ok && failed_by_user_->first_refusal(user, now))
            log(LogLevel::warning, "too many failed logins for user " + user +
                                       "; refusing sources that failed for it, for a while");
        return false;
    }

    // Which source failed for which user lately: refused by name alone,
    // anyone could lock any user out by failing on purpose (the harm of the
    // original's D4).
    static std::string user_key(const Session& session, const std::string& user) {
        return user + "@" + session.ip();
    }

    void login_failed(Session& session, const std::string& user, LoginFailure reason) override {
        // What the client got wrong costs it tokens; a directory that could
        // not answer is not the client's fault.
        if (reason != LoginFailure::directory_error) {
            double now = seconds_now();
            failed_by_ip_->take(session.ip(), now);
            failed_by_user_->take(user, now);
            failed_by_user_source_->take(user_key(session, user), now);
        }
        note_login_failure(session, user, reason);
    }

    void note_login_failure(Session& session, const std::string& user, LoginFailure reason) {
        ++login_failures_;
        for_each_observer([&](ServerObserver& o) { o.login_failed(user, session.address(), reason); });
    }

    void hit_limit(Limit limit, const std::string& address) {
        ++limit_hits_[static_cast<std::size_t>(limit)];
        for_each_observer([&](ServerObserver& o) { o.limit_hit(limit, address); });
    }

    // From the moment a connection starts closing, its user is offline and
    // its session key dead (not only once the last bytes are flushed).
    void session_closing(Session& session, Session::CloseReason reason) override {
        if (session.closed_from() != Session::State::logged_in) return;
        const std::string& user = session.user();
        auto it = online_.find(user);
        if (it == online_.end() || it->second != &session) return;
        online_.erase(it);
        forget_key(session);
        LogoutReason why = Session::logout_reason(reason);
        log(LogLevel::info, user + " logged out (" + to_string(why) + ")");
        for_each_observer([&](ServerObserver& o) { o.logged_out(user, why); });
        // PROTOCOL.md 7.3: the call stays for a keepudp reconnect, but not forever.
        if (router.phase(user) != CallPhase::idle) grace.arm(user, cfg.call_grace);
        else user_keys_.erase(user);
    }

    // Disconnects `user` at once; its call ends for the peer as if the user
    // vanished (no grace period). Kick and revocation.
    void drop_user(const std::string& user, Session::CloseReason reason) {
        auto it = online_.find(user);
        if (it != online_.end()) it->second->close(reason);
        grace.cancel(user);
        router.vanished(user);
        missed_.forget(user);
        user_keys_.erase(user);
    }

    // ---- UserDirectory::Watcher ----
    void user_removed(const std::string& user) override {
        // Logins under way for that name end too: their challenge was sealed
        // to the old key, or the answer is about to say "unknown".
        std::vector<Session*> pending;
        for (auto& [id, session] : sessions_) {
            Session::State state = session->state();
            if ((state == Session::State::looking_up || state == Session::State::awaiting_login2) &&
                session->pending_user() == user)
                pending.push_back(session.get());
        }
        for (Session* session : pending) session->close(Session::CloseReason::revoked);
        if (!online_.count(user) && router.phase(user) == CallPhase::idle) {
            user_keys_.erase(user);
            return;
        }
        log(LogLevel::info, user + " is no longer in the user directory; disconnecting");
        drop_user(user, Session::CloseReason::revoked);
    }

    void session_closed(Session& session) override {
        if (session.closed_from() != Session::State::logged_in) release_unauthenticated(session.ip());
        if (session.close_reason() == Session::CloseReason::output_overflow)
            hit_limit(Limit::output_bytes, session.address());
        else if (session.close_reason() == Session::CloseReason::frame_too_large)
            hit_limit(Limit::frame_size, session.address());
        session_closing(session, session.close_reason());
        auto it = sessions_.find(session.id());
        if (it != sessions_.end()) {
            graveyard_.push_back(std::move(it->second));
            sessions_.erase(it);
            event_active(reaper_, EV_TIMEOUT, 0);
        }
        if (stopping_ && sessions_.empty() && stop_deadline_) event_active(stop_deadline_, EV_TIMEOUT, 0);
    }

    void log(LogLevel level, const std::string& line) override {
        if (sink_) sink_(level, line);
    }

    // ---- session keys, looked up by keyed hash then compared in constant time ----
    std::uint64_t key_hash(const std::string& sk) const {
        std::uint64_t h = 0;
        crypto_shorthash(reinterpret_cast<unsigned char*>(&h), reinterpret_cast<const unsigned char*>(sk.data()),
                         sk.size(), session_key_hash_key_);
        return h;
    }
    void forget_key(const Session& session) {
        auto it = by_key_.find(key_hash(session.session_key()));
        if (it != by_key_.end() && it->second == &session) by_key_.erase(it);
    }

    // ---- MediaRelay::Host ----
    std::optional<KeyOwner> owner_of_session_key(const std::string& sk) override {
        auto it = by_key_.find(key_hash(sk));
        if (it == by_key_.end() || !secure_equal(it->second->session_key(), sk)) return std::nullopt;
        return KeyOwner{it->second->user(), it->second->tcp_key(), &it->second->registration_replays()};
    }
    bool media_registered(const std::string& user, const std::string& address) override {
        if (!router.media_registered(user)) return false;
        log(LogLevel::info, user + " registered media from " + address);
        for_each_observer([&](ServerObserver& o) { o.media_registered(user, address); });
        return true;
    }
    const std::string* relay_peer(const std::string& user) override { return router.relay_peer(user); }
    bool has_call(const std::string& user) override { return router.phase(user) != CallPhase::idle; }
    void unregistered_limit_hit(const std::string& address) override {
        for_each_observer([&](ServerObserver& o) { o.limit_hit(Limit::unregistered_datagrams, address); });
    }
    std::time_t now() override { return std::time(nullptr); }
    std::int64_t now_ms() override {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }

    // ---- CallRouter::Outbox ----
    bool online(const std::string& user) override { return online_.count(user) != 0; }

    void deliver(const std::string& user, const Notice& notice) override {
        auto it = online_.find(user);
        if (it == online_.end()) {
            // Dropped during a call: sent when it is back with keepudp.
            if (grace.armed(user)) missed_.keep(user, notice, now_ms(), now_ms() + cfg.call_grace.count());
            return;
        }
        // prepare carries the peer's public key file, as its login found it.
        std::optional<PublicKey> key;
        if (notice.kind == Notice::Kind::prepare) {
            auto known = user_keys_.find(notice.other);
            if (known != user_keys_.end()) key = known->second;
        }
        it->second->send(wire::notice_message(notice.kind, notice.other, notice.blob, key));
    }
    void direct_held(const std::string& user) override { held_direct.arm(user, cfg.direct_hold); }
    void relay_peer_changed(const std::string& user) override { relay.routes_changed(user); }
    void media_released(const std::string& user) override {
        // The router releases media before it reports the end: keep the
        // figures for that report.
        released_media_[user] = relay.flow(user);
        relay.release(user);
        held_direct.cancel(user);
    }
    // When each call (by caller) rang and started, and how far it got.
    struct CallTimes {
        std::chrono::system_clock::time_point rung_at;
        std::chrono::system_clock::time_point started_at;  // epoch: not started
        CallPhase phase = CallPhase::ringing;
    };
    std::unordered_map<std::string, CallTimes> call_times_;
    std::unordered_map<std::string, MediaRelay::FlowFigures> released_media_;

    // What calls() and the end report show of a call.
    CallInfo call_info(const std::string& caller, const std::string& callee, const MediaRelay::FlowFigures& from_caller,
                       const MediaRelay::FlowFigures& from_callee) const {
        CallInfo c;
        c.caller = caller;
        c.callee = callee;
        auto times = call_times_.find(caller);
        if (times != call_times_.end()) {
            c.phase = times->second.phase;
            c.rung_at = times->second.rung_at;
            c.started_at = times->second.started_at;
        }
        c.caller_to_callee = from_caller.flow;
        c.callee_to_caller = from_callee.flow;
        c.caller_media = from_caller.endpoint;
        c.callee_media = from_callee.endpoint;
        return c;
    }
    MediaRelay::FlowFigures take_released(const std::string& user) {
        auto it = released_media_.find(user);
        if (it == released_media_.end()) return relay.flow(user);
        MediaRelay::FlowFigures figures = std::move(it->second);
        released_media_.erase(it);
        return figures;
    }

    void call_rung(const std::string& a, const std::string& b) override {
        call_times_[a] = CallTimes{std::chrono::system_clock::now(), {}, CallPhase::ringing};
        log(LogLevel::info, a + " rings " + b);
        for_each_observer([&](ServerObserver& o) { o.call_rung(a, b); });
    }
    void call_accepted(const std::string& a, const std::string& b) override {
        call_times_[a].phase = CallPhase::accepted;
        log(LogLevel::info, b + " accepted the call from " + a);
        for_each_observer([&](ServerObserver& o) { o.call_accepted(a, b); });
    }
    void call_started(const std::string& a, const std::string& b) override {
        CallTimes& times = call_times_[a];
        times.phase = CallPhase::in_call;
        times.started_at = std::chrono::system_clock::now();
        log(LogLevel::info, "call " + a + " -> " + b + " started");
        for_each_observer([&](ServerObserver& o) { o.call_started(a, b); });
    }
    void call_ended(const std::string& a, const std::string& b, EndReason reason) override {
        log(LogLevel::info, "call " + a + " -> " + b + " ended: " + to_string(reason));
        grace.cancel(a);
        grace.cancel(b);
        // A party that is offline needs its key no more.
        if (!online_.count(a)) user_keys_.erase(a);
        if (!online_.count(b)) user_keys_.erase(b);
        CallReport report;
        report.ended_at = std::chrono::system_clock::now();
        if (!call_times_.count(a)) {  // refused before it rang (busy, policy): it lasted no time
            call_times_[a] = CallTimes{report.ended_at, {}, CallPhase::ringing};
        }
        MediaRelay::FlowFigures from_a = take_released(a), from_b = take_released(b);
        report.call = call_info(a, b, from_a, from_b);
        call_times_.erase(a);
        report.reason = reason;
        using std::chrono::duration_cast;
        using std::chrono::milliseconds;
        if (report.call.started_at != std::chrono::system_clock::time_point{}) {
            report.setup_time = duration_cast<milliseconds>(report.call.started_at - report.call.rung_at);
            report.duration = duration_cast<milliseconds>(report.ended_at - report.call.started_at);
        }
        for_each_observer([&](ServerObserver& o) { o.call_ended(report); });
    }

    Config cfg;
    UserDirectory& users;
    event_base* base;
    bool own_base;
    CallRouter router;
    MediaRelay relay;
    UserTimers held_direct;
    UserTimers grace;
    // Observers may remove themselves from a callback: iterate over a copy,
    // skipping any removed meanwhile.
    template <class F>
    void for_each_observer(F&& f) {
        if (observers_.empty()) return;
        std::vector<ServerObserver*> now = observers_;
        for (ServerObserver* o : now)
            if (std::find(observers_.begin(), observers_.end(), o) != observers_.end()) f(*o);
    }
    std::vector<ServerObserver*> observers_;
    LogSink sink_;
    std::vector<std::function<void()>> stop_done_;
    CallPolicy policy_;
    CallDecision decide(const std::string& caller, const std::string& callee);
    struct Drain {
        std::chrono::steady_clock::time_point deadline;
        std::function<void()> done;
        std::unique_ptr<event, void (*)(event*)> check{nullptr, event_free};
    };
    std::unique_ptr<Drain> drain_;
    static void on_drain_check(evutil_socket_t, short, void* self);
    bool stopped_ = false;  // finish_stop() ran

private:
    std::vector<evconnlistener*> listeners_;
    event* resume_accepting_ = nullptr;
    event* reaper_ = nullptr;
    event* stop_deadline_ = nullptr;
    bool stopping_ = false;
    std::uint16_t command_port_ = 0;
    std::uint64_t next_id_ = 0;
    bool at_capacity_logged_ = false;
    unsigned char session_key_hash_key_[crypto_shorthash_KEYBYTES];
    std::unordered_map<std::uint64_t, std::unique_ptr<Session>> sessions_;
    std::vector<std::unique_ptr<Session>> graveyard_;
    SharedKeyCache user_box_keys_;
    MissedNotices missed_;
    std::unordered_map<std::string, Session*> online_;
    // The key each online user's login found (and a dropped user's, through
    // its call's grace period): what `prepare` gives the peer.
    std::unordered_map<std::string, PublicKey> user_keys_;
    std::uint64_t logins_ = 0;
    std::uint64_t login_failures_ = 0;
    std::array<std::uint64_t, limit_count> limit_hits_{};
    // Directory answers hold a weak copy: once the Server is gone they do nothing.
    std::shared_ptr<Impl*> alive_ = std::make_shared<Impl*>(this);
    std::unordered_map<std::uint64_t, Session*> by_key_;
    std::unordered_map<std::string, std::size_t> unauthenticated_by_ip_;
    std::unordered_set<std::string> at_cap_logged_;
    std::unique_ptr<RateLimiter> failed_by_ip_;
    std::unique_ptr<RateLimiter> failed_by_user_;
    std::unique_ptr<RateLimiter> failed_by_user_source_;

    friend class Server;
};

Server::Server(Config config, UserDirectory& users, event_base* base)
    : impl_(std::make_unique<Impl>(std::move(config), users, base)) {}
Server::~Server() = default;

void Server::add_observer(ServerObserver* observer) {
    if (observer && std::find(impl_->observers_.begin(), impl_->observers_.end(), observer) == impl_->observers_.end())
        impl_->observers_.push_back(observer);
}
void Server::remove_observer(ServerObserver* observer) {
    auto& v = impl_->observers_;
    v.erase(std::remove(v.begin(), v.end(), observer), v.end());
}
void Server::set_log(LogSink sink) { impl_->sink_ = std::move(sink); }
void Server::set_policy(CallPolicy policy) { impl_->policy_ = std::move(policy); }

// The router's one policy: a draining server places no call; then the embedder's.
CallDecision Server::Impl::decide(const std::string& caller, const std::string& callee) {
    if (drain_) return CallDecision::busy;
    if (!policy_) return CallDecision::allow;
    auto it = online_.find(caller);
    return policy_(CallRequest{caller, callee, it == online_.end() ? std::string() : it->second->address()});
}

void Server::drain(std::chrono::seconds limit, std::function<void()> done) {
    if (impl_->drain_ || impl_->stopping_ || impl_->stopped_) return stop(std::move(done));
    impl_->log(LogLevel::info, "draining: no new calls or logins; stopping when the last call ends, at most in " +
                                   std::to_string(limit.count()) + " s");
    impl_->drain_ = std::make_unique<Impl::Drain>();
    impl_->drain_->deadline = std::chrono::steady_clock::now() + limit;
    impl_->drain_->done = std::move(done);
    impl_->drain_->check.reset(event_new(impl_->base, -1, EV_PERSIST, &Impl::on_drain_check, impl_.get()));
    timeval quarter{0, 250000};
    event_add(impl_->drain_->check.get(), &quarter);
    event_active(impl_->drain_->check.get(), EV_TIMEOUT, 0);
}

bool Server::draining() const { return impl_->drain_ != nullptr; }

// Checked a few times a second: a counter, not a walk over users.
void Server::Impl::on_drain_check(evutil_socket_t, short, void* self) {
    auto* impl = static_cast<Impl*>(self);
    bool over = std::chrono::steady_clock::now() >= impl->drain_->deadline;
    if (impl->router.calls() != 0 && !over) return;
    if (impl->router.calls() != 0) impl->log(LogLevel::info, "drain time is up; ending the remaining calls");
    event_del(impl->drain_->check.get());
    auto done = std::move(impl->drain_->done);
    impl->stop_done_.push_back(std::move(done));
    impl->stop_politely();
}
Status Server::start() { return impl_->start(); }
void Server::run() { event_base_dispatch(impl_->base); }

void Server::stop(std::function<void()> done) {
    if (impl_->stopped_) {
        // Already stopped: `done` still runs, from the loop, as promised.
        if (!done) return;
        auto* pending = new std::function<void()>(std::move(done));
        event_base_once(impl_->base, -1, EV_TIMEOUT, [](evutil_socket_t, short, void* arg) {
            std::unique_ptr<std::function<void()>> f(static_cast<std::function<void()>*>(arg));
            (*f)();
        }, pending, nullptr);
        return;
    }
    impl_->stop_done_.push_back(std::move(done));
    impl_->stop_politely();
}

Status Server::kick(const std::string& user) {
    auto it = impl_->online_.find(user);
    if (it == impl_->online_.end()) return Error{ErrorCode::not_found, "user " + user + " is not online"};
    impl_->log(LogLevel::info, "kicking " + user);
    // No grace period: the peer is told at once, as for a user who vanished.
    impl_->drop_user(user, Session::CloseReason::kicked);
    return Done{};
}

Status Server::end_call(const std::string& user) {
    if (!impl_->router.end_by_server(user)) return Error{ErrorCode::not_found, "user " + user + " has no call"};
    return Done{};
}

std::vector<CallInfo> Server::calls() const {
    std::vector<CallInfo> calls;
    impl_->router.for_each_call([&](const std::string& caller, const std::string& callee, CallPhase phase) {
        CallInfo c = impl_->call_info(caller, callee, impl_->relay.flow(caller), impl_->relay.flow(callee));
        c.phase = phase;
        calls.push_back(std::move(c));
    });
    return calls;
}

std::vector<OnlineUser> Server::online_users() const {
    std::vector<OnlineUser> users;
    users.reserve(impl_->online_.size());
    for (const auto& [name, session] : impl_->online_) {
        OnlineUser u;
        u.user = name;
        u.address = session->address();
        u.phase = impl_->router.phase(name);
        if (auto peer = impl_->router.peer(name)) u.peer = *peer;
        users.push_back(std::move(u));
    }
    return users;
}

Status Server::reload_users() {
    std::vector<std::string> warnings;
    Status status = impl_->users.reload(warnings);
    if (status) impl_->user_box_keys_.clear();
    for (const std::string& w : warnings) impl_->log(LogLevel::warning, w);
    if (status) impl_->log(LogLevel::info, "users reloaded");
    else impl_->log(LogLevel::error, "users not reloaded: " + status.error());
    return status;
}

std::uint16_t Server::command_port() const { return impl_->command_port_; }
std::uint16_t Server::media_port() const { return impl_->relay.port(); }
event_base* Server::base() const { return impl_->base; }

ServerStats Server::stats() const {
    ServerStats s;
    s.connections = impl_->sessions_.size();
    s.logged_in = impl_->online_.size();
    s.logins = impl_->logins_;
    s.login_failures = impl_->login_failures_;
    s.limit_hits = impl_->limit_hits_;
    impl_->router.for_each_call([&](const std::string&, const std::string&, CallPhase phase) {
        if (phase == CallPhase::ringing) ++s.calls_ringing;
        else if (phase == CallPhase::accepted) ++s.calls_accepted;
        else ++s.calls_in_progress;
    });
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
    return s;
}

}  // namespace dtcall
