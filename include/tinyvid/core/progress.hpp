#pragma once
// Progress of a long job on one line of stderr: done/total, rate, ETA. On a terminal the line redraws itself
// in place (at most twice a second); into a file or pipe it prints nothing until finish(), so logs stay clean.
// Not thread-safe: workers that share one hold a mutex around its calls.
//
//   tv::ProgressLine p("synth", total, "videos");
//   for (...) { ...; p.advance(); }
//   p.finish();
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace tv {

// 75 -> "1m15s", 4000 -> "1h06m".
inline std::string format_duration(double seconds) {
  if (!(seconds >= 0)) seconds = 0;
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s / 60 % 60));
  else
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}

inline bool stderr_is_terminal() { return isatty(fileno(stderr)) != 0; }

class ProgressLine {
 public:
  ProgressLine(std::string what, int64_t total, std::string unit, bool live = stderr_is_terminal())
      : what_(std::move(what)), unit_(std::move(unit)), total_(total), live_(live) {}

  // Adds n finished units; `extra` is appended to the line (e.g. "loss 1.23").
  void advance(int64_t n = 1, const std::string& extra = "") {
    done_ += n;
    update(extra);
  }
  // Adds n units that needed no work (found complete by a resumed run): done, but not in the rate.
  void skip(int64_t n = 1, const std::string& extra = "") {
    skipped_ += n;
    advance(n, extra);
  }
  // Redraws with a new `extra` (at most twice a second) without finishing a unit.
  void update(const std::string& extra) {
    extra_ = extra;
    const auto now = Clock::now();
    if (live_ && now - last_ > std::chrono::milliseconds(500)) {
      last_ = now;
      print('\r');
    }
  }
  void finish() { print('\n'); }

  int64_t done() const { return done_; }
  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  double rate() const {
    const double s = seconds();
    return s > 0 ? static_cast<double>(done_ - skipped_) / s : 0.0;
  }
  double eta_seconds() const {
    const double r = rate();
    return r > 0 ? static_cast<double>(total_ - done_) / r : 0.0;
  }

 private:
  using Clock = std::chrono::steady_clock;
  void print(char end) {
    const int width = 24;
    const int filled = total_ > 0 ? static_cast<int>(width * done_ / total_) : 0;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %s, %.1f %s/s, ETA %s%s%s   %s", what_.c_str(), bar.c_str(),
                 static_cast<long long>(done_), static_cast<long long>(total_), unit_.c_str(), rate(), unit_.c_str(),
                 format_duration(eta_seconds()).c_str(), extra_.empty() ? "" : ", ", extra_.c_str(),
                 end == '\n' ? "\n" : "");
    std::fflush(stderr);
  }

  std::string what_, unit_, extra_;
  int64_t total_, done_ = 0, skipped_ = 0;
  bool live_;
  Clock::time_point start_ = Clock::now(), last_ = start_;
};

}  // namespace tv
