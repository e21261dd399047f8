#pragma once
// tinyvid synth --out DIR [--preset demo|hard] [--classes N] [--train-per-class N] [--val-per-class N] [--size S] [--frames T] [--seed S]
#include <algorithm>
#include <filesystem>
#include <memory>

#include <tinyvid/data/synth.hpp>

#include "common.hpp"

namespace tvcli {

inline Run add_synth(CLI::App& cmd) {
  struct Args {
    Text out, preset, classes, train_per_class, val_per_class, size, frames, seed;
  };
  auto a = std::make_shared<Args>();
  const tv::data::SynthOptions d;
  add_text(cmd, a->out, "--out", "DIR", "the dataset's folder");
  add_text(cmd, a->preset, "--preset", "NAME",
           "demo (the demo's 10 classes) or hard (18 classes: the ablation benchmark, see the README)", d.preset);
  add_text(cmd, a->classes, "--classes", "N", "the first N classes of the preset (default: all)");
  add_text(cmd, a->train_per_class, "--train-per-class", "N", "training videos per class",
           std::to_string(d.train_per_class));
  add_text(cmd, a->val_per_class, "--val-per-class", "N", "validation videos per class",
           std::to_string(d.val_per_class));
  add_text(cmd, a->size, "--size", "S", "frame side in pixels", std::to_string(d.size));
  add_text(cmd, a->frames, "--frames", "T", "frames per video", std::to_string(d.frames));
  add_text(cmd, a->seed, "--seed", "S", "random seed", "0");
  cmd.footer(wrap("Writes DIR/videos/<class>/*.mp4, DIR/train_list.txt, DIR/val_list.txt and DIR/classes.txt "
                  "(train with data prefix DIR/videos). An interrupted run resumes where it stopped."));
  return [a] {
    tv::data::SynthOptions o;
    o.preset = a->preset.get();
    const auto& presets = tv::data::synth_presets();
    TV_CHECK(std::find(presets.begin(), presets.end(), o.preset) != presets.end(), "--preset: expected one of ",
             tv::data::detail::join_names(presets), ", got '", o.preset, "'");
    const auto names = tv::data::synth_class_names(o.preset);
    const int64_t n_classes = a->classes.given() ? a->classes.integer() : static_cast<int64_t>(names.size());
    TV_CHECK(n_classes <= static_cast<int64_t>(names.size()), "--classes: expected at most ", names.size(),
             " (the classes of preset ", o.preset, "), got ", n_classes);
    o.classes.assign(names.begin(), names.begin() + n_classes);
    // 0 videos of a split is allowed (a val-only set).
    o.train_per_class = a->train_per_class.integer(tv::Range::at_least(0));
    o.val_per_class = a->val_per_class.integer(tv::Range::at_least(0));
    o.size = a->size.integer();
    o.frames = a->frames.integer();
    o.seed = static_cast<uint64_t>(a->seed.integer(tv::Range::at_least(0)));
    o.progress = true;
    const std::string out = a->out.need();
    const auto r = tv::data::write_synth_dataset(out, o);
    std::printf("synth: %lld videos written, %lld already complete, in %.1f s; train with data prefix %s\n",
                static_cast<long long>(r.written), static_cast<long long>(r.skipped), r.seconds,
                (std::filesystem::path(out) / "videos").string().c_str());
    return 0;
  };
}

}  // namespace tvcli
