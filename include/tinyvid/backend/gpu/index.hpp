#pragma once
// The CUDA backend's indexing kernels and the checks of losses and metrics (declared in backend/cuda.hpp):
// gather, its adjoint scatter_add, the range checks of an index and top-k hits. Gather is one thread per
// output element. Scatter_add has no atomics: a thread owns every index entry along `dim` for one position
// of the other dims, so it alone writes the elements they name, adding in the CPU's order. The checks and
// the hits are host numbers: pieces counted by separate threads, one thread combining them in order, then
// a copy of the few results to the host.
#include <cstdint>

#include "tinyvid/backend/cuda.hpp"
#include "tinyvid/backend/gpu/launch.hpp"
#include "tinyvid/core/storage.hpp"

namespace tv::cuda {

// out (contiguous, index's shape)[i] = in[the offset of i in in's other dims + index[i] * dim_stride].
template <class T>
struct GatherKernel {
  Indexer<3> at;  // out, index, in (with its stride along dim zeroed)
  const T* in;
  const int64_t* index;
  T* out;
  int64_t n, dim_stride;
  TV_HOST_DEVICE void operator()(Thread t) const {
    int64_t off[3];
    for (int64_t i = t.global(); i < n; i += t.stride()) {
      at.offsets(i, off);
      out[off[0]] = in[off[2] + index[off[1]] * dim_stride];
    }
  }
};

template <class T>
void gather(const T* in, const Shape& in_strides, int64_t dim, const int64_t* index, const Shape& index_shape,
            const Shape& index_strides, T* out) {
  Shape in_walk = in_strides;
  const int64_t dim_stride = in_strides[dim];
  in_walk[dim] = 0;  // the position along dim comes from the index
  const int64_t n = numel_of(index_shape);
  launch_n("gather", n,
           GatherKernel<T>{make_indexer<3>(index_shape, {contiguous_strides(index_shape), index_strides, in_walk},
                                           "gather"),
                           in, index, out, n, dim_stride});
}

// One thread per position of the index's dims other than dim (`lines` of them), walking its `len` entries
// along dim in order. Two positions differ in a dim other than dim, so they name different elements of
// grad_in: no element has two writers, and each receives its additions in the CPU's (row-major) order.
template <class T>
struct ScatterAddKernel {
  Indexer<3> at;  // grad_out, index, grad_in (contiguous, without dim)
  T* grad_in;
  const int64_t* index;
  const T* grad_out;
  int64_t lines, len, out_step, index_step, dim_stride;
  TV_HOST_DEVICE void operator()(Thread t) const {
    int64_t off[3];
    for (int64_t l = t.global(); l < lines; l += t.stride()) {
      at.offsets(l, off);
      for (int64_t j = 0; j < len; ++j)
        grad_in[off[2] + index[off[1] + j * index_step] * dim_stride] += grad_out[off[0] + j * out_step];
    }
  }
};

template <class T>
void scatter_add(T* grad_in, const Shape& grad_in_shape, int64_t dim, const int64_t* index, const Shape& index_shape,
                 const Shape& index_strides, const T* grad_out, const Shape& grad_out_strides) {
  const Shape walk = contiguous_strides(grad_in_shape);
  Shape shape, out_strides, idx_strides, in_strides;  // the dims other than dim
  for (size_t d = 0; d < index_shape.size(); ++d) {
    if (static_cast<int64_t>(d) == dim) continue;
    shape.push_back(index_shape[d]);
    out_strides.push_back(grad_out_strides[d]);
    idx_strides.push_back(index_strides[d]);
    in_strides.push_back(walk[d]);
  }
  const int64_t lines = numel_of(shape), len = index_shape[dim];
  if (len == 0) return;
  launch_n("scatter_add", lines,
           ScatterAddKernel<T>{make_indexer<3>(shape, {out_strides, idx_strides, in_strides}, "scatter_add"), grad_in,
                               index, grad_out, lines, len, grad_out_strides[dim], index_strides[dim], walk[dim]});
}

// Piece w of the index (elements [w * chunk, (w + 1) * chunk) in logical order): count[w] = its entries
// outside [0, bound), first[w] = the position of the first of them, or -1.
struct OutOfRangePiecesKernel {
  Indexer<1> at;
  const int64_t* index;
  int64_t total, chunk, pieces, bound;
  int64_t* count;
  int64_t* first;
  TV_HOST_DEVICE void operator()(Thread t) const {
    int64_t off[1];
    for (int64_t w = t.global(); w < pieces; w += t.stride()) {
      const int64_t end = (w + 1) * chunk < total ? (w + 1) * chunk : total;
      int64_t bad = 0, found = -1;
      for (int64_t i = w * chunk; i < end; ++i) {
        at.offsets(i, off);
        const int64_t v = index[off[0]];
        if (v < 0 || v >= bound) {
          if (found < 0) found = i;
          ++bad;
        }
      }
      count[w] = bad;
      first[w] = found;
    }
  }
};

// One thread: result = {entries out of range, the first one's position or -1, its value or 0}.
struct OutOfRangeKernel {
  Indexer<1> at;
  const int64_t* index;
  const int64_t* count;
  const int64_t* first;
  int64_t pieces;
  int64_t* result;
  TV_HOST_DEVICE void operator()(Thread t) const {
    if (t.global() != 0) return;
    int64_t bad = 0, position = -1;
    for (int64_t w = 0; w < pieces; ++w) {
      bad += count[w];
      if (position < 0) position = first[w];
    }
    int64_t value = 0;
    if (position >= 0) {
      int64_t off[1];
      at.offsets(position, off);
      value = index[off[0]];
    }
    result[0] = bad;
    result[1] = position;
    result[2] = value;
  }
};

// The entries of an index (shape, strides) outside [0, bound): {count, first position, its value} in host memory.
inline void out_of_range_on_device(const int64_t* index, const Shape& shape, const Shape& strides, int64_t bound,
                                   const char* op, int64_t (&result)[3]) {
  const int64_t total = numel_of(shape);
  constexpr int64_t kChunk = 4096;
  const int64_t pieces = (total + kChunk - 1) / kChunk;
  const Indexer<1> at = make_indexer<1>(shape, {strides}, op);
  Storage<int64_t> scratch(2 * pieces + 3, Device::CUDA);
  int64_t* count = scratch.data();
  int64_t* first = count + pieces;
  int64_t* out = first + pieces;
  launch_n(op, pieces, OutOfRangePiecesKernel{at, index, total, kChunk, pieces, bound, count, first});
  launch(op, Launch{1, 1}, OutOfRangeKernel{at, index, count, first, pieces, out});
  copy_across(result, Device::CPU, out, Device::CUDA, sizeof(result));
}

void count_out_of_range(const int64_t* index, const Shape& index_shape, const Shape& index_strides, int64_t n,
                        int64_t* count, int64_t* first_bad) {
  *count = 0;
  if (numel_of(index_shape) == 0) return;
  int64_t r[3];
  out_of_range_on_device(index, index_shape, index_strides, n, "index_out_of_range", r);
  *count = r[0];
  if (r[0] > 0) *first_bad = r[2];
}

void find_out_of_range(const int64_t* index, int64_t n, int64_t stride, int64_t bound, int64_t* position,
                       int64_t* value) {
  *position = -1;
  if (n == 0) return;
  int64_t r[3];
  out_of_range_on_device(index, Shape{n}, Shape{stride}, bound, "find_out_of_range", r);
  *position = r[1];
  if (r[1] >= 0) *value = r[2];
}

// One thread per row: hit[row] = whether the row's target is among the k largest, ranked as torch.topk
// ranks them (NaN above every number, ties to the lower index).
template <class T>
struct TopkRowsKernel {
  const T* logits;
  const int64_t* target;
  int64_t N, C, target_stride, k;
  int64_t* hit;
  TV_HOST_DEVICE void operator()(Thread t) const {
    for (int64_t n = t.global(); n < N; n += t.stride()) {
      const T* row = logits + n * C;
      const int64_t tg = target[n * target_stride];
      const T mine = row[tg];
      const bool mine_nan = mine != mine;
      int64_t better = 0;  // classes ranked before the target
      for (int64_t c = 0; c < C; ++c) {
        const T v = row[c];
        const bool nan = v != v;
        better += mine_nan ? nan && c < tg : nan || v > mine || (v == mine && c < tg);
      }
      hit[n] = better < k;
    }
  }
};

// One thread: *total = the sum of the N flags.
struct CountHitsKernel {
  const int64_t* hit;
  int64_t N;
  int64_t* total;
  TV_HOST_DEVICE void operator()(Thread t) const {
    if (t.global() != 0) return;
    int64_t s = 0;
    for (int64_t n = 0; n < N; ++n) s += hit[n];
    *total = s;
  }
};

template <class T>
void topk_hits(const T* logits, int64_t N, int64_t C, const int64_t* target, int64_t target_stride, int64_t k,
               int64_t* hits) {
  *hits = 0;
  if (N == 0) return;
  Storage<int64_t> hit(N + 1, Device::CUDA);
  launch_n("topk_accuracy", N, TopkRowsKernel<T>{logits, target, N, C, target_stride, k, hit.data()});
  launch("topk_accuracy", Launch{1, 1}, CountHitsKernel{hit.data(), N, hit.data() + N});
  copy_across(hits, Device::CPU, hit.data() + N, Device::CUDA, sizeof(int64_t));
}

}  // namespace tv::cuda
