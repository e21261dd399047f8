#pragma once
// Shared by the benchmarks: timing (median of repeated runs after warm-up) and flag parsing.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

namespace bench {

// Median seconds of f() over at least `min_reps` runs and about `min_seconds` in all, after 2 warm-ups.
template <class F>
double median_seconds(F&& f, int min_reps = 5, double min_seconds = 1.0) {
  f();
  f();
  std::vector<double> times;
  double total = 0;
  while (static_cast<int>(times.size()) < min_reps || total < min_seconds) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    times.push_back(s);
    total += s;
    if (times.size() >= 200) break;
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// The value after `--name` on the command line, or `fallback`.
inline std::string flag(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == "--" + name) return argv[i + 1];
  return fallback;
}

inline std::vector<long> int_list(const std::string& csv) {
  std::vector<long> out;
  size_t at = 0;
  while (at < csv.size()) {
    size_t comma = csv.find(',', at);
    out.push_back(std::stol(csv.substr(at, comma == std::string::npos ? std::string::npos : comma - at)));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

}  // namespace bench
