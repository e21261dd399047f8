#pragma once
// tinyvid test CONFIG CHECKPOINT [--views CLIPSxCROPS] [--out DIR] [--dump FILE] [--set key=value ...] [--json]
//              [--no-progress]
// (MMAction2's test.py order; --checkpoint C works too.)
#include <filesystem>
#include <memory>

#include <tinyvid/train/trainer.hpp>

#include "common.hpp"
#include "train.hpp"

namespace tvcli {

inline Run add_test(CLI::App& cmd) {
  struct Args {
    Text config, checkpoint_positional, checkpoint, views, out, dump;
    std::map<std::string, std::string> set;
    bool json = false, no_progress = false;
  };
  auto a = std::make_shared<Args>();
  add_positional(cmd, a->config, "CONFIG", "the config the model was trained with");
  add_positional(cmd, a->checkpoint_positional, "CHECKPOINT", "the weights (.safetensors)");
  add_text(cmd, a->checkpoint, "--checkpoint", "C", "the weights, if not given positionally");
  add_text(cmd, a->views, "--views", "CLIPSxCROPS", "e.g. 10x3: 10 clips, 3 crops (1, 3 or 10) per video");
  add_text(cmd, a->out, "--out", "DIR", "where the report goes (default: CHECKPOINT's folder/test/<name>_<views>)");
  add_text(cmd, a->dump, "--dump", "FILE", "every video's path, label and scores as JSON lines");
  add_sets(cmd, a->set, "override a config key; repeatable");
  add_flag(cmd, a->json, "--json", "print results.json");
  add_flag(cmd, a->no_progress, "--no-progress", "no progress line");
  cmd.footer(wrap("Multi-view test: top-1, top-5, mean class accuracy; writes results.json, per_class.csv and "
                  "confusion.png into DIR.") +
             "\n" + config_set_help());
  return [a] {
    const std::string config_path = a->config.need_positional("a CONFIG file");
    std::string checkpoint = a->checkpoint_positional.get();
    TV_CHECK(checkpoint.empty() || !a->checkpoint.given(),
             "give the checkpoint once: positionally or with --checkpoint");
    TV_CHECK(!checkpoint.empty() || a->checkpoint.given(),
             "expected a CHECKPOINT after the config: tinyvid test CONFIG CHECKPOINT (or --checkpoint C)");
    if (checkpoint.empty()) checkpoint = a->checkpoint.get();
    tv::train::Config c = load_config(config_path, a->set);
    std::string views;
    if (a->views.given()) {
      // CLIPSxCROPS: test.num_clips (in the sampler's clips, as MMAction2's num_clips) and the crops.
      views = a->views.get();
      const size_t x = views.find('x');
      TV_CHECK(x != std::string::npos, "--views: expected CLIPSxCROPS such as 10x3, got '", views, "'");
      const int64_t clips = tv::parse_int(views.substr(0, x), "--views", tv::Range::at_least(1));
      const int64_t crops = tv::parse_int(views.substr(x + 1), "--views", tv::Range::at_least(1));
      TV_CHECK(crops == 1 || crops == 3 || crops == 10, "--views: crops must be 1 (centre), 3 or 10, got ", crops);
      c.set("test.num_clips", std::to_string(clips), "--views " + views);
      c.set("test.crop", crops == 1 ? "center" : crops == 3 ? "three" : "ten", "--views " + views);
      if (crops == 3 && !c.has("test.crop_size")) {
        // ThreeCrop spans the short side: crops of the resized short side, as MMAction2's ThreeCrop(256).
        const int64_t side = c.integer("test.resize", c.integer("train.resize", 256));
        if (side > 0) c.set("test.crop_size", std::to_string(side), "--views " + views);
      }
    }
    const tv::train::Recipe r = tv::train::make_recipe(c);
    c.check_all_used();
    if (views.empty()) {
      const std::string crop = c.str("test.crop", "center");
      views = std::to_string(r.test_pipeline.sampler.num_clips) + "x" +
              (crop == "center" ? "1" : crop == "three" ? "3" : "10");
    }
    auto model = tv::models::make_model<float>(r.model, r.model_config);
    tv::io::load_weights(*model, checkpoint);
    model->to(r.device.device);  // config key `device`; evaluate copies each batch to the model's device
    if (r.threads > 0) tv::set_num_threads(r.threads);
    auto ds = tv::train::make_dataset(r, "test");
    // Each checkpoint and view setting gets its own folder, so tests of one run never overwrite each other.
    const std::filesystem::path ck(checkpoint);
    std::string stem = ck.filename().string();
    stem = stem.substr(0, stem.find('.'));
    const std::string out = a->out.get((ck.parent_path() / "test" / (stem + "_" + views)).string());
    std::error_code ec;
    std::filesystem::create_directories(out, ec);
    TV_CHECK(!ec, "cannot create '", out, "': ", ec.message());
    // Under mpirun every process tests its shard of the list; rank 0 gets them all and writes the report.
    tv::dist::ProcessGroup& pg = tv::dist::world();
    const auto res = tv::train::evaluate(*model, *ds,
                                         {.average = r.average_clips, .batch_size = r.test_batch_size,
                                          .num_workers = r.num_workers, .max_views_per_pass = r.max_views_per_pass,
                                          .progress = !a->no_progress && pg.rank() == 0, .group = &pg});
    // Metrics over a fraction of the list would look like a result: too many unreadable videos is an error.
    const double share = ds->size() ? static_cast<double>(res.skipped.size()) / static_cast<double>(ds->size()) : 0.0;
    if (res.scores.empty() || share > r.max_skip_ratio) {
      std::string bad;
      for (size_t i = 0; i < res.skipped.size() && i < 10; ++i)
        bad += "\n  " + res.skipped[i].path + ": " + res.skipped[i].reason;
      TV_FAIL(res.skipped.size(), " of the ", ds->size(), " videos of ", r.test_list,
              " could not be read, more than data.max_skip_ratio = ", r.max_skip_ratio,
              " allows; no metrics written (tinyvid check-videos lists them all):", bad);
    }
    if (pg.rank() != 0) return 0;
    tv::train::write_test_report(
        out, res, tv::train::class_names(r),
        {{"config", config_path}, {"checkpoint", checkpoint}, {"model", r.model}, {"clips_x_crops", views}});
    if (a->dump.given()) tv::train::write_scores_dump(a->dump.get(), res, *ds);
    if (a->json) {
      std::string text = tv::data::detail::read_text_file(out + "/results.json");
      std::fputs(text.c_str(), stdout);
    } else {
      std::printf("%s on %s: %zu videos x %lld views, top-1 %.4f, top-5 %.4f, mean class accuracy %.4f (%.1f s)\n",
                  r.model.c_str(), r.test_list.c_str(), res.scores.size(), static_cast<long long>(res.views),
                  res.top1, res.top5, res.mean_class_accuracy, res.seconds);
      for (const auto& s : res.skipped) std::printf("skipped (unreadable): %s: %s\n", s.path.c_str(), s.reason.c_str());
      std::printf("wrote %s/results.json, per_class.csv, confusion.png%s%s\n", out.c_str(),
                  a->dump.given() ? ", " : "", a->dump.get().c_str());
    }
    return 0;
  };
}

}  // namespace tvcli
