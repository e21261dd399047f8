#pragma once
// The CUDA backend's reductions (declared in backend/cuda.hpp). Sums accumulate in double, as on the CPU.
// A sum with few outputs and many elements each is cut into interleaved pieces summed by separate threads into a
// buffer, then further launches add each output's pieces in order, 256 at a time: the number of pieces depends on the
// sizes alone, so the result is the same for any grid.
#include <memory>
#include <vector>

#include "tinyvid/backend/cuda.hpp"
#include "tinyvid/backend/gpu/launch.hpp"
#include "tinyvid/core/storage.hpp"

namespace tv::cuda {

// True for a finite value; inf - inf and NaN - NaN are NaN, which equals nothing.
template <class T>
TV_HOST_DEVICE bool is_finite(T v) {
  const T d = v - v;
  return d == d;
}

// partial[p * outputs + o] = the sum of piece p of output o's elements: those at p, p + pieces, p + 2 pieces, ...,
// so the threads of one output read neighbouring elements together; with pieces == 1 the result itself goes to
// out, scaled.
template <class T>
struct SumPiecesKernel {
  Indexer<1> kept, reduced;
  const T* in;
  int64_t outputs, elements, pieces;
  double* partial;  // pieces > 1
  T* out;           // pieces == 1
  double scale;
  TV_HOST_DEVICE void operator()(Thread t) const {
    int64_t k[1], r[1];
    for (int64_t w = t.global(); w < outputs * pieces; w += t.stride()) {
      const int64_t o = w % outputs, p = w / outputs;
      kept.offsets(o, k);
      double acc = 0.0;
      for (int64_t i = p; i < elements; i += pieces) {
        reduced.offsets(i, r);
        acc += static_cast<double>(in[k[0] + r[0]]);
      }
      if (pieces == 1)
        out[o] = static_cast<T>(acc * scale);
      else
        partial[w] = acc;
    }
  }
};

// Adds the partials of each output in groups of `group`, in order: next[q * outputs + o] = the sum of
// partial[(q * group + j) * outputs + o]; with last, the sums (then one group each) go to out, scaled.
template <class T>
struct SumPartialsKernel {
  const double* partial;
  int64_t outputs, pieces, group;
  double* next;
  T* out;
  double scale;
  bool last;
  TV_HOST_DEVICE void operator()(Thread t) const {
    const int64_t groups = (pieces + group - 1) / group;
    for (int64_t w = t.global(); w < outputs * groups; w += t.stride()) {
      const int64_t o = w % outputs, q = w / outputs;
      const int64_t end = (q + 1) * group < pieces ? (q + 1) * group : pieces;
      double acc = 0.0;
      for (int64_t p = q * group; p < end; ++p) acc += partial[p * outputs + o];
      if (last)
        out[o] = static_cast<T>(acc * scale);
      else
        next[w] = acc;
    }
  }
};

// How many pieces each of `outputs` sums of `elements` values is cut into: enough threads for a GPU
// (about 2^18), pieces of at least 256 values.
inline int64_t sum_pieces(int64_t outputs, int64_t elements) {
  constexpr int64_t kTargetThreads = int64_t{1} << 18, kMinChunk = 256;
  if (outputs >= kTargetThreads || elements < 2 * kMinChunk) return 1;
  const int64_t by_threads = (kTargetThreads + outputs - 1) / outputs;
  const int64_t by_chunk = elements / kMinChunk;
  return by_threads < by_chunk ? by_threads : by_chunk;
}

template <class T>
void sum(const T* in, const Shape& shape, const Shape& strides, const std::vector<bool>& reduce, T* out, double scale) {
  Shape kept_shape, kept_strides, red_shape, red_strides;
  for (size_t d = 0; d < shape.size(); ++d) {
    (reduce[d] ? red_shape : kept_shape).push_back(shape[d]);
    (reduce[d] ? red_strides : kept_strides).push_back(strides[d]);
  }
  const int64_t outputs = numel_of(kept_shape), elements = numel_of(red_shape);
  if (outputs == 0) return;
  int64_t pieces = sum_pieces(outputs, elements);
  SumPiecesKernel<T> k{make_indexer<1>(kept_shape, {kept_strides}, "sum"),
                       make_indexer<1>(red_shape, {red_strides}, "sum"),
                       in, outputs, elements, pieces, nullptr, out, scale};
  if (pieces == 1) {
    launch_n("sum", outputs, k);
    return;
  }
  auto partial = std::make_unique<Storage<double>>(outputs * pieces, Device::CUDA);
  k.partial = partial->data();
  launch_n("sum", outputs * pieces, k);
  // The partials go down in groups of 256 (a tree of launches), so no thread adds more than 256 of them.
  constexpr int64_t kGroup = 256;
  while (pieces > kGroup) {
    const int64_t groups = (pieces + kGroup - 1) / kGroup;
    auto next = std::make_unique<Storage<double>>(outputs * groups, Device::CUDA);
    launch_n("sum", outputs * groups,
             SumPartialsKernel<T>{partial->data(), outputs, pieces, kGroup, next->data(), out, scale, false});
    partial = std::move(next);  // the freed block is only reused by work queued after this launch
    pieces = groups;
  }
  launch_n("sum", outputs,
           SumPartialsKernel<T>{partial->data(), outputs, pieces, kGroup, nullptr, out, scale, true});
}

template <class T>
struct MaxAlongKernel {
  Indexer<1> kept;
  const T* in;
  int64_t outputs, n, step;
  T* values;
  int64_t* indices;
  TV_HOST_DEVICE void operator()(Thread t) const {
    int64_t k[1];
    for (int64_t o = t.global(); o < outputs; o += t.stride()) {
      kept.offsets(o, k);
      const T* p = in + k[0];
      T best = p[0];
      int64_t arg = 0;
      for (int64_t i = 1; i < n && best == best; ++i) {  // stops at a NaN: NaN wins, as in PyTorch
        const T v = p[i * step];
        if (v > best || v != v) {
          best = v;
          arg = i;
        }
      }
      values[o] = best;
      indices[o] = arg;
    }
  }
};

template <class T>
void max_along(const T* in, const Shape& shape, const Shape& strides, int64_t dim, T* values, int64_t* indices) {
  Shape kept_shape, kept_strides;
  for (size_t d = 0; d < shape.size(); ++d)
    if (static_cast<int64_t>(d) != dim) {
      kept_shape.push_back(shape[d]);
      kept_strides.push_back(strides[d]);
    }
  const int64_t outputs = numel_of(kept_shape);
  launch_n("max", outputs,
           MaxAlongKernel<T>{make_indexer<1>(kept_shape, {kept_strides}, "max"), in, outputs, shape[dim], strides[dim],
                             values, indices});
}

// first[piece] = the index of the first non-finite value of the piece, or -1.
template <class T>
struct FirstNonFinitePiecesKernel {
  const T* p;
  int64_t n, chunk, pieces;
  int64_t* first;
  TV_HOST_DEVICE void operator()(Thread t) const {
    for (int64_t w = t.global(); w < pieces; w += t.stride()) {
      const int64_t end = (w + 1) * chunk < n ? (w + 1) * chunk : n;
      int64_t found = -1;
      for (int64_t i = w * chunk; i < end && found < 0; ++i)
        if (!is_finite(p[i])) found = i;
      first[w] = found;
    }
  }
};

// One thread: the first piece's answer, and the value found there.
template <class T>
struct FirstNonFiniteKernel {
  const T* p;
  const int64_t* first;
  int64_t pieces;
  int64_t* index;
  T* value;
  TV_HOST_DEVICE void operator()(Thread t) const {
    if (t.global() != 0) return;
    *index = -1;
    *value = T(0);
    for (int64_t w = 0; w < pieces; ++w)
      if (first[w] >= 0) {
        *index = first[w];
        *value = p[first[w]];
        return;
      }
  }
};

template <class T>
void first_non_finite(const T* p, int64_t n, int64_t* index, T* value) {
  *index = -1;
  if (n == 0) return;
  constexpr int64_t kChunk = 4096;
  const int64_t pieces = (n + kChunk - 1) / kChunk;
  Storage<int64_t> first(pieces + 1, Device::CUDA);
  Storage<T> found_value(1, Device::CUDA);
  launch_n("check_finite", pieces, FirstNonFinitePiecesKernel<T>{p, n, kChunk, pieces, first.data()});
  launch("check_finite", Launch{1, 1},
         FirstNonFiniteKernel<T>{p, first.data(), pieces, first.data() + pieces, found_value.data()});
  copy_across(index, Device::CPU, first.data() + pieces, Device::CUDA, sizeof(int64_t));
  copy_across(value, Device::CPU, found_value.data(), Device::CUDA, sizeof(T));
}

}  // namespace tv::cuda
