// The Prometheus text exposition format (0.0.4) of one MetricsSnapshot.
// Pure: the same snapshot always gives the same text. Every metric has HELP
// and TYPE, counters end in _total, every labelled series is present from the
// start (with 0), so `promtool check metrics` has nothing to say.
#pragma once

#include "snapshot.hpp"

#include <string>

namespace dtcalld::metrics {

constexpr const char* content_type = "text/plain; version=0.0.4; charset=utf-8";

std::string render_metrics(const MetricsSnapshot& snapshot);

// A sample value as the format writes it: integers plainly, others in the
// shortest form that reads back the same, in plain decimals ("0.25",
// "0.0001", "1732450000.5") unless that is over 24 characters ("1e+30").
std::string format_value(double value);

}  // namespace dtcalld::metrics
