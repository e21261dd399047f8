// Training a video action recognizer on Kinetics-200 with tinyvid's API, top to bottom in one file: the DNR
// paper's recipe (TSN on a ResNet-50 with DNR, SGD with momentum, cosine schedule after a linear warm-up).
// `tinyvid train configs/k200_tsn_r50_dnr.conf` runs the same recipe from a config, with resume, JSON logs and
// curves; this file is the one to copy when you want to change a step.
//
//   train_kinetics200 --data-root data/kinetics200                     # the paper's settings (the defaults)
//   train_kinetics200 --data-root tests/data --train-list k200_smoke/k200_smoke_train_list_videos.txt
//       --val-list k200_smoke/k200_smoke_val_list_videos.txt --classes k200_smoke/classes.txt
//       --train-prefix videos --val-prefix videos --width 8 --frames 4 --size 64 --epochs 2 --batch 2 --warmup 2
//                                                                   # a tiny run on two real clips (one line)
//
// The lists are MMAction2's (`path label` lines) as `tinyvid lists kinetics200` writes them.
#include <tinyvid/core/parse.hpp>
#include <tinyvid/tinyvid.hpp>
#include <tinyvid/core/progress.hpp>
#include <tinyvid/data/dataset.hpp>
#include <tinyvid/data/loader.hpp>
#include <tinyvid/train/metrics.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace data = tv::data;

// Command-line options, `--flag value`. Defaults: configs/k200_tsn_r50_dnr.conf (the paper's Kinetics-200 run).
struct Options {
  std::string data_root = "data/kinetics200", train_list = "k200_train_list_videos.txt",
              val_list = "k200_val_list_videos.txt", classes = "classes.txt", train_prefix = "videos_train",
              val_prefix = "videos_val", model = "tsn_r50_dnr", out = "work_dirs/train_kinetics200";
  int64_t epochs = 120, batch = 64, width = 64, frames = 8, interval = 8, size = 224, warmup = 60000, workers = 2,
          log_every = 20, seed = 0;
  double lr = 0.1;
};

static Options parse_options(int argc, char** argv) {
  Options o;
  const std::map<std::string, std::string*> text = {
      {"--data-root", &o.data_root}, {"--train-list", &o.train_list}, {"--val-list", &o.val_list},
      {"--classes", &o.classes},     {"--train-prefix", &o.train_prefix}, {"--val-prefix", &o.val_prefix},
      {"--model", &o.model},         {"--out", &o.out}};
  const std::map<std::string, int64_t*> whole = {
      {"--epochs", &o.epochs}, {"--batch", &o.batch},   {"--width", &o.width},     {"--frames", &o.frames},
      {"--interval", &o.interval}, {"--size", &o.size}, {"--warmup", &o.warmup},   {"--workers", &o.workers},
      {"--log-every", &o.log_every}, {"--seed", &o.seed}};
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    std::string known = "--lr";
    for (const auto& [k, _] : text) known += " " + k;
    for (const auto& [k, _] : whole) known += " " + k;
    TV_CHECK(text.count(flag) || whole.count(flag) || flag == "--lr", "unknown option '", flag, "'; options: ", known);
    TV_CHECK(i + 1 < argc, flag, ": expected a value");
    const std::string value = argv[i + 1];
    if (text.count(flag)) *text.at(flag) = value;
    else if (flag == "--lr") o.lr = tv::parse_real(value, flag, tv::Range::above(0));
    else *whole.at(flag) = tv::parse_int(value, flag, tv::Range::at_least(0));
  }
  return o;
}

int main(int argc, char** argv) try {
  const Options o = parse_options(argc, argv);
  const auto under_root = [&](const std::string& p) { return (std::filesystem::path(o.data_root) / p).string(); };
  tv::manual_seed(o.seed);  // the weights' initialisation and dropout
  using Clock = std::chrono::steady_clock;

  // 1. The lists: one class name per line (line k = label k), and `path label` video lists.
  const std::vector<std::string> classes = data::read_label_map(under_root(o.classes));
  auto train_list = data::read_video_list(under_root(o.train_list), {.data_prefix = under_root(o.train_prefix)});
  auto val_list = data::read_video_list(under_root(o.val_list), {.data_prefix = under_root(o.val_prefix)});

  // 2. The pipelines. Training: `frames` frames `interval` apart at a random place of the video, short side
  // resized to size * 256 / 224, a multi-scale crop (MMAction2's TSN crop) resized to size x size, a flip half
  // the time. Validation: the window in the middle, one centre crop. Both end in Normalize (ImageNet's mean/std).
  const int64_t short_side = o.size * 256 / 224;
  data::Pipeline train_pipe{.sampler = {.clip_len = o.frames, .frame_interval = o.interval, .num_clips = 1}};
  train_pipe.steps = {
      data::clip_step(data::Resize{.scale = {-1, short_side}}),
      data::clip_step(data::MultiScaleCrop{.input_size = {o.size, o.size}, .scales = {1, 0.875, 0.75, 0.66}}),
      data::clip_step(data::Resize{.scale = {o.size, o.size}, .keep_ratio = false}),
      data::clip_step(data::Flip{.flip_ratio = 0.5})};
  data::Pipeline val_pipe{
      .sampler = {.clip_len = o.frames, .frame_interval = o.interval, .num_clips = 1, .test_mode = true}};
  val_pipe.steps = {data::clip_step(data::Resize{.scale = {-1, short_side}}),
                    data::clip_step(data::CenterCrop{.crop_size = {o.size, o.size}})};

  // 3. Datasets and loaders. skip_bad: a Kinetics download always has a few unreadable videos; they are skipped
  // and listed after each epoch instead of stopping the run. Worker threads decode batches ahead of training.
  data::VideoDataset train_set(train_list, train_pipe, /*skip_bad=*/true), val_set(val_list, val_pipe, true);
  const int workers = static_cast<int>(o.workers);
  data::Loader train_loader(train_set, {.batch_size = o.batch, .num_workers = workers, .seed = uint64_t(o.seed)});
  data::Loader val_loader(val_set, {.batch_size = o.batch, .shuffle = false, .num_workers = workers});

  // 4. The model from the registry: TSN on a ResNet-50 with DNR's relay cells and normalizations (--model tsn_r50
  // is the baseline). width shrinks every layer (64 is ResNet-50); stats_group_clips 8 takes batch-norm statistics
  // over groups of 8 clips, as each of the paper's 8 GPUs did.
  tv::models::ModelConfig cfg{.num_classes = static_cast<int64_t>(classes.size()), .frames = o.frames,
                              .set = {{"width", std::to_string(o.width)}, {"stats_group_clips", "8"}}};
  auto model = tv::models::make_model<float>(o.model, cfg);
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();

  // 5. SGD with momentum 0.9 and weight decay 1e-4 on every parameter; the lr follows the authors' schedule as
  // MMCV 0.x ran it: cosine over epochs, times a linear warm-up from 1% over the first `warmup` iterations.
  tv::optim::SGD opt(model->parameters(), tv::optim::SGDOptions(o.lr).momentum(0.9).weight_decay(1e-4));
  const tv::optim::LrSchedule schedule = tv::optim::mmcv0_cosine(o.lr, o.epochs, o.warmup, 0.01);

  std::filesystem::create_directories(o.out);
  const int64_t iters = train_loader.num_batches(), total_iters = iters * o.epochs;
  std::printf("%s: %lld parameters, %zu classes, %lld training videos, %lld validation videos, %lld iterations\n",
              o.model.c_str(), static_cast<long long>(params), classes.size(), static_cast<long long>(train_set.size()),
              static_cast<long long>(val_set.size()), static_cast<long long>(total_iters));
  double best_top1 = -1, train_seconds = 0;
  int64_t done = 0;  // iterations so far, for the rate and the ETA
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    // 6. One epoch: forward, loss, backward, gradient clipping, step. A batch is `batch` clips of `frames`
    // frames: (batch * frames) x 3 x size x size in, batch x classes out.
    model->train();
    train_loader.start_epoch(epoch);  // this epoch's shuffle and augmentations: a function of (seed, epoch)
    int64_t it = 0, clips = 0;
    double loss_sum = 0, top1_sum = 0, window_seconds = 0;
    for (auto t0 = Clock::now(); auto batch = train_loader.next(); t0 = Clock::now()) {
      const double lr = schedule.lr(epoch, it, iters);
      opt.set_lr(lr);
      tv::Tensor<float> scores = (*model)(batch->clips);
      tv::Tensor<float> loss = tv::cross_entropy(scores, batch->labels);
      TV_CHECK(std::isfinite(loss.item()), "the loss is ", loss.item(), " at epoch ", epoch + 1, ", iteration ", it + 1,
               "; lower --lr");
      opt.zero_grad();
      loss.backward();
      tv::optim::clip_grad_norm(model->parameters(), 40.0);  // the paper's max gradient norm
      opt.step();

      // A progress line every log_every iterations: means over the window, clips per second, time left.
      const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      ++it, ++done, clips += batch->labels.numel(), train_seconds += seconds, window_seconds += seconds;
      loss_sum += loss.item(), top1_sum += tv::topk_accuracy(scores.detach(), batch->labels, 1);
      if (it % o.log_every == 0 || it == iters) {
        const int64_t n = (it - 1) % o.log_every + 1;
        const double eta = train_seconds / static_cast<double>(done) * static_cast<double>(total_iters - done);
        std::printf("epoch %lld/%lld  iter %lld/%lld  lr %.3e  loss %.4f  top-1 %.3f  %.1f clips/s  eta %s\n",
                    static_cast<long long>(epoch + 1), static_cast<long long>(o.epochs), static_cast<long long>(it),
                    static_cast<long long>(iters), lr, loss_sum / static_cast<double>(n),
                    top1_sum / static_cast<double>(n), static_cast<double>(clips) / window_seconds,
                    tv::format_duration(eta).c_str());
        std::fflush(stdout);
        loss_sum = top1_sum = window_seconds = 0, clips = 0;
      }
    }
    for (const auto& s : train_set.skipped())
      std::printf("skipped (unreadable): %s: %s\n", s.path.c_str(), s.reason.c_str());
    train_set.clear_skipped();

    // 7. A checkpoint: save_weights writes a temporary file, syncs it and renames it over the old one, so a kill
    // at any moment leaves the last whole checkpoint. (The momenta are not saved: this loop has no resume.)
    tv::io::save_weights(*model, o.out + "/latest.safetensors");

    // 8. Validation: every video's class probabilities from one centre-crop clip, then MMAction2's metrics on the
    // table. (The paper's test, 10 clips x 3 crops fused: Recognizer::forward_views, or `tinyvid test`.)
    tv::train::ScoreTable probs;
    std::vector<int64_t> labels;
    {
      tv::NoGradGuard no_grad;
      model->eval();  // batch norm uses its running statistics, dropout is off
      val_loader.start_epoch(0);
      while (auto batch = val_loader.next()) {
        const std::vector<float> p = tv::softmax((*model)(batch->clips), 1).contiguous().to_vector();
        const int64_t k = static_cast<int64_t>(classes.size());
        for (int64_t n = 0; n < batch->labels.numel(); ++n) {
          probs.emplace_back(p.begin() + n * k, p.begin() + (n + 1) * k);  // one row per video
          labels.push_back(batch->labels.data()[n]);
        }
      }
    }
    const double top1 = tv::train::top_k_accuracy(probs, labels, 1);
    const double top5 = tv::train::top_k_accuracy(probs, labels, 5);
    const double mean_class = tv::train::mean_class_accuracy(probs, labels);
    const bool best = top1 > best_top1;
    std::printf("epoch %lld/%lld  val: top-1 %.4f  top-5 %.4f  mean class accuracy %.4f  (%zu videos, %zu unreadable)%s\n",
                static_cast<long long>(epoch + 1), static_cast<long long>(o.epochs), top1, top5, mean_class,
                probs.size(), val_set.skipped().size(), best ? "  best so far" : "");
    val_set.clear_skipped();
    if (best) best_top1 = top1, tv::io::save_weights(*model, o.out + "/best.safetensors");
  }
  std::printf("done: %.1f s in training iterations, best val top-1 %.4f; wrote %s/latest.safetensors, best.safetensors\n",
              train_seconds, best_top1, o.out.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "train_kinetics200: %s\n", e.what());
  return 1;
}
