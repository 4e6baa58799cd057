#include "server/call_ledger.hpp"

namespace dtcall {

void CallLedger::rung(const std::string& caller, Time at) { calls_[caller] = Times{at, {}, CallPhase::ringing}; }

void CallLedger::accepted(const std::string& caller) { calls_[caller].reached = CallPhase::accepted; }

void CallLedger::started(const std::string& caller, Time at) {
    Times& times = calls_[caller];
    times.started_at = at;
    times.reached = CallPhase::in_call;
}

void CallLedger::media_released(const std::string& user, FlowFigures figures) {
    released_[user] = std::move(figures);
}

FlowFigures CallLedger::released_or(const std::string& user, FlowFigures live) {
    auto it = released_.find(user);
    if (it == released_.end()) return live;
    FlowFigures figures = std::move(it->second);
    released_.erase(it);
    return figures;
}

CallInfo CallLedger::info(const std::string& caller, const std::string& callee, CallPhase phase,
                          const FlowFigures& from_caller, const FlowFigures& from_callee) const {
    CallInfo c;
    c.caller = caller;
    c.callee = callee;
    c.phase = phase;
    if (auto times = calls_.find(caller); times != calls_.end()) {
        c.rung_at = times->second.rung_at;
        c.started_at = times->second.started_at;
    }
    c.caller_to_callee = from_caller.flow;
    c.callee_to_caller = from_callee.flow;
    c.caller_media = from_caller.endpoint;
    c.callee_media = from_callee.endpoint;
    return c;
}

CallReport CallLedger::ended(const std::string& caller, const std::string& callee, EndReason reason, Time at,
                             const FlowFigures& from_caller, const FlowFigures& from_callee) {
    CallReport report;
    report.reason = reason;
    report.ended_at = at;
    if (!calls_.count(caller)) calls_[caller] = Times{at, {}, CallPhase::ringing};
    const Times& times = calls_[caller];
    bool started = times.started_at != Time{};
    report.call = info(caller, callee, times.reached, from_caller, from_callee);
    calls_.erase(caller);
    using std::chrono::duration_cast;
    using std::chrono::milliseconds;
    if (started) {
        report.setup_time = duration_cast<milliseconds>(report.call.started_at - report.call.rung_at);
        report.duration = duration_cast<milliseconds>(report.ended_at - report.call.started_at);
    }
    return report;
}

void CallLedger::clear() {
    calls_.clear();
    released_.clear();
}

}  // namespace dtcall
