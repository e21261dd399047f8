#pragma once
// Numbers from text, checked: the one parser behind configs, the command line and model switches. A bad
// value is a tv::Error naming where it came from, what was expected and what came, never a bare
// std::invalid_argument. The whole text must be the number: no blanks, no sign '+', no trailing characters.
//
//   tv::parse_int("12", "--frames", tv::Range::at_least(1))                 -> 12
//   tv::parse_real("2", "run.conf:7", tv::Range{0, 1}, "train.flip")
//       -> tinyvid: run.conf:7: expected a number in [0, 1] for 'train.flip', got '2'
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "tinyvid/core/error.hpp"

namespace tv {

// The values a number may take: lo to hi, each end closed unless marked open. NaN and infinities are refused
// unless `nonfinite` says a key means them.
struct Range {
  double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;
  bool nonfinite = false;

  static Range at_least(double lo) { return {.lo = lo}; }
  static Range above(double lo) { return {.lo = lo, .lo_open = true}; }
  static Range closed(double lo, double hi) { return {.lo = lo, .hi = hi}; }
  static Range right_open(double lo, double hi) { return {.lo = lo, .hi = hi, .hi_open = true}; }  // [lo, hi)
  static Range left_open(double lo, double hi) { return {.lo = lo, .hi = hi, .lo_open = true}; }   // (lo, hi]

  bool contains(double x) const {
    if (std::isnan(x) || (std::isinf(x) && !nonfinite)) return std::isnan(x) && nonfinite;
    return (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
  }

  // "a number in [0, 1)", "a whole number >= 0", "a positive whole number", ...
  std::string expected(bool whole) const {
    const std::string kind = whole ? "a whole number" : nonfinite ? "a number" : "a finite number";
    const bool has_lo = std::isfinite(lo), has_hi = std::isfinite(hi);
    if (whole && has_lo && !has_hi && !lo_open && lo == 1) return "a positive whole number";
    const std::string bounded = whole ? kind : "a number";  // a bound implies finite
    if (has_lo && has_hi)
      return bounded + " in " + (lo_open ? "(" : "[") + text(lo) + ", " + text(hi) + (hi_open ? ")" : "]");
    if (has_lo) return bounded + (lo_open ? " > " : " >= ") + text(lo);
    if (has_hi) return bounded + (hi_open ? " < " : " <= ") + text(hi);
    return kind;
  }

  // The shortest text that reads back as x, in %g's style (0.0001, 1e+06).
  static std::string text(double x) {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof(buf), x, std::chars_format::general);
    return std::string(buf, r.ptr);
  }
};

namespace detail {
// "<where>: expected <what> [for '<name>'], got '<text>'<note>"
[[noreturn]] inline void bad_number(std::string_view text, const std::string& where, const std::string& expected,
                                    const std::string& name, const char* note = "") {
  TV_FAIL(where, ": expected ", expected, name.empty() ? "" : " for '" + name + "'", ", got '", text, "'", note);
}
}  // namespace detail

// A whole number in `range` (any 64-bit value by default). where: the value's origin ("--frames",
// "run.conf:3"); name: the key it sets, if any.
inline int64_t parse_int(std::string_view text, const std::string& where, const Range& range = {},
                         const std::string& name = "") {
  int64_t x = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
  const bool whole = !text.empty() && end == text.data() + text.size();
  if (ec == std::errc::result_out_of_range && whole)
    detail::bad_number(text, where, range.expected(true), name, " (beyond 64 bits)");
  if (ec != std::errc() || !whole || !range.contains(static_cast<double>(x)))
    detail::bad_number(text, where, range.expected(true), name);
  return x;
}

// A real number in `range` (any finite value by default): decimal or exponent notation; "nan" and "inf" only
// where the range allows them.
inline double parse_real(std::string_view text, const std::string& where, const Range& range = {},
                         const std::string& name = "") {
  double x = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
  if (ec != std::errc() || text.empty() || end != text.data() + text.size() || !range.contains(x))
    detail::bad_number(text, where, range.expected(false), name);
  return x;
}

}  // namespace tv
