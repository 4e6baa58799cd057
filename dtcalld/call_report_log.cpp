#include "call_report_log.hpp"

#include <cstdio>

namespace dtcalld {
namespace {

// Milliseconds as seconds with three decimals: "5.002 s".
std::string seconds_text(std::chrono::milliseconds ms) {
    char buffer[32];
    long long n = ms.count() < 0 ? 0 : ms.count();
    std::snprintf(buffer, sizeof buffer, "%lld.%03lld s", n / 1000, n % 1000);
    return buffer;
}

std::string direction(const std::string& from, const std::string& to, const dtcall::MediaFlow& flow) {
    return from + " -> " + to + " " + std::to_string(flow.packets) + " packets " + std::to_string(flow.bytes) +
           " bytes longest gap " + std::to_string(flow.longest_gap.count()) + " ms";
}

}  // namespace

std::string format_call_report(const dtcall::CallReport& report) {
    const dtcall::CallInfo& c = report.call;
    return "call " + c.caller + " -> " + c.callee + " ended (" + dtcall::to_string(report.reason) + "): setup " +
           seconds_text(report.setup_time) + ", duration " + seconds_text(report.duration) + "; " +
           direction(c.caller, c.callee, c.caller_to_callee) + "; " +
           direction(c.callee, c.caller, c.callee_to_caller) + "; media moves " + c.caller + " " +
           std::to_string(c.caller_media.moves) + " " + c.callee + " " + std::to_string(c.callee_media.moves);
}

void CallReportLog::call_ended(const dtcall::CallReport& report) {
    log_.write(dtcall::LogLevel::info, format_call_report(report));
}

}  // namespace dtcalld
