#pragma once
// Frame folders (MMAction2's "rawframes": one JPEG/PNG per frame) read with stb_image, and PNG writing with
// stb_image_write. Link tinyvid::video (it carries the stb include directory, /usr/include/stb on Debian).
//
// stb is compiled here with STB_IMAGE_STATIC / STB_IMAGE_WRITE_STATIC: every translation unit that includes
// this header gets its own private (static) copy of the decoder, so the library stays header-only and no
// two units clash at link time. The price is a little code size per unit. Include this header before any
// other stb_image.h / stb_image_write.h in a unit (or not in the same unit), since stb guards its declarations.
#include <cstdint>
#include <filesystem>
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

// Reads an image file as RGB (grayscale becomes three equal channels).
inline Image read_image(const std::string& path) {
  std::error_code ec;
  TV_CHECK(std::filesystem::is_regular_file(path, ec), "read_image: frame file '", path, "' does not exist");
  int w = 0, h = 0, c = 0;
  stbi_uc* data = stbi_load(path.c_str(), &w, &h, &c, 3);
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
