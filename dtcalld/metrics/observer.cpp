#include "observer.hpp"

namespace dtcalld::metrics {
namespace {

template <typename Enum, std::size_t N>
std::size_t index_of(const std::array<Enum, N>& all, Enum value) {
    for (std::size_t i = 0; i < N; ++i) {
        if (all[i] == value) return i;
    }
    return N;
}

}  // namespace

void observe_setup(SetupHistogram& histogram, std::chrono::milliseconds setup) {
    double seconds = double(setup.count()) / 1000.0;
    for (std::size_t i = 0; i < setup_bounds.size(); ++i) {
        if (seconds <= setup_bounds[i]) {
            ++histogram.buckets[i];
            break;
        }
    }
    ++histogram.count;
    histogram.sum_seconds += seconds;
}

void MetricsObserver::login_failed(const std::string&, const std::string&, dtcall::LoginFailure reason) {
    std::size_t i = index_of(login_failures, reason);
    if (i < counts_.login_failed.size()) ++counts_.login_failed[i];
}

void MetricsObserver::call_ended(const dtcall::CallReport& report) {
    std::size_t i = index_of(end_reasons, report.reason);
    if (i < counts_.calls_ended.size()) ++counts_.calls_ended[i];
    // Only calls that started have a setup time (CallReport: zero otherwise).
    bool started = report.call.started_at != std::chrono::system_clock::time_point{};
    if (started) observe_setup(counts_.setup, report.setup_time);
}

}  // namespace dtcalld::metrics
