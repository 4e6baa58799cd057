// What the server remembers of each call beyond the router's rules: when it
// rang and started, and each party's media figures once the relay has let
// go of them (the router releases media before it reports the end). From
// these come Server::calls() and the CallReport of an ended call. Pure: the
// caller passes the time.
#pragma once

#include "relay/flow_figures.hpp"

#include <dtcall/events.hpp>

#include <chrono>
#include <string>
#include <unordered_map>

namespace dtcall {

class CallLedger {
public:
    using Time = std::chrono::system_clock::time_point;

    void rung(const std::string& caller, Time at);
    void accepted(const std::string& caller);
    void started(const std::string& caller, Time at);
    // The relay forgets `user`'s figures now; keep them for the report.
    void media_released(const std::string& user, FlowFigures figures);
    // The figures kept for `user`, or `live` when none were kept.
    FlowFigures released_or(const std::string& user, FlowFigures live);

    CallInfo info(const std::string& caller, const std::string& callee, CallPhase phase, const FlowFigures& from_caller,
                  const FlowFigures& from_callee) const;
    // The call is over: its report (phase: how far it got), and the ledger
    // forgets it. A call refused
    // before it rang (busy, policy) lasted no time.
    CallReport ended(const std::string& caller, const std::string& callee, EndReason reason, Time at,
                     const FlowFigures& from_caller, const FlowFigures& from_callee);
    void clear();
    std::size_t size() const { return calls_.size(); }

private:
    struct Times {
        Time rung_at;
        Time started_at;  // epoch: not started
        CallPhase reached = CallPhase::ringing;
    };
    std::unordered_map<std::string, Times> calls_;  // by caller
    std::unordered_map<std::string, FlowFigures> released_;
};

}  // namespace dtcall
