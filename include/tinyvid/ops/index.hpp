#pragma once
// Indexing along a dim: gather (what cross-entropy needs), shift (move along a dim by whole steps,
// fill what is vacated with zeros), temporal_shift (TSM's shift, DNR's channel interlacing) and
// upsample_nearest (F.interpolate's 'nearest', TDN's fusions).
#include <cmath>
#include <vector>

#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/elementwise.hpp"
#include "tinyvid/backend/index.hpp"
#include "tinyvid/ops/creation.hpp"
#include "tinyvid/ops/view.hpp"

namespace tv {

// out[i][j][k] = x[i][index[i][j][k]][k] for dim 1, as torch.gather. index has x's number of dims
// and is no larger than x in the other dims.
template <class T>
Tensor<T> gather(const Tensor<T>& x, int64_t dim, const Tensor<int64_t>& index) {
  const int64_t d = wrap_dim(dim, x.dim(), "gather");
  TV_CHECK(index.dim() == x.dim(), "gather: index has ", index.dim(), " dims (shape ", index.shape(),
           ") but the input has ", x.dim(), " (shape ", x.shape(), ")");
  for (int64_t k = 0; k < x.dim(); ++k)
    TV_CHECK(k == d || index.size(k) <= x.size(k), "gather: index shape ", index.shape(), " is larger than input shape ",
             x.shape(), " in dim ", k);
  const int64_t n = x.size(d);
  const Device device = device_of("gather", x, index);
  // A host read by design: the indices are checked before the gather runs (one count comes back).
  const kernel::OutOfRange bad = kernel::index_out_of_range(index, n, "gather");
  TV_CHECK(bad.count == 0, "gather: index ", bad.first_bad, " is out of range for dim ", d, " of size ", n,
           " (input shape ", x.shape(), ")");
  Tensor<T> out = Tensor<T>::empty(index.shape(), device);
  kernel::gather(x, d, index, out);
  Shape in_shape = x.shape();
  autograd::record(out, "GatherBackward", {x}, [in_shape, d, index](const Tensor<T>& g, const autograd::Node<T>&) {
    Tensor<T> gx = zeros<T>(in_shape, g.device());
    kernel::scatter_add(g, d, index, gx);
    return std::vector<Tensor<T>>{gx};
  });
  return out;
}

// out[..., i, ...] = x[..., i - steps, ...] along dim, zero where i - steps is outside [0, n):
// steps = 1 moves every frame one step later, steps = -1 one step earlier. Like torch.roll without
// the wrap-around. Its gradient is the opposite shift.
template <class T>
Tensor<T> shift(const Tensor<T>& x, int64_t dim, int64_t steps) {
  const int64_t d = wrap_dim(dim, x.dim(), "shift");
  const int64_t n = x.size(d), k = std::min<int64_t>(std::abs(steps), n);
  Tensor<T> out = zeros<T>(x.shape(), x.device());
  {
    NoGradGuard no_grad;
    Tensor<T> dst = out.narrow(d, steps > 0 ? k : 0, n - k);
    Tensor<T> src = x.narrow(d, steps > 0 ? 0 : k, n - k);
    kernel::copy(src, dst);
  }
  autograd::record(out, "ShiftBackward", {x}, [d, steps](const Tensor<T>& g, const autograd::Node<T>&) {
    return std::vector<Tensor<T>>{shift(g, d, -steps)};
  });
  return out;
}

namespace detail {
// out = x with channels [0, fold) moved `dir` frames (dir = -1: frame t receives t + 1) and channels
// [fold, 2 fold) moved -dir frames; zeros where a frame is vacated; x viewed as N x T x C x HW.
template <class T>
Tensor<T> temporal_shift_raw(const Tensor<T>& x, int64_t frames, int64_t fold, int64_t dir) {
  const Shape shape = x.shape();
  const int64_t N = shape[0] / frames, C = shape[1], T_ = frames;
  const Tensor<T> xv = x.contiguous().view({N, T_, C, x.numel() / std::max<int64_t>(shape[0] * C, 1)});
  Tensor<T> out = Tensor<T>::empty(xv.shape(), xv.device());
  // Channels [c0, c1) moved `steps` frames; only the vacated frames are zeroed (one write per element).
  auto copy_part = [&](int64_t c0, int64_t c1, int64_t steps) {
    if (c1 <= c0) return;
    const int64_t k = std::min<int64_t>(std::abs(steps), T_);
    Tensor<T> part = out.narrow(2, c0, c1 - c0);
    if (k < T_) {
      Tensor<T> dst = part.narrow(1, steps > 0 ? k : 0, T_ - k);
      Tensor<T> src = xv.narrow(2, c0, c1 - c0).narrow(1, steps > 0 ? 0 : k, T_ - k);
      kernel::copy(src, dst);
    }
    if (k > 0) {
      Tensor<T> vacated = part.narrow(1, steps > 0 ? 0 : T_ - k, k);
      kernel::fill(vacated, T(0));
    }
  };
  copy_part(0, fold, dir);
  copy_part(fold, 2 * fold, -dir);
  copy_part(2 * fold, C, 0);
  return out.view(shape);
}
}  // namespace detail

// TSM's temporal shift (MMAction2's TemporalShift, DNR's channel interlacing) on a clip batch
// x (N*T x C x ...; the T frames of a clip adjacent): of C / fold_div channels, the first group takes
// each frame's successor (frame t receives t + 1), the second its predecessor (t receives t - 1); the
// vacated frame is zero; the other channels are untouched. Its gradient is the opposite shift.
template <class T>
Tensor<T> temporal_shift(const Tensor<T>& x, int64_t frames, int64_t fold_div = 8) {
  TV_CHECK(x.dim() >= 2, "temporal_shift: expected an input of shape N*T x C x ..., got ", x.shape());
  TV_CHECK(frames >= 1 && x.size(0) % frames == 0, "temporal_shift: the batch dim ", x.size(0),
           " is not a multiple of the frames per clip, ", frames, " (input shape ", x.shape(), ")");
  TV_CHECK(fold_div >= 1, "temporal_shift: fold_div must be at least 1, got ", fold_div);
  const int64_t fold = x.size(1) / fold_div;
  Tensor<T> out = detail::temporal_shift_raw(x, frames, fold, -1);
  autograd::record(out, "TemporalShiftBackward", {x}, [frames, fold](const Tensor<T>& g, const autograd::Node<T>&) {
    return std::vector<Tensor<T>>{detail::temporal_shift_raw(g, frames, fold, +1)};
  });
  return out;
}

namespace detail {
// PyTorch's legacy 'nearest' source row of output row i (F.interpolate with a size): floor(i * (in / out)) in
// float, as PyTorch computes it, so that a size whose ratio float cannot hold picks the rows PyTorch picks.
inline std::vector<int64_t> nearest_sources(int64_t in, int64_t out) {
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  std::vector<int64_t> src(static_cast<size_t>(out));
  for (int64_t i = 0; i < out; ++i)
    src[static_cast<size_t>(i)] = std::min(static_cast<int64_t>(std::floor(static_cast<float>(i) * scale)), in - 1);
  return src;
}
}  // namespace detail

// x: N x C x H x W -> N x C x out_h x out_w, each output pixel a copy of its nearest source as
// F.interpolate(x, size=(out_h, out_w)) (mode 'nearest'). A whole-number enlargement is a broadcast (no index
// tensor); other sizes gather rows, then columns. The gradient sums the copies back onto their source.
template <class T>
Tensor<T> upsample_nearest(const Tensor<T>& x, int64_t out_h, int64_t out_w) {
  TV_CHECK(x.dim() == 4, "upsample_nearest: expected an input of shape N x C x H x W, got ", x.shape());
  TV_CHECK(out_h >= 1 && out_w >= 1 && x.size(2) >= 1 && x.size(3) >= 1, "upsample_nearest: sizes must be at least 1, got ",
           x.shape(), " to ", out_h, "x", out_w);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const std::vector<int64_t> rows = detail::nearest_sources(H, out_h), cols = detail::nearest_sources(W, out_w);
  auto repeats = [](const std::vector<int64_t>& src, int64_t in, int64_t out) -> int64_t {
    if (out % in != 0) return 0;
    for (size_t i = 0; i < src.size(); ++i)
      if (src[i] != static_cast<int64_t>(i) / (out / in)) return 0;
    return out / in;
  };
  const int64_t kh = repeats(rows, H, out_h), kw = repeats(cols, W, out_w);
  if (kh > 0 && kw > 0) {
    if (kh == 1 && kw == 1) return x;
    return x.view({N, C, H, 1, W, 1}).expand({N, C, H, kh, W, kw}).reshape({N, C, out_h, out_w});
  }
  auto index = [&](const std::vector<int64_t>& src, const Shape& shape, int64_t dim) {
    Tensor<int64_t> idx = Tensor<int64_t>::empty(shape);
    int64_t* p = idx.data();
    const int64_t inner = dim == 2 ? shape[3] : 1, along = shape[static_cast<size_t>(dim)];
    for (int64_t i = 0, n = idx.numel(); i < n; ++i) p[i] = src[static_cast<size_t>((i / inner) % along)];
    return idx.to(x.device());
  };
  const Tensor<T> taller = gather(x.contiguous(), 2, index(rows, {N, C, out_h, W}, 2));
  return gather(taller, 3, index(cols, {N, C, out_h, out_w}, 3));
}

}  // namespace tv
