// Loads a rawframe list (as `tinyvid extract-frames` writes it) with RawframeDataset and reads every sample:
//   tinyvid_rawframe_check LIST DATA_PREFIX SHORT_SIDE
// Prints one line per sample (folder, total_frames, label, clip shape); exit code 1 if a sample does not load
// or its frames' short side is not SHORT_SIDE. Used by tests/cli/extract_frames.cmake.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "tinyvid/data/dataset.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: tinyvid_rawframe_check LIST DATA_PREFIX SHORT_SIDE\n");
    return 2;
  }
  try {
    using namespace tv::data;
    const auto list = read_rawframe_list(argv[1], {.data_prefix = argv[2]});
    const int64_t short_side = std::atoll(argv[3]);
    Pipeline p;
    p.sampler = SampleFrames{.clip_len = 1, .num_clips = 3, .test_mode = true};  // first, middle, last thirds
    RawframeDataset ds(list, p);
    tv::Generator g;
    int bad = 0;
    for (int64_t i = 0; i < ds.size(); ++i) {
      const auto s = ds.get(i, g);
      const auto& shape = s->clips.shape();
      const bool ok = shape.size() == 4 && shape[0] == 3 && shape[1] == 3 && std::min(shape[2], shape[3]) == short_side;
      bad += !ok;
      std::printf("%s %lld %lld %lldx%lld%s\n", list[static_cast<size_t>(i)].path.c_str(),
                  static_cast<long long>(list[static_cast<size_t>(i)].total_frames), static_cast<long long>(s->label),
                  static_cast<long long>(shape[3]), static_cast<long long>(shape[2]), ok ? "" : " WRONG SHAPE");
    }
    std::printf("loaded %lld samples\n", static_cast<long long>(ds.size()));
    return bad ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tinyvid_rawframe_check: %s\n", e.what());
    return 1;
  }
}
