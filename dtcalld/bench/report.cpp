#include "report.hpp"

#include <dtcall/version.hpp>

#include <cmath>
#include <cstdio>
#include <sstream>

namespace dtbench {
namespace {

std::string json_string(const std::string& text) {
    std::string out = "\"";
    for (unsigned char c : text) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20) {
                char escaped[8];
                std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
                out += escaped;
            } else {
                out += char(c);
            }
        }
    }
    return out + "\"";
}

std::string json_number(double value, int decimals) {
    if (!std::isfinite(value)) return "null";
    return format_number(value, decimals);
}

std::string pad_left(const std::string& text, std::size_t width) {
    return text.size() >= width ? text : std::string(width - text.size(), ' ') + text;
}

std::string pad_right(const std::string& text, std::size_t width) {
    return text.size() >= width ? text : text + std::string(width - text.size(), ' ');
}

}  // namespace

std::string format_number(double value, int decimals) {
    if (!std::isfinite(value)) return "n/a";
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", decimals < 0 ? 0 : decimals, value);
    return text;
}

void Report::parameter(const std::string& key, double value) {
    bool integral = std::floor(value) == value && std::fabs(value) < 1e15;
    parameters.push_back({key, format_number(value, integral ? 0 : 3), true});
}

Metric& Report::add(const std::string& key, const std::string& label, const std::string& unit, double value,
                    int decimals) {
    if (Metric* existing = find(key)) {
        *existing = Metric{key, label, unit, value, existing->baseline, decimals};
        return *existing;
    }
    metrics.push_back(Metric{key, label, unit, value, std::nullopt, decimals});
    return metrics.back();
}

Metric* Report::find(const std::string& key) {
    for (auto& m : metrics)
        if (m.key == key) return &m;
    return nullptr;
}

const Metric* Report::find(const std::string& key) const {
    for (auto& m : metrics)
        if (m.key == key) return &m;
    return nullptr;
}

bool Report::compared() const {
    for (auto& m : metrics)
        if (m.baseline) return true;
    return false;
}

std::string render_table(const Report& report) {
    std::ostringstream out;
    out << report.title << "\n";
    if (!report.parameters.empty()) {
        out << "  ";
        for (std::size_t i = 0; i < report.parameters.size(); ++i) {
            out << (i ? ", " : "") << report.parameters[i].key << "=" << report.parameters[i].value;
        }
        out << "\n";
    }
    out << "\n";
    std::size_t label_width = 10;
    for (auto& m : report.metrics) label_width = std::max(label_width, m.label.size());
    bool compared = report.compared();
    const std::size_t column = 14;
    out << "  " << pad_right("", label_width) << "  " << pad_right("", 6) << pad_left(report.subject, column);
    if (compared) out << pad_left(report.baseline_subject, column) << pad_left("ratio", 9);
    out << "\n";
    for (auto& m : report.metrics) {
        out << "  " << pad_right(m.label, label_width) << "  " << pad_right(m.unit, 6)
            << pad_left(format_number(m.value, m.decimals), column);
        if (compared && m.baseline) {
            double ratio = *m.baseline != 0 ? m.value / *m.baseline : NAN;
            out << pad_left(format_number(*m.baseline, m.decimals), column) << pad_left(format_number(ratio, 2), 9);
        }
        out << "\n";
    }
    if (!report.notes.empty()) {
        out << "\n";
        for (auto& n : report.notes) out << "  note: " << n << "\n";
    }
    if (!report.failures.empty()) {
        out << "\n";
        for (auto& f : report.failures) out << "  FAILED: " << f << "\n";
    }
    return out.str();
}

std::string render_json(const Report& report) {
    std::ostringstream out;
    out << "{\"tool\":\"dtcall-bench\",\"version\":" << json_string(dtcall::version())
        << ",\"mode\":" << json_string(report.mode) << ",\"subject\":" << json_string(report.subject)
        << ",\"baseline_subject\":" << json_string(report.baseline_subject)
        << ",\"title\":" << json_string(report.title) << ",\"parameters\":{";
    for (std::size_t i = 0; i < report.parameters.size(); ++i) {
        const Parameter& p = report.parameters[i];
        out << (i ? "," : "") << json_string(p.key) << ":" << (p.numeric ? p.value : json_string(p.value));
    }
    out << "},\"metrics\":{";
    for (std::size_t i = 0; i < report.metrics.size(); ++i) {
        const Metric& m = report.metrics[i];
        out << (i ? "," : "") << json_string(m.key) << ":{\"value\":" << json_number(m.value, m.decimals + 2)
            << ",\"unit\":" << json_string(m.unit) << ",\"label\":" << json_string(m.label);
        if (m.baseline) {
            double ratio = *m.baseline != 0 ? m.value / *m.baseline : NAN;
            out << ",\"baseline\":" << json_number(*m.baseline, m.decimals + 2)
                << ",\"ratio\":" << json_number(ratio, 4);
        }
        out << "}";
    }
    out << "},\"notes\":[";
    for (std::size_t i = 0; i < report.notes.size(); ++i) out << (i ? "," : "") << json_string(report.notes[i]);
    out << "],\"failures\":[";
    for (std::size_t i = 0; i < report.failures.size(); ++i) out << (i ? "," : "") << json_string(report.failures[i]);
    out << "]}\n";
    return out.str();
}

}  // namespace dtbench
