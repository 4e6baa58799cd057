// What the modes share for --nodes: the cross-node report beside the
// same-node one.
#include "modes.hpp"

#include <algorithm>

namespace dtbench {

Report beside_same_node(Report cross, const Report& same) {
    for (Metric& m : cross.metrics) {
        const Metric* twin = same.find(m.key);
        m.baseline = twin ? std::optional<double>(twin->value) : std::nullopt;
    }
    cross.subject = "cross-node";
    cross.title += "; same-node: the same load on one in-process server";
    cross.baseline_subject = "same-node";
    // Notes both runs share (how latency is measured, server settings) once.
    for (const std::string& note : same.notes)
        if (std::find(cross.notes.begin(), cross.notes.end(), note) == cross.notes.end())
            cross.notes.push_back("same-node: " + note);
    for (const std::string& failure : same.failures) cross.failures.push_back("same-node: " + failure);
    cross.measured_nothing = cross.measured_nothing && same.measured_nothing;
    for (const auto& series : same.series) cross.series.emplace_back("same-node " + series.first, series.second);
    return cross;
}

}  // namespace dtbench
