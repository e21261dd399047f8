#pragma once
// Losses and metrics: cross_entropy (as torch.nn.functional.cross_entropy with class indices, mean
// reduction, optional label smoothing) and top-k accuracy.
#include "tinyvid/backend/loss.hpp"
#include "tinyvid/ops/elementwise.hpp"
#include "tinyvid/ops/index.hpp"
#include "tinyvid/ops/reduce.hpp"
#include "tinyvid/ops/softmax.hpp"

namespace tv {

// logits: N x C, target: N class indices in [0, C). With smoothing e the target distribution is
// (1 - e) one-hot + e / C, as PyTorch's label_smoothing.
template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const Tensor<int64_t>& target, double label_smoothing = 0.0) {
  TV_CHECK(logits.dim() == 2, "cross_entropy: expected logits of shape N x C, got ", logits.shape());
  TV_CHECK(target.dim() == 1 && target.size(0) == logits.size(0), "cross_entropy: expected ", logits.size(0),
           " targets for logits of shape ", logits.shape(), ", got target shape ", target.shape());
  TV_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, "cross_entropy: label_smoothing must be in [0, 1], got ",
           label_smoothing);
  const int64_t C = logits.size(1);
  // The check reads the targets on the host (on a GPU, one synchronisation): an error by design, as PyTorch's.
  const auto [bad, t] = kernel::find_out_of_range("cross_entropy", target, C);
  TV_CHECK(bad < 0, "cross_entropy: target ", t, " (sample ", bad, ") is not a class index in [0, ", C, ")");
  const Tensor<T> logp = log_softmax(logits, 1);
  const Tensor<T> picked = gather(logp, 1, target.reshape({-1, 1}));
  Tensor<T> loss = neg(mean(picked));
  if (label_smoothing > 0.0) {
    const Tensor<T> uniform_part = neg(mean(logp));  // mean over N and C = mean_n (1/C) sum_c -log p
    loss = add(mul(loss, T(1 - label_smoothing)), mul(uniform_part, T(label_smoothing)));
  }
  return loss;
}

// The fraction of rows whose target is among the k largest logits, ranked as torch.topk ranks them: NaN above
// every number (so NaN scores never pass for a hit below them), ties to the lower index. No gradient; the
// accuracy is a host number by design (on a GPU, one synchronisation).
template <class T>
double topk_accuracy(const Tensor<T>& logits, const Tensor<int64_t>& target, int64_t k = 1) {
  TV_CHECK(logits.dim() == 2 && target.dim() == 1 && target.size(0) == logits.size(0),
           "topk_accuracy: expected logits N x C and N targets, got ", logits.shape(), " and ", target.shape());
  TV_CHECK(k >= 1 && k <= logits.size(1), "topk_accuracy: k = ", k, " is not in [1, ", logits.size(1), "]");
  const Tensor<T> l = logits.contiguous();
  const int64_t N = l.size(0), C = l.size(1);
  if (N == 0) return 0.0;
  const auto [bad, t] = kernel::find_out_of_range("topk_accuracy", target, C);
  TV_CHECK(bad < 0, "topk_accuracy: target ", t, " is not a class index in [0, ", C, ")");
  const int64_t hits = kernel::topk_hits(l, target, k);
  return static_cast<double>(hits) / static_cast<double>(N);
}

}  // namespace tv
