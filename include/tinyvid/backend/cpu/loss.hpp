#pragma once
// Kernels of the losses and metrics: the check of class indices and top-k hits. Their results are host
// numbers by design (an error to raise, an accuracy to return), written through host pointers.
#include <cmath>
#include <cstdint>

namespace tv::cpu {

// The first of n indices (stride apart) outside [0, bound): *position = its position and *value = the index,
// or *position = -1 when all are in range. position and value point to host memory.
inline void find_out_of_range(const int64_t* index, int64_t n, int64_t stride, int64_t bound, int64_t* position,
                              int64_t* value) {
  *position = -1;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = index[i * stride];
    if (t < 0 || t >= bound) {
      *position = i;
      *value = t;
      return;
    }
  }
}

// *hits = the rows of logits (N x C, contiguous) whose target (in [0, C), stride apart) is among the k largest,
// ranked as torch.topk ranks them: NaN above every number, ties to the lower index. hits points to host memory.
template <class T>
void topk_hits(const T* logits, int64_t N, int64_t C, const int64_t* target, int64_t target_stride, int64_t k,
               int64_t* hits) {
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) {
    const T* row = logits + n * C;
    const int64_t t = target[n * target_stride];
    const T mine = row[t];
    const bool mine_nan = std::isnan(mine);
    int64_t better = 0;  // classes ranked before the target
    for (int64_t c = 0; c < C; ++c) {
      const bool nan = std::isnan(row[c]);
      better += mine_nan ? nan && c < t : nan || row[c] > mine || (row[c] == mine && c < t);
    }
    count += better < k;
  }
  *hits = count;
}

}  // namespace tv::cpu
