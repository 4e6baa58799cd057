#include "server/admission.hpp"

namespace dtcall {

Admission::Admission(const Config& config)
    : config_(config),
      failed_by_source_(config.failed_login_burst, config.failed_logins_per_minute / 60.0),
      failed_by_user_(config.failed_login_burst, config.failed_logins_per_minute / 60.0),
      failed_by_user_at_source_(1, config.failed_logins_per_minute / 60.0) {}

std::optional<Limit> Admission::admit(const std::string& source, std::size_t open) {
    if (open >= config_.max_connections) return Limit::connections;
    at_capacity_logged_ = false;
    std::size_t& count = unauthenticated_[source];
    if (count >= config_.max_unauthenticated_per_ip) return Limit::unauthenticated_per_source;
    ++count;
    return std::nullopt;
}

bool Admission::first_refusal(Limit limit, const std::string& source) {
    if (limit == Limit::connections) {
        bool first = !at_capacity_logged_;
        at_capacity_logged_ = true;
        return first;
    }
    return at_source_cap_logged_.insert(source).second;
}

void Admission::authenticated_or_closed(const std::string& source) {
    auto it = unauthenticated_.find(source);
    if (it == unauthenticated_.end()) return;
    if (--it->second < config_.max_unauthenticated_per_ip) at_source_cap_logged_.erase(source);
    if (it->second == 0) unauthenticated_.erase(it);
}

Admission::LoginVerdict Admission::may_try_login(const std::string& source, const std::string& user, double now) {
    if (!failed_by_source_.has_token(source, now)) return LoginVerdict::source_refused;
    if (failed_by_user_.has_token(user, now) || failed_by_user_at_source_.has_token(user_at(user, source), now))
        return LoginVerdict::allowed;
    return LoginVerdict::user_refused;
}

void Admission::login_failed(const std::string& source, const std::string& user, double now) {
    failed_by_source_.take(source, now);
    failed_by_user_.take(user, now);
    failed_by_user_at_source_.take(user_at(user, source), now);
}

bool Admission::first_login_refusal(LoginVerdict verdict, const std::string& source, const std::string& user,
                                    double now) {
    switch (verdict) {
    case LoginVerdict::allowed: return false;
    case LoginVerdict::source_refused: return failed_by_source_.first_refusal(source, now);
    case LoginVerdict::user_refused: return failed_by_user_.first_refusal(user, now);
    }
    return false;
}

std::size_t Admission::unauthenticated(const std::string& source) const {
    auto it = unauthenticated_.find(source);
    return it == unauthenticated_.end() ? 0 : it->second;
}

}  // namespace dtcall
