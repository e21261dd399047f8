#pragma once
// tinyvid frames FILE --indices 0,37,79 --out DIR [--size WxH]
#include <filesystem>
#include <memory>

#include <tinyvid/data/annotations.hpp>
#include <tinyvid/data/frames.hpp>
#include <tinyvid/data/transforms.hpp>
#include <tinyvid/data/video.hpp>

#include "common.hpp"

namespace tvcli {

inline Run add_frames(CLI::App& cmd) {
  struct Args {
    Text file, indices, out, size;
  };
  auto a = std::make_shared<Args>();
  add_positional(cmd, a->file, "FILE", "the video");
  add_text(cmd, a->indices, "--indices", "I,J,...", "the frames, counted from 0");
  add_text(cmd, a->out, "--out", "DIR", "where DIR/frame_000037.png ... go");
  add_text(cmd, a->size, "--size", "WxH",
           "resize to WxH; -1x256: short side 256, ratio kept\n(MMAction2's Resize(scale=(-1, 256)))");
  return [a] {
    const std::string file = a->file.need_positional("a video FILE");
    std::vector<int64_t> indices;
    for (const std::string& f : tv::data::detail::split_on(a->indices.need(), ','))
      indices.push_back(tv::parse_int(f, "--indices", tv::Range::at_least(0)));
    const std::string out = a->out.need();
    std::error_code ec;
    std::filesystem::create_directories(out, ec);
    TV_CHECK(!ec, "cannot create '", out, "': ", ec.message());
    tv::data::VideoReader r(file);
    tv::data::Clip clip = r.read(indices);
    if (a->size.given()) {
      // WxH exactly, or -1xS / Sx-1: short side S, ratio kept; the loader's OpenCV-exact bilinear resize.
      const std::string size = a->size.get();
      const size_t x = size.find('x');
      auto side = [&](const std::string& v) {
        return v == "-1" ? int64_t{-1} : tv::parse_int(v, "--size", tv::Range::at_least(1));
      };
      TV_CHECK(x != std::string::npos, "--size: expected WxH such as 224x224 or -1x256, got '", size, "'");
      const int64_t w = side(size.substr(0, x)), h = side(size.substr(x + 1));
      TV_CHECK(w > 0 || h > 0, "--size: at most one side may be -1, got '", size, "'");
      clip = tv::data::Resize{.scale = {w, h}, .keep_ratio = w < 0 || h < 0}(std::move(clip));
    }
    for (size_t k = 0; k < indices.size(); ++k) {
      char name[32];
      std::snprintf(name, sizeof(name), "frame_%06lld.png", static_cast<long long>(indices[k]));
      const std::string path = (std::filesystem::path(out) / name).string();
      tv::data::write_png(path, clip[k]);
      std::printf("%s\n", path.c_str());
    }
    return 0;
  };
}

}  // namespace tvcli
