#pragma once
// The CUDA backend's elementwise kernels: out = f(a), out = f(a, b) with broadcasting, copy, fill, iota
// and dropout's mask (declared in backend/cuda.hpp; each thread takes elements i, i + grid, ...; see gpu/launch.hpp).
#include "tinyvid/backend/gpu/launch.hpp"
#include "tinyvid/backend/philox.hpp"

namespace tv::cuda {

template <class T, class U, class F>
struct Map1Kernel {
  Indexer<2> at;
  U* out;
  const T* in;
  F f;
  int64_t n;
  TV_HOST_DEVICE void operator()(Thread t) const {
    int64_t off[2];
    for (int64_t i = t.global(); i < n; i += t.stride()) {
      at.offsets(i, off);
      out[off[0]] = f(in[off[1]]);
    }
  }
};

template <class T, class U, class F>
struct Map2Kernel {
  Indexer<3> at;
  U* out;
  const T* a;
  const T* b;
  F f;
  int64_t n;
  TV_HOST_DEVICE void operator()(Thread t) const {
    int64_t off[3];
    for (int64_t i = t.global(); i < n; i += t.stride()) {
      at.offsets(i, off);
      out[off[0]] = f(a[off[1]], b[off[2]]);
    }
  }
};

template <class T>
struct FillKernel {
  Indexer<1> at;
  T* dst;
  T value;
  int64_t n;
  TV_HOST_DEVICE void operator()(Thread t) const {
    int64_t off[1];
    for (int64_t i = t.global(); i < n; i += t.stride()) {
      at.offsets(i, off);
      dst[off[0]] = value;
    }
  }
};

template <class T>
struct IotaKernel {
  T* out;
  T start, step;
  int64_t n;
  TV_HOST_DEVICE void operator()(Thread t) const {
    for (int64_t i = t.global(); i < n; i += t.stride()) out[i] = start + static_cast<T>(i) * step;
  }
};

template <class T>
struct DropoutMaskKernel {
  T* mask;
  int64_t n;
  double p;
  T keep_scale;
  uint64_t key;
  TV_HOST_DEVICE void operator()(Thread t) const {
    for (int64_t i = t.global(); i < n; i += t.stride()) mask[i] = dropout_mask_value(key, i, p, keep_scale);
  }
};

// A copy is a map with the identity.
struct Identity {
  template <class T>
  TV_HOST_DEVICE T operator()(T v) const { return v; }
};

template <class T, class U, class F>
void map1(const Shape& shape, U* out, const Shape& out_strides, const T* in, const Shape& in_strides, F f) {
  const int64_t n = numel_of(shape);
  launch_n("map", n, Map1Kernel<T, U, F>{make_indexer<2>(shape, {out_strides, in_strides}, "map"), out, in, f, n});
}

template <class T, class U, class F>
void map2(const Shape& shape, U* out, const Shape& out_strides, const T* a, const Shape& a_strides, const T* b,
          const Shape& b_strides, F f) {
  const int64_t n = numel_of(shape);
  launch_n("map", n,
           Map2Kernel<T, U, F>{make_indexer<3>(shape, {out_strides, a_strides, b_strides}, "map"), out, a, b, f, n});
}

template <class T>
void copy(const Shape& shape, T* dst, const Shape& dst_strides, const T* src, const Shape& src_strides) {
  map1(shape, dst, dst_strides, src, src_strides, Identity{});
}

template <class T>
void fill(const Shape& shape, T* dst, const Shape& dst_strides, T value) {
  const int64_t n = numel_of(shape);
  launch_n("fill", n, FillKernel<T>{make_indexer<1>(shape, {dst_strides}, "fill"), dst, value, n});
}

template <class T>
void iota(T* out, int64_t n, T start, T step) {
  launch_n("arange", n, IotaKernel<T>{out, start, step, n});
}

template <class T>
void dropout_mask(T* mask, int64_t n, double p, T keep_scale, uint64_t key) {
  launch_n("dropout", n, DropoutMaskKernel<T>{mask, n, p, keep_scale, key});
}

}  // namespace tv::cuda
