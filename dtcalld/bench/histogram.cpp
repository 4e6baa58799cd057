#include "histogram.hpp"

#include <algorithm>

namespace dtbench {

int Histogram::index_of(std::uint64_t value) {
    if (value < std::uint64_t(sub_count)) return int(value);
    int power = 63 - __builtin_clzll(value);  // >= sub_bits
    if (power > top_power) return bucket_count - 1;
    int sub = int((value >> (power - sub_bits)) & (sub_count - 1));
    return (power - sub_bits + 1) * sub_count + sub;
}

std::int64_t Histogram::value_of(int index) {
    if (index < sub_count) return index;
    int power = index / sub_count + sub_bits - 1;
    int sub = index % sub_count;
    std::int64_t low = (std::int64_t(1) << power) + (std::int64_t(sub) << (power - sub_bits));
    std::int64_t width = std::int64_t(1) << (power - sub_bits);
    return low + width / 2;
}

void Histogram::record(std::int64_t nanoseconds) {
    // A clock step or a reordered sample: clamp rather than corrupt the index.
    std::uint64_t v = nanoseconds < 0 ? 0 : std::uint64_t(nanoseconds);
    ++buckets_[std::size_t(index_of(v))];
    ++count_;
    max_ = std::max<std::int64_t>(max_, std::int64_t(v));
    sum_ += v;
}

void Histogram::merge(const Histogram& other) {
    for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
    count_ += other.count_;
    max_ = std::max(max_, other.max_);
    sum_ += other.sum_;
}

std::int64_t Histogram::percentile(double fraction) const {
    if (count_ == 0) return 0;
    fraction = std::clamp(fraction, 0.0, 1.0);
    // The rank of the sample asked for, 1-based: p99 of 100 samples is the 99th.
    std::uint64_t rank = std::max<std::uint64_t>(1, std::uint64_t(fraction * double(count_) + 0.5));
    std::uint64_t seen = 0;
    for (int i = 0; i < bucket_count; ++i) {
        seen += buckets_[std::size_t(i)];
        if (seen >= rank) return std::min(value_of(i), max_);
    }
    return max_;
}

std::vector<std::pair<std::int64_t, double>> Histogram::cumulative() const {
    std::vector<std::pair<std::int64_t, double>> points;
    if (count_ == 0) return points;
    std::uint64_t seen = 0;
    for (int i = 0; i < bucket_count; ++i) {
        if (!buckets_[std::size_t(i)]) continue;
        seen += buckets_[std::size_t(i)];
        points.emplace_back(std::min(value_of(i), max_), double(seen) / double(count_));
    }
    return points;
}

}  // namespace dtbench
