#pragma once
// Which frames of a video a sample reads: MMAction2's SampleFrames (mmaction/datasets/transforms/loading.py,
// 1.x), formula for formula, so that test-mode indices match MMAction2 exactly. Train mode draws its random
// offsets from a tv::Generator, so a seeded tinyvid is reproducible but cannot reproduce numpy's draws.
// TSN/TSM segment sampling is SampleFrames with clip_len=1 and num_clips = the number of segments.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tinyvid/core/error.hpp"
#include "tinyvid/core/generator.hpp"

namespace tv::data {

enum class OutOfBound { loop, repeat_last };

namespace detail {
// Python's // (floors toward minus infinity; (N - ori + 1) is negative for short videos).
inline int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
// numpy's around/round: halves go to the even neighbour.
inline double round_half_even(double x) {
  double r = std::round(x);
  if (std::fabs(x - std::trunc(x)) == 0.5) r = 2.0 * std::round(x / 2.0);
  return r;
}
}  // namespace detail

// Fields, names and defaults as MMAction2's SampleFrames (target_fps is not supported); build it with
// designated initializers: SampleFrames{.clip_len = 1, .num_clips = 8, .test_mode = true}.
struct SampleFrames {
  int64_t clip_len = 1;
  int64_t frame_interval = 1;
  int64_t num_clips = 1;
  bool temporal_jitter = false;
  bool twice_sample = false;
  OutOfBound out_of_bound_opt = OutOfBound::loop;
  bool test_mode = false;
  bool keep_tail_frames = false;
  // Not MMAction2's: test-mode clips of clip_len > 1 centred in num_clips equal segments (TSN's test sampling with
  // consecutive frames, TDN's authors' _get_val_indices) instead of spread from the first frame to the last.
  bool segment_test_offsets = false;

  // Frames spanned by one clip: train counts the whole last interval, test only up to the last frame.
  int64_t ori_clip_len() const {
    return test_mode ? (clip_len - 1) * frame_interval + 1 : clip_len * frame_interval;
  }

  // Clip start offsets, as doubles because test mode keeps fractional offsets until the very end.
  std::vector<double> clip_offsets(int64_t total_frames, Generator& gen) const {
    check(total_frames);
    const int64_t n = total_frames, ori = ori_clip_len();
    std::vector<double> off;
    if (test_mode) {
      if (clip_len == 1) {  // 2D: the centre of each of num_clips equal segments
        double avg = static_cast<double>(n) / static_cast<double>(num_clips);
        for (int64_t i = 0; i < num_clips; ++i) off.push_back(static_cast<double>(i) * avg + avg / 2.0);
        if (twice_sample)  // the centred set first, then the segment starts
          for (int64_t i = 0; i < num_clips; ++i) off.push_back(static_cast<double>(i) * avg);
      } else if (segment_test_offsets) {  // each clip at its segment's centre; a short video: every clip at 0
        TV_CHECK(!twice_sample, "SampleFrames: segment_test_offsets does not take twice_sample");
        const double tick = static_cast<double>(n - ori + 1) / static_cast<double>(num_clips);
        for (int64_t i = 0; i < num_clips; ++i)
          off.push_back(n > num_clips + ori - 1 ? std::trunc(tick / 2.0 + tick * static_cast<double>(i)) : 0.0);
      } else {  // 3D: clips spread evenly over the video, first at 0 and last at the end
        int64_t max_offset = std::max<int64_t>(n - ori, 0);
        int64_t clips = twice_sample ? 2 * num_clips : num_clips;
        if (clips > 1) {
          // MMAction2 divides by num_clips - 1 even with twice_sample; with one clip that is a division by 0.
          TV_CHECK(num_clips > 1, "SampleFrames: twice_sample with clip_len > 1 needs num_clips > 1, got ",
                   num_clips);
          double between = static_cast<double>(max_offset) / static_cast<double>(num_clips - 1);
          for (int64_t i = 0; i < clips; ++i)
            off.push_back(detail::round_half_even(static_cast<double>(i) * between));
        } else {
          off.push_back(static_cast<double>(max_offset / 2));
        }
      }
      return off;
    }
    if (keep_tail_frames) {
      double avg = static_cast<double>(n - ori + 1) / static_cast<double>(num_clips);
      for (int64_t i = 0; i < num_clips; ++i)
        off.push_back(n > ori - 1 ? std::trunc(static_cast<double>(i) * avg + gen.uniform(0.0, avg)) : 0.0);
      return off;
    }
    int64_t avg = detail::floor_div(n - ori + 1, num_clips);
    if (avg > 0) {
      for (int64_t i = 0; i < num_clips; ++i)
        off.push_back(static_cast<double>(i * avg + static_cast<int64_t>(gen.randint(static_cast<uint64_t>(avg)))));
    } else if (n > std::max(num_clips, ori)) {  // fewer frames than clips * span: sorted random starts
      for (int64_t i = 0; i < num_clips; ++i)
        off.push_back(static_cast<double>(gen.randint(static_cast<uint64_t>(n - ori + 1))));
      std::sort(off.begin(), off.end());
    } else if (avg == 0) {  // short video: evenly spread, rounded half to even
      double ratio = static_cast<double>(n - ori + 1) / static_cast<double>(num_clips);
      for (int64_t i = 0; i < num_clips; ++i)
        off.push_back(detail::round_half_even(static_cast<double>(i) * ratio));
    } else {
      off.assign(static_cast<size_t>(num_clips), 0.0);
    }
    return off;
  }

  // The flat frame indices (num_clips * clip_len, or twice that with twice_sample in test mode), with
  // start_index added: 0 for videos, 1 for frame folders (img_00001.jpg is the first frame).
  std::vector<int64_t> operator()(int64_t total_frames, int64_t start_index, Generator& gen) const {
    std::vector<double> offsets = clip_offsets(total_frames, gen);
    std::vector<int64_t> out;
    out.reserve(offsets.size() * static_cast<size_t>(clip_len));
    std::vector<double> clip(static_cast<size_t>(clip_len));
    const double n = static_cast<double>(total_frames);
    for (double o : offsets) {
      for (int64_t k = 0; k < clip_len; ++k) {
        double ind = o + static_cast<double>(k * frame_interval);
        if (temporal_jitter) ind += static_cast<double>(gen.randint(static_cast<uint64_t>(frame_interval)));
        clip[static_cast<size_t>(k)] = ind;
      }
      if (out_of_bound_opt == OutOfBound::loop) {
        for (double& v : clip) v = std::fmod(v, n);
      } else {  // the largest in-range index of the clip (0 if none) replaces the indices past the end
        double last = 0.0;
        for (double v : clip)
          if (v < n) last = std::max(last, v);
        for (double& v : clip)
          if (!(v < n)) v = last;
      }
      // Truncation after adding start_index, as MMAction2's final astype(np.int32).
      for (double v : clip) out.push_back(static_cast<int64_t>(v + static_cast<double>(start_index)));
    }
    return out;
  }

 private:
  void check(int64_t total_frames) const {
    TV_CHECK(clip_len >= 1, "SampleFrames: clip_len must be >= 1, got ", clip_len);
    TV_CHECK(frame_interval >= 1, "SampleFrames: frame_interval must be >= 1, got ", frame_interval);
    TV_CHECK(num_clips >= 1, "SampleFrames: num_clips must be >= 1, got ", num_clips);
    TV_CHECK(total_frames >= 1, "SampleFrames: the video must have at least one frame, got total_frames = ",
             total_frames);
  }
};

}  // namespace tv::data
