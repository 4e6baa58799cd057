// Names for the public enums (logs, metrics labels) and the observer's
// do-nothing defaults.
#include <dtcall/events.hpp>
#include <dtcall/log.hpp>
#include <dtcall/result.hpp>

#include <cstdio>
#include <cstdlib>

namespace dtcall {

const char* to_string(ErrorCode code) {
    switch (code) {
    case ErrorCode::other: return "other";
    case ErrorCode::address_in_use: return "address in use";
    case ErrorCode::bad_address: return "bad address";
    case ErrorCode::permission: return "permission denied";
    case ErrorCode::bad_config: return "bad config";
    case ErrorCode::bad_key: return "bad key";
    case ErrorCode::io: return "i/o error";
    case ErrorCode::not_found: return "not found";
    case ErrorCode::not_logged_in: return "not logged in";
    case ErrorCode::invalid_state: return "invalid state";
    case ErrorCode::invalid_argument: return "invalid argument";
    case ErrorCode::unavailable: return "unavailable";
    }
    return "unknown";
}

namespace detail {
void bad_result_access(const std::string& message) {
    std::fprintf(stderr, "dtcall: value() of a failed Result: %s\n", message.c_str());
    std::abort();
}
}  // namespace detail

const char* to_string(LogLevel level) {
    switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
    }
    return "unknown";
}

const char* to_string(CallPhase phase) {
    switch (phase) {
    case CallPhase::idle: return "idle";
    case CallPhase::ringing: return "ringing";
    case CallPhase::accepted: return "accepted";
    case CallPhase::in_call: return "in call";
    }
    return "unknown";
}

const char* to_string(EndReason reason) {
    switch (reason) {
    case EndReason::hangup: return "hangup";
    case EndReason::declined: return "declined";
    case EndReason::cancelled: return "cancelled";
    case EndReason::relogin: return "relogin";
    case EndReason::peer_vanished: return "peer vanished";
    case EndReason::busy: return "busy";
    case EndReason::refused: return "refused";
    case EndReason::server_stopping: return "server stopping";
    case EndReason::ended_by_server: return "ended by server";
    }
    return "unknown";
}

const char* to_string(LogoutReason reason) {
    switch (reason) {
    case LogoutReason::closed_by_peer: return "closed by peer";
    case LogoutReason::idle: return "idle";
    case LogoutReason::kicked: return "kicked";
    case LogoutReason::revoked: return "revoked";
    case LogoutReason::replaced: return "replaced";
    case LogoutReason::output_overflow: return "output overflow";
    case LogoutReason::protocol_error: return "protocol error";
    case LogoutReason::server_stopping: return "server stopping";
    }
    return "unknown";
}

const char* to_string(LoginFailure reason) {
    switch (reason) {
    case LoginFailure::unknown_user: return "unknown user";
    case LoginFailure::bad_response: return "bad response";
    case LoginFailure::rate_limited: return "rate limited";
    case LoginFailure::unusable_key: return "unusable key";
    case LoginFailure::directory_error: return "directory error";
    case LoginFailure::refused: return "refused";
    }
    return "unknown";
}

const char* to_string(Limit limit) {
    switch (limit) {
    case Limit::connections: return "connections";
    case Limit::unauthenticated_per_source: return "unauthenticated per source";
    case Limit::failed_logins: return "failed logins";
    case Limit::output_bytes: return "output bytes";
    case Limit::frame_size: return "frame size";
    case Limit::unregistered_datagrams: return "unregistered datagrams";
    }
    return "unknown";
}

ServerObserver::~ServerObserver() = default;
void ServerObserver::logged_in(const std::string&, const std::string&) {}
void ServerObserver::logged_out(const std::string&, LogoutReason) {}
void ServerObserver::login_failed(const std::string&, const std::string&, LoginFailure) {}
void ServerObserver::call_rung(const std::string&, const std::string&) {}
void ServerObserver::call_accepted(const std::string&, const std::string&) {}
void ServerObserver::call_started(const std::string&, const std::string&) {}
void ServerObserver::call_ended(const CallReport&) {}
void ServerObserver::media_registered(const std::string&, const std::string&) {}
void ServerObserver::limit_hit(Limit, const std::string&) {}

}  // namespace dtcall
