// What a run measured, in one shape for every mode: parameters, metrics
// (each with an optional baseline figure, for relay), notes and failures.
// Rendered as a table for people or as one JSON object for machines.
#pragma once

#include "histogram.hpp"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dtbench {

struct Metric {
    std::string key;    // JSON name: lower_case_with_units
    std::string label;  // table row
    std::string unit;
    double value = 0;
    // The same figure through the baseline forwarder, or (--nodes) on one node.
    std::optional<double> baseline;
    int decimals = 1;
};

struct Parameter {
    std::string key;
    std::string value;
    bool numeric = false;
};

struct Report {
    std::string mode;
    std::string title;    // first table line
    std::string subject = "dtcalld";
    std::string baseline_subject = "baseline";  // the comparison column: "same-node" with --nodes
    std::vector<Parameter> parameters;
    std::vector<Metric> metrics;
    std::vector<std::string> notes;
    // Logins, calls or registrations that failed: --strict turns them into exit 1.
    std::vector<std::string> failures;
    // Nothing at all succeeded (no login, call or packet): the figures are
    // meaningless and the tool exits 1 even without --strict.
    bool measured_nothing = false;
    // Latency distributions for --plot: (name, histogram in ns).
    std::vector<std::pair<std::string, Histogram>> series;
    std::string series_label;

    void parameter(const std::string& key, const std::string& value) { parameters.push_back({key, value, false}); }
    void parameter(const std::string& key, double value);
    Metric& add(const std::string& key, const std::string& label, const std::string& unit, double value,
                int decimals = 1);
    Metric* find(const std::string& key);
    const Metric* find(const std::string& key) const;
    bool compared() const;  // some metric has a baseline figure
};

std::string render_table(const Report& report);
std::string render_json(const Report& report);

// "12.3", "1234567" — fixed decimals, no exponent; "n/a" when not finite.
std::string format_number(double value, int decimals);

}  // namespace dtbench
