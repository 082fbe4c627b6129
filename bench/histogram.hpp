// Latency histogram: log-linear buckets, 64 per power of two (1.6% precision).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace bench {

class histogram {
 public:
  void add(std::int64_t ns) {
    std::uint64_t v = ns < 0 ? 0 : static_cast<std::uint64_t>(ns);
    ++counts_[index(v)];
    ++total_;
  }
  void merge(const histogram& o) {
    for (std::size_t i = 0; i < counts_.size(); ++i)
      counts_[i] += o.counts_[i];
    total_ += o.total_;
  }
  std::uint64_t count() const { return total_; }
  // The value at quantile q (0..1), in nanoseconds; 0 when empty.
  double quantile(double q) const {
    if (total_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
    rank = std::clamp<std::uint64_t>(rank, 1, total_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return value(i);
    }
    return value(counts_.size() - 1);
  }

 private:
  static std::size_t index(std::uint64_t v) {
    if (v < 128) return v;
    unsigned msb = 63 - static_cast<unsigned>(std::countl_zero(v));
    return (msb - 5) * 64 + ((v >> (msb - 6)) - 64);
  }
  static double value(std::size_t i) {
    if (i < 128) return static_cast<double>(i);
    unsigned msb = static_cast<unsigned>(i / 64) + 5;
    double width = std::ldexp(1.0, static_cast<int>(msb) - 6);
    return (static_cast<double>(i % 64) + 64) * width + width / 2;
  }
  std::array<std::uint64_t, 59 * 64> counts_{};
  std::uint64_t total_ = 0;
};

}  // namespace bench
