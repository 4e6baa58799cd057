// Admission: who may connect and who may try to log in. Per-source counts of
// connections that have not logged in, the total connection cap, and the
// failed-login limits (per source, per user name, per name-and-source). Pure:
// no sockets, no clock (callers pass the time in seconds); it says what to
// do and which limit refused, and the Server acts, logs and reports.
#pragma once

#include "server/rate_limiter.hpp"

#include <dtcall/config.hpp>
#include <dtcall/events.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace dtcall {

class Admission {
public:
    explicit Admission(const Config& config);

    // A connection from `source` (see source_network()) was accepted by the
    // kernel, with `open` connections already held. nullopt: take it (it now
    // counts as unauthenticated for `source`); else the limit that refuses it.
    std::optional<Limit> admit(const std::string& source, std::size_t open);
    // True the first time in a row a limit refuses (log one line, not one
    // per refusal); false while it keeps refusing. Reset when admitted again.
    bool first_refusal(Limit limit, const std::string& source);
    // That source's connection logged in or closed before logging in.
    void authenticated_or_closed(const std::string& source);

    // May a connection from `source` try to log in as `user` now? The real
    // user, who never fails, is never locked out by others failing for it:
    // a name out of failures refuses only the sources that failed for it.
    enum class LoginVerdict { allowed, source_refused, user_refused };
    LoginVerdict may_try_login(const std::string& source, const std::string& user, double now);
    // A failed login: one token from each bucket it concerns.
    void login_failed(const std::string& source, const std::string& user, double now);
    // For one log line per window: the first refusal since the bucket ran dry.
    bool first_login_refusal(LoginVerdict verdict, const std::string& source, const std::string& user,
                             double now);

    std::size_t unauthenticated(const std::string& source) const;

private:
    static std::string user_at(const std::string& user, const std::string& source) { return user + "@" + source; }

    const Config& config_;
    std::unordered_map<std::string, std::size_t> unauthenticated_;
    std::unordered_set<std::string> at_source_cap_logged_;
    bool at_capacity_logged_ = false;
    RateLimiter failed_by_source_;
    RateLimiter failed_by_user_;
    RateLimiter failed_by_user_at_source_;
};

}  // namespace dtcall
