// ServerProbe: the server's CPU between two moments, from /proc.
#include "media_generator.hpp"  // monotonic_ns
#include "modes.hpp"

namespace dtbench {

void ServerProbe::begin() {
    start_ = pid_ ? process_cpu(*pid_) : std::nullopt;
    wall_start_ns_ = monotonic_ns();
}

std::optional<std::int64_t> ServerProbe::cpu_ns() const {
    if (!pid_ || !start_) return std::nullopt;
    auto now = process_cpu(*pid_);
    if (!now) return std::nullopt;
    return now->runtime_ns - start_->runtime_ns;
}

double ServerProbe::wall_seconds() const { return double(monotonic_ns() - wall_start_ns_) / 1e9; }

}  // namespace dtbench
