#pragma once
// Errors: every user mistake becomes a tv::Error whose message says what was expected and what came.
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tv {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Shapes print as [2, 3] everywhere, in messages and in streams.
inline std::ostream& operator<<(std::ostream& os, const std::vector<int64_t>& shape) {
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  return os << ']';
}

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace tv

// TV_CHECK(cond, parts...): throws tv::Error("tinyvid: " + parts...) when cond is false.
#define TV_CHECK(cond, ...)                                                   \
  do {                                                                        \
    if (!(cond)) throw ::tv::Error(::tv::detail::concat("tinyvid: ", __VA_ARGS__)); \
  } while (0)

#define TV_FAIL(...) throw ::tv::Error(::tv::detail::concat("tinyvid: ", __VA_ARGS__))
