// Latencies (or any non-negative durations) in nanoseconds, kept as a
// log-linear histogram: 64 sub-buckets per power of two, so every percentile
// is within about 1.6 % of the true value, in fixed memory (~21 KiB) however
// many samples a long run records. The maximum is exact.
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace dtbench {

class Histogram {
public:
    void record(std::int64_t nanoseconds);
    void merge(const Histogram& other);
    std::uint64_t count() const { return count_; }
    std::int64_t max() const { return max_; }
    // The value below which `fraction` (0..1) of the samples lie; 0 when empty.
    std::int64_t percentile(double fraction) const;
    double mean() const { return count_ ? double(sum_) / double(count_) : 0; }
    // (value, fraction of samples at or below it) for every non-empty bucket:
    // the points of a cumulative distribution plot.
    std::vector<std::pair<std::int64_t, double>> cumulative() const;

private:
    static constexpr int sub_bits = 6;
    static constexpr int sub_count = 1 << sub_bits;
    static constexpr int top_power = 42;  // 2^42 ns: over an hour
    static constexpr int bucket_count = (top_power - sub_bits + 2) * sub_count;

    static int index_of(std::uint64_t value);
    static std::int64_t value_of(int index);  // a representative (the bucket's middle)

    std::array<std::uint64_t, bucket_count> buckets_{};
    std::uint64_t count_ = 0;
    std::int64_t max_ = 0;
    long double sum_ = 0;
};

}  // namespace dtbench
