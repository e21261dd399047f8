#pragma once
// DNR's kernels behind the device seam (backend/cpu/dnr.hpp on the CPU): the dynamic affine of
// dnr/norm.hpp on contiguous tensors, z: N x T x C x ..., scale and shift: N x G x C.
#include <algorithm>

#include "tinyvid/backend/cpu/dnr.hpp"
#include "tinyvid/backend/dispatch.hpp"

namespace tv::detail {
// Values per (clip, frame, channel) of z.
template <class T>
int64_t affine_inner(const Tensor<T>& z) {
  return z.numel() / std::max<int64_t>(z.size(0) * z.size(1) * z.size(2), 1);
}
}  // namespace tv::detail

namespace tv::kernel {

// out = z * scale[n, g, c] + shift[n, g, c].
template <class T>
void dynamic_affine_forward(const Tensor<T>& z, const Tensor<T>& scale, const Tensor<T>& shift, Tensor<T>& out) {
  TV_DISPATCH("dynamic_affine", device_of("dynamic_affine", z, scale, shift, out),
              dynamic_affine_forward<T>(z.data(), scale.data(), shift.data(), out.data(), z.size(0), z.size(1), z.size(2),
                                        scale.size(1), ::tv::detail::affine_inner(z)));
}

// gz = g * scale (gz may be undefined); gscale, gshift (N x G x C, overwritten; both undefined: not wanted) =
// the sums of g * z and of g.
template <class T>
void dynamic_affine_backward(const Tensor<T>& g, const Tensor<T>& z, const Tensor<T>& scale, Tensor<T>& gz,
                             Tensor<T>& gscale, Tensor<T>& gshift) {
  TV_DISPATCH("dynamic_affine backward", device_of("dynamic_affine backward", g, z, scale, gz, gscale, gshift),
              dynamic_affine_backward<T>(g.data(), z.data(), scale.data(), gz.defined() ? gz.data() : nullptr,
                                         gscale.defined() ? gscale.data() : nullptr,
                                         gshift.defined() ? gshift.data() : nullptr, z.size(0), z.size(1), z.size(2),
                                         scale.size(1), ::tv::detail::affine_inner(z)));
}

}  // namespace tv::kernel
