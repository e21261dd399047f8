#pragma once
// Learning-rate schedules as pure functions of the position in training: a trainer asks
// schedule.lr(epoch, iter_in_epoch, iters_per_epoch) before every iteration and hands it to SGD::set_lr.
// Epochs and iterations are 0-based. The kinds, and the framework whose numbers each reproduces:
//   cosine_per_iteration  min + (base - min)(1 + cos(pi * i / I)) / 2, i the global iteration, I all
//                         iterations: torch's CosineAnnealingLR(T_max = I) stepped every iteration
//   cosine_per_epoch      the same with e / E, constant within an epoch: MMCV 0.x's CosineLrUpdaterHook
//                         (by_epoch), also CosineAnnealingLR(T_max = E) stepped every epoch
//   multi_step            base * gamma^(number of milestones <= epoch): torch's MultiStepLR, MMCV's 'step'
//   constant              base
// Any kind takes .linear_warmup(W, ratio) (MMCV 0.x's warmup='linear'): for global iteration i < W the lr is
// the regular one times (1 - (1 - i / W)(1 - ratio)) = ratio + (1 - ratio) i / W; from i = W on, the regular
// one. Note that it multiplies the decaying lr, so with a long warm-up the peak stays well below base.
#include <cmath>
#include <cstdint>
#include <numbers>
#include <utility>
#include <vector>

#include "tinyvid/core/error.hpp"

namespace tv::optim {

class LrSchedule {
 public:
  enum class Kind { Constant, CosinePerIteration, CosinePerEpoch, MultiStep };

  static LrSchedule constant(double base_lr) { return LrSchedule(Kind::Constant, base_lr); }

  static LrSchedule cosine_per_iteration(double base_lr, int64_t epochs, double min_lr = 0) {
    return cosine(Kind::CosinePerIteration, "LrSchedule::cosine_per_iteration", base_lr, epochs, min_lr);
  }

  static LrSchedule cosine_per_epoch(double base_lr, int64_t epochs, double min_lr = 0) {
    return cosine(Kind::CosinePerEpoch, "LrSchedule::cosine_per_epoch", base_lr, epochs, min_lr);
  }

  // milestones in epochs; a milestone listed twice applies gamma twice, as in MultiStepLR.
  static LrSchedule multi_step(double base_lr, std::vector<int64_t> milestones, double gamma = 0.1) {
    for (int64_t m : milestones)
      TV_CHECK(m >= 0, "LrSchedule::multi_step: expected milestones >= 0 (epochs), got ", m);
    LrSchedule s(Kind::MultiStep, base_lr);
    s.milestones_ = std::move(milestones);
    s.gamma_ = gamma;
    return s;
  }

  // This schedule with MMCV 0.x's linear warm-up over the first `iters` global iterations.
  LrSchedule linear_warmup(int64_t iters, double ratio) const {
    TV_CHECK(iters >= 1, "LrSchedule::linear_warmup: expected iters >= 1, got ", iters);
    TV_CHECK(ratio > 0 && ratio <= 1, "LrSchedule::linear_warmup: expected 0 < ratio <= 1, got ", ratio);
    LrSchedule s = *this;
    s.warmup_iters_ = iters;
    s.warmup_ratio_ = ratio;
    return s;
  }

  // The lr for iteration iter_in_epoch of epoch `epoch` (both 0-based).
  double lr(int64_t epoch, int64_t iter_in_epoch, int64_t iters_per_epoch) const {
    TV_CHECK(iters_per_epoch >= 1, "LrSchedule::lr: expected iters_per_epoch >= 1, got ", iters_per_epoch);
    TV_CHECK(epoch >= 0, "LrSchedule::lr: expected epoch >= 0, got ", epoch);
    TV_CHECK(iter_in_epoch >= 0 && iter_in_epoch < iters_per_epoch, "LrSchedule::lr: expected 0 <= iter_in_epoch < ",
             iters_per_epoch, ", got ", iter_in_epoch);
    const int64_t global_iter = epoch * iters_per_epoch + iter_in_epoch;
    double regular = regular_lr(epoch, global_iter, iters_per_epoch);
    if (global_iter < warmup_iters_) {
      const double k = (1.0 - static_cast<double>(global_iter) / static_cast<double>(warmup_iters_)) *
                       (1.0 - warmup_ratio_);
      return regular * (1.0 - k);
    }
    return regular;
  }

  Kind kind() const { return kind_; }
  double base_lr() const { return base_lr_; }
  int64_t warmup_iters() const { return warmup_iters_; }  // 0: no warm-up
  double warmup_ratio() const { return warmup_ratio_; }

 private:
  static LrSchedule cosine(Kind kind, const char* name, double base_lr, int64_t epochs, double min_lr) {
    TV_CHECK(epochs >= 1, name, ": expected epochs >= 1, got ", epochs);
    LrSchedule s(kind, base_lr);
    s.epochs_ = epochs;
    s.min_lr_ = min_lr;
    return s;
  }

  LrSchedule(Kind kind, double base_lr) : kind_(kind), base_lr_(base_lr) {
    TV_CHECK(base_lr >= 0, "LrSchedule: expected base_lr >= 0, got ", base_lr);
  }

  double cosine(double progress) const {
    return min_lr_ + 0.5 * (base_lr_ - min_lr_) * (1.0 + std::cos(std::numbers::pi * progress));
  }

  double regular_lr(int64_t epoch, int64_t global_iter, int64_t iters_per_epoch) const {
    switch (kind_) {
      case Kind::Constant:
        return base_lr_;
      case Kind::CosinePerIteration:
        return cosine(static_cast<double>(global_iter) / static_cast<double>(epochs_ * iters_per_epoch));
      case Kind::CosinePerEpoch:
        return cosine(static_cast<double>(epoch) / static_cast<double>(epochs_));
      case Kind::MultiStep: {
        double lr = base_lr_;
        for (int64_t m : milestones_)
          if (m <= epoch) lr *= gamma_;
        return lr;
      }
    }
    return base_lr_;
  }

  Kind kind_;
  double base_lr_;
  int64_t epochs_ = 0;
  double min_lr_ = 0;
  std::vector<int64_t> milestones_;
  double gamma_ = 0.1;
  int64_t warmup_iters_ = 0;
  double warmup_ratio_ = 1;
};

// The DNR authors' recipe as their framework (MMCV 0.x) runs it: cosine stepped per epoch down to min_lr, and
// linear warm-up over the first warmup_iters iterations from warmup_ratio * lr. For Kinetics-200
// (mmcv0_cosine(0.1, 120, 60000, 0.01) at 1,250 iterations per epoch) the warm-up outlasts 48 epochs of decay,
// so the lr peaks near 0.065 at the end of the warm-up and never reaches 0.1.
inline LrSchedule mmcv0_cosine(double base_lr, int64_t epochs, int64_t warmup_iters, double warmup_ratio,
                               double min_lr = 0) {
  return LrSchedule::cosine_per_epoch(base_lr, epochs, min_lr).linear_warmup(warmup_iters, warmup_ratio);
}

}  // namespace tv::optim
