// io/safetensors and io/file: round trips (F32/F64, F16/BF16, I64 num_batches_tracked), a file laid out as
// the reference implementation writes it (tests/fixtures/io_reference.safetensors, made by
// tools/fixtures/make_io_fixtures.py), one test per class of corrupt file, truncation and byte flips (an error,
// never a crash), huge sparse files (refused before anything is allocated), atomic and concurrent writes,
// directories where a file is expected, and module weights (non-finite values refused).
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>
#include <tinyvid/data/annotations.hpp>
#include <tinyvid/tinyvid.hpp>
#include <tinyvid/train/config.hpp>

using tv::Shape;
using tv::Tensor;
using tv::io::Dtype;
using tv::io::SafetensorsFile;
using Bytes = std::vector<uint8_t>;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    dir_ =
        fs::temp_directory_path() / ("tinyvid-test-io-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(dir_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  fs::path dir_;
};

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A file from its header text and data bytes.
Bytes make_file(const std::string& header, const Bytes& data = {}) {
  Bytes out(8 + header.size() + data.size());
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::copy(header.begin(), header.end(), out.begin() + 8);
  std::copy(data.begin(), data.end(), out.begin() + 8 + static_cast<std::ptrdiff_t>(header.size()));
  return out;
}
Bytes zeros(size_t n) { return Bytes(n, 0); }

// One tensor entry of a header, as text.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t begin,
                  uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(begin) + "," + std::to_string(end) + "]}";
}

// doctest's Contains takes its own String type, made from a C string.
doctest::Contains has(const std::string& s) { return doctest::Contains(s.c_str()); }

SafetensorsFile parse(const Bytes& b) { return tv::io::parse_safetensors(b.data(), b.size(), "bad.safetensors"); }

template <class T>
Tensor<T> filled(const Shape& shape, double start) {
  auto t = Tensor<T>::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<T>(start + 0.25 * static_cast<double>(i));
  return t;
}

}  // namespace

// Every rejection names the file and says what was wrong.
#define CHECK_REJECTS(bytes, phrase)                                                       \
  do {                                                                                     \
    CHECK_THROWS_WITH_AS(parse(bytes), has(phrase), tv::Error);                            \
    CHECK_THROWS_WITH_AS(parse(bytes), doctest::Contains("'bad.safetensors'"), tv::Error); \
  } while (0)

TEST_CASE_TEMPLATE("safetensors: round trip keeps values, shapes (0-dim, empty, non-contiguous), order, metadata", T,
                   float, double) {
  TempDir dir;
  const std::string path = dir.path("weights.safetensors");
  // Non-contiguous views: a transpose and a broadcast (stride 0) are written in row-major order.
  auto transposed = filled<T>({3, 2}, -1.0).t();
  auto expanded = filled<T>({1, 3}, 7.0).expand({2, 3});
  REQUIRE_FALSE(transposed.is_contiguous());
  REQUIRE_FALSE(expanded.is_contiguous());
  tv::nn::StateDict<T> tensors;
  tensors.emplace_back("zeta.weight", filled<T>({2, 3}, 0.5));
  tensors.emplace_back("scalar", filled<T>({}, 42.0));
  tensors.emplace_back("empty", filled<T>({0, 4}, 0.0));
  tensors.emplace_back("transposed", transposed);
  tensors.emplace_back("expanded", expanded);
  tensors.emplace_back("alpha", filled<T>({1, 1, 5}, 3.0));
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"epoch", "7"}};
  tv::io::save_safetensors(path, tensors, metadata);

  auto loaded = tv::io::load_safetensors<T>(path);
  REQUIRE(loaded.size() == tensors.size());
  for (const auto& named : tensors) {
    const std::string& name = named.first;  // not a structured binding: CAPTURE's lambda needs a variable
    CAPTURE(name);
    REQUIRE(loaded.count(name) == 1);
    CHECK(loaded[name].shape() == named.second.shape());
    CHECK(loaded[name].to_vector() == named.second.to_vector());
  }

  // The header: names in the given order, F32 for float and F64 for double, metadata, 8-byte padding.
  Bytes bytes = read_bytes(path);
  SafetensorsFile file = parse(bytes);
  CHECK(file.metadata == metadata);
  REQUIRE(file.entries.size() == tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    CHECK(file.entries[i].name == tensors[i].first);
    CHECK(file.entries[i].dtype == (std::is_same_v<T, float> ? Dtype::F32 : Dtype::F64));
  }
  CHECK(file.data_start % 8 == 0);
}

TEST_CASE("safetensors: the header is byte for byte what the reference writes") {
  TempDir dir;
  const std::string path = dir.path("small.safetensors");
  tv::io::save_safetensors<float>(path, {{"a", tv::tensor<float>({1.0f, 2.0f}, {2})}}, {{"k", "v"}});
  std::string header = R"({"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  Bytes data(8);
  const float values[2] = {1.0f, 2.0f};
  std::memcpy(data.data(), values, 8);
  CHECK(read_bytes(path) == make_file(header, data));
}

TEST_CASE("safetensors: reads a file laid out by the reference implementation, every dtype") {
  const std::string path = std::string(TINYVID_FIXTURE_DIR) + "/io_reference.safetensors";
  Bytes bytes = read_bytes(path);
  REQUIRE(!bytes.empty());
  SafetensorsFile file = parse(bytes);
  CHECK(file.metadata == std::map<std::string, std::string>{{"format", "pt"}});
  std::vector<std::string> order;
  for (auto& e : file.entries) order.push_back(e.name);
  // The reference sorts by dtype alignment, then name; reading keeps the header's order.
  CHECK(order == std::vector<std::string>{"i64", "f64", "empty", "f32", "scalar", "i32", "bf16", "f16", "i16", "i8",
                                          "u8", "bool"});
  CHECK(file.entries[6].dtype == Dtype::BF16);
  CHECK(file.entries[7].dtype == Dtype::F16);

  auto d = tv::io::load_safetensors<double>(path);
  auto f = tv::io::load_safetensors<float>(path);
  using V = std::vector<double>;
  using VF = std::vector<float>;
  CHECK(d["f64"].shape() == Shape{2, 2});
  CHECK(d["f64"].to_vector() == V{0.1, -2.5, 1e300, -0.0});
  CHECK(f["f64"].to_vector() == VF{0.1f, -2.5f, std::numeric_limits<float>::infinity(), -0.0f});  // 1e300 overflows
  CHECK(d["i64"].to_vector() == V{-1099511627776.0, 0, 7, 9007199254740992.0});
  CHECK(f["i64"].to_vector() == VF{-1099511627776.0f, 0, 7, 9007199254740992.0f});
  CHECK(d["f32"].shape() == Shape{2, 3});
  CHECK(f["f32"].to_vector() == VF{1.5f, -2.25f, 0.1f, 0.0f, 1e30f, -7.0f});
  CHECK(d["f32"].to_vector() == V{1.5, -2.25, double(0.1f), 0.0, double(1e30f), -7.0});
  CHECK(d["scalar"].dim() == 0);
  CHECK(d["scalar"].item() == 42.5);
  CHECK(d["empty"].shape() == Shape{0, 3});
  CHECK(d["i32"].to_vector() == V{-2147483648.0, 5, 2147483647.0});
  CHECK(d["bf16"].to_vector() == V{1.0, -3.140625, std::ldexp(1.0, 100), std::ldexp(1.0, -130)});
  CHECK(f["bf16"].to_vector() == VF{1.0f, -3.140625f, std::ldexp(1.0f, 100), std::ldexp(1.0f, -130)});
  auto h = d["f16"].to_vector();
  REQUIRE(h.size() == 7);
  CHECK(h[0] == 1.0);
  CHECK(h[1] == -2.5);
  CHECK(h[2] == 65504.0);
  CHECK(h[3] == std::ldexp(1.0, -24));  // the smallest subnormal half
  CHECK(h[4] == 0.0);
  CHECK(std::signbit(h[4]));
  CHECK(h[5] == std::numeric_limits<double>::infinity());
  CHECK(std::isnan(h[6]));
  CHECK(std::isnan(f["f16"].to_vector()[6]));
  CHECK(d["i16"].to_vector() == V{-32768, 1234});
  CHECK(d["i8"].to_vector() == V{-128, 0, 127});
  CHECK(d["u8"].to_vector() == V{0, 200, 255});
  CHECK(d["bool"].to_vector() == V{1, 0, 1});
}

TEST_CASE("safetensors: accepts empty files, zero-size tensors sharing an offset, escapes and padding") {
  CHECK(parse(make_file("{}")).entries.empty());
  CHECK(parse(make_file(" {} \t\r\n    ")).entries.empty());
  auto file = parse(make_file("{" + entry("e1", "F32", "[0]", 0, 0) + "," + entry("a", "F16", "[2,2]", 0, 8) + "," +
                                  entry("e2", "I8", "[3,0]", 8, 8) + "}",
                              zeros(8)));
  CHECK(file.entries.size() == 3);
  // \u escapes, surrogate pairs and raw UTF-8 decode to the same UTF-8 name.
  file = parse(make_file(R"({"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \n":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                         zeros(1)));
  CHECK(file.entries[0].name == "caf\xC3\xA9 \xF0\x9F\x98\x80 \"q\" \\ / \n");
  CHECK(parse(make_file("{\"caf\xC3\xA9\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", zeros(1)))
            .entries[0]
            .name == "caf\xC3\xA9");
}

TEST_CASE("safetensors: names and metadata with quotes, control characters and non-ASCII survive a round trip") {
  TempDir dir;
  const std::string path = dir.path("names.safetensors");
  const std::string odd = "q\"b\\s/n\nt\tc\x01 caf\xC3\xA9 \xF0\x9F\x98\x80";
  tv::io::save_safetensors<double>(path, {{odd, filled<double>({2}, 1.0)}}, {{odd, odd}});
  SafetensorsFile file = parse(read_bytes(path));
  CHECK(file.entries.at(0).name == odd);
  CHECK(file.metadata.at(odd) == odd);
  CHECK(tv::io::load_safetensors<double>(path).at(odd).to_vector() == std::vector<double>{1.0, 1.25});
}

TEST_CASE("safetensors: rejects a file shorter than the header length field") {
  for (size_t n = 0; n < 8; ++n) {
    CAPTURE(n);
    CHECK_REJECTS(zeros(n), "expected at least the 8-byte header length");
  }
}

TEST_CASE("safetensors: rejects a header length larger than the file") {
  Bytes b = make_file("{}");
  b[0] = 3;  // 3 bytes of header, 2 present
  CHECK_REJECTS(b, "the header length is 3 bytes, but only 2 bytes follow it");
  b[7] = 0xFF;  // a huge length must not overflow the check
  CHECK_REJECTS(b, "bytes follow it");
}

TEST_CASE("safetensors: rejects a header that is not valid JSON") {
  struct Case {
    const char* name;
    std::string header;
    const char* phrase;
  };
  const std::vector<Case> cases = {
      {"empty", "", "expected '{' opening the header object, got the end of the header"},
      {"null", "null", "expected '{' opening the header object, got 'n'"},
      {"unclosed object", "{", "expected a string key, got the end of the header"},
      {"unclosed string", R"({"a)", "expected '\"' closing a string"},
      {"missing colon", R"({"a" 1})", "expected ':' after a key, got '1'"},
      {"trailing comma", R"({"__metadata__":{"a":"x",}})", "expected a string key, got '}'"},
      {"missing comma", R"({"__metadata__":{"a":"x" "b":"y"}})", "expected ',' or '}' in an object, got '\"'"},
      {"unclosed array", R"({"a":{"shape":[1,2)", "expected ',' or ']' in an array, got the end of the header"},
      {"bare word", R"({"a":true})", "expected an object describing tensor 'a', got 't'"},
      {"fraction", R"({"a":{"dtype":"F32","shape":[1.5]}})", "no fractions or exponents"},
      {"exponent", R"({"a":{"shape":[1e3]}})", "no fractions or exponents"},
      {"leading zero", R"({"a":{"shape":[01]}})", "no leading zeros"},
      {"lone minus", R"({"a":{"shape":[-]}})", "expected a digit"},
      {"integer overflow", R"({"a":{"data_offsets":[18446744073709551616]}})", "an integer that fits in 64 bits"},
      {"bad escape", R"({"a\q":1})", "one of \" \\ / b f n r t u after '\\'"},
      {"short \\u", R"({"a\u12":1})", "4 hex digits after \\u"},
      {"lone high surrogate", R"({"\ud800":1})", "a \\u low surrogate after a high surrogate"},
      {"high surrogate then not low", R"({"\ud800\u0041":1})", "a \\u low surrogate (DC00-DFFF)"},
      {"lone low surrogate", R"({"\udc00":1})", "not a lone low surrogate"},
      {"raw control character", "{\"a\nb\":1}", "no raw control characters"},
      {"invalid UTF-8 byte", "{\"\xFF\":1}", "expected UTF-8 text, got byte 0xFF"},
      {"overlong UTF-8", "{\"\xC0\xAF\":1}", "expected UTF-8 text"},
      {"UTF-8 surrogate", "{\"\xED\xA0\x80\":1}", "expected UTF-8 text"},
      {"truncated UTF-8", "{\"\xE2\x82", "expected UTF-8 text"},
      {"garbage after the object", "{} x", "expected only spaces after the header object, got 'x'"},
      {"NUL padding", std::string("{}\0\0\0\0\0\0", 8), "expected only spaces after the header object, got byte 0x00"},
      {"nesting", "{\"a\":{\"shape\":" + std::string(1000, '['),
       "expected an integer in the shape of tensor 'a', got '['"},
  };
  for (const auto& c : cases) {
    SUBCASE(c.name) { CHECK_REJECTS(make_file(c.header), c.phrase); }
  }
  // The error position counts from the start of the file.
  CHECK_REJECTS(make_file("{} x"), "header JSON at byte 11");
}

TEST_CASE("safetensors: rejects a header that is not an object of tensor objects") {
  CHECK_REJECTS(make_file("[1,2]"), "expected '{' opening the header object, got '['");
  CHECK_REJECTS(make_file("\"x\""), "expected '{' opening the header object, got '\"'");
  CHECK_REJECTS(make_file("7"), "expected '{' opening the header object, got '7'");
  CHECK_REJECTS(make_file(R"({"a":[1]})"), "expected an object describing tensor 'a', got '['");
  CHECK_REJECTS(make_file(R"({"a":{"dtype":"F32","shape":[1]}})", zeros(4)),
                "tensor 'a' lacks the field 'data_offsets'");
  CHECK_REJECTS(make_file(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", zeros(4)), "lacks the field 'shape'");
  CHECK_REJECTS(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", zeros(4)),
                "tensor 'a' has an unknown field 'x'");
  CHECK_REJECTS(make_file(R"({"a":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", zeros(4)),
                "expected a string as the dtype of tensor 'a', got '7'");
  CHECK_REJECTS(make_file(R"({"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", zeros(4)),
                "expected an array as the shape of tensor 'a', got '\"'");
  CHECK_REJECTS(make_file(R"({"a":{"dtype":"F32","shape":[[1]],"data_offsets":[0,4]}})", zeros(4)),
                "expected an integer in the shape of tensor 'a', got '['");
  CHECK_REJECTS(make_file(R"({"__metadata__":[]})"), "expected an object of strings as '__metadata__', got '['");
  CHECK_REJECTS(make_file(R"({"__metadata__":{"k":1}})"),
                "expected a string as the value of metadata key 'k', got '1'");
}

TEST_CASE("safetensors: rejects duplicate names, metadata keys and fields") {
  const std::string a = entry("a", "F32", "[1]", 0, 4), b = entry("a", "F32", "[1]", 4, 8);
  CHECK_REJECTS(make_file("{" + a + "," + b + "}", zeros(8)), "the tensor name 'a' appears twice");
  CHECK_REJECTS(make_file(R"({"__metadata__":{"k":"1","k":"2"}})"), "the metadata key 'k' appears twice");
  CHECK_REJECTS(make_file(R"({"__metadata__":{},"__metadata__":{}})"), "'__metadata__' twice");
  CHECK_REJECTS(make_file(R"({"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})", zeros(4)),
                "tensor 'a' has the field 'dtype' twice");
}

TEST_CASE("safetensors: rejects unknown dtypes") {
  for (const char* dtype : {"F8_E4M3", "U16", "U64", "f32", "FLOAT", ""}) {
    SUBCASE(dtype) {
      CHECK_REJECTS(make_file("{" + entry("a", dtype, "[1]", 0, 1) + "}", zeros(1)),
                    "tensor 'a' has dtype '" + std::string(dtype) + "'; expected one of F64, F32, F16");
    }
  }
}

TEST_CASE("safetensors: rejects negative and overflowing shapes") {
  CHECK_REJECTS(make_file("{" + entry("a", "F32", "[2,-1]", 0, 4) + "}", zeros(4)), "has the negative size -1");
  CHECK_REJECTS(make_file("{" + entry("a", "F32", "[4294967296,4294967296]", 0, 4) + "}", zeros(4)),
                "more elements than fit in 64 bits");
  CHECK_REJECTS(make_file("{" + entry("a", "F32", "[9223372036854775808]", 0, 4) + "}", zeros(4)),
                "more elements than fit in 64 bits");
  // A zero size does not excuse the others: strides must still fit.
  CHECK_REJECTS(make_file("{" + entry("a", "F32", "[0,4294967296,4294967296]", 0, 0) + "}"),
                "more elements than fit in 64 bits");
  // Elements fit, bytes do not.
  CHECK_REJECTS(make_file("{" + entry("a", "F64", "[4611686018427387904]", 0, 8) + "}", zeros(8)),
                "has more bytes than fit in 64 bits");
}

TEST_CASE("safetensors: rejects data_offsets that do not match dtype size * numel") {
  CHECK_REJECTS(make_file("{" + entry("a", "F32", "[2,3]", 0, 20) + "}", zeros(20)),
                "tensor 'a' (F32, shape [2, 3]) needs 24 bytes, but its data_offsets [0, 20] span 20");
  CHECK_REJECTS(make_file("{" + entry("a", "BF16", "[]", 0, 4) + "}", zeros(4)), "needs 2 bytes");
  CHECK_REJECTS(make_file("{" + entry("a", "U8", "[4]", 4, 0) + "}", zeros(4)),
                "the data_offsets [4, 0] of tensor 'a' end before they begin");
  CHECK_REJECTS(make_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", zeros(1)),
                "the data_offsets of tensor 'a' hold one value; expected [begin, end]");
  CHECK_REJECTS(make_file(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[]}})"),
                "the data_offsets of tensor 'a' hold no value; expected [begin, end]");
  CHECK_REJECTS(make_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})", zeros(1)),
                "the data_offsets of tensor 'a' hold -1; expected integers >= 0");
  CHECK_REJECTS(make_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})", zeros(1)),
                "hold more than 2 values; expected [begin, end]");
}

TEST_CASE("safetensors: rejects offsets outside the data section") {
  CHECK_REJECTS(make_file("{" + entry("a", "F32", "[2]", 0, 8) + "}", zeros(4)),
                "the data_offsets [0, 8] of tensor 'a' reach past the end of the data section (4 bytes)");
  // Near 2^64: no wrap-around lets it pass.
  CHECK_REJECTS(make_file("{" + entry("a", "F32", "[2]", 18446744073709551600u, 18446744073709551608u) + "}", zeros(8)),
                "reach past the end of the data section (8 bytes)");
}

TEST_CASE("safetensors: rejects overlapping tensors") {
  CHECK_REJECTS(
      make_file("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 4, 12) + "}", zeros(12)),
      "tensor 'b' (bytes [4, 12)) overlaps tensor 'a' (bytes [0, 8))");
  CHECK_REJECTS(make_file("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 0, 8) + "}", zeros(8)),
                "overlaps tensor");
  // An empty tensor inside another's bytes is refused as the reference does.
  CHECK_REJECTS(make_file("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("e", "F32", "[0]", 4, 4) + "}", zeros(8)),
                "tensor 'e' (bytes [4, 4)) overlaps tensor 'a'");
}

TEST_CASE("safetensors: rejects holes in the data section") {
  CHECK_REJECTS(
      make_file("{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("b", "F32", "[1]", 8, 12) + "}", zeros(12)),
      "bytes [4, 8) of the data section belong to no tensor (a hole before tensor 'b')");
  CHECK_REJECTS(make_file("{" + entry("a", "F32", "[1]", 4, 8) + "}", zeros(8)), "bytes [0, 4) of the data section");
}

TEST_CASE("safetensors: rejects trailing garbage") {
  CHECK_REJECTS(make_file("{" + entry("a", "F32", "[1]", 0, 4) + "}", zeros(5)),
                "the tensors end at byte 4 of the data section, but it has 5 bytes");
  CHECK_REJECTS(make_file("{}", zeros(1)), "the tensors end at byte 0 of the data section, but it has 1 bytes");
}

TEST_CASE("safetensors: truncated or byte-flipped copies of a valid file throw tv::Error, never crash") {
  const Bytes good = read_bytes(std::string(TINYVID_FIXTURE_DIR) + "/io_reference.safetensors");
  REQUIRE(good.size() > 100);
  CHECK(parse(good).entries.size() == 12);
  int not_rejected = 0;
  for (size_t n = 0; n < good.size(); ++n) {
    Bytes cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    try {
      parse(cut);
      ++not_rejected;
    } catch (const tv::Error&) {
    }
  }
  CHECK(not_rejected == 0);
  // Flips may give another valid file; then every tensor must decode.
  for (size_t i = 0; i < good.size(); ++i) {
    for (uint8_t v : {0x00, 0xFF, 0x22, 0x7B, 0x5D, 0x39, 0x20, 0x80}) {
      Bytes b = good;
      b[i] = v;
      try {
        SafetensorsFile f = parse(b);
        for (auto& e : f.entries) tv::io::decode_tensor<float>(e, b.data() + f.data_start);
      } catch (const tv::Error&) {
      }
    }
  }
}

TEST_CASE("safetensors: reading a missing file or a directory is an error naming the path") {
  TempDir dir;
  const std::string missing = dir.path("nope.safetensors");
  CHECK_THROWS_WITH_AS(tv::io::load_safetensors<float>(missing), has("load_safetensors: cannot open '" + missing + "'"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(tv::io::load_safetensors<float>(dir.path("")), doctest::Contains("is not a regular file"),
                       tv::Error);
  // A corrupt file on disk: the message names the path.
  const std::string bad = dir.path("bad.safetensors");
  std::ofstream(bad, std::ios::binary) << "garbage!";
  CHECK_THROWS_WITH_AS(tv::io::load_safetensors<double>(bad), has("safetensors file '" + bad + "'"), tv::Error);
}

TEST_CASE("safetensors: saving is atomic: it replaces an existing file and leaves no temporary") {
  TempDir dir;
  const std::string path = dir.path("w.safetensors");
  tv::io::save_safetensors<float>(path, {{"a", filled<float>({4}, 1.0)}});
  CHECK(dir.listing() == std::vector<std::string>{"w.safetensors"});
  tv::io::save_safetensors<float>(path, {{"b", filled<float>({2, 2}, -3.0)}});
  CHECK(dir.listing() == std::vector<std::string>{"w.safetensors"});
  auto loaded = tv::io::load_safetensors<float>(path);
  REQUIRE(loaded.size() == 1);
  CHECK(loaded.at("b").to_vector() == std::vector<float>{-3.0f, -2.75f, -2.5f, -2.25f});

  // A save that fails leaves the old file as it was and no temporary behind.
  const Bytes before = read_bytes(path);
  CHECK_THROWS_AS(tv::io::save_safetensors<float>(path, {{"x", Tensor<float>()}}), tv::Error);
  CHECK(read_bytes(path) == before);
  CHECK(dir.listing() == std::vector<std::string>{"w.safetensors"});
  {
    // A disk that fills up while writing: a file size limit of 4 KiB makes the write fail (EFBIG, the signal ignored).
    rlimit saved{};
    REQUIRE(getrlimit(RLIMIT_FSIZE, &saved) == 0);
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit small = saved;
    small.rlim_cur = 4096;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
    bool failed = false;
    try {
      tv::io::save_safetensors<float>(path, {{"big", filled<float>({1 << 16}, 0.0)}});
    } catch (const tv::Error& e) {
      failed = std::string(e.what()).find("save_safetensors: writing '" + path + "' failed") != std::string::npos;
    }
    setrlimit(RLIMIT_FSIZE, &saved);
    std::signal(SIGXFSZ, old_handler);
    CHECK(failed);
    CHECK(read_bytes(path) == before);
    CHECK(dir.listing() == std::vector<std::string>{"w.safetensors"});
  }
  // The temporary has a name of its own (process id and a count), never a fixed one another writer shares.
  const std::string unwritable = dir.path("no/such/dir/w.safetensors");
  CHECK_THROWS_WITH_AS(tv::io::save_safetensors<float>(unwritable, {{"a", filled<float>({1}, 0.0)}}),
                       has("cannot create '" + unwritable + ".tmp." + std::to_string(::getpid()) + "."), tv::Error);
}

TEST_CASE("io: two writers saving one path at once never mix their bytes and leave no temporary") {
  // Two runs sharing a work directory: each save is complete and atomic, whoever renames last wins. With one fixed
  // temporary name the writers truncate each other's temporary and one rename finds it gone.
  TempDir dir;
  const std::string path = dir.path("results.json");
  const size_t size = 1 << 18;  // many write calls per save
  std::atomic<int> failures{0};
  auto writer = [&](char fill_byte) {
    const std::string text(size, fill_byte);
    for (int i = 0; i < 40; ++i) {
      try {
        tv::io::detail::write_file_atomically(path, "test", [&](auto&& put) {
          for (size_t at = 0; at < size; at += 4096) put(text.data() + at, 4096);
        });
      } catch (const tv::Error&) {
        ++failures;
      }
    }
  };
  std::thread a(writer, 'a'), b(writer, 'b');
  // Meanwhile every read sees one whole version.
  int torn = 0;
  for (int i = 0; i < 200; ++i) {
    const Bytes now = read_bytes(path);
    if (now.empty()) continue;  // not written yet
    if (now.size() != size || std::count(now.begin(), now.end(), now[0]) != static_cast<std::ptrdiff_t>(size)) ++torn;
  }
  a.join();
  b.join();
  CHECK(failures == 0);
  CHECK(torn == 0);
  const Bytes last = read_bytes(path);
  REQUIRE(last.size() == size);
  CHECK(std::count(last.begin(), last.end(), last[0]) == static_cast<std::ptrdiff_t>(size));
  CHECK(dir.listing() == std::vector<std::string>{"results.json"});
}

TEST_CASE("safetensors: save refuses what it could not read back") {
  TempDir dir;
  const std::string path = dir.path("w.safetensors");
  auto t = filled<float>({1}, 0.0);
  CHECK_THROWS_WITH_AS(tv::io::save_safetensors<float>(path, {{"a", t}, {"a", t}}),
                       doctest::Contains("the name 'a' appears twice"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::io::save_safetensors<float>(path, {{"__metadata__", t}}),
                       doctest::Contains("'__metadata__' cannot name a tensor"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::io::save_safetensors<float>(path, {{"a", Tensor<float>()}}),
                       doctest::Contains("tensor 'a' is undefined"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::io::save_safetensors<float>(path, {{"\xFF", t}}), doctest::Contains("is not valid UTF-8"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(tv::io::save_safetensors<float>(path, {{"a", t}}, {{"k", "\xC0"}}),
                       doctest::Contains("metadata 'k' is not valid UTF-8"), tv::Error);
  CHECK(dir.listing().empty());
}

TEST_CASE_TEMPLATE("safetensors: save_weights and load_weights round trip a module", T, float, double) {
  TempDir dir;
  const std::string path = dir.path("linear.safetensors");
  tv::Generator g1(1), g2(2);
  tv::nn::Linear<T> a(3, 2, g1), b(3, 2, g2);
  REQUIRE(a.weight.to_vector() != b.weight.to_vector());
  tv::io::save_weights(a, path);
  CHECK(parse(read_bytes(path)).metadata.at("format") == "pt");
  tv::io::load_weights(b, path);
  CHECK(b.weight.to_vector() == a.weight.to_vector());
  CHECK(b.bias.to_vector() == a.bias.to_vector());

  // Missing, unexpected and misshapen keys: the module's message, with the file named.
  tv::io::save_safetensors<T>(path, {{"weight", a.weight}});
  CHECK_THROWS_WITH_AS(tv::io::load_weights(b, path), doctest::Contains("missing keys [bias]"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::io::load_weights(b, path), has("load_weights '" + path + "'"), tv::Error);
  tv::io::load_weights(b, path, /*strict=*/false);
  tv::io::save_safetensors<T>(path, {{"weight", a.weight}, {"bias", a.bias}, {"extra", a.bias}});
  CHECK_THROWS_WITH_AS(tv::io::load_weights(b, path), doctest::Contains("unexpected keys [extra]"), tv::Error);
  tv::io::save_safetensors<T>(path, {{"weight", a.weight.t()}, {"bias", a.bias}});
  CHECK_THROWS_WITH_AS(tv::io::load_weights(b, path, false), doctest::Contains("size mismatch for weight"), tv::Error);
}

namespace {
// A sparse file of `size` bytes starting with `head`: no disk space, and far more than could be allocated.
void write_sparse(const std::string& path, const Bytes& head, uint64_t size) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(head.data()),
                                              static_cast<std::streamsize>(head.size()));
  REQUIRE(::truncate(path.c_str(), static_cast<off_t>(size)) == 0);
}
constexpr uint64_t k100GB = uint64_t{100} << 30;
}  // namespace

TEST_CASE("safetensors: a 100 GB file with a bad header fails on the header, before any data is read") {
  // Reading the file whole first would ask for 100 GB (std::bad_alloc, no file name) or take minutes.
  TempDir dir;
  const std::string bad_json = dir.path("bad_json.safetensors");
  write_sparse(bad_json, make_file("{\"a\":"), k100GB);
  CHECK_THROWS_WITH_AS(tv::io::load_safetensors<float>(bad_json),
                       has("safetensors file '" + bad_json + "': header JSON at byte 13"), tv::Error);
  // A header length of 50 GB: refused from the 8 bytes alone (the reference implementation's 100 MB limit).
  const std::string long_header = dir.path("long_header.safetensors");
  Bytes length = zeros(8);
  length[4] = 0x0C;  // 0x0C00000000 = 51539607552 bytes
  write_sparse(long_header, length, k100GB);
  CHECK_THROWS_WITH_AS(tv::io::load_safetensors<float>(long_header),
                       has("the header length is 51539607552 bytes; expected at most 100000000"), tv::Error);
  // A valid header whose tensors do not cover the 100 GB: the offsets are checked against the file size.
  const std::string short_tensors = dir.path("short_tensors.safetensors");
  write_sparse(short_tensors, make_file("{" + entry("a", "F32", "[2]", 0, 8) + "}"), k100GB);
  CHECK_THROWS_WITH_AS(tv::io::load_safetensors<float>(short_tensors),
                       has("the tensors end at byte 8 of the data section, but it has"), tv::Error);
}

TEST_CASE("io: whole-file reads refuse a 100 GB file by its size, naming it") {
  TempDir dir;
  const std::string huge = dir.path("huge.txt");
  write_sparse(huge, {}, k100GB);
  CHECK_THROWS_WITH_AS(tv::io::detail::read_file(huge, "test"),
                       has("test: '" + huge + "' has 107374182400 bytes; expected at most 1073741824"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::data::read_video_list(huge), has("'" + huge + "' has 107374182400 bytes"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::train::Config::from_file(huge), has("'" + huge + "' has 107374182400 bytes"), tv::Error);
}

TEST_CASE("io: a directory given as a list or a config is an error naming it, not an empty file") {
  // `check-videos dir/` used to pass with "0 bad": a directory read as an empty list.
  TempDir dir;
  const std::string d = dir.path("lists");
  fs::create_directories(d);
  CHECK_THROWS_WITH_AS(tv::data::read_video_list(d),
                       has("annotation file: '" + d + "' is not a regular file (a directory)"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::data::read_label_map(d), has("'" + d + "' is not a regular file"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::train::Config::from_file(d), has("config: '" + d + "' is not a regular file (a directory)"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(tv::train::Config::from_file(dir.path("missing.conf")),
                       has("config: cannot open '" + dir.path("missing.conf") + "'"), tv::Error);
}

TEST_CASE("safetensors: load_weights refuses NaN and infinity, naming the file, the tensor and the element") {
  TempDir dir;
  const std::string path = dir.path("w.safetensors");
  tv::Generator g(3);
  tv::nn::Linear<float> a(3, 2, g), b(3, 2, g);
  const auto before = b.weight.to_vector();
  auto weight = a.weight.clone();
  weight.data()[4] = std::numeric_limits<float>::quiet_NaN();
  tv::io::save_safetensors<float>(path, {{"weight", weight}, {"bias", a.bias}});
  CHECK_THROWS_WITH_AS(tv::io::load_weights(b, path),
                       has("load_weights '" + path +
                           "': tensor 'weight' of shape [2, 3]: expected finite values, got nan at index [1, 1]"),
                       tv::Error);
  CHECK(b.weight.to_vector() == before);  // nothing was loaded
  auto bias = a.bias.clone();
  bias.data()[1] = -std::numeric_limits<float>::infinity();
  tv::io::save_safetensors<float>(path, {{"weight", a.weight}, {"bias", bias}});
  CHECK_THROWS_WITH_AS(tv::io::load_weights(b, path),
                       has("tensor 'bias' of shape [2]: expected finite values, got -inf at index [1]"), tv::Error);
  // A double file whose values overflow float loads as infinity: refused as well.
  tv::io::save_safetensors<double>(path,
                                   {{"weight", tv::full<double>({2, 3}, 1e300)}, {"bias", tv::zeros<double>({2})}});
  CHECK_THROWS_WITH_AS(tv::io::load_weights(b, path),
                       has("tensor 'weight' of shape [2, 3]: expected finite values, got inf at index [0, 0]"),
                       tv::Error);
  // load_safetensors itself reads what is there (inputs, the reference's NaN and infinity).
  CHECK(std::isinf(tv::io::load_safetensors<float>(path).at("weight").to_vector()[0]));
}

TEST_CASE("safetensors: F16 and BF16 are rounded to nearest, ties to even, and every value of them round-trips") {
  using tv::io::detail::bfloat16_to_float;
  using tv::io::detail::half_to_float;
  using tv::io::detail::round_to_binary16;
  struct Format {
    const char* name;
    int fraction_bits;
    float (*decode)(uint16_t);
  };
  for (const Format& f : {Format{"F16", 10, half_to_float}, Format{"BF16", 7, bfloat16_to_float}}) {
    const std::string format = f.name;
    CAPTURE(format);
    const uint16_t infinity = static_cast<uint16_t>(((1 << (15 - f.fraction_bits)) - 1) << f.fraction_bits);
    int wrong = 0;
    for (uint32_t h = 0; h < 0x10000; ++h) {
      const double v = f.decode(static_cast<uint16_t>(h));
      if (std::isnan(v)) {
        wrong += !std::isnan(f.decode(round_to_binary16(v, f.fraction_bits)));
        continue;
      }
      wrong += round_to_binary16(v, f.fraction_bits) != h;  // every value (zeros, subnormals, infinities) is kept
      // Between a value and the next one up: below the midpoint rounds down, above up, the midpoint to the even one.
      const uint16_t magnitude = h & 0x7FFF;
      if (magnitude >= infinity) continue;
      const double next = f.decode(static_cast<uint16_t>(h + 1));  // the next magnitude up (infinity after the largest)
      const double gap = std::isinf(next) ? v - f.decode(static_cast<uint16_t>(h - 1)) : next - v;
      const double mid = v + gap / 2;
      const uint16_t up = static_cast<uint16_t>(h + 1), even = (h & 1) ? up : static_cast<uint16_t>(h);
      wrong += round_to_binary16(mid, f.fraction_bits) != even;
      wrong += round_to_binary16(v + gap / 4, f.fraction_bits) != h;
      wrong += round_to_binary16(v + 3 * gap / 4, f.fraction_bits) != up;
    }
    CHECK(wrong == 0);
  }
  // Landmarks: the largest half, where rounding overflows to infinity, the smallest subnormal, NaN.
  CHECK(round_to_binary16(65504.0, 10) == 0x7BFF);
  CHECK(round_to_binary16(65519.99, 10) == 0x7BFF);
  CHECK(round_to_binary16(65520.0, 10) == 0x7C00);  // the tie rounds to the even: infinity
  CHECK(round_to_binary16(-1e10, 10) == 0xFC00);
  CHECK(round_to_binary16(std::ldexp(1.0, -24), 10) == 0x0001);
  CHECK(round_to_binary16(std::ldexp(1.0, -25), 10) == 0x0000);  // a tie between 0 and the smallest: 0 is even
  CHECK(round_to_binary16(std::ldexp(1.5, -25), 10) == 0x0001);
  CHECK(round_to_binary16(-0.0, 10) == 0x8000);
  CHECK(round_to_binary16(1.0 + std::ldexp(1.0, -11), 10) == 0x3C00);  // 1 + half an ulp: ties to even (1)
  CHECK(round_to_binary16(1.0 + std::ldexp(3.0, -11), 10) == 0x3C02);
  CHECK(round_to_binary16(3.140625, 7) == 0x4049);
  CHECK(round_to_binary16(std::ldexp(1.0, 128), 7) == 0x7F80);
  CHECK(std::isnan(half_to_float(round_to_binary16(std::nan(""), 10))));
  CHECK(std::isnan(bfloat16_to_float(round_to_binary16(-std::nan(""), 7))));
}

TEST_CASE_TEMPLATE("safetensors: saving as F16 or BF16 halves the file and loads back as the rounded values", T, float,
                   double) {
  TempDir dir;
  const std::string path = dir.path("half.safetensors");
  const std::vector<double> values = {1.0, -2.5, 0.1, 3.140625, 65504.0, 1e5, 1e-7, -0.0, 1.0 + std::ldexp(1.0, -11)};
  auto t = Tensor<T>::empty({3, 3});
  for (size_t i = 0; i < values.size(); ++i) t.data()[i] = static_cast<T>(values[i]);
  for (Dtype dtype : {Dtype::F16, Dtype::BF16}) {
    CAPTURE(tv::io::dtype_name(dtype));
    const int fraction_bits = dtype == Dtype::F16 ? 10 : 7;
    tv::io::save_safetensors<T>(path, {{"w", t.t()}}, {}, dtype);  // a non-contiguous view, written row-major
    const SafetensorsFile file = parse(read_bytes(path));
    REQUIRE(file.entries.size() == 1);
    CHECK(file.entries[0].dtype == dtype);
    CHECK(file.entries[0].end - file.entries[0].begin == 9 * 2);
    const auto loaded = tv::io::load_safetensors<T>(path).at("w").to_vector();
    const auto transposed = t.t().to_vector();
    for (size_t i = 0; i < loaded.size(); ++i) {
      const uint16_t bits = tv::io::detail::round_to_binary16(static_cast<double>(transposed[i]), fraction_bits);
      const double expected = dtype == Dtype::F16 ? tv::io::detail::half_to_float(bits)
                                                  : tv::io::detail::bfloat16_to_float(bits);
      CHECK(static_cast<double>(loaded[i]) == expected);
    }
  }
  CHECK(tv::io::load_safetensors<T>(path).at("w").to_vector()[0] == T(1));
  // 1e5 is beyond the largest half: infinity in F16 (and so refused by load_weights), 99840 in BF16.
  tv::io::save_safetensors<T>(path, {{"w", t}}, {}, Dtype::F16);
  CHECK(std::isinf(tv::io::load_safetensors<T>(path).at("w").to_vector()[5]));
  CHECK_THROWS_WITH_AS(tv::io::save_safetensors<T>(path, {{"w", t}}, {}, Dtype::I32),
                       has("expected F64, F32, F16 or BF16 to store floating-point tensors, got I32"), tv::Error);
}

TEST_CASE("safetensors: num_batches_tracked is stored as I64, as PyTorch keeps it, and loads back exactly") {
  // torch.nn.BatchNorm2d's num_batches_tracked is a torch.long tensor: safetensors.torch.save_file writes it as
  // I64, and PyTorch's load_state_dict expects that dtype.
  TempDir dir;
  const std::string path = dir.path("bn.safetensors");
  tv::nn::BatchNorm2d<float> a(tv::nn::BatchNormOptions(3)), b(tv::nn::BatchNormOptions(3));
  a.num_batches_tracked.fill_(16777216.0f);  // 2^24, the largest count a float holds exactly with its neighbours
  for (Dtype dtype : {Dtype::F32, Dtype::F16, Dtype::BF16}) {
    CAPTURE(tv::io::dtype_name(dtype));
    tv::io::save_weights(a, path, dtype);
    const Bytes bytes = read_bytes(path);
    const SafetensorsFile file = parse(bytes);
    for (const auto& e : file.entries) {
      CAPTURE(e.name);
      CHECK(e.dtype == (e.name == "num_batches_tracked" ? Dtype::I64 : dtype));
      if (e.name == "num_batches_tracked") {
        CHECK(e.shape.empty());
        CHECK(tv::io::detail::load_le<uint64_t>(bytes.data() + file.data_start + e.begin) == 16777216u);
      }
    }
    tv::io::load_weights(b, path);
    CHECK(b.num_batches_tracked.item() == 16777216.0f);
    CHECK(b.running_var.to_vector() == a.running_var.to_vector());
  }
  // Any name ending in num_batches_tracked (a recognizer's backbone.bn1.num_batches_tracked, a training state's
  // model.* copy), for double tensors too; a count that is not a whole number cannot be stored so.
  tv::io::save_safetensors<double>(path,
                                   {{"model.backbone.bn1.num_batches_tracked", tv::full<double>({}, 123456789.0)}});
  CHECK(parse(read_bytes(path)).entries.at(0).dtype == Dtype::I64);
  CHECK(tv::io::load_safetensors<double>(path).at("model.backbone.bn1.num_batches_tracked").item() == 123456789.0);
  CHECK_THROWS_WITH_AS(tv::io::save_safetensors<float>(path, {{"bn.num_batches_tracked", tv::full<float>({}, 2.5f)}}),
                       has("tensor 'bn.num_batches_tracked' is stored as I64 (PyTorch's dtype for it), but element 0 "
                           "is 2.5; expected a whole number"),
                       tv::Error);
  CHECK(tv::io::load_safetensors<double>(path).size() == 1);  // the failed save left the old file
}

// core/json: the one JSON string escaper (safetensors headers, test reports, the command line's --json).
#include <random>
#include <tinyvid/core/json.hpp>

TEST_CASE("json_quote: escapes as serde_json, and quotes any bytes into JSON the safetensors parser reads back") {
  CHECK(tv::json_quote("") == "\"\"");
  CHECK(tv::json_quote("a\"b\\c/d") == "\"a\\\"b\\\\c/d\"");
  CHECK(tv::json_quote("\n\t\r\b\f") == "\"\\n\\t\\r\\b\\f\"");
  CHECK(tv::json_quote(std::string("\x00\x01\x1f\x7f", 4)) == "\"\\u0000\\u0001\\u001f\x7f\"");
  // Well-formed UTF-8 (2, 3 and 4 bytes) passes through; each byte of a malformed sequence is \u00XX.
  CHECK(tv::json_quote("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  CHECK(tv::json_quote("\xff") == "\"\\u00ff\"");
  CHECK(tv::json_quote("a\xc3") == "\"a\\u00c3\"");                          // cut short
  CHECK(tv::json_quote("\xc3(") == "\"\\u00c3(\"");                           // bad continuation
  CHECK(tv::json_quote("\xc0\xaf") == "\"\\u00c0\\u00af\"");                  // overlong
  CHECK(tv::json_quote("\xed\xa0\x80") == "\"\\u00ed\\u00a0\\u0080\"");       // a surrogate
  CHECK(tv::json_quote("\xf4\x90\x80\x80") == "\"\\u00f4\\u0090\\u0080\\u0080\"");  // past U+10FFFF

  // Every byte alone and random byte strings: valid JSON to a strict parser; UTF-8 text reads back unchanged.
  std::mt19937 rng(7);
  std::vector<std::string> texts;
  for (int b = 0; b < 256; ++b) texts.emplace_back(1, static_cast<char>(b));
  for (int i = 0; i < 2000; ++i) {
    std::string s(rng() % 12, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 4 ? rng() % 256 : 0x80 + rng() % 64);  // many continuations
    texts.push_back(s);
  }
  for (const std::string& s : texts) {
    CAPTURE(tv::json_quote(s));
    const Bytes bytes = make_file("{\"__metadata__\":{\"k\":" + tv::json_quote(s) + "}}");
    SafetensorsFile file;
    REQUIRE_NOTHROW(file = parse(bytes));
    if (tv::detail::is_utf8(s)) CHECK(file.metadata.at("k") == s);
  }
}
