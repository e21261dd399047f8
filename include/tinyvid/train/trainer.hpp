#pragma once
// The training loop of `tinyvid train`: a Recipe (recipe.hpp) run into a work directory (work_dir.hpp).
//
// WORK_DIR/config.txt                the settings of the run (file + --set)
// WORK_DIR/train.log                 everything printed, after the environment and every setting with its default
// WORK_DIR/log.json                  JSON lines with MMAction2's field names, one per logged iteration
//                                    ("mode":"train") and per validation ("val"): analyze_logs.py reads it
// WORK_DIR/latest.state.safetensors  everything a resume needs: weights, SGD momenta, position, RNG state
// WORK_DIR/latest.safetensors        the weights of that state
// WORK_DIR/epoch_N.safetensors       the weights after epoch N (the newest max_keep_ckpts are kept)
// WORK_DIR/best.safetensors          the weights of the best validation top-1
// WORK_DIR/curves.png                loss and accuracy against iterations
//
// Guarantees (tests/test_train.cpp): every file is written atomically (a unique temporary, fsync, rename);
// the state is written last, so a kill at any moment resumes to exactly the files an uninterrupted run
// writes: an epoch's training is saved with its validation marked pending, and the validation, best weights
// and log line are redone on resume until the state records them. Resuming continues bit for bit: the
// loader's draws depend only on (seed, epoch, sample), the lr on the position, and the state holds the rest.
//
// On a device (config key `device`): the model moves there once built (Module::to) and the optimizer's momenta
// follow their parameters; each batch is decoded on the host and copied there. An iteration reads back one
// small tensor (the loss and the batch's scores, for the NaN check, the progress line and the log's accuracy),
// and scalars by design: the model's scan of its input for non-finite values and, with optim.clip_grad, the
// gradient norm. Checkpoints go through the host one tensor at a time, and a resume reads host tensors that
// load_state_dict and load_momentum_buffers copy to the device.
//
// On N processes (`mpirun -np N tinyvid train`, dist/): batch_size is per process, as MMAction2's
// videos_per_gpu; the N shares of one batch of batch_size x N samples together are exactly what one process
// with that batch size and stats_group_clips = batch_size trains on (batch norm per process, as the paper's
// per-GPU batch norm). Rank 0's weights are broadcast at the start; the loss is weighted by each rank's share
// of the batch and the gradients summed over the ranks in buckets while backward runs (dist::GradReducer);
// the norm layers' running statistics are averaged the same way, so every rank holds the same model, the
// one a single process would have; one small all-reduce per iteration carries the sample count, the loss,
// the accuracy and a stop request, so every rank takes the same path. Dropout draws its masks per rank
// (as under DDP), the one difference from a single process. Rank 0 alone writes into the work directory; every rank reads the state
// file on resume (a work directory on a file system all machines see, as MMAction2's). A resume with another
// number of processes continues from the same sample of the epoch.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tinyvid/autograd/engine.hpp"
#include "tinyvid/core/parallel.hpp"
#include "tinyvid/core/progress.hpp"
#include "tinyvid/data/loader.hpp"
#include "tinyvid/dist/data_parallel.hpp"
#include "tinyvid/io/safetensors.hpp"
#include "tinyvid/nn/weights.hpp"
#include "tinyvid/ops/join.hpp"
#include "tinyvid/ops/loss.hpp"
#include "tinyvid/optim/clip_grad.hpp"
#include "tinyvid/train/evaluate.hpp"
#include "tinyvid/train/recipe.hpp"
#include "tinyvid/train/work_dir.hpp"
#include "tinyvid/viz/plot.hpp"

namespace tv::train {

struct TrainOptions {
  std::string work_dir{};
  bool resume = false;              // continue the run whose state is resume_from (or WORK_DIR's latest)
  std::string resume_from{};        // a state file; empty: WORK_DIR/latest.state.safetensors
  std::vector<std::string> allow_changed{};  // settings a resume may change ("all": any); each is logged
  bool progress = stderr_is_terminal();    // the live progress bar
  bool quiet = false;                      // no log lines on stdout (train.log still gets them)
  std::string build_info{};                // for train.log's environment (the CLI's git hash)
  int64_t stop_after_iters = -1;           // tests: return after this many global iterations, as a kill would
  std::string interrupt_at{};  // tests: throw at a named point between the writes of an epoch's end ("after_best@2")
  dist::ProcessGroup* group = nullptr;  // the processes training together; nullptr: dist::world()
};

struct TrainResult {
  int64_t epochs_done = 0, global_iter = 0;  // where the run stands: finished epochs, iterations done in total
  double best_top1 = -1;                     // -1: never validated
  int64_t best_epoch = 0;
  double last_val_top1 = -1;
  double seconds = 0;        // time in training iterations in this process (validation and checkpoints excluded)
  double comm_seconds = 0;   // of which waiting for gradients to be summed over the processes (not hidden by backward)
  bool interrupted = false;  // stopped by a signal (stop_requested()); saved, `--resume` continues
};

// Thrown at TrainOptions::interrupt_at: a stand-in for a kill at that point (every file is written whole).
struct TrainInterrupted : Error {
  using Error::Error;
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
      acc.x.push_back(it), acc.y.push_back(json_field(l, "top1_acc"));
    } else if (l.find("\"mode\":\"val\"") != std::string::npos) {
      val.x.push_back(it), val.y.push_back(json_field(l, "top1_acc"));
    }
  }
  viz::Canvas cv(900, 560);
  viz::line_chart(cv, 0, 0, 900, 280, {loss}, title + ": loss", "iteration");
  viz::line_chart(cv, 0, 280, 900, 280, {acc, val}, "top-1 accuracy", "iteration", {.y_range = {0, 1}, .percent = true});
  cv.save_png(path);
}

// The training list as read, for resume to notice a changed list: sample count and a hash of every entry
// (paths without the data prefix, so a moved dataset is the same list).
inline std::string list_digest(const std::vector<data::Annotation>& list, const std::string& prefix) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const std::string& s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  };
  for (const auto& a : list) {
    mix(a.path.compare(0, prefix.size(), prefix) == 0 ? a.path.substr(prefix.size()) : a.path);
    mix(std::to_string(a.total_frames) + ":" + std::to_string(a.offset));
    for (int64_t l : a.labels) mix(std::to_string(l));
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%zu samples, fnv1a %016llx", list.size(), static_cast<unsigned long long>(h));
  return buf;
}

// The unreadable samples of a run that skipped too many: the first few in the message, all in a file.
inline std::string skip_report(const std::vector<data::SkippedSample>& skipped, const std::string& file) {
  std::string text, shown;
  for (size_t i = 0; i < skipped.size(); ++i) {
    const std::string line = skipped[i].path + ": " + skipped[i].reason;
    text += line + "\n";
    if (i < 10) shown += "\n  " + line;
  }
  if (skipped.size() > 10) shown += "\n  ... and " + std::to_string(skipped.size() - 10) + " more";
  try {
    io::detail::write_file_atomically(file, "train", [&](auto&& put) { put(text.data(), text.size()); });
    shown += "\n(all listed in " + file + ")";
  } catch (const Error&) {
  }
  return shown;
}

}  // namespace detail

// Fine-tuning's start: every weight of the model except those load_from.skip matches (the classifier, whose
// classes differ; a DNR model's relay cells when starting from plain weights) must be in the file with its
// shape; the skipped ones keep their initialisation.
inline void load_initial_weights(nn::Module<float>& model, const std::string& path, const std::vector<std::string>& skip) {
  auto skipped = [&](const std::string& k) { return skip_matches(k, skip); };
  const auto file = io::load_safetensors<float>(path);
  nn::StateDict<float> chosen;
  for (const auto& [k, t] : model.state_dict()) {
    if (skipped(k)) continue;
    auto it = file.find(k);
    TV_CHECK(it != file.end(), "load_from '", path, "': the model's '", k, "' is not in the file (", file.size(),
             " tensors; load_from.skip leaves out keys)");
    check_finite(it->second, "load_from '" + path + "': tensor '" + k + "'");
    chosen.emplace_back(k, it->second);
  }
  model.load_state_dict(chosen, /*strict=*/false);
}

// One training run; see the file comment for what it writes and guarantees.
class Trainer {
 public:
  Trainer(const Config& config, TrainOptions o)
      : config_(config), o_(std::move(o)), r_(make_recipe(config_)), pg_(o_.group ? *o_.group : dist::world()) {
    config_.check_all_used();
    TV_CHECK(!o_.work_dir.empty(), "train: a work directory is required");
    lead_ = pg_.rank() == 0;
    if (!lead_) o_.quiet = true, o_.progress = false;  // rank 0 speaks for the run
  }

  TrainResult run() {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(o_.work_dir, ec);
    TV_CHECK(!ec, "train: cannot create the work directory '", o_.work_dir, "': ", ec.message());
    std::optional<WorkDirLock> lock;
    if (lead_) {
      lock.emplace(o_.work_dir);
      remove_stale_temporaries(o_.work_dir);  // a writer killed mid-save left them; the lock says none is writing
    }
    if (r_.threads > 0) set_num_threads(r_.threads);
    build();
    std::optional<TrainState> saved = find_state();
    if (!saved && lead_) fresh_work_dir_check(o_.work_dir, o_.resume);
    if (saved) check_resumable(*saved);  // everything checked before any file is touched
    // Every rank has read the state before rank 0 writes anything (it rewrites log.json at once).
    pg_.barrier();
    if (lead_) open_logs(saved);
    if (saved) restore(*saved);
    dist::broadcast_state(pg_, *model_);  // the same weights everywhere, whatever each rank built or read

    for (; at_.epoch < r_.epochs; ++at_.epoch, at_.iter = 0) {
      if (!at_.val_pending) {
        if (!train_epoch()) return result();  // stopped: saved mid-epoch
        end_of_epoch_checkpoint();
      }
      if (at_.val_pending && !validate()) return result();  // stopped: the validation is redone on resume
      report_skipped();
      if (any_rank(stop_requested().load()) && at_.epoch + 1 < r_.epochs) {
        res_.interrupted = true;
        say("stopped after epoch " + std::to_string(at_.epoch + 1) +
            "; saved. Continue with: tinyvid train CONFIG --work-dir " + o_.work_dir + " --resume");
        if (lead_) detail::draw_curves(log_, o_.work_dir + "/curves.png", r_.model);
        return result();
      }
      if (lead_) detail::draw_curves(log_, o_.work_dir + "/curves.png", r_.model);
    }
    res_.epochs_done = r_.epochs;
    return result();
  }

 private:
  // ---- setup ----

  void build() {
    manual_seed(r_.seed);  // the weights' initial values come from the seed
    model_ = models::make_model<float>(r_.model, r_.model_config);
    if (!r_.load_from.empty()) load_initial_weights(*model_, r_.load_from, r_.load_skip);
    model_->to(r_.device.device);  // before the optimizer takes the parameters (to() keeps them anyway)
    named_ = model_->named_parameters();
    opt_ = std::make_unique<optim::SGD>(model_->parameters(), r_.sgd);
    reducer_ = std::make_unique<dist::GradReducer>(pg_, model_->parameters());
    train_set_ = make_dataset(r_, "train");
    if (r_.val_every > 0 && !r_.val_list.empty()) val_set_ = make_dataset(r_, "val");
    loader_ = std::make_unique<data::Loader>(
        *train_set_, data::LoaderOptions{.batch_size = r_.batch_size, .shuffle = true, .drop_last = r_.drop_last,
                                         .num_workers = r_.num_workers, .prefetch = r_.prefetch, .seed = r_.seed,
                                         .pin_memory = r_.device.device != Device::CPU,
                                         .num_shards = pg_.size(), .shard = pg_.rank()});
    iters_ = loader_->num_batches();
    TV_CHECK(iters_ >= 1, "train: no batches: ", train_set_->size(), " training samples with batch_size ", r_.batch_size,
             r_.drop_last ? " and drop_last" : "");
    list_digest_ = detail::list_digest(train_set_->annotations(), r_.train_prefix);
  }

  std::optional<TrainState> find_state() {
    if (!o_.resume) return std::nullopt;
    const std::string path = o_.resume_from.empty() ? detail::state_path(o_.work_dir) : o_.resume_from;
    // `--resume` on a directory without a state starts the run: a requeued cluster job runs the same command.
    if (o_.resume_from.empty() && !std::filesystem::exists(path)) return std::nullopt;
    state_source_ = path;
    return load_train_state(path);
  }

  // A resume continues the same run: same model, same settings (unless allowed by name), same list, a
  // position inside the run.
  void check_resumable(const TrainState& s) {
    const std::string& sp = state_source_;
    TV_CHECK(s.model == r_.model, "train --resume: '", sp, "' is a state of model '", s.model, "', the config builds '",
             r_.model, "'");
    auto allowed = [&](const std::string& key) {
      for (const std::string& a : o_.allow_changed)
        if (a == "all" || a == key) return true;
      return false;
    };
    std::map<std::string, std::string> before = s.config, now = config_.values();
    before["(training list)"] = s.train_list_digest;
    now["(training list)"] = list_digest_;
    std::string refused;
    for (const std::string& change : changed_settings(before, now)) {
      const std::string key = change.substr(0, change.find(':'));
      if (allowed(key)) accepted_changes_.push_back(change);
      else refused += "\n  " + change;
    }
    TV_CHECK(refused.empty(), "train --resume: the settings differ from those of the run in '", sp, "':", refused,
             "\nA resumed run must be the same run. Put the settings back, start a new run (--work-dir, --force), or "
             "accept the change with --allow-change KEY[,KEY...] (or --allow-change all); it will be logged");
    // Another number of processes (or another batch_size) continues from the same sample of the epoch.
    const int64_t global_batch = r_.batch_size * pg_.size();
    const int64_t saved_batch = s.global_batch > 0 ? s.global_batch : parse_int(s.config.count("batch_size") ?
        s.config.at("batch_size") : std::to_string(r_.batch_size), sp, Range::at_least(1), "batch_size");
    resume_iter_ = s.at.iter;
    if (saved_batch != global_batch) {
      const int64_t samples = s.at.iter * saved_batch;
      TV_CHECK(samples % global_batch == 0, "train --resume: '", sp, "' stands after ", samples, " samples of epoch ",
               s.at.epoch + 1, " (", s.at.iter, " iterations of ", saved_batch, " on ", s.processes,
               " processes); with ", pg_.size(), " processes of batch_size ", r_.batch_size, " an iteration takes ",
               global_batch, ", which does not divide it. Resume with a number of processes that does, or from an "
               "epoch's end (epoch_N weights as load_from)");
      resume_iter_ = samples / global_batch;
      accepted_changes_.push_back("samples per iteration: " + std::to_string(saved_batch) + " on " +
                                  std::to_string(s.processes) + " processes -> " + std::to_string(global_batch) + " on " +
                                  std::to_string(pg_.size()) + " (continues at iteration " +
                                  std::to_string(resume_iter_) + " of the epoch)");
    }
    TV_CHECK(s.at.epoch <= r_.epochs && resume_iter_ < iters_ && !(s.at.val_pending && s.at.iter != 0) &&
                 !(s.at.epoch == r_.epochs && s.at.iter != 0) && !(s.at.val_pending && s.at.epoch == 0),
             "train --resume: '", sp, "' stands at epoch ", s.at.epoch, ", iteration ", s.at.iter,
             s.at.val_pending ? " (validation pending)" : "", ", outside a run of ", r_.epochs, " epochs of ", iters_,
             " iterations; the file is damaged or not of this run");
    TV_CHECK(s.at.best_epoch <= s.at.epoch, "train --resume: '", sp, "': best epoch ", s.at.best_epoch,
             " is after the saved epoch ", s.at.epoch);
    // The weights and momenta must fit the model before anything is written.
    const auto own = model_->state_dict();
    for (const auto& [k, t] : own) {
      auto it = s.weights.find(k);
      TV_CHECK(it != s.weights.end(), "train --resume: '", sp, "' has no weight '", k, "' of the model");
      TV_CHECK(it->second.shape() == t.shape(), "train --resume: '", sp, "': '", k, "' has shape ", it->second.shape(),
               ", the model's is ", t.shape());
    }
    TV_CHECK(s.weights.size() == own.size(), "train --resume: '", sp, "' holds ", s.weights.size(),
             " weights, the model ", own.size());
    std::map<std::string, Tensor<float>> params;
    for (const auto& [k, t] : named_) params.emplace(k, t);
    for (const auto& [k, t] : s.momenta) {
      auto it = params.find(k);
      TV_CHECK(it != params.end(), "train --resume: '", sp, "' has a momentum for an unknown parameter '", k, "'");
      TV_CHECK(it->second.shape() == t.shape(), "train --resume: '", sp, "': the momentum of '", k, "' has shape ",
               t.shape(), ", the parameter ", it->second.shape());
    }
    Generator g;
    g.set_state(s.at.rng);
  }

  // log.json keeps the lines of the run up to the saved position (later ones are redone); train.log gets a
  // header for this process: the environment, every setting with its default, what a resume changed.
  void open_logs(const std::optional<TrainState>& saved) {
    const std::string log_path = o_.work_dir + "/log.json";
    if (saved) {
      std::ifstream in(log_path);
      for (std::string l; static_cast<int64_t>(log_.size()) < saved->at.log_lines && std::getline(in, l);)
        log_.push_back(l);
    }
    std::string text;
    for (const std::string& l : log_) text += l + "\n";
    detail::write_text_atomically(log_path, text);
    detail::write_text_atomically(o_.work_dir + "/config.txt", config_.dump());
    json_log_ = AppendLog(log_path);
    text_log_ = AppendLog(o_.work_dir + "/train.log");
    std::string head = "\n" + environment_info(o_.build_info) + "\nwork directory: " + o_.work_dir + "\n";
    if (saved) {
      head += "resumed from " + state_source_ + "\n";
      if (saved->at.log_lines > static_cast<int64_t>(log_.size()))
        head += "warning: log.json had only " + std::to_string(log_.size()) + " of the run's " +
                std::to_string(saved->at.log_lines) + " lines (it was cut outside tinyvid)\n";
      for (const std::string& c : accepted_changes_) head += "changed on resume (--allow-change): " + c + "\n";
    }
    if (pg_.size() > 1) {
      head += "processes: " + std::to_string(pg_.size()) + " (" + pg_.name() + "), " + std::to_string(r_.batch_size) +
              " clips each per iteration; gradients summed through " + reducer_->path() +
              (reducer_->path_reason().empty() ? "" : " (not NCCL: " + reducer_->path_reason() + ")") + "\n";
    }
    head += "settings (every key the run reads; '# default' marks values not given):\n" + config_.dump_resolved();
    text_log_.write(head);
    for (const std::string& c : accepted_changes_) say("changed on resume (--allow-change): " + c);
  }

  void restore(const TrainState& s) {
    nn::StateDict<float> weights(s.weights.begin(), s.weights.end());
    model_->load_state_dict(weights);
    std::vector<Tensor<float>> momenta(named_.size());
    for (size_t i = 0; i < named_.size(); ++i) {
      auto it = s.momenta.find(named_[i].first);
      if (it != s.momenta.end()) momenta[i] = it->second;
    }
    opt_->load_momentum_buffers(momenta);
    default_generator().set_state(s.at.rng);
    at_ = s.at;
    at_.iter = resume_iter_;
    if (at_.val_pending) --at_.epoch;  // the finished epoch whose validation is redone
    at_.log_lines = static_cast<int64_t>(log_.size());
    res_.best_top1 = at_.best_top1, res_.best_epoch = at_.best_epoch;
    res_.epochs_done = s.at.epoch;
    res_.global_iter = s.at.epoch * iters_ + at_.iter;
    if (at_.epoch >= r_.epochs)
      say(state_source_ + ": the run has finished its " + std::to_string(r_.epochs) + " epochs; nothing to resume");
    else
      say("resuming from " + state_source_ + ": epoch " + std::to_string(at_.epoch + 1) +
          (at_.val_pending ? ", validation" : ", iteration " + std::to_string(at_.iter) + " of " + std::to_string(iters_)));
  }

  // ---- the loop ----

  // The epoch's iterations from at_.iter on; false if the run stopped (signal, test kill).
  bool train_epoch() {
    using Clock = std::chrono::steady_clock;
    model_->train();
    loader_->start_epoch(at_.epoch, at_.iter);
    ProgressLine bar("epoch " + std::to_string(at_.epoch + 1) + "/" + std::to_string(r_.epochs), iters_, "it", o_.progress);
    bar.advance(at_.iter);
    const int64_t total_iters = iters_ * r_.epochs, first_iter = at_.iter;
    auto t_iter = Clock::now();
    for (; at_.iter < iters_; ++at_.iter) {
      const int64_t g = at_.epoch * iters_ + at_.iter;
      if (o_.stop_after_iters >= 0 && g >= o_.stop_after_iters) {
        loader_->stop();
        res_.global_iter = g;
        return false;
      }
      std::optional<data::Batch> batch = loader_->next();
      check_skipped(batch.has_value() || at_.iter > first_iter);
      if (!batch) break;  // the rest of the epoch was unreadable, within data.max_skip_ratio
      const double data_time = std::chrono::duration<double>(Clock::now() - t_iter).count();
      const Step s = step(*batch, g);
      const double it_time = std::chrono::duration<double>(Clock::now() - t_iter).count();
      t_iter = Clock::now();
      if (s.trained) window_.add(s, data_time, it_time);
      res_.seconds += it_time;
      time_per_iter_ += (it_time - time_per_iter_) / static_cast<double>(++done_here_);
      res_.global_iter = g + 1;
      bar.advance(1, "loss " + detail::fmt("%.4f", s.loss));
      if (((at_.iter + 1) % r_.log_every == 0 || at_.iter + 1 == iters_) && window_.n > 0)
        log_train_line(g, time_per_iter_ * static_cast<double>(total_iters - g - 1));
      const bool last = at_.iter + 1 == iters_;
      if (!last && s.stop) {
        save_state(at_.epoch, ++at_.iter);
        loader_->stop();
        if (o_.progress) bar.finish();
        say("stopped at epoch " + std::to_string(at_.epoch + 1) + ", iteration " + std::to_string(at_.iter) +
            "; saved. Continue with: tinyvid train CONFIG --work-dir " + o_.work_dir + " --resume");
        res_.interrupted = true;
        return false;
      }
      if (!last && r_.checkpoint_every_iters > 0 && (g + 1) % r_.checkpoint_every_iters == 0)
        save_state(at_.epoch, at_.iter + 1);
    }
    if (o_.progress) bar.finish();
    return true;
  }

  struct Step {
    double loss, top1, top5, grad_norm;
    bool stop;     // some rank was asked to stop (a signal): every rank stops after this iteration
    bool trained;  // false when no rank had a readable sample (no update)
  };

  // One iteration: forward, loss, backward, clipping, SGD, on the model's device. On N processes each rank
  // runs its share of the batch and the gradients are summed (file comment); with one, nothing is exchanged.
  Step step(const data::Batch& batch, int64_t g) {
    opt_->set_lr(r_.schedule.lr(at_.epoch, at_.iter, iters_));
    const Device device = r_.device.device;
    const auto n = static_cast<int64_t>(batch.indices.size());
    Tensor<float> scores, loss;
    // This rank's sample count, loss sum, top-1 and top-5 hits, stop request: summed over the ranks in one
    // all-reduce (the iteration's host read is the loss and the scores, in one copy).
    double totals[5] = {static_cast<double>(n), 0, 0, 0, stop_requested().load() ? 1.0 : 0.0};
    if (n > 0) {
      scores = (*model_)(clips_on_device(batch, device, "train"));
      loss = cross_entropy(scores, batch.labels.to(device), r_.label_smoothing);
      Tensor<float> host;
      {
        NoGradGuard no_grad;
        host = cat(std::vector<Tensor<float>>{loss.detach().reshape({1}), scores.detach().reshape({-1})}, 0)
                   .to(Device::CPU);
      }
      const Tensor<float> s = host.narrow(0, 1, scores.numel()).reshape(scores.shape());
      const auto nd = static_cast<double>(n);
      totals[1] = host.at({0}) * nd;
      totals[2] = topk_accuracy(s, batch.labels, 1) * nd;
      totals[3] = topk_accuracy(s, batch.labels, std::min<int64_t>(5, s.size(1))) * nd;
    }
    if (pg_.size() > 1) pg_.all_reduce(totals, 5, dist::ReduceOp::Sum);
    const double total_n = totals[0];
    Step out{totals[1] / total_n, totals[2] / total_n, totals[3] / total_n, std::nan(""), totals[4] > 0, total_n > 0};
    if (!out.trained) return out;
    // Checked before the step changes any weight; the same on every rank.
    TV_CHECK(std::isfinite(out.loss), "train: the loss is ", out.loss, " at epoch ", at_.epoch + 1, ", iteration ",
             at_.iter + 1, " (global ", g + 1, "); stopped. ", last_good(), " (lower optim.lr, or check the data)");
    opt_->zero_grad();
    // Each rank's mean weighted by its share: the sum over the ranks is the mean over the whole batch.
    if (n > 0) (pg_.size() > 1 ? loss * static_cast<float>(static_cast<double>(n) / total_n) : loss).backward();
    res_.comm_seconds += reducer_->finish();
    dist::average_running_stats(pg_, *model_, static_cast<double>(n) / total_n);
    if (r_.clip_grad > 0) {
      out.grad_norm = optim::clip_grad_norm(opt_->parameters(), r_.clip_grad);
      TV_CHECK(std::isfinite(out.grad_norm), "train: the gradient norm is ", out.grad_norm, " at epoch ", at_.epoch + 1,
               ", iteration ", at_.iter + 1, " (global ", g + 1, "); stopped. ", last_good(),
               " (lower optim.lr, or check the data)");
    }
    opt_->step();
    return out;
  }

  // Whether any rank says yes (one small all-reduce; the flag itself with one process).
  bool any_rank(bool yes) {
    if (pg_.size() == 1) return yes;
    int64_t v = yes ? 1 : 0;
    pg_.all_reduce(&v, 1, dist::ReduceOp::Max);
    return v > 0;
  }

  // The epoch's training is done: saved with its validation pending (if it has one), so that a kill from
  // here on resumes into the validation, never past it.
  void end_of_epoch_checkpoint() {
    interrupt_point("before_epoch_checkpoint");
    const int64_t finished = at_.epoch + 1;
    if (lead_) {
      io::save_weights(*model_, o_.work_dir + "/epoch_" + std::to_string(finished) + ".safetensors");
      remove_old_epoch_checkpoints(finished);
    }
    at_.val_pending = should_validate();
    save_state(finished, 0);
    res_.epochs_done = finished;
    interrupt_point("after_epoch_checkpoint");
  }

  bool should_validate() const {
    return val_set_ && ((at_.epoch + 1) % r_.val_every == 0 || at_.epoch + 1 == r_.epochs);
  }

  // The pending validation of epoch at_.epoch + 1 (the weights are that epoch's, saved): evaluate, best weights,
  // log line, then the state that records them. Each step before the state is redone identically on resume.
  bool validate() {
    const int64_t epoch = at_.epoch + 1;
    EvalResult v = evaluate(*model_, *val_set_, {.average = r_.average_clips, .batch_size = r_.batch_size,
                                                 .num_workers = r_.num_workers, .progress = o_.progress, .what = "val",
                                                 .stop = &stop_requested(), .group = &pg_});
    if (v.interrupted) {
      res_.interrupted = true;
      say("stopped during the validation of epoch " + std::to_string(epoch) +
          "; it is redone on resume. Continue with: tinyvid train CONFIG --work-dir " + o_.work_dir + " --resume");
      return false;
    }
    check_skip_share(val_set_->skipped(), val_set_->size(), "validation");
    val_set_->clear_skipped();
    interrupt_point("after_validation");
    res_.last_val_top1 = v.top1;
    const bool best = v.top1 > at_.best_top1;
    if (best) {
      at_.best_top1 = v.top1, at_.best_epoch = epoch;
      if (lead_) io::save_weights(*model_, o_.work_dir + "/best.safetensors");
      interrupt_point("after_best");
    }
    res_.best_top1 = at_.best_top1, res_.best_epoch = at_.best_epoch;
    char line[384];
    std::snprintf(line, sizeof(line),
                  "{\"mode\":\"val\",\"epoch\":%lld,\"iter\":%lld,\"global_iter\":%lld,\"lr\":%.6g,\"top1_acc\":%.6f,"
                  "\"top5_acc\":%.6f,\"mean_class_accuracy\":%.6f,\"videos\":%zu,\"skipped\":%zu}",
                  static_cast<long long>(epoch), static_cast<long long>(iters_), static_cast<long long>(epoch * iters_),
                  r_.schedule.lr(epoch - 1, iters_ - 1, iters_), v.top1, v.top5, v.mean_class_accuracy, v.scores.size(),
                  v.skipped.size());
    append_json(line);
    say(std::string("Epoch(val) [") + std::to_string(epoch) + "]  top1_acc: " + detail::fmt("%.4f", v.top1) +
        ", top5_acc: " + detail::fmt("%.4f", v.top5) + ", mean_class_accuracy: " +
        detail::fmt("%.4f", v.mean_class_accuracy) + " (" + std::to_string(v.scores.size()) + " videos" +
        (v.skipped.empty() ? "" : ", " + std::to_string(v.skipped.size()) + " unreadable") + ")" +
        (best ? "  best so far" : ""));
    interrupt_point("after_val_log");
    at_.val_pending = false;
    save_state(at_.epoch + 1, 0);
    return true;
  }

  // ---- state and files ----

  // The state last: it alone is what a resume reads, and it names the log lines that belong to it. The
  // position is where the run continues: (epoch, iter) of the next iteration, or the next epoch's start with
  // at_.val_pending when the finished epoch's validation is not recorded yet.
  void save_state(int64_t epoch, int64_t iter) {
    if (!lead_) return;
    json_log_.sync();
    TrainState s;
    s.at = at_;
    s.at.epoch = epoch, s.at.iter = iter;
    s.at.rng = default_generator().state();
    s.at.log_lines = static_cast<int64_t>(log_.size());
    s.model = r_.model;
    s.config = config_.values();
    s.train_list_digest = list_digest_;
    s.processes = pg_.size();
    s.global_batch = r_.batch_size * pg_.size();
    std::vector<std::pair<std::string, Tensor<float>>> momenta;
    const auto buffers = opt_->momentum_buffers();
    for (size_t p = 0; p < named_.size(); ++p)
      if (buffers[p].defined()) momenta.emplace_back(named_[p].first, buffers[p]);
    io::save_weights(*model_, o_.work_dir + "/latest.safetensors");
    save_train_state(detail::state_path(o_.work_dir), s, model_->state_dict(), momenta);
  }

  void remove_old_epoch_checkpoints(int64_t newest) {
    if (r_.max_keep_ckpts <= 0) return;
    for (int64_t e = newest - r_.max_keep_ckpts; e >= 1; --e) {
      const std::string p = o_.work_dir + "/epoch_" + std::to_string(e) + ".safetensors";
      if (!std::filesystem::remove(p)) break;  // older ones went earlier
    }
  }

  std::string last_good() const {
    const std::string sp = detail::state_path(o_.work_dir);
    return std::filesystem::exists(sp) ? "The last good checkpoint is " + sp + " (tinyvid train --resume continues from it)"
                                       : std::string("No checkpoint was written yet");
  }

  // "NAME" throws the first time the run passes NAME, "NAME@E" when it passes it in epoch E.
  void interrupt_point(const char* name) const {
    const std::string here = name, in_epoch = here + "@" + std::to_string(at_.epoch + 1);
    if (o_.interrupt_at == here || o_.interrupt_at == in_epoch)
      throw TrainInterrupted("train: interrupted at " + in_epoch + " (test)");
  }

  // ---- logs ----

  struct Window {
    double loss = 0, top1 = 0, top5 = 0, grad_norm = 0, data = 0, time = 0;
    int64_t n = 0;
    void add(const Step& s, double data_time, double it_time) {
      loss += s.loss, top1 += s.top1, top5 += s.top5, grad_norm += s.grad_norm, data += data_time, time += it_time, ++n;
    }
  };

  void log_train_line(int64_t g, double eta) {
    const double n = static_cast<double>(window_.n);
    const double lr = r_.schedule.lr(at_.epoch, at_.iter, iters_);
    char line[512];
    const int len = std::snprintf(
        line, sizeof(line),
        "{\"mode\":\"train\",\"epoch\":%lld,\"iter\":%lld,\"global_iter\":%lld,\"lr\":%.6g,\"top1_acc\":%.6f,"
        "\"top5_acc\":%.6f,\"loss_cls\":%.6f,\"loss\":%.6f",
        static_cast<long long>(at_.epoch + 1), static_cast<long long>(at_.iter + 1), static_cast<long long>(g + 1), lr,
        window_.top1 / n, window_.top5 / n, window_.loss / n, window_.loss / n);
    std::string json(line, static_cast<size_t>(len));
    if (r_.clip_grad > 0) json += ",\"grad_norm\":" + detail::fmt("%.4f", window_.grad_norm / n);
    json += ",\"data_time\":" + detail::fmt("%.4f", window_.data / n) + ",\"time\":" + detail::fmt("%.4f", window_.time / n) +
            ",\"eta_s\":" + detail::fmt("%.0f", eta) + "}";
    append_json(json);
    char text[512];
    std::snprintf(text, sizeof(text),
                  "Epoch [%lld][%lld/%lld]  lr: %.3e, eta: %s, time: %.3f, data_time: %.3f, loss: %.4f, top1_acc: %.4f, "
                  "top5_acc: %.4f",
                  static_cast<long long>(at_.epoch + 1), static_cast<long long>(at_.iter + 1),
                  static_cast<long long>(iters_), lr, format_duration(eta).c_str(), window_.time / n, window_.data / n,
                  window_.loss / n, window_.top1 / n, window_.top5 / n);
    say(text, o_.progress);
    window_ = {};
  }

  void append_json(const std::string& line) {
    log_.push_back(line);
    if (lead_) json_log_.write(line + "\n");
  }

  // Printed (unless quiet) and written to train.log.
  void say(const std::string& text, bool over_progress_bar = false) {
    if (!lead_) return;
    text_log_.write(text + "\n");
    if (o_.quiet) return;
    std::printf("%s%s\n", over_progress_bar ? "\r\033[K" : "", text.c_str());
    std::fflush(stdout);
  }

  // ---- unreadable samples ----

  // A run that cannot read a stated share of its samples stops, listing them (data.max_skip_ratio): training
  // on what is left would report success on the wrong data.
  // ran_something: this epoch has trained on at least one batch (an epoch of nothing fails even when
  // data.max_skip_ratio = 1 lets every sample be skipped).
  void check_skipped(bool ran_something) {
    const auto skipped = train_set_->skipped();
    check_skip_share(skipped, train_set_->size(), "training");
    TV_CHECK(ran_something, "train: no readable samples in epoch ", at_.epoch + 1, " from iteration ", at_.iter + 1, ":",
             detail::skip_report(skipped, o_.work_dir + "/bad_samples.txt"));
  }

  void check_skip_share(const std::vector<data::SkippedSample>& skipped, int64_t size, const char* what) {
    if (skipped.empty() || static_cast<double>(skipped.size()) <= r_.max_skip_ratio * static_cast<double>(size)) return;
    TV_FAIL("train: ", skipped.size(), " of the ", size, " ", what, " samples of epoch ", at_.epoch + 1,
            " could not be read, more than data.max_skip_ratio = ", r_.max_skip_ratio, " allows; stopped. ", last_good(),
            ". Fix or remove these files (tinyvid check-videos finds them all), or raise data.max_skip_ratio:",
            detail::skip_report(skipped, o_.work_dir + "/bad_samples.txt"));
  }

  void report_skipped() {
    for (const auto& s : train_set_->skipped())
      say("skipped (unreadable) in epoch " + std::to_string(at_.epoch + 1) + ": " + s.path + ": " + s.reason);
    train_set_->clear_skipped();
  }

  TrainResult result() {
    if (loader_) loader_->stop();
    return res_;
  }

  Config config_;
  TrainOptions o_;
  Recipe r_;
  dist::ProcessGroup& pg_;
  bool lead_ = true;  // rank 0: the one that writes
  std::unique_ptr<dist::GradReducer> reducer_;
  std::shared_ptr<models::Recognizer<float>> model_;
  std::vector<std::pair<std::string, Tensor<float>>> named_;
  std::unique_ptr<optim::SGD> opt_;
  std::unique_ptr<data::Dataset> train_set_, val_set_;
  std::unique_ptr<data::Loader> loader_;
  int64_t iters_ = 0;
  std::string list_digest_, state_source_;
  int64_t resume_iter_ = 0;  // the saved position in this run's iterations
  std::vector<std::string> accepted_changes_;
  TrainPosition at_;
  TrainResult res_;
  std::vector<std::string> log_;  // the lines of log.json so far
  AppendLog json_log_, text_log_;
  Window window_;
  double time_per_iter_ = 0;  // running mean over this process, for the ETA
  int64_t done_here_ = 0;
};

inline TrainResult train(const Config& config, const TrainOptions& o) { return Trainer(config, o).run(); }

}  // namespace tv::train
