#pragma once
// safetensors (Hugging Face's tensor file): an 8-byte little-endian header length N, N bytes of JSON
// naming each tensor's dtype, shape and byte range, then the raw little-endian data.
// A file is untrusted input: the header is read and checked against the file size before any tensor byte
// is read (SafetensorsReader; parse_safetensors for bytes in memory), and every failure is a tv::Error
// naming the file. Writing follows the reference implementation (header padded with spaces to 8 bytes), is
// atomic (a temporary file of its own renamed over the target), stores num_batches_tracked as I64 as
// PyTorch does, and can store float tensors as F16 or BF16. Tensors on a device are written through a host copy,
// one tensor at a time; reading gives host (CPU) tensors, which Module::load_state_dict copies to the device.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <new>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "tinyvid/backend/elementwise.hpp"
#include "tinyvid/backend/transfer.hpp"
#include "tinyvid/core/error.hpp"
#include "tinyvid/core/json.hpp"
#include "tinyvid/core/tensor.hpp"
#include "tinyvid/io/file.hpp"

namespace tv::io {

// Tensors by name, in order (what Module::state_dict returns).
template <class T>
using NamedTensors = std::vector<std::pair<std::string, Tensor<T>>>;

// The dtypes tinyvid reads; the other safetensors dtypes (U16, U32, U64, F8_*) are refused by name.
enum class Dtype { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

inline const char* dtype_name(Dtype d) {
  constexpr const char* names[] = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"};
  return names[static_cast<int>(d)];
}
inline uint64_t dtype_size(Dtype d) {
  constexpr uint64_t sizes[] = {8, 4, 2, 2, 8, 4, 2, 1, 1, 1};
  return sizes[static_cast<int>(d)];
}

// A validated header: every entry's byte range lies inside the data section, and together the
// ranges cover it exactly once.
struct SafetensorsFile {
  struct Entry {
    std::string name;
    Dtype dtype = Dtype::F32;
    Shape shape;
    uint64_t begin = 0, end = 0;  // byte range within the data section
  };
  std::map<std::string, std::string> metadata;  // the optional "__metadata__" object
  std::vector<Entry> entries;                   // in header order
  uint64_t data_start = 0;                      // where the data section starts in the file: 8 + N
};

namespace detail {

template <class... Args>
[[noreturn]] void bad_file(const std::string& what, const Args&... args) {
  TV_FAIL("safetensors file '", what, "': ", args...);
}

// Little-endian loads and stores that are correct on any host and need no alignment.
template <class U>
U load_le(const uint8_t* p) {
  U v = 0;
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(&v, p, sizeof(U));
  } else {
    for (size_t i = 0; i < sizeof(U); ++i) v = static_cast<U>(v | (static_cast<U>(p[i]) << (8 * i)));
  }
  return v;
}
template <class U>
void store_le(uint8_t* p, U v) {
  for (size_t i = 0; i < sizeof(U); ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// Reads the JSON subset a safetensors header uses (objects, arrays, strings, integers) as the
// header's schema asks for it: memory stays proportional to what is kept, and nothing recurses.
// `expected` (and the optional `subject`, quoted after it) say what the caller wanted, for messages.
class HeaderReader {
 public:
  // Reads header bytes p[0, n), which start at byte `base` of the file `what`.
  HeaderReader(const uint8_t* p, size_t n, size_t base, const std::string& what)
      : p_(p), n_(n), base_(base), what_(what) {}

  struct Integer {
    bool negative = false;
    uint64_t magnitude = 0;
  };

  // An object; on_member(key) is called with the position at the member's value and must read it.
  template <class F>
  void object(const char* expected, const std::string* subject, F&& on_member) {
    sequence('{', '}', expected, subject, "',' or '}' in an object", [&] {
      skip_ws();
      if (!at('"')) fail("a string key");
      const std::string key = string();
      skip_ws();
      if (!at(':')) fail("':' after a key");
      ++i_;
      on_member(key);
    });
  }
  // An array; on_item() is called with the position at each element and must read it.
  template <class F>
  void array(const char* expected, const std::string* subject, F&& on_item) {
    sequence('[', ']', expected, subject, "',' or ']' in an array", on_item);
  }
  std::string string_value(const char* expected, const std::string* subject) {
    skip_ws();
    if (!at('"')) fail(expected, subject);
    return string();
  }
  Integer integer_value(const char* expected, const std::string* subject) {
    skip_ws();
    if (!at('-') && !(i_ < n_ && p_[i_] >= '0' && p_[i_] <= '9')) fail(expected, subject);
    Integer v;
    if (at('-')) {
      v.negative = true;
      ++i_;
    }
    if (i_ >= n_ || p_[i_] < '0' || p_[i_] > '9') fail("a digit");
    if (p_[i_] == '0' && i_ + 1 < n_ && p_[i_ + 1] >= '0' && p_[i_ + 1] <= '9') fail("no leading zeros in an integer");
    const size_t first = i_;
    while (i_ < n_ && p_[i_] >= '0' && p_[i_] <= '9') {
      const uint64_t d = p_[i_] - '0';
      if (v.magnitude > (std::numeric_limits<uint64_t>::max() - d) / 10) {
        i_ = first;
        fail("an integer that fits in 64 bits");
      }
      v.magnitude = v.magnitude * 10 + d;
      ++i_;
    }
    if (at('.') || at('e') || at('E')) fail("an integer (a safetensors header has no fractions or exponents)");
    return v;
  }
  // After the header object only whitespace may follow (the reference pads with spaces).
  void finish() {
    skip_ws();
    if (i_ != n_) fail("only spaces after the header object");
  }

 private:
  [[noreturn]] void fail(const char* expected, const std::string* subject = nullptr) const {
    std::string got;
    if (i_ >= n_) {
      got = "the end of the header";
    } else if (p_[i_] >= 0x20 && p_[i_] < 0x7F) {
      got = std::string("'") + static_cast<char>(p_[i_]) + "'";
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(p_[i_]));
      got = std::string("byte ") + hex;
    }
    if (subject)
      bad_file(what_, "header JSON at byte ", base_ + i_, ": expected ", expected, " '", *subject, "', got ", got);
    bad_file(what_, "header JSON at byte ", base_ + i_, ": expected ", expected, ", got ", got);
  }
  // open item (, item)* close, or open close.
  template <class F>
  void sequence(char open, char close, const char* expected, const std::string* subject, const char* after_item,
                F&& item) {
    skip_ws();
    if (!at(open)) fail(expected, subject);
    ++i_;
    skip_ws();
    if (at(close)) {
      ++i_;
      return;
    }
    for (;;) {
      item();
      skip_ws();
      if (at(',')) {
        ++i_;
        continue;
      }
      if (!at(close)) fail(after_item);
      ++i_;
      return;
    }
  }
  bool at(char c) const { return i_ < n_ && p_[i_] == static_cast<uint8_t>(c); }
  void skip_ws() {
    while (i_ < n_ && (p_[i_] == ' ' || p_[i_] == '\t' || p_[i_] == '\n' || p_[i_] == '\r')) ++i_;
  }

  uint32_t hex4() {
    uint32_t u = 0;
    for (int k = 0; k < 4; ++k, ++i_) {
      if (i_ >= n_) fail("4 hex digits after \\u");
      const uint8_t h = p_[i_];
      uint32_t d;
      if (h >= '0' && h <= '9') {
        d = h - '0';
      } else if (h >= 'a' && h <= 'f') {
        d = h - 'a' + 10;
      } else if (h >= 'A' && h <= 'F') {
        d = h - 'A' + 10;
      } else {
        fail("4 hex digits after \\u");
      }
      u = u * 16 + d;
    }
    return u;
  }

  static void append_utf8(std::string& s, uint32_t cp) {
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // A string starting at the opening quote; escapes decoded, raw bytes checked to be UTF-8.
  std::string string() {
    ++i_;  // the opening quote
    std::string s;
    for (;;) {
      if (i_ >= n_) fail("'\"' closing a string");
      const uint8_t c = p_[i_];
      if (c == '"') {
        ++i_;
        return s;
      }
      if (c < 0x20) fail("no raw control characters in a string (JSON requires them escaped)");
      if (c == '\\') {
        ++i_;
        if (i_ >= n_) fail("an escape character after '\\'");
        const uint8_t e = p_[i_];
        if (e != 'u') {
          static constexpr char kEscape[] = "\"\\/bfnrt", kMeaning[] = "\"\\/\b\f\n\r\t";
          const char* hit = e ? std::strchr(kEscape, e) : nullptr;
          if (!hit) fail("one of \" \\ / b f n r t u after '\\'");
          s += kMeaning[hit - kEscape];
          ++i_;
          continue;
        }
        ++i_;
        uint32_t cp = hex4();
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
          i_ -= 6;
          fail("a \\u escape that is not a lone low surrogate");
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {  // a high surrogate needs its low half next
          if (i_ + 1 >= n_ || p_[i_] != '\\' || p_[i_ + 1] != 'u') fail("a \\u low surrogate after a high surrogate");
          i_ += 2;
          const uint32_t lo = hex4();
          if (lo < 0xDC00 || lo > 0xDFFF) {
            i_ -= 6;
            fail("a \\u low surrogate (DC00-DFFF) after a high surrogate");
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        append_utf8(s, cp);
        continue;
      }
      const std::string_view text(reinterpret_cast<const char*>(p_), n_);
      const size_t len = ::tv::detail::utf8_sequence_length(text, i_);
      if (len == 0) fail("UTF-8 text");
      s.append(reinterpret_cast<const char*>(p_ + i_), len);
      i_ += len;
    }
  }

  const uint8_t* p_;
  size_t n_;
  size_t base_;
  const std::string& what_;
  size_t i_ = 0;
};

inline Dtype parse_dtype(const std::string& s, const std::string& name, const std::string& what) {
  for (int d = 0; d <= static_cast<int>(Dtype::BOOL); ++d)
    if (s == dtype_name(static_cast<Dtype>(d))) return static_cast<Dtype>(d);
  bad_file(what, "tensor '", name, "' has dtype '", s,
           "'; expected one of F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL");
}

// One tensor's {"dtype", "shape", "data_offsets"}, checked against itself (not yet against the others).
inline SafetensorsFile::Entry read_entry(HeaderReader& r, const std::string& name, const std::string& what) {
  bool has_dtype = false, has_shape = false, has_offsets = false;
  std::string dtype;
  std::vector<uint64_t> sizes, offsets;
  r.object("an object describing tensor", &name, [&](const std::string& field) {
    auto once = [&](bool& seen) {
      if (seen) bad_file(what, "tensor '", name, "' has the field '", field, "' twice");
      seen = true;
    };
    if (field == "dtype") {
      once(has_dtype);
      dtype = r.string_value("a string as the dtype of tensor", &name);
    } else if (field == "shape") {
      once(has_shape);
      r.array("an array as the shape of tensor", &name, [&] {
        const HeaderReader::Integer d = r.integer_value("an integer in the shape of tensor", &name);
        if (d.negative && d.magnitude > 0)
          bad_file(what, "the shape of tensor '", name, "' has the negative size -", d.magnitude,
                   "; expected sizes >= 0");
        sizes.push_back(d.magnitude);
      });
    } else if (field == "data_offsets") {
      once(has_offsets);
      r.array("an array [begin, end] as the data_offsets of tensor", &name, [&] {
        const HeaderReader::Integer o = r.integer_value("an integer in the data_offsets of tensor", &name);
        if (o.negative && o.magnitude > 0)
          bad_file(what, "the data_offsets of tensor '", name, "' hold -", o.magnitude, "; expected integers >= 0");
        if (offsets.size() == 2)
          bad_file(what, "the data_offsets of tensor '", name, "' hold more than 2 values; expected [begin, end]");
        offsets.push_back(o.magnitude);
      });
    } else {
      bad_file(what, "tensor '", name, "' has an unknown field '", field, "'; expected dtype, shape, data_offsets");
    }
  });
  const char* missing = !has_dtype ? "dtype" : !has_shape ? "shape" : !has_offsets ? "data_offsets" : nullptr;
  if (missing)
    bad_file(what, "tensor '", name, "' lacks the field '", missing, "'; expected dtype, shape, data_offsets");
  if (offsets.size() != 2)
    bad_file(what, "the data_offsets of tensor '", name, "' hold ", offsets.empty() ? "no value" : "one value",
             "; expected [begin, end]");

  SafetensorsFile::Entry e;
  e.name = name;
  e.dtype = parse_dtype(dtype, name, what);
  // The product of the nonzero sizes must fit in int64, so a tensor with a zero size still has
  // strides that fit; numel is 0 then.
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t numel = 1;
  bool any_zero = false;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 0) {
      any_zero = true;
    } else {
      if (numel > kMax / sizes[d])
        bad_file(what, "the shape of tensor '", name, "' has more elements than fit in 64 bits (a size of ", sizes[d],
                 " at dim ", d, ")");
      numel *= sizes[d];
    }
  }
  e.shape.assign(sizes.begin(), sizes.end());
  if (any_zero) numel = 0;
  const uint64_t size = dtype_size(e.dtype);
  if (numel > std::numeric_limits<uint64_t>::max() / size)
    bad_file(what, "tensor '", name, "' of shape ", e.shape, " has more bytes than fit in 64 bits");
  const uint64_t nbytes = numel * size;
  e.begin = offsets[0];
  e.end = offsets[1];
  if (e.end < e.begin)
    bad_file(what, "the data_offsets [", e.begin, ", ", e.end, "] of tensor '", name, "' end before they begin");
  if (e.end - e.begin != nbytes)
    bad_file(what, "tensor '", name, "' (", dtype_name(e.dtype), ", shape ", e.shape, ") needs ", nbytes,
             " bytes, but its data_offsets [", e.begin, ", ", e.end, "] span ", e.end - e.begin);
  return e;
}

// The reference implementation refuses headers above 100 MB; a real one is a few hundred KB.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// The header length N from the first bytes of a file of `size` bytes (p holds min(size, 8) of them), checked
// against the file size and the reference's limit before anything is allocated for the header.
inline uint64_t header_length(const uint8_t* p, uint64_t size, const std::string& what) {
  if (size < 8) bad_file(what, "the file has ", size, " bytes; expected at least the 8-byte header length");
  const uint64_t n = load_le<uint64_t>(p);
  if (n > size - 8)
    bad_file(what, "the header length is ", n, " bytes, but only ", size - 8,
             " bytes follow it (a truncated file, or not safetensors)");
  if (n > kMaxHeaderBytes)
    bad_file(what, "the header length is ", n, " bytes; expected at most ", kMaxHeaderBytes,
             " (the reference implementation's limit; not safetensors?)");
  return n;
}

// Validates the header (bytes [8, 8 + n) of a file of `size` bytes, at `header`) against the file size: every
// tensor's byte range lies inside the data section, and together they cover it exactly.
inline SafetensorsFile parse_header(const uint8_t* header, uint64_t n, uint64_t size, const std::string& what) {
  SafetensorsFile file;
  file.data_start = 8 + n;
  const uint64_t data_size = size - file.data_start;
  std::set<std::string> names;
  bool has_metadata = false;
  HeaderReader r(header, static_cast<size_t>(n), 8, what);
  r.object("'{' opening the header object", nullptr, [&](const std::string& key) {
    if (key == "__metadata__") {
      if (has_metadata) bad_file(what, "the header has '__metadata__' twice");
      has_metadata = true;
      r.object("an object of strings as", &key, [&](const std::string& k) {
        std::string v = r.string_value("a string as the value of metadata key", &k);
        if (!file.metadata.emplace(k, std::move(v)).second) bad_file(what, "the metadata key '", k, "' appears twice");
      });
      return;
    }
    if (!names.insert(key).second) bad_file(what, "the tensor name '", key, "' appears twice in the header");
    SafetensorsFile::Entry e = read_entry(r, key, what);
    if (e.end > data_size)
      bad_file(what, "the data_offsets [", e.begin, ", ", e.end, "] of tensor '", key,
               "' reach past the end of the data section (", data_size, " bytes)");
    file.entries.push_back(std::move(e));
  });
  r.finish();

  // The ranges, in order, must tile the data section: no overlap, no hole, nothing after the last.
  std::vector<size_t> order(file.entries.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto &ea = file.entries[a], &eb = file.entries[b];
    return ea.begin != eb.begin ? ea.begin < eb.begin : ea.end < eb.end;
  });
  uint64_t covered = 0;
  const SafetensorsFile::Entry* previous = nullptr;
  for (size_t idx : order) {
    const auto& e = file.entries[idx];
    if (e.begin < covered)
      bad_file(what, "tensor '", e.name, "' (bytes [", e.begin, ", ", e.end, ")) overlaps tensor '", previous->name,
               "' (bytes [", previous->begin, ", ", previous->end, ")); expected tensors to follow one another");
    if (e.begin > covered)
      bad_file(what, "bytes [", covered, ", ", e.begin,
               ") of the data section belong to no tensor (a hole before tensor '", e.name,
               "'); expected tensors to follow one another");
    covered = e.end;
    previous = &e;
  }
  if (covered != data_size)
    bad_file(what, "the tensors end at byte ", covered, " of the data section, but it has ", data_size,
             " bytes (trailing bytes after the last tensor)");
  return file;
}

}  // namespace detail

// Reads and validates a whole safetensors file held in memory; `what` names it in messages.
// Nothing outside data[0, size) is read.
inline SafetensorsFile parse_safetensors(const uint8_t* data, size_t size, const std::string& what) {
  const uint64_t n = detail::header_length(data, size, what);
  return detail::parse_header(data + 8, n, size, what);
}

namespace detail {
template <class T>
T to_element(double v) {
  if constexpr (std::is_same_v<T, float>) {
    // Past FLT_MAX + half an ulp a value rounds to infinity; casting it would be undefined.
    constexpr double kOverflow = 0x1.ffffffp127;
    if (v >= kOverflow) return std::numeric_limits<float>::infinity();
    if (v <= -kOverflow) return -std::numeric_limits<float>::infinity();
  }
  return static_cast<T>(v);
}

// IEEE half to float: exact (every half is a float), NaN payloads kept.
inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24
    const float mag = static_cast<float>(mant) * 0x1p-24f;
    return sign ? -mag : mag;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}
inline float bfloat16_to_float(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

template <class U, class T, class F>
void convert(const uint8_t* src, int64_t n, T* dst, F f) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f(load_le<U>(src + i * sizeof(U)));
}
}  // namespace detail

// The tensor of one entry as T (float or double), converted from its dtype; `src` points at the entry's first
// byte (its data_offsets begin).
template <class T>
Tensor<T> decode_entry(const SafetensorsFile::Entry& e, const uint8_t* src) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "decode_entry: T must be float or double");
  using detail::convert;
  using detail::to_element;
  auto out = Tensor<T>::empty(e.shape);
  T* dst = out.data();
  const int64_t n = out.numel();
  switch (e.dtype) {
    case Dtype::F64:
      convert<uint64_t>(src, n, dst, [](uint64_t u) { return to_element<T>(std::bit_cast<double>(u)); });
      break;
    case Dtype::F32:
      convert<uint32_t>(src, n, dst, [](uint32_t u) { return static_cast<T>(std::bit_cast<float>(u)); });
      break;
    case Dtype::F16:
      convert<uint16_t>(src, n, dst, [](uint16_t u) { return static_cast<T>(detail::half_to_float(u)); });
      break;
    case Dtype::BF16:
      convert<uint16_t>(src, n, dst, [](uint16_t u) { return static_cast<T>(detail::bfloat16_to_float(u)); });
      break;
    case Dtype::I64:
      convert<uint64_t>(src, n, dst, [](uint64_t u) { return static_cast<T>(static_cast<int64_t>(u)); });
      break;
    case Dtype::I32:
      convert<uint32_t>(src, n, dst, [](uint32_t u) { return static_cast<T>(static_cast<int32_t>(u)); });
      break;
    case Dtype::I16:
      convert<uint16_t>(src, n, dst, [](uint16_t u) { return static_cast<T>(static_cast<int16_t>(u)); });
      break;
    case Dtype::I8:
      convert<uint8_t>(src, n, dst, [](uint8_t u) { return static_cast<T>(static_cast<int8_t>(u)); });
      break;
    case Dtype::U8:
      convert<uint8_t>(src, n, dst, [](uint8_t u) { return static_cast<T>(u); });
      break;
    case Dtype::BOOL:
      convert<uint8_t>(src, n, dst, [](uint8_t u) { return static_cast<T>(u != 0); });
      break;
  }
  return out;
}

// The same for a whole file in memory: `data_section` points at byte data_start of the buffer that was parsed.
template <class T>
Tensor<T> decode_tensor(const SafetensorsFile::Entry& e, const uint8_t* data_section) {
  return decode_entry<T>(e, data_section + e.begin);
}

// A safetensors file on disk, read as untrusted input: the constructor reads the 8-byte header length and the
// header only, and validates them against the file size; tensors are then read one at a time. So a file whose
// header is wrong fails at once whatever its size, and memory holds one tensor's bytes beyond the tensors.
class SafetensorsReader {
 public:
  SafetensorsReader(const std::string& path, const char* op = "load_safetensors") : in_(path, op), op_(op) {
    uint8_t length[8] = {};
    in_.read_at(0, length, static_cast<size_t>(std::min<uint64_t>(in_.size(), 8)));
    const uint64_t n = detail::header_length(length, in_.size(), path);
    std::vector<uint8_t> header = detail::byte_buffer(n, op, path, "the header");
    in_.read_at(8, header.data(), header.size());
    file_ = detail::parse_header(header.data(), n, in_.size(), path);
  }

  const SafetensorsFile& file() const { return file_; }
  const std::string& path() const { return in_.path(); }

  // One entry's tensor as T (float or double); running out of memory for it is an error naming it.
  template <class T>
  Tensor<T> read(const SafetensorsFile::Entry& e) const {
    const uint64_t nbytes = e.end - e.begin;
    std::vector<uint8_t> bytes = detail::byte_buffer(nbytes, op_, path(), "tensor '" + e.name + "'");
    in_.read_at(file_.data_start + e.begin, bytes.data(), bytes.size());
    try {
      return decode_entry<T>(e, bytes.data());
    } catch (const std::bad_alloc&) {
      TV_FAIL(op_, ": out of memory for tensor '", e.name, "' of shape ", e.shape, " in '", path(), "'");
    }
  }

 private:
  detail::InputFile in_;
  const char* op_;
  SafetensorsFile file_;
};

// Every tensor of a safetensors file as T (float or double), whatever its stored dtype.
template <class T>
std::map<std::string, Tensor<T>> load_safetensors(const std::string& path) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "load_safetensors: T must be float or double");
  const SafetensorsReader reader(path);
  std::map<std::string, Tensor<T>> out;
  for (const auto& e : reader.file().entries) out.emplace(e.name, reader.read<T>(e));
  return out;
}

namespace detail {

// A value rounded to nearest, ties to even, into a 16-bit IEEE-style float with `fraction_bits` fraction bits
// and 15 - fraction_bits exponent bits: F16 (10) or BF16 (7). Overflow gives infinity, NaN a quiet NaN. From a
// double, so that a double is rounded once (a float converts to double exactly).
inline uint16_t round_to_binary16(double v, int fraction_bits) {
  const int exponent_bits = 15 - fraction_bits;
  const int64_t bias = (int64_t{1} << (exponent_bits - 1)) - 1;
  const uint16_t sign = std::signbit(v) ? 0x8000 : 0;
  const uint16_t infinity = static_cast<uint16_t>(((1 << exponent_bits) - 1) << fraction_bits);
  if (std::isnan(v)) return static_cast<uint16_t>(sign | infinity | (1 << (fraction_bits - 1)));
  if (std::isinf(v)) return sign | infinity;
  if (v == 0) return sign;
  const double a = std::fabs(v);
  int e = 0;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1): the leading bit is 2^(e - 1)
  // The spacing of representable values around a is 2^(exponent - fraction_bits), where exponent is a's own,
  // or the smallest normal one (1 - bias) for subnormals.
  const int64_t exponent = std::max<int64_t>(e - 1, 1 - bias);
  const double scaled = std::ldexp(a, static_cast<int>(fraction_bits - exponent));  // exact: a power of 2
  double units = std::floor(scaled);
  const double rest = scaled - units;
  if (rest > 0.5 || (rest == 0.5 && std::fmod(units, 2.0) != 0)) units += 1;
  // units is the significand with its leading bit (2^fraction_bits for normals); rounding up to
  // 2^(fraction_bits + 1) carries into the exponent, and past the largest exponent gives infinity.
  const int64_t bits = ((exponent + bias - 1) << fraction_bits) + static_cast<int64_t>(units);
  return bits >= infinity ? static_cast<uint16_t>(sign | infinity) : static_cast<uint16_t>(sign | bits);
}

// PyTorch keeps BatchNorm's num_batches_tracked as int64: stored so, it is exact and loads into PyTorch as it was.
inline bool is_integer_buffer(const std::string& name) {
  constexpr std::string_view kSuffix = "num_batches_tracked";
  return name.size() >= kSuffix.size() && name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0;
}

// The values of one tensor as `dtype`, little-endian, for the file.
template <class T>
std::vector<uint8_t> encode_values(const T* values, int64_t n, Dtype dtype, const std::string& name,
                                   const std::string& path) {
  std::vector<uint8_t> out(static_cast<size_t>(n) * dtype_size(dtype));
  uint8_t* p = out.data();
  for (int64_t i = 0; i < n; ++i) {
    const double v = static_cast<double>(values[i]);
    switch (dtype) {
      case Dtype::F64: store_le<uint64_t>(p + 8 * i, std::bit_cast<uint64_t>(v)); break;
      case Dtype::F32: store_le<uint32_t>(p + 4 * i, std::bit_cast<uint32_t>(to_element<float>(v))); break;
      case Dtype::F16: store_le<uint16_t>(p + 2 * i, round_to_binary16(v, 10)); break;
      case Dtype::BF16: store_le<uint16_t>(p + 2 * i, round_to_binary16(v, 7)); break;
      case Dtype::I64:
        TV_CHECK(v == std::trunc(v) && std::fabs(v) < 0x1p63, "save_safetensors '", path, "': tensor '", name,
                 "' is stored as I64 (PyTorch's dtype for it), but element ", i, " is ", values[i],
                 "; expected a whole number");
        store_le<uint64_t>(p + 8 * i, static_cast<uint64_t>(static_cast<int64_t>(v)));
        break;
      default: TV_FAIL("save_safetensors '", path, "': cannot store tensor '", name, "' as ", dtype_name(dtype));
    }
  }
  return out;
}

// The tensor's values in row-major order in host memory: the tensor itself when it is that already, else a
// copy (a strided view made contiguous on its own device first, since a copy across devices takes whole
// contiguous tensors).
template <class T>
Tensor<T> host_contiguous(const Tensor<T>& t) {
  if (t.device() == Device::CPU && t.is_contiguous()) return t;
  Tensor<T> dense = t;
  if (!t.is_contiguous()) {
    dense = Tensor<T>::empty(t.shape(), t.device());
    kernel::copy(t, dense);
  }
  if (dense.device() == Device::CPU) return dense;
  Tensor<T> host = Tensor<T>::empty(t.shape(), Device::CPU);
  kernel::copy_across(dense, host);
  return host;
}

}  // namespace detail

// Writes the tensors in the given order, atomically. Floating-point tensors are stored as `float_dtype`: by
// default their own precision (F32 for float, F64 for double); F16 or BF16 (rounded to nearest even) halve a
// float file, and loading converts back. Tensors named *num_batches_tracked are stored as I64, as PyTorch does.
template <class T>
void save_safetensors(const std::string& path, const NamedTensors<T>& tensors,
                      const std::map<std::string, std::string>& metadata = {},
                      Dtype float_dtype = std::is_same_v<T, float> ? Dtype::F32 : Dtype::F64) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "save_safetensors: T must be float or double");
  constexpr Dtype native = std::is_same_v<T, float> ? Dtype::F32 : Dtype::F64;
  TV_CHECK(float_dtype == Dtype::F64 || float_dtype == Dtype::F32 || float_dtype == Dtype::F16 ||
               float_dtype == Dtype::BF16,
           "save_safetensors '", path, "': expected F64, F32, F16 or BF16 to store floating-point tensors, got ",
           dtype_name(float_dtype));
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    TV_CHECK(name != "__metadata__", "save_safetensors '", path, "': '__metadata__' cannot name a tensor");
    TV_CHECK(names.insert(name).second, "save_safetensors '", path, "': the name '", name, "' appears twice");
    TV_CHECK(::tv::detail::is_utf8(name), "save_safetensors '", path, "': the name '", name, "' is not valid UTF-8");
    TV_CHECK(t.defined(), "save_safetensors '", path, "': tensor '", name, "' is undefined");
  }
  for (const auto& [key, value] : metadata)
    TV_CHECK(::tv::detail::is_utf8(key) && ::tv::detail::is_utf8(value), "save_safetensors '", path,
             "': metadata '", key, "' is not valid UTF-8");
  auto stored_dtype = [&](const std::string& name) {
    return detail::is_integer_buffer(name) ? Dtype::I64 : float_dtype;
  };

  // Serialized as the reference does: "__metadata__" first, compact JSON, spaces up to a multiple of 8.
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      if (!first) header += ',';
      first = false;
      header += json_quote(key);
      header += ':';
      header += json_quote(value);
    }
    header += '}';
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const Dtype dtype = stored_dtype(name);
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * dtype_size(dtype);
    if (header.size() > 1) header += ',';
    header += json_quote(name);
    header += ":{\"dtype\":\"";
    header += dtype_name(dtype);
    header += "\",\"shape\":[";
    for (size_t d = 0; d < t.shape().size(); ++d) {
      if (d) header += ',';
      header += std::to_string(t.shape()[d]);
    }
    header += "],\"data_offsets\":[";
    header += std::to_string(offset);
    header += ',';
    header += std::to_string(offset + nbytes);
    header += "]}";
    offset += nbytes;
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');

  detail::write_file_atomically(path, "save_safetensors", [&](auto&& put) {
    uint8_t length[8];
    detail::store_le<uint64_t>(length, header.size());
    put(length, 8);
    put(header.data(), header.size());
    for (const auto& [name, t] : tensors) {
      // A device tensor or a non-contiguous view is copied to the host in row-major order, one tensor at a
      // time, so saving a GPU model holds one tensor's copy in host memory, never the whole state.
      const Tensor<T> host = detail::host_contiguous(t);
      const T* values = host.data();
      const Dtype dtype = stored_dtype(name);
      if (dtype == native && std::endian::native == std::endian::little) {
        put(values, static_cast<size_t>(t.numel()) * sizeof(T));
      } else {
        const std::vector<uint8_t> bytes = detail::encode_values(values, t.numel(), dtype, name, path);
        put(bytes.data(), bytes.size());
      }
    }
  });
}

}  // namespace tv::io
