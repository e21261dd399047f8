#pragma once
// JSON strings: the one escaper behind safetensors headers, test reports and the command line's --json, and
// the one UTF-8 check (detail::utf8_sequence_length, detail::is_utf8).
//
//   tv::json_quote("a\"b\n")   -> "a\"b\n" (quoted; \" and \n escaped)
//
// Quotes and backslashes are escaped, control characters as \b \f \n \r \t where JSON has a short form and
// \u00XX otherwise (as serde_json and Python's json write them). The result is valid JSON for any bytes: well-formed
// UTF-8 passes through, and each byte of a malformed sequence becomes \u00XX, its Latin-1 reading, so
// a path with a stray byte still reads back, instead of making the whole document unreadable.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tv {

namespace detail {
// The length of the well-formed UTF-8 sequence starting s[i], or 0 if it is malformed (overlong forms,
// surrogates and code points past U+10FFFF included).
inline size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t c = byte(i);
  if (c < 0x80) return 1;
  size_t len = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() - i < len || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  return len;
}

inline bool is_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8_sequence_length(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}
}  // namespace detail

// s as a JSON string literal, quotes included.
inline std::string json_quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    const size_t len = detail::utf8_sequence_length(s, i);
    if (len > 1) {
      out.append(s.substr(i, len));
      i += len;
      continue;
    }
    ++i;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || len == 0) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

}  // namespace tv
