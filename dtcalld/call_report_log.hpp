// One log line per ended call (the per-call report): who called whom, how long
// the set-up and the call took, why it ended, and per direction what the
// relay carried, its longest silence and how often each party's media
// address moved. format_call_report() is pure; CallReportLog writes it.
#pragma once

#include "log_file.hpp"

#include <dtcall/events.hpp>

#include <string>

namespace dtcalld {

// "call alice -> bob ended (hangup): setup 0.120 s, duration 5.002 s;
//  alice -> bob 250 packets 32000 bytes longest gap 40 ms;
//  bob -> alice 248 packets 31744 bytes longest gap 60 ms;
//  media moves alice 0 bob 1" (one line; wrapped here).
std::string format_call_report(const dtcall::CallReport& report);

class CallReportLog final : public dtcall::ServerObserver {
public:
    explicit CallReportLog(LogFile& log) : log_(log) {}
    void call_ended(const dtcall::CallReport& report) override;

private:
    LogFile& log_;
};

}  // namespace dtcalld
