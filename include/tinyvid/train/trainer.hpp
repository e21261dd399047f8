#pragma once
// The training loop of `tinyvid train`: a Recipe (recipe.hpp) run into a work directory.
//
// WORK_DIR/config.txt          the settings of the run (file + --set)
// WORK_DIR/log.jsonl           one JSON object per logged iteration ("mode":"train") and per validation ("val")
// WORK_DIR/latest.safetensors  the weights after the last finished epoch (or checkpoint_every_iters)
// WORK_DIR/latest.state.safetensors  everything a resume needs: weights, SGD momenta, position, RNG state
// WORK_DIR/best.safetensors    the weights of the best validation top-1
// WORK_DIR/curves.png          loss and accuracy against iterations
//
// Every file is written atomically (temporary, fsync, rename): a kill at any moment leaves the last good
// checkpoint. Resuming continues exactly: the loader's draws depend only on (seed, epoch, sample), the lr is
// a function of the position, and the state file holds the rest (momenta, batch-norm statistics, the default
// generator that dropout draws from), so an interrupted and resumed run ends with the same weights, bit for
// bit, as one that was not interrupted (on the same machine and thread count).
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tinyvid/autograd/engine.hpp"
#include "tinyvid/core/parallel.hpp"
#include "tinyvid/core/progress.hpp"
#include "tinyvid/data/loader.hpp"
#include "tinyvid/io/safetensors.hpp"
#include "tinyvid/ops/loss.hpp"
#include "tinyvid/optim/clip_grad.hpp"
#include "tinyvid/train/evaluate.hpp"
#include "tinyvid/train/recipe.hpp"
#include "tinyvid/viz/plot.hpp"

namespace tv::train {

struct TrainOptions {
  std::string work_dir;
  bool resume = false;
  bool progress = stderr_is_terminal();  // the live progress bar
  bool quiet = false;                     // no log lines on stdout
  int64_t stop_after_iters = -1;          // >= 0: return after this many global iterations (tests a kill)
};

struct TrainResult {
  int64_t epochs_done = 0, global_iter = 0;
  double best_top1 = -1;  // -1: never validated
  int64_t best_epoch = 0;
  double last_val_top1 = -1;
  double seconds = 0;     // time in training iterations in this process (validation and checkpoints excluded)
};

namespace detail {

inline std::string state_path(const std::string& dir) { return dir + "/latest.state.safetensors"; }

// A number field of one of our own JSON log lines ("key":value); NaN when absent.
inline double json_field(const std::string& line, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  const size_t p = line.find(k);
  if (p == std::string::npos) return std::nan("");
  return std::strtod(line.c_str() + p + k.size(), nullptr);
}

inline std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

// The curves from the log lines: train loss and top-1 per logged iteration, val top-1 per validation.
inline void draw_curves(const std::vector<std::string>& log, const std::string& path, const std::string& title) {
  viz::Series loss{"train loss", {}, {}, {31, 119, 180}}, acc{"train top-1", {}, {}, {31, 119, 180}},
      val{"val top-1", {}, {}, {214, 39, 40}};
  for (const std::string& l : log) {
    const double it = json_field(l, "global_iter");
    if (l.find("\"mode\":\"train\"") != std::string::npos) {
      loss.x.push_back(it), loss.y.push_back(json_field(l, "loss"));
      acc.x.push_back(it), acc.y.push_back(json_field(l, "top1"));
    } else if (l.find("\"mode\":\"val\"") != std::string::npos) {
      val.x.push_back(it), val.y.push_back(json_field(l, "top1"));
    }
  }
  viz::Canvas cv(900, 560);
  viz::line_chart(cv, 0, 0, 900, 280, {loss}, title + ": loss", "iteration");
  viz::line_chart(cv, 0, 280, 900, 280, {acc, val}, "top-1 accuracy", "iteration");
  cv.save_png(path);
}

}  // namespace detail

// Fine-tuning's start: every weight of the model except those under a skipped prefix (the classifier, whose
// classes differ) must be in the file with its shape; the skipped ones keep their initialisation.
inline void load_initial_weights(nn::Module<float>& model, const std::string& path, const std::vector<std::string>& skip) {
  auto skipped = [&](const std::string& k) {
    for (const std::string& p : skip)
      if (k.rfind(p, 0) == 0) return true;
    return false;
  };
  const auto file = io::load_safetensors<float>(path);
  nn::StateDict<float> chosen;
  for (const auto& [k, t] : model.state_dict()) {
    if (skipped(k)) continue;
    auto it = file.find(k);
    TV_CHECK(it != file.end(), "load_from '", path, "': the model's '", k, "' is not in the file (", file.size(),
             " tensors; load_from.skip leaves out prefixes)");
    chosen.emplace_back(k, it->second);
  }
  model.load_state_dict(chosen, /*strict=*/false);
}

inline TrainResult train(const Config& config, const TrainOptions& o) {
  namespace fs = std::filesystem;
  const Recipe r = make_recipe(config);
  config.check_all_used();
  TV_CHECK(!o.work_dir.empty(), "train: a work directory is required");
  std::error_code ec;
  fs::create_directories(o.work_dir, ec);
  TV_CHECK(!ec, "train: cannot create the work directory '", o.work_dir, "': ", ec.message());
  if (r.threads > 0) set_num_threads(r.threads);

  // Model and optimizer: the weights' initial values come from the seed.
  manual_seed(r.seed);
  auto model = models::make_model<float>(r.model, r.model_config);
  if (!r.load_from.empty()) load_initial_weights(*model, r.load_from, r.load_skip);
  const auto named = model->named_parameters();
  optim::SGD opt(model->parameters(), r.sgd);

  auto train_set = make_dataset(r, "train");
  std::unique_ptr<data::Dataset> val_set;
  if (r.val_every > 0 && !r.val_list.empty()) val_set = make_dataset(r, "val");
  data::Loader loader(*train_set, {.batch_size = r.batch_size, .shuffle = true, .drop_last = r.drop_last,
                                   .num_workers = r.num_workers, .prefetch = r.prefetch, .seed = r.seed});
  const int64_t iters = loader.num_batches();
  TV_CHECK(iters >= 1, "train: no batches: ", train_set->size(), " training samples with batch_size ", r.batch_size,
           r.drop_last ? " and drop_last" : "");
  const int64_t total_iters = iters * r.epochs;

  // Where we start: fresh, or from the state file of a previous run.
  TrainResult res;
  int64_t epoch = 0, iter = 0;
  std::vector<std::string> log;  // the lines of log.jsonl so far
  const std::string log_path = o.work_dir + "/log.jsonl";
  if (o.resume && fs::exists(detail::state_path(o.work_dir))) {
    const std::string sp = detail::state_path(o.work_dir);
    const std::vector<uint8_t> bytes = io::detail::read_file(sp, "train --resume");
    const io::SafetensorsFile file = io::parse_safetensors(bytes.data(), bytes.size(), sp);
    auto meta = [&](const std::string& k) {
      auto it = file.metadata.find(k);
      TV_CHECK(it != file.metadata.end(), "train --resume: '", sp, "' has no '", k, "' entry; not a tinyvid training state");
      return it->second;
    };
    TV_CHECK(meta("model") == r.model, "train --resume: '", sp, "' is a state of model '", meta("model"),
             "', the config builds '", r.model, "'");
    nn::StateDict<float> weights;
    std::vector<Tensor<float>> momenta(named.size());
    std::map<std::string, size_t> param_index;
    for (size_t i = 0; i < named.size(); ++i) param_index[named[i].first] = i;
    for (const auto& e : file.entries) {
      Tensor<float> t = io::decode_tensor<float>(e, bytes.data() + file.data_start);
      if (e.name.rfind("model.", 0) == 0) weights.emplace_back(e.name.substr(6), t);
      else if (e.name.rfind("momentum.", 0) == 0) {
        auto it = param_index.find(e.name.substr(9));
        TV_CHECK(it != param_index.end(), "train --resume: '", sp, "' has a momentum for an unknown parameter '",
                 e.name.substr(9), "'");
        momenta[it->second] = t;
      }
    }
    model->load_state_dict(weights);
    opt.load_momentum_buffers(momenta);
    epoch = std::stoll(meta("epoch"));
    iter = std::stoll(meta("iter"));
    TV_CHECK(iter <= iters, "train --resume: the state is at iteration ", iter, " of an epoch of ", iters,
             " iterations; the data or batch size changed since");
    default_generator().set_state(meta("rng"));
    res.best_top1 = std::stod(meta("best_top1"));
    res.best_epoch = std::stoll(meta("best_epoch"));
    // The log keeps what happened up to the checkpoint; later lines are redone.
    const int64_t g = epoch * iters + iter;
    std::ifstream in(log_path);
    for (std::string l; std::getline(in, l);)
      if (!(detail::json_field(l, "global_iter") > static_cast<double>(g))) log.push_back(l);
    if (!o.quiet && epoch >= r.epochs)
      std::printf("%s: the run has finished its %lld epochs; nothing to resume\n", sp.c_str(),
                  static_cast<long long>(r.epochs));
    else if (!o.quiet)
      std::printf("resuming from %s: epoch %lld, iteration %lld of %lld\n", sp.c_str(), static_cast<long long>(epoch + 1),
                  static_cast<long long>(iter), static_cast<long long>(iters));
  }
  {
    std::string text;
    for (const std::string& l : log) text += l + "\n";
    detail::write_text_atomically(log_path, text);
    detail::write_text_atomically(o.work_dir + "/config.txt", config.dump());
  }
  std::ofstream log_out(log_path, std::ios::app);
  auto append_log = [&](const std::string& line) {
    log.push_back(line);
    log_out << line << "\n";
    log_out.flush();
  };

  auto save_checkpoint = [&](int64_t e, int64_t i) {
    nn::StateDict<float> tensors;
    for (auto& [k, t] : model->state_dict()) tensors.emplace_back("model." + k, t);
    const auto momenta = opt.momentum_buffers();
    for (size_t p = 0; p < named.size(); ++p)
      if (momenta[p].defined()) tensors.emplace_back("momentum." + named[p].first, momenta[p]);
    std::map<std::string, std::string> meta{
        {"format", "tinyvid-train-state"}, {"model", r.model},  {"epoch", std::to_string(e)},
        {"iter", std::to_string(i)},       {"global_iter", std::to_string(e * iters + i)},
        {"rng", default_generator().state()}, {"best_top1", detail::fmt("%.17g", res.best_top1)},
        {"best_epoch", std::to_string(res.best_epoch)}, {"config", config.dump()}};
    // The state first: it alone is what a resume reads, and it is complete the moment it is renamed.
    io::save_safetensors<float>(detail::state_path(o.work_dir), tensors, meta);
    io::save_weights(*model, o.work_dir + "/latest.safetensors");
  };

  auto last_good = [&]() -> std::string {
    const std::string sp = detail::state_path(o.work_dir);
    return fs::exists(sp) ? "The last good checkpoint is " + sp + " (tinyvid train --resume continues from it)"
                          : std::string("No checkpoint was written yet");
  };
  res.epochs_done = epoch;
  using Clock = std::chrono::steady_clock;
  double window_loss = 0, window_top1 = 0, window_data = 0, window_time = 0;
  int64_t window_n = 0;
  double time_per_iter = 0;  // running mean over this process, for the ETA
  int64_t done_here = 0;

  for (; epoch < r.epochs; ++epoch, iter = 0) {
    model->train();
    loader.start_epoch(epoch, iter);
    ProgressLine bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(r.epochs), iters, "it", o.progress);
    bar.advance(iter);
    auto t_iter = Clock::now();
    for (; iter < iters; ++iter) {
      if (o.stop_after_iters >= 0 && epoch * iters + iter >= o.stop_after_iters) {
        loader.stop();
        res.epochs_done = epoch, res.global_iter = epoch * iters + iter;
        return res;
      }
      std::optional<data::Batch> batch = loader.next();
      if (!batch) break;  // every remaining sample was unreadable
      const double data_time = std::chrono::duration<double>(Clock::now() - t_iter).count();
      const double lr = r.schedule.lr(epoch, iter, iters);
      opt.set_lr(lr);
      Tensor<float> scores = (*model)(batch->clips);
      Tensor<float> loss = cross_entropy(scores, batch->labels, r.label_smoothing);
      const double loss_value = loss.item();
      const int64_t g = epoch * iters + iter;
      TV_CHECK(std::isfinite(loss_value), "train: the loss is ", loss_value, " at epoch ", epoch + 1, ", iteration ",
               iter + 1, " (global ", g + 1, "); stopped. ", last_good(), " (lower optim.lr, or check the data)");
      opt.zero_grad();
      loss.backward();
      if (r.clip_grad > 0) {
        const double norm = optim::clip_grad_norm(opt.parameters(), r.clip_grad);
        TV_CHECK(std::isfinite(norm), "train: the gradient norm is ", norm, " at epoch ", epoch + 1, ", iteration ",
                 iter + 1, " (global ", g + 1, "); stopped. ", last_good(), " (lower optim.lr, or check the data)");
      }
      opt.step();

      const double top1 = topk_accuracy(scores.detach(), batch->labels, 1);
      const double it_time = std::chrono::duration<double>(Clock::now() - t_iter).count();
      t_iter = Clock::now();
      window_loss += loss_value, window_top1 += top1, window_data += data_time, window_time += it_time, ++window_n;
      res.seconds += it_time;
      time_per_iter += (it_time - time_per_iter) / static_cast<double>(++done_here);
      bar.advance(1, "loss " + detail::fmt("%.4f", loss_value));
      if ((iter + 1) % r.log_every == 0 || iter + 1 == iters) {
        const double n = static_cast<double>(window_n);
        const double eta = time_per_iter * static_cast<double>(total_iters - g - 1);
        char line[512];
        std::snprintf(line, sizeof(line),
                      "{\"mode\":\"train\",\"epoch\":%lld,\"iter\":%lld,\"global_iter\":%lld,\"lr\":%.6g,"
                      "\"loss\":%.6f,\"top1\":%.6f,\"data_time\":%.4f,\"time\":%.4f,\"eta_s\":%.0f}",
                      static_cast<long long>(epoch + 1), static_cast<long long>(iter + 1), static_cast<long long>(g + 1),
                      lr, window_loss / n, window_top1 / n, window_data / n, window_time / n, eta);
        append_log(line);
        if (!o.quiet) {
          std::printf("%sEpoch [%lld][%lld/%lld]  lr: %.3e, eta: %s, time: %.3f, data_time: %.3f, loss: %.4f, top1: %.4f\n",
                      o.progress ? "\r\033[K" : "", static_cast<long long>(epoch + 1), static_cast<long long>(iter + 1),
                      static_cast<long long>(iters), lr, format_duration(eta).c_str(), window_time / n,
                      window_data / n, window_loss / n, window_top1 / n);
          std::fflush(stdout);
        }
        window_loss = window_top1 = window_data = window_time = 0, window_n = 0;
      }
      if (r.checkpoint_every_iters > 0 && (g + 1) % r.checkpoint_every_iters == 0 && iter + 1 < iters)
        save_checkpoint(epoch, iter + 1);
    }
    if (o.progress) bar.finish();
    res.epochs_done = epoch + 1;
    save_checkpoint(epoch + 1, 0);  // the epoch's work is safe before validation starts

    const bool validate = val_set && ((epoch + 1) % r.val_every == 0 || epoch + 1 == r.epochs);
    if (validate) {
      EvalResult v = evaluate(*model, *val_set, {.average = r.average_clips, .batch_size = r.batch_size,
                                                 .num_workers = r.num_workers, .progress = o.progress, .what = "val"});
      val_set->clear_skipped();
      res.last_val_top1 = v.top1;
      const bool best = v.top1 > res.best_top1;
      if (best) {
        res.best_top1 = v.top1, res.best_epoch = epoch + 1;
        io::save_weights(*model, o.work_dir + "/best.safetensors");
      }
      char line[256];
      std::snprintf(line, sizeof(line),
                    "{\"mode\":\"val\",\"epoch\":%lld,\"global_iter\":%lld,\"top1\":%.6f,\"top5\":%.6f,"
                    "\"mean_class_accuracy\":%.6f,\"videos\":%zu,\"skipped\":%zu}",
                    static_cast<long long>(epoch + 1), static_cast<long long>((epoch + 1) * iters), v.top1, v.top5,
                    v.mean_class_accuracy, v.scores.size(), v.skipped.size());
      append_log(line);
      if (!o.quiet) {
        std::printf("Epoch(val) [%lld]  top1: %.4f, top5: %.4f, mean_class_accuracy: %.4f (%zu videos%s)%s\n",
                    static_cast<long long>(epoch + 1), v.top1, v.top5, v.mean_class_accuracy, v.scores.size(),
                    v.skipped.empty() ? "" : (", " + std::to_string(v.skipped.size()) + " unreadable").c_str(),
                    best ? "  best so far" : "");
        std::fflush(stdout);
      }
      save_checkpoint(epoch + 1, 0);  // now with the best score in it
    }
    for (const auto& s : train_set->skipped())
      std::printf("skipped (unreadable) in epoch %lld: %s: %s\n", static_cast<long long>(epoch + 1), s.path.c_str(),
                  s.reason.c_str());
    train_set->clear_skipped();
    detail::draw_curves(log, o.work_dir + "/curves.png", r.model);
  }
  res.global_iter = r.epochs * iters;
  return res;
}

}  // namespace tv::train
