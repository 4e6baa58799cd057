// What a Server tells its observers, and the figures it reports: why users
// logged out or failed to log in, which limit refused whom, what each call
// carried. All callbacks run on the event-loop thread of the Server.
#pragma once

#include <dtcall/export.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace dtcall {

// A user's call, as the server sees it:
//   idle --call--> ringing --accept--> accepted --ready (both)--> in_call
enum class CallPhase { idle, ringing, accepted, in_call };
DTCALL_API const char* to_string(CallPhase phase);

// Why a call ended.
enum class EndReason {
    hangup,           // a party sent `end` during the call
    declined,         // the callee sent `end` while it rang
    cancelled,        // the caller sent `end` while it rang
    relogin,          // a party logged in again without keepudp
    peer_vanished,    // a party dropped and did not come back within the grace period, or was kicked
    busy,             // the callee was offline or in another call, or the policy said busy
    refused,          // the policy refused the call
    server_stopping,  // Server::stop(), or a drain ran out of time
    ended_by_server,  // Server::end_call()
};
DTCALL_API const char* to_string(EndReason reason);

// Why a logged-in user's connection closed.
enum class LogoutReason {
    closed_by_peer,    // the client closed the connection (or it broke)
    idle,              // nothing received for Config::idle_timeout
    kicked,            // Server::kick()
    revoked,           // the user left the directory
    replaced,          // a newer login of the same user
    output_overflow,   // the client stopped reading (Config::max_output_bytes)
    protocol_error,    // a frame over the size limit or otherwise unreadable
    server_stopping,   // Server::stop()
};
DTCALL_API const char* to_string(LogoutReason reason);

// Why a login attempt failed.
enum class LoginFailure {
    unknown_user,      // not in the directory
    bad_response,      // login2 did not answer the challenge
    rate_limited,      // too many failed logins from this source or for this name
    unusable_key,      // the directory's key for the user is one X25519 refuses
    directory_error,   // the directory could not answer
    refused,           // the server is not taking logins (draining, stopping)
};
DTCALL_API const char* to_string(LoginFailure reason);

// A limit that refused or cut off someone.
enum class Limit {
    connections,                // Config::max_connections: a connection refused at accept
    unauthenticated_per_source, // Config::max_unauthenticated_per_ip
    failed_logins,              // Config::failed_login_burst / failed_logins_per_minute
    output_bytes,               // Config::max_output_bytes: a client that does not read
    frame_size,                 // Config::max_frame_before_login / _after_login
    unregistered_datagrams,     // Config::unregistered_packets_per_second
};
DTCALL_API const char* to_string(Limit limit);
constexpr std::size_t limit_count = 6;

// Media relayed in one direction of a call.
struct MediaFlow {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;  // datagram bytes as relayed (encrypted payload)
    // Longest time between two consecutive packets in this direction (zero
    // with fewer than two packets): a long gap is audio that dropped out.
    std::chrono::milliseconds longest_gap{0};
};

// One party's media address.
struct MediaEndpoint {
    std::string address;    // "ip:port" of its last registration; empty before one
    unsigned moves = 0;     // times it registered from a new address (NAT rebinding)
};

// A call as Server::calls() lists it, and the core of its report.
struct CallInfo {
    std::string caller;
    std::string callee;
    CallPhase phase = CallPhase::ringing;
    std::chrono::system_clock::time_point rung_at;     // the `call`
    std::chrono::system_clock::time_point started_at;  // `start` sent; epoch while not started
    MediaFlow caller_to_callee;
    MediaFlow callee_to_caller;
    MediaEndpoint caller_media;
    MediaEndpoint callee_media;
    // In a cluster, the node each party is connected to (the caller's node
    // owns the call); empty on a single node.
    std::string caller_node;
    std::string callee_node;
};

// A call that ended: everything Server::calls() showed last, and how it ended.
struct CallReport {
    CallInfo call;
    EndReason reason = EndReason::hangup;
    std::chrono::system_clock::time_point ended_at;
    // From `call` to `start`; zero when the call never started.
    std::chrono::milliseconds setup_time{0};
    // From `start` to the end; zero when the call never started.
    std::chrono::milliseconds duration{0};
};

// What a Server asks its policy before it rings anyone.
struct CallRequest {
    std::string caller;
    std::string callee;
    std::string caller_address;  // "ip:port" of the caller's command connection
};
enum class CallDecision {
    allow,   // ring the callee
    refuse,  // the caller gets `end` at once (EndReason::refused)
    busy,    // the caller gets what a busy callee gives (EndReason::busy)
};
// Unset: every logged-in user may call every other.
using CallPolicy = std::function<CallDecision(const CallRequest&)>;

// Callbacks for what happens on a Server. Override what you need. They run on
// the event-loop thread, inside the Server's own processing: see server.hpp
// for which Server methods they may call.
class DTCALL_API ServerObserver {
public:
    virtual ~ServerObserver();
    virtual void logged_in(const std::string& user, const std::string& address);
    virtual void logged_out(const std::string& user, LogoutReason reason);
    // `name` is what the client claimed (may be any [0-9A-Za-z+-] string).
    virtual void login_failed(const std::string& name, const std::string& address, LoginFailure reason);
    virtual void call_rung(const std::string& caller, const std::string& callee);
    virtual void call_accepted(const std::string& caller, const std::string& callee);
    virtual void call_started(const std::string& caller, const std::string& callee);
    virtual void call_ended(const CallReport& report);
    virtual void media_registered(const std::string& user, const std::string& address);
    // `address` is the source refused or cut off ("ip" or "ip:port").
    virtual void limit_hit(Limit limit, const std::string& address);
};

}  // namespace dtcall
