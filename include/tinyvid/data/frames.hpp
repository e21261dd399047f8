#pragma once
// Frame folders (MMAction2's "rawframes": one JPEG/PNG per frame) and image files. JPEG through libjpeg(-turbo)
// and PNG through libpng, the libraries and settings of OpenCV's imread / imwrite, which MMAction2 reads and
// writes frames with; so the pixels (and JPEG bytes) are OpenCV's. Link tinyvid::video (it carries both).
//
// Every decoder here reads untrusted input and is fuzzed (tests/fuzz/fuzz_image.cpp). stb_image, used before,
// failed that fuzzer three times (JPEG: a Huffman table of more than 256 codes written past its arrays,
// nothings/stb#1289, and a negative shift; PNG: memcpy to a null buffer on an empty IDAT).
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <png.h>

#include "tinyvid/core/error.hpp"
#include "tinyvid/core/parse.hpp"
#include "tinyvid/data/image.hpp"
#include "tinyvid/io/file.hpp"

namespace tv::data {

namespace detail {

// libjpeg reports a fatal error through error_exit, which must not return: jump back to the caller with the
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

// JPEG through libjpeg(-turbo) with its default decoding (integer IDCT, fancy upsampling): OpenCV's imread.
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
  too_large = !frame_size_allowed(cinfo.image_width, cinfo.image_height);
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
  check_frame_size(w, h, "read_image", path);
  return img;
}

// Baseline JPEG as OpenCV's imwrite makes it: libjpeg's defaults (4:2:0 chroma for color) at `quality`.
inline std::vector<uint8_t> encode_jpeg(const Image& img, int quality, const std::string& path) {
  jpeg_compress_struct cinfo{};
  JpegErrors err{};
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.emit_message = jpeg_no_message;
  unsigned char* buffer = nullptr;  // libjpeg's, grown with malloc
  unsigned long size = 0;
  std::vector<uint8_t> encoded;
  if (setjmp(err.jump)) {
    jpeg_destroy_compress(&cinfo);
    std::free(buffer);
    TV_FAIL("write_jpeg: cannot encode '", path, "': ", err.message);
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(img.width);
  cinfo.image_height = static_cast<JDIMENSION>(img.height);
  cinfo.input_components = static_cast<int>(img.channels);
  cinfo.in_color_space = img.channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(img.row(cinfo.next_scanline));
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  encoded.assign(buffer, buffer + size);
  jpeg_destroy_compress(&cinfo);
  std::free(buffer);
  return encoded;
}

// libpng reports errors through a callback that must not return: keep the message, jump back to png_jmpbuf.
// Warnings (a bad CRC in an ancillary chunk, an sRGB profile) are not printed.
struct PngErrors {
  char message[256];
};
inline void png_error_exit(png_structp png, png_const_charp message) {
  auto* e = static_cast<PngErrors*>(png_get_error_ptr(png));
  std::snprintf(e->message, sizeof e->message, "%s", message);
  png_longjmp(png, 1);
}
inline void png_no_warning(png_structp, png_const_charp) {}

struct PngSource {
  const uint8_t* data;
  size_t size, pos;
};
inline void png_read_memory(png_structp png, png_bytep out, size_t n) {
  auto* src = static_cast<PngSource*>(png_get_io_ptr(png));
  if (n > src->size - src->pos) png_error(png, "the file ends early");
  std::memcpy(out, src->data + src->pos, n);
  src->pos += n;
}

// PNG through libpng with OpenCV's imread transforms for a color image: 16 bits to 8 (high byte), palette and
// low-bit gray expanded, gray to RGB, alpha (and tRNS transparency) dropped, not composited.
inline Image decode_png(const uint8_t* data, size_t n, const std::string& path) {
  PngErrors err{};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_error_exit, png_no_warning);
  TV_CHECK(png, "read_image: cannot decode '", path, "' as PNG: out of memory");
  png_infop info = png_create_info_struct(png);
  PngSource src{data, n, 0};
  Image img;  // constructed before setjmp: a longjmp skips no destructor
  std::vector<png_bytep> rows;
  bool too_large = false;
  png_uint_32 w = 0, h = 0;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    TV_FAIL("read_image: cannot decode '", path, "' as PNG: ", err.message);
  }
  if (!info) png_error(png, "out of memory");
  png_set_read_fn(png, &src, png_read_memory);
  png_read_info(png, info);
  w = png_get_image_width(png, info);
  h = png_get_image_height(png, info);
  too_large = !frame_size_allowed(w, h);
  if (!too_large) {
    const int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if ((color & PNG_COLOR_MASK_COLOR) == 0 && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if ((color & PNG_COLOR_MASK_COLOR) == 0) png_set_gray_to_rgb(png);
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != static_cast<size_t>(w) * 3) png_error(png, "unexpected row size after conversion");
    img = Image(h, w, 3);
    rows.resize(h);
    for (png_uint_32 y = 0; y < h; ++y) rows[y] = img.row(y);
    png_read_image(png, rows.data());
    png_read_end(png, nullptr);
  }
  png_destroy_read_struct(&png, &info, nullptr);
  check_frame_size(w, h, "read_image", path);
  return img;
}

inline void png_append_memory(png_structp png, png_bytep data, size_t n) {
  auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + n);
}
inline void png_no_flush(png_structp) {}

inline std::vector<uint8_t> encode_png(const Image& img, const std::string& path) {
  PngErrors err{};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_error_exit, png_no_warning);
  TV_CHECK(png, "write_png: cannot encode '", path, "': out of memory");
  png_infop info = png_create_info_struct(png);
  std::vector<uint8_t> encoded;
  std::vector<png_bytep> rows(static_cast<size_t>(img.height));
  for (int64_t y = 0; y < img.height; ++y) rows[y] = const_cast<uint8_t*>(img.row(y));
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    TV_FAIL("write_png: cannot encode '", path, "': ", err.message);
  }
  if (!info) png_error(png, "out of memory");
  png_set_write_fn(png, &encoded, png_append_memory, png_no_flush);
  const int color = img.channels == 1 ? PNG_COLOR_TYPE_GRAY
                    : img.channels == 3 ? PNG_COLOR_TYPE_RGB
                                        : PNG_COLOR_TYPE_RGB_ALPHA;
  png_set_IHDR(png, info, static_cast<png_uint_32>(img.width), static_cast<png_uint_32>(img.height), 8, color,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return encoded;
}

}  // namespace detail

// Reads an image file (JPEG or PNG, told by its first bytes) as RGB; grayscale becomes three equal channels.
inline Image read_image(const std::string& path) {
  std::error_code ec;
  TV_CHECK(std::filesystem::is_regular_file(path, ec), "read_image: frame file '", path, "' does not exist");
  const std::vector<uint8_t> bytes = io::detail::read_file(path, "read_image");
  static constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (bytes.size() >= 2 && bytes[0] == 0xFF && bytes[1] == 0xD8) return detail::decode_jpeg(bytes.data(), bytes.size(), path);
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), kPngSignature, 8) == 0)
    return detail::decode_png(bytes.data(), bytes.size(), path);
  TV_FAIL("read_image: '", path, "' is neither JPEG nor PNG (", bytes.size(), " bytes, expected the signature FF D8 or "
          "89 'PNG')");
}

// Writes 1 (gray), 3 (RGB) or 4 (RGBA) channel images as PNG, atomically: pictures of a running job (curves,
// confusion matrices) are rewritten in place and are never seen half-written.
inline void write_png(const std::string& path, const Image& img) {
  TV_CHECK(!img.empty() && (img.channels == 1 || img.channels == 3 || img.channels == 4) && img.width <= INT32_MAX &&
               img.height <= INT32_MAX,
           "write_png: expected a non-empty image with 1, 3 or 4 channels, got ", img.height, " x ", img.width, " x ",
           img.channels, " for '", path, "'");
  TV_CHECK(img.pixels.size() == static_cast<size_t>(img.height * img.width * img.channels),
           "write_png: image holds ", img.pixels.size(), " bytes, expected ", img.height * img.width * img.channels,
           " for '", path, "'");
  const std::vector<uint8_t> encoded = detail::encode_png(img, path);
  io::detail::write_file_atomically(path, "write_png", [&](auto&& put) { put(encoded.data(), encoded.size()); });
}

// Writes 1 (gray) or 3 (RGB) channel images as baseline JPEG at quality 1..100, byte for byte what OpenCV's
// imwrite writes. Not atomic (extract-frames writes thousands and marks a finished folder itself).
inline void write_jpeg(const std::string& path, const Image& img, int quality = 95) {
  TV_CHECK(!img.empty() && (img.channels == 1 || img.channels == 3) && img.width <= 65535 && img.height <= 65535,
           "write_jpeg: expected a non-empty image of at most 65535 x 65535 with 1 or 3 channels, got ", img.height,
           " x ", img.width, " x ", img.channels, " for '", path, "'");
  TV_CHECK(img.pixels.size() == static_cast<size_t>(img.height * img.width * img.channels),
           "write_jpeg: image holds ", img.pixels.size(), " bytes, expected ", img.height * img.width * img.channels,
           " for '", path, "'");
  TV_CHECK(quality >= 1 && quality <= 100, "write_jpeg: expected quality in [1, 100], got ", quality, " for '", path, "'");
  const std::vector<uint8_t> encoded = detail::encode_jpeg(img, quality, path);
  io::detail::write_file(path, encoded.data(), encoded.size(), "write_jpeg");
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
      // At most 255 digits: no file name is longer (and a huge width would allocate that many zeros).
      if (ok)
        width = static_cast<size_t>(parse_int(s.substr(1), "frame template '" + tmpl + "'", Range::closed(0, 255),
                                              "the zero-padded width"));
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
