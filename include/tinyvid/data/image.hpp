#pragma once
// An 8-bit image as the data pipeline passes it around: height x width x channels, interleaved (HWC),
// RGB order for color. A clip is a vector of images of one size, frames in order.
#include <cstdint>
#include <string>
#include <vector>

#include "tinyvid/core/error.hpp"

namespace tv::data {

struct Image {
  int64_t height = 0, width = 0, channels = 3;
  std::vector<uint8_t> pixels;  // height * width * channels bytes, row-major, channels interleaved

  Image() = default;
  Image(int64_t h, int64_t w, int64_t c = 3) : height(h), width(w), channels(c) {
    TV_CHECK(h >= 0 && w >= 0 && c >= 1, "Image: invalid size ", h, " x ", w, " x ", c);
    pixels.assign(static_cast<size_t>(h * w * c), 0);
  }
  bool empty() const { return height == 0 || width == 0; }
  uint8_t* row(int64_t y) { return pixels.data() + y * width * channels; }
  const uint8_t* row(int64_t y) const { return pixels.data() + y * width * channels; }
  uint8_t& at(int64_t y, int64_t x, int64_t c) { return pixels[static_cast<size_t>((y * width + x) * channels + c)]; }
  uint8_t at(int64_t y, int64_t x, int64_t c) const { return pixels[static_cast<size_t>((y * width + x) * channels + c)]; }
};

using Clip = std::vector<Image>;

// Frames are video frames: a video stream or frame image claiming more pixels than 8192 x 8192 (192 MiB as RGB)
// is refused before a decoder allocates for it. 8K video (7680 x 4320, DCI 8192 x 4320) passes; a 1.5 MB MJPEG or
// a 300-byte JPEG can claim 16000 x 16000 or more, i.e. gigabytes.
constexpr int64_t kMaxFramePixels = int64_t{8192} * 8192;

inline bool frame_size_allowed(int64_t width, int64_t height) { return width * height <= kMaxFramePixels; }

// Refuses a declared size above kMaxFramePixels; `op` and `path` say what was being read.
inline void check_frame_size(int64_t width, int64_t height, const char* op, const std::string& path) {
  TV_CHECK(frame_size_allowed(width, height), op, ": '", path, "' claims ", width, " x ", height,
           " pixels; expected at most ", kMaxFramePixels, " (8192 x 8192) per frame");
}

}  // namespace tv::data
