#pragma once
// Frame folders (MMAction2's "rawframes": one JPEG/PNG per frame) read with stb_image, and PNG / JPEG writing
// with stb_image_write. Link tinyvid::video (it carries the stb include directory, /usr/include/stb on Debian).
//
// stb is compiled here with STB_IMAGE_STATIC / STB_IMAGE_WRITE_STATIC: every translation unit that includes
// this header gets its own private (static) copy of the decoder, so the library stays header-only and no
// two units clash at link time. The price is a little code size per unit. Include this header before any
// other stb_image.h / stb_image_write.h in a unit (or not in the same unit), since stb guards its declarations.
// Only stb's JPEG and PNG decoders are compiled: frames are nothing else, and each other format is more
// untrusted-input surface (tests/fuzz/fuzz_image.cpp).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#endif
#define STB_IMAGE_STATIC
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "tinyvid/core/error.hpp"
#include "tinyvid/data/image.hpp"

namespace tv::data {

namespace detail {

// stb_image 2.27 (Debian 12's libstb-dev) writes past its Huffman tables when a JPEG DHT segment declares more
// than 256 codes (nothings/stb#1289, fixed in 2.28). Walks the markers as stb reads them (a DHT's tables are
// read even past the segment's length, bytes past the end read as 0) and answers whether every table fits.
inline bool jpeg_huffman_tables_fit(const uint8_t* p, size_t n) {
  size_t i = 0;
  while (i < n && p[i] == 0xFF) ++i;  // stb takes FF FF .. D8 for a start of image too
  if (i == 0 || i >= n || p[i] != 0xD8) return true;  // not a JPEG
  ++i;
  auto byte = [&](size_t k) -> size_t { return k < n ? p[k] : 0; };
  while (i + 1 < n) {
    if (p[i] != 0xFF) {  // entropy-coded data, or padding between segments
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < n && p[j] == 0xFF) ++j;  // fill bytes
    if (j >= n) break;
    const uint8_t m = p[j];
    i = j + 1;
    if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue;  // stuffed byte, TEM, RSTn, SOI: no length
    if (m == 0xD9) break;                                             // EOI
    const size_t len = byte(i) << 8 | byte(i + 1);
    if (m == 0xC4) {
      long left = static_cast<long>(len) - 2;
      size_t k = i + 2;
      while (left > 0 && k < n) {
        if ((p[k] >> 4) > 1 || (p[k] & 15) > 3) return true;  // stb refuses the table itself
        size_t codes = 0;
        for (size_t t = 1; t <= 16; ++t) codes += byte(k + t);
        if (codes > 256) return false;
        k += 17 + codes;
        left -= static_cast<long>(17 + codes);
      }
    }
    if (len < 2) break;  // stb skips to the end
    i += len;
  }
  return true;
}

// Frames are video frames: a header claiming more pixels than this (8192 x 8192) is refused before stb
// allocates for it (a 300-byte JPEG can claim 26000 x 26000, i.e. 2 GB).
constexpr int64_t kMaxImagePixels = int64_t{1} << 26;

}  // namespace detail

// Reads an image file (JPEG or PNG) as RGB (grayscale becomes three equal channels).
inline Image read_image(const std::string& path) {
  std::error_code ec;
  TV_CHECK(std::filesystem::is_regular_file(path, ec), "read_image: frame file '", path, "' does not exist");
  // Read whole, so the JPEG check below sees the bytes stb will decode.
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  const std::streamoff length = in.tellg();
  TV_CHECK(in.good() && length >= 0 && length <= INT32_MAX, "read_image: cannot read '", path, "'",
           length > INT32_MAX ? " (larger than 2 GB)" : "");
  std::vector<uint8_t> bytes(static_cast<size_t>(length));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(length));
  TV_CHECK(in.gcount() == length, "read_image: cannot read '", path, "'");
  const auto size = static_cast<int>(length);
  TV_CHECK(detail::jpeg_huffman_tables_fit(bytes.data(), bytes.size()), "read_image: cannot decode '", path,
           "' as JPEG/PNG: a Huffman table declares more than 256 codes");
  int w = 0, h = 0, c = 0;
  if (stbi_info_from_memory(bytes.data(), size, &w, &h, &c))
    TV_CHECK(static_cast<int64_t>(w) * h <= detail::kMaxImagePixels, "read_image: '", path, "' claims ", w, " x ", h,
             " pixels; frames larger than ", detail::kMaxImagePixels, " pixels are refused");
  stbi_uc* data = stbi_load_from_memory(bytes.data(), size, &w, &h, &c, 3);
  TV_CHECK(data, "read_image: cannot decode '", path, "' as JPEG/PNG: ", stbi_failure_reason());
  Image img(h, w, 3);
  std::copy(data, data + static_cast<size_t>(w) * h * 3, img.pixels.begin());
  stbi_image_free(data);
  return img;
}

// Writes 1 (gray), 3 (RGB) or 4 (RGBA) channel images as PNG.
inline void write_png(const std::string& path, const Image& img) {
  TV_CHECK(!img.empty() && (img.channels == 1 || img.channels == 3 || img.channels == 4),
           "write_png: expected a non-empty image with 1, 3 or 4 channels, got ", img.height, " x ", img.width, " x ",
           img.channels, " for '", path, "'");
  TV_CHECK(img.pixels.size() == static_cast<size_t>(img.height * img.width * img.channels),
           "write_png: image holds ", img.pixels.size(), " bytes, expected ", img.height * img.width * img.channels,
           " for '", path, "'");
  int ok = stbi_write_png(path.c_str(), static_cast<int>(img.width), static_cast<int>(img.height),
                          static_cast<int>(img.channels), img.pixels.data(), static_cast<int>(img.width * img.channels));
  TV_CHECK(ok, "write_png: cannot write '", path, "'");
}

// Writes 1 (gray) or 3 (RGB) channel images as baseline JPEG at quality 1..100 (stb_image_write: 4:2:0 chroma
// up to quality 90, full chroma above). Not atomic, like write_png: a caller that must know a file is whole
// marks completion itself. Encoded in memory first because stb's own file writer ignores write errors
// (a full disk would leave a short file and report success).
inline void write_jpeg(const std::string& path, const Image& img, int quality = 95) {
  TV_CHECK(!img.empty() && (img.channels == 1 || img.channels == 3) && img.width <= 65535 && img.height <= 65535,
           "write_jpeg: expected a non-empty image of at most 65535 x 65535 with 1 or 3 channels, got ", img.height,
           " x ", img.width, " x ", img.channels, " for '", path, "'");
  TV_CHECK(img.pixels.size() == static_cast<size_t>(img.height * img.width * img.channels),
           "write_jpeg: image holds ", img.pixels.size(), " bytes, expected ", img.height * img.width * img.channels,
           " for '", path, "'");
  TV_CHECK(quality >= 1 && quality <= 100, "write_jpeg: expected quality in [1, 100], got ", quality, " for '", path, "'");
  std::vector<uint8_t> encoded;
  encoded.reserve(static_cast<size_t>(img.height * img.width) / 4 + 1024);
  auto append = [](void* ctx, void* data, int size) {
    auto* out = static_cast<std::vector<uint8_t>*>(ctx);
    out->insert(out->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  const int ok = stbi_write_jpg_to_func(append, &encoded, static_cast<int>(img.width), static_cast<int>(img.height),
                                        static_cast<int>(img.channels), img.pixels.data(), quality);
  TV_CHECK(ok, "write_jpeg: cannot encode '", path, "'");
  std::FILE* f = std::fopen(path.c_str(), "wb");
  TV_CHECK(f, "write_jpeg: cannot create '", path, "'");
  const bool written = std::fwrite(encoded.data(), 1, encoded.size(), f) == encoded.size();
  const bool closed = std::fclose(f) == 0;  // a delayed write error (full disk, NFS) shows here
  TV_CHECK(written && closed, "write_jpeg: cannot write '", path, "' (", encoded.size(), " bytes)");
}

// Python's str.format for one integer, as MMAction2's filename_tmpl uses it: "{}", "{:d}", "{:05d}", "{:05}".
inline std::string format_frame_name(const std::string& tmpl, int64_t value) {
  const size_t open = tmpl.find('{');
  const size_t close = open == std::string::npos ? std::string::npos : tmpl.find('}', open);
  TV_CHECK(close != std::string::npos, "frame template: expected one '{}' or '{:0Nd}' field, got '", tmpl, "'");
  const std::string spec = tmpl.substr(open + 1, close - open - 1);
  size_t width = 0;
  if (!spec.empty()) {
    std::string s = spec;
    bool ok = s[0] == ':';
    s = ok ? s.substr(1) : s;
    if (ok && !s.empty() && s.back() == 'd') s.pop_back();
    if (ok && !s.empty()) {
      ok = s[0] == '0' && s.size() >= 2 && s.find_first_not_of("0123456789") == std::string::npos;
      if (ok) width = std::stoul(s.substr(1));
    }
    TV_CHECK(ok, "frame template: expected '{}' or '{:0Nd}', got '{", spec, "}' in '", tmpl, "'");
  }
  TV_CHECK(tmpl.find('{', close) == std::string::npos, "frame template: expected one field, got '", tmpl, "'");
  std::string digits = std::to_string(value < 0 ? -value : value);
  const size_t sign = value < 0 ? 1 : 0;
  if (digits.size() + sign < width) digits.insert(0, width - digits.size() - sign, '0');
  return tmpl.substr(0, open) + (value < 0 ? "-" : "") + digits + tmpl.substr(close + 1);
}

// A folder of frames: frame i is the file filename_tmpl.format(start_index + i), as MMAction2's RawFrameDecode.
class FrameFolderReader {
 public:
  explicit FrameFolderReader(const std::string& dir, const std::string& filename_tmpl = "img_{:05d}.jpg",
                             int64_t start_index = 1)
      : dir_(dir), tmpl_(filename_tmpl), start_(start_index) {
    std::error_code ec;
    TV_CHECK(std::filesystem::is_directory(dir, ec), "FrameFolderReader: frame folder '", dir, "' does not exist");
    format_frame_name(tmpl_, start_);  // checks the template now, not at the first read
  }

  std::string frame_path(int64_t i) const {
    return (std::filesystem::path(dir_) / format_frame_name(tmpl_, start_ + i)).string();
  }

  // Frames in the order asked; a repeated index is decoded once.
  Clip read(const std::vector<int64_t>& indices) const {
    Clip out(indices.size());
    for (size_t k = 0; k < indices.size(); ++k) {
      size_t prev = 0;
      while (prev < k && indices[prev] != indices[k]) ++prev;
      if (prev < k) {
        out[k] = out[prev];
        continue;
      }
      TV_CHECK(indices[k] >= 0, "FrameFolderReader: frame index ", indices[k], " is negative for '", dir_, "'");
      out[k] = read_image(frame_path(indices[k]));
    }
    return out;
  }

 private:
  std::string dir_, tmpl_;
  int64_t start_;
};

}  // namespace tv::data
