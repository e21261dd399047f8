#pragma once
// MMAction2's VideoDataset and RawframeDataset: an annotation list (annotations.hpp) plus a pipeline
// (SampleFrames -> clip transforms -> Normalize) turning sample i into an M x 3 x H x W float tensor.
// A sample that cannot be read (missing, empty or corrupt file) is a tv::Error naming the file, or, with
// skip_bad, a recorded skip: get() returns no sample and skipped() lists file and reason for the epoch report
// (PIPELINE.md section 7). Only reading is skipped; a transform that fails is a pipeline mistake and always
// propagates. get() is const and safe to call from several threads at once (the Loader's workers).
// Link tinyvid::video.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tinyvid/core/error.hpp"
#include "tinyvid/core/generator.hpp"
#include "tinyvid/core/tensor.hpp"
#include "tinyvid/data/annotations.hpp"
#include "tinyvid/data/frames.hpp"
#include "tinyvid/data/image.hpp"
#include "tinyvid/data/sampling.hpp"
#include "tinyvid/data/transforms.hpp"
#include "tinyvid/data/video.hpp"

namespace tv::data {

// One pipeline step on the decoded frames and the sample's label (Flip with a flip_label_map changes it);
// random steps draw from the sample's generator.
using ClipStep = std::function<Clip(Clip, Generator&, int64_t& label)>;

// Wraps a transform of transforms.hpp as a step, whether or not it draws random numbers or sees the label:
// clip_step(Resize{.scale = {-1, 256}}), clip_step(MultiScaleCrop{...}), clip_step(Flip{}).
template <class T>
ClipStep clip_step(T t) {
  if constexpr (std::is_invocable_r_v<Clip, const T&, const Clip&, Generator&, int64_t&>)
    return [t = std::move(t)](Clip c, Generator& g, int64_t& label) { return t(c, g, label); };
  else if constexpr (std::is_invocable_r_v<Clip, const T&, const Clip&, Generator&>)
    return [t = std::move(t)](Clip c, Generator& g, int64_t&) { return t(c, g); };
  else
    return [t = std::move(t)](Clip c, Generator&, int64_t&) { return t(c); };
}

// The pipeline of a dataset config: which frames, what to do to them, and the final Normalize + FormatShape.
struct Pipeline {
  SampleFrames sampler{};
  std::vector<ClipStep> steps{};
  Normalize normalize{};
};

// clips: M x 3 x H x W, M = views x num_clips x clip_len, crop-major (PIPELINE.md section 3, FormatShape).
struct Sample {
  Tensor<float> clips;
  int64_t label = -1;
  int64_t index = 0;  // position in the annotation list
};

struct SkippedSample {
  int64_t index = 0;
  std::string path;
  std::string reason;  // the reader's message
};

namespace detail {
inline std::string without_prefix(const char* what) {
  std::string s(what);
  const std::string p = "tinyvid: ";
  return s.compare(0, p.size(), p) == 0 ? s.substr(p.size()) : s;
}
}  // namespace detail

// The common part of both datasets; decode() is what differs.
class Dataset {
 public:
  Dataset(std::vector<Annotation> list, Pipeline pipeline, bool skip_bad, std::string name)
      : list_(std::move(list)), pipe_(std::move(pipeline)), skip_bad_(skip_bad), name_(std::move(name)) {
    Generator probe;
    pipe_.sampler(1, 0, probe);  // a bad sampler config fails here, not as a skipped sample per video
    for (const Annotation& a : list_)
      TV_CHECK(a.labels.size() == 1, name_, ": expected a single-label list, '", a.path, "' has ", a.labels.size(),
               " labels");
  }
  virtual ~Dataset() = default;
  Dataset(const Dataset&) = delete;
  Dataset& operator=(const Dataset&) = delete;

  int64_t size() const { return static_cast<int64_t>(list_.size()); }
  const std::vector<Annotation>& annotations() const { return list_; }
  const Pipeline& pipeline() const { return pipe_; }
  bool skip_bad() const { return skip_bad_; }

  // Sample i, its random draws (sampling offsets, crops, flips) all taken from gen in pipeline order.
  // Empty only with skip_bad, when the file could not be read.
  std::optional<Sample> get(int64_t i, Generator& gen) const {
    TV_CHECK(i >= 0 && i < size(), name_, ": sample index ", i, " out of range for ", size(), " samples");
    const Annotation& a = list_[static_cast<size_t>(i)];
    Clip clip;
    try {
      clip = decode(a, gen);
    } catch (const Error& e) {
      if (!skip_bad_) TV_FAIL(name_, ": cannot read sample ", i, " '", a.path, "': ", detail::without_prefix(e.what()));
      std::lock_guard<std::mutex> lock(skip_mutex_);
      skipped_.push_back({i, a.path, detail::without_prefix(e.what())});
      return std::nullopt;
    }
    try {
      int64_t label = a.label();
      for (const ClipStep& step : pipe_.steps) clip = step(std::move(clip), gen, label);
      return Sample{pipe_.normalize(clip), label, i};
    } catch (const Error& e) {
      TV_FAIL(name_, ": pipeline failed on sample ", i, " '", a.path, "': ", detail::without_prefix(e.what()));
    }
  }

  // Samples skipped since construction or the last clear_skipped(), in the order they failed.
  std::vector<SkippedSample> skipped() const {
    std::lock_guard<std::mutex> lock(skip_mutex_);
    return skipped_;
  }
  void clear_skipped() {
    std::lock_guard<std::mutex> lock(skip_mutex_);
    skipped_.clear();
  }

 protected:
  // The frames the sampler picks, read from the sample's file or folder.
  virtual Clip decode(const Annotation& a, Generator& gen) const = 0;

 private:
  std::vector<Annotation> list_;
  Pipeline pipe_;
  bool skip_bad_;
  std::string name_;
  mutable std::mutex skip_mutex_;
  mutable std::vector<SkippedSample> skipped_;
};

// The file a video list entry names: one without extension gets ".mp4", as MMAction2's DecordInit does
// (Kinetics lists of bare ids). The dataset, check-videos and extract-frames all open this file.
inline std::string video_file(const std::string& list_path) {
  return std::filesystem::path(list_path).has_extension() ? list_path : list_path + ".mp4";
}

// Videos decoded with FFmpeg. Frame indices are 0-based (start_index 0); the file is video_file(path).
class VideoDataset : public Dataset {
 public:
  VideoDataset(std::vector<Annotation> list, Pipeline pipeline, bool skip_bad = false)
      : Dataset(std::move(list), std::move(pipeline), skip_bad, "VideoDataset") {}

 protected:
  Clip decode(const Annotation& a, Generator& gen) const override {
    // One decoding thread: the Loader's workers are the parallelism.
    VideoReader reader(video_file(a.path), /*decode_threads=*/1);
    return reader.read(pipeline().sampler(reader.frame_count(), 0, gen));
  }
};

// Frame folders: frame k of the folder is filename_tmpl.format(start_index + offset + k), so the sampler's
// 0-based indices land on MMAction2's 1-based files (img_00001.jpg first) and with_offset lists work.
class RawframeDataset : public Dataset {
 public:
  RawframeDataset(std::vector<Annotation> list, Pipeline pipeline, bool skip_bad = false,
                  std::string filename_tmpl = "img_{:05d}.jpg", int64_t start_index = 1)
      : Dataset(std::move(list), std::move(pipeline), skip_bad, "RawframeDataset"),
        tmpl_(std::move(filename_tmpl)),
        start_(start_index) {
    format_frame_name(tmpl_, start_);  // a bad template is a config mistake, not a bad sample
  }

 protected:
  Clip decode(const Annotation& a, Generator& gen) const override {
    TV_CHECK(a.total_frames >= 1, "frame folder '", a.path, "' has no frame count (total_frames = ", a.total_frames,
             ")");
    FrameFolderReader reader(a.path, tmpl_, start_ + a.offset);
    return reader.read(pipeline().sampler(a.total_frames, 0, gen));
  }

 private:
  std::string tmpl_;
  int64_t start_;
};

}  // namespace tv::data
