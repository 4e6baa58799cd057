// ServerProbe: the server's CPU between two moments, and its memory, from /proc.
#include "media_generator.hpp"  // monotonic_ns
#include "modes.hpp"

namespace dtbench {

dtcall::Status ServerProbe::begin() {
    wall_start_ns_ = monotonic_ns();
    start_.reset();
    if (!pid_) return dtcall::Done{};
    auto sample = process_cpu(*pid_);
    if (!sample) return dtcall::Error{sample.error()};
    start_ = *sample;
    return dtcall::Done{};
}

dtcall::Result<std::optional<std::int64_t>> ServerProbe::cpu_ns() const {
    if (!pid_) return std::optional<std::int64_t>();
    if (!start_) return dtcall::Error{"server CPU of pid " + std::to_string(*pid_) + ": no reading at the start"};
    auto now = process_cpu(*pid_);
    if (!now) return dtcall::Error{now.error()};
    return std::optional<std::int64_t>(now->runtime_ns - start_->runtime_ns);
}

dtcall::Result<std::optional<std::uint64_t>> ServerProbe::rss() const {
    if (!pid_) return std::optional<std::uint64_t>();
    auto bytes = resident_bytes(*pid_);
    if (!bytes) return dtcall::Error{bytes.error()};
    return std::optional<std::uint64_t>(*bytes);
}

double ServerProbe::wall_seconds() const { return double(monotonic_ns() - wall_start_ns_) / 1e9; }

}  // namespace dtbench
