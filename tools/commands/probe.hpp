#pragma once
// tinyvid probe FILE [--json]
#include <memory>

#include <tinyvid/data/video.hpp>

#include "common.hpp"

namespace tvcli {

inline Run add_probe(CLI::App& cmd) {
  struct Args {
    Text file;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  add_positional(cmd, a->file, "FILE", "the video");
  add_flag(cmd, a->json, "--json", "one JSON object");
  return [a] {
    const std::string file = a->file.need_positional("a video FILE");
    tv::data::VideoReader r(file, 1);
    const int64_t frames = r.count_decoded();  // a diagnostic: every frame decoded, nothing taken on trust
    if (a->json) {
      std::printf("{\"file\":%s,\"container\":%s,\"codec\":%s,\"width\":%lld,\"height\":%lld,\"fps\":%.6g,"
                  "\"frames\":%lld,\"duration\":%.6g,\"rotation\":%d}\n",
                  tv::json_quote(file).c_str(), tv::json_quote(r.container()).c_str(),
                  tv::json_quote(r.codec()).c_str(),
                  static_cast<long long>(r.width()), static_cast<long long>(r.height()), r.fps(),
                  static_cast<long long>(frames), r.duration(), r.rotation());
    } else {
      std::printf("file       %s\ncontainer  %s\ncodec      %s\nsize       %lldx%lld\nfps        %.6g\n"
                  "frames     %lld\nduration   %.3f s\nrotation   %d\n",
                  file.c_str(), r.container().c_str(), r.codec().c_str(), static_cast<long long>(r.width()),
                  static_cast<long long>(r.height()), r.fps(), static_cast<long long>(frames), r.duration(),
                  r.rotation());
    }
    return 0;
  };
}

}  // namespace tvcli
