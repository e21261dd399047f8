#pragma once
// Frame folders (MMAction2's "rawframes": one JPEG/PNG per frame): JPEG read with libjpeg(-turbo), the decoder
// OpenCV uses, PNG with stb_image; PNG / JPEG writing with stb_image_write. Link tinyvid::video (it carries
// libjpeg and the stb include directory, /usr/include/stb on Debian).
//
// stb is compiled here with STB_IMAGE_STATIC / STB_IMAGE_WRITE_STATIC: every translation unit that includes
// this header gets its own private (static) copy of the decoder, so the library stays header-only and no
// two units clash at link time. The price is a little code size per unit. Include this header before any
// other stb_image.h / stb_image_write.h in a unit (or not in the same unit), since stb guards its declarations.
// Only stb's PNG decoder is compiled: frames are JPEG or PNG, and each other format is more untrusted-input
// surface (tests/fuzz/fuzz_image.cpp). stb 2.27's JPEG decoder failed that fuzzer twice (a Huffman table of more
// than 256 codes written past its arrays, nothings/stb#1289; a negative bit count shifted by 34).
#include <algorithm>
#include <csetjmp>
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
#define STBI_ONLY_PNG
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include <jpeglib.h>

#include "tinyvid/core/error.hpp"
#include "tinyvid/data/image.hpp"

namespace tv::data {

namespace detail {

// Frames are video frames: a header claiming more pixels than this (8192 x 8192) is refused before a decoder
// allocates for it (a 300-byte JPEG can claim 26000 x 26000, i.e. 2 GB).
constexpr int64_t kMaxImagePixels = int64_t{1} << 26;

// libjpeg reports a fatal error through error_exit, which must not return: jump back to decode_jpeg with the
// message. Warnings (corrupt entropy data, a premature end) are not printed; the image decodes as OpenCV's
// imread returns it.
struct JpegErrors {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};
inline void jpeg_error_exit(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}
inline void jpeg_no_message(j_common_ptr, int) {}

// JPEG through libjpeg(-turbo) with its default decoding (integer IDCT, fancy upsampling): the decoder and
// settings of OpenCV's imread, which MMAction2 reads rawframes with, so the pixels are OpenCV's.
inline Image decode_jpeg(const uint8_t* data, size_t n, const std::string& path) {
  jpeg_decompress_struct cinfo{};
  JpegErrors err{};
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.emit_message = jpeg_no_message;
  Image img;  // constructed before setjmp: a longjmp skips no destructor
  bool too_large = false;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    TV_FAIL("read_image: cannot decode '", path, "' as JPEG: ", err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(n));
  jpeg_read_header(&cinfo, TRUE);
  too_large = static_cast<int64_t>(cinfo.image_width) * cinfo.image_height > kMaxImagePixels;
  if (!too_large) {
    cinfo.out_color_space = JCS_RGB;  // grayscale comes out as three equal channels
    jpeg_start_decompress(&cinfo);
    img = Image(cinfo.output_height, cinfo.output_width, 3);
    while (cinfo.output_scanline < cinfo.output_height) {
      JSAMPROW row = img.row(cinfo.output_scanline);
      jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
  }
  const int64_t w = cinfo.image_width, h = cinfo.image_height;
  jpeg_destroy_decompress(&cinfo);
  TV_CHECK(!too_large, "read_image: '", path, "' claims ", w, " x ", h, " pixels; frames larger than ", kMaxImagePixels,
           " pixels are refused");
  return img;
}

}  // namespace detail

// Reads an image file (JPEG or PNG) as RGB (grayscale becomes three equal channels): JPEG with libjpeg,
// as OpenCV, PNG with stb_image.
inline Image read_image(const std::string& path) {
  std::error_code ec;
  TV_CHECK(std::filesystem::is_regular_file(path, ec), "read_image: frame file '", path, "' does not exist");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  const std::streamoff length = in.tellg();
  TV_CHECK(in.good() && length >= 0 && length <= INT32_MAX, "read_image: cannot read '", path, "'",
           length > INT32_MAX ? " (larger than 2 GB)" : "");
  std::vector<uint8_t> bytes(static_cast<size_t>(length));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(length));
  TV_CHECK(in.gcount() == length, "read_image: cannot read '", path, "'");
  if (bytes.size() >= 2 && bytes[0] == 0xFF && bytes[1] == 0xD8) return detail::decode_jpeg(bytes.data(), bytes.size(), path);
  const auto size = static_cast<int>(length);
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
