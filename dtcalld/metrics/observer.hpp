// Counts what ServerStats has only as totals: ended calls by EndReason,
// failed logins by LoginFailure, and the call-setup histogram. O(1) per
// event; add it with Server::add_observer() before Server::start() so its
// counts cover the whole run.
#pragma once

#include "snapshot.hpp"

#include <dtcall/events.hpp>

namespace dtcalld::metrics {

class MetricsObserver final : public dtcall::ServerObserver {
public:
    void login_failed(const std::string& name, const std::string& address, dtcall::LoginFailure reason) override;
    void call_ended(const dtcall::CallReport& report) override;

    const ObservedCounts& counts() const { return counts_; }

private:
    ObservedCounts counts_;
};

// Adds one setup time to the histogram (pure; the observer's arithmetic).
void observe_setup(SetupHistogram& histogram, std::chrono::milliseconds setup);

}  // namespace dtcalld::metrics
