#pragma once
// The CUDA backend's LSTM gate math and DNR's dynamic affine (declared in backend/cuda.hpp), the same
// arithmetic as the CPU's (cpu/lstm.hpp, cpu/dnr.hpp). The gates and the affine are elementwise: one thread
// per unit or element. The affine's backward sums g z and g per clip, group and channel: each frame's
// sums in double (in pieces over a second launch when the frames are long, as in gpu/reduce.hpp), then the
// frames of a group added in T in frame order, as the CPU does.
#include <cmath>
#include <cstdint>

#include "tinyvid/backend/cuda.hpp"
#include "tinyvid/backend/gpu/launch.hpp"
#include "tinyvid/backend/gpu/reduce.hpp"
#include "tinyvid/core/storage.hpp"

namespace tv::cuda {

// The logistic function without overflow for large |v| (cpu::lstm_sigmoid).
template <class T>
TV_HOST_DEVICE T gate_sigmoid(T v) {
  return v >= T(0) ? T(1) / (T(1) + std::exp(-v)) : std::exp(v) / (T(1) + std::exp(v));
}

// One thread per (row, unit): gate order i, f, g, o; c' = f c + i g, h' = o act(c').
template <class T>
struct LstmGatesKernel {
  const T* z_all;
  const T* c_all;
  T* out;        // N x 2H: [h' | c']
  T* activated;  // N x 4H
  T* act_c;      // N x H
  int64_t N, H;
  bool sigmoid_cell;
  TV_HOST_DEVICE void operator()(Thread t) const {
    for (int64_t w = t.global(); w < N * H; w += t.stride()) {
      const int64_t n = w / H, j = w % H;
      const T* z = z_all + n * 4 * H;
      const T i = gate_sigmoid(z[j]), f = gate_sigmoid(z[H + j]), g = std::tanh(z[2 * H + j]),
              o = gate_sigmoid(z[3 * H + j]);
      const T c_new = f * c_all[w] + i * g;
      const T a_c = sigmoid_cell ? gate_sigmoid(c_new) : std::tanh(c_new);
      T* a = activated + n * 4 * H;
      a[j] = i;
      a[H + j] = f;
      a[2 * H + j] = g;
      a[3 * H + j] = o;
      act_c[w] = a_c;
      out[n * 2 * H + j] = o * a_c;
      out[n * 2 * H + H + j] = c_new;
    }
  }
};

template <class T>
void lstm_gates(const T* z_all, const T* c_all, T* out, T* activated, T* act_c, int64_t N, int64_t H, bool sigmoid_cell) {
  launch_n("lstm_gates", N * H, LstmGatesKernel<T>{z_all, c_all, out, activated, act_c, N, H, sigmoid_cell});
}

template <class T>
struct LstmGatesBackwardKernel {
  const T* grad;       // N x 2H: the gradient of [h' | c']
  const T* activated;  // N x 4H
  const T* act_c;      // N x H
  const T* c_in;       // N x H
  T* d_gates;          // N x 4H
  T* d_c;              // N x H
  int64_t N, H;
  bool sigmoid_cell;
  TV_HOST_DEVICE void operator()(Thread t) const {
    for (int64_t w = t.global(); w < N * H; w += t.stride()) {
      const int64_t n = w / H, j = w % H;
      const T* a = activated + n * 4 * H;
      const T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
      const T a_c = act_c[w];
      const T dh = grad[n * 2 * H + j], dc_out = grad[n * 2 * H + H + j];
      const T d_act = sigmoid_cell ? a_c * (T(1) - a_c) : T(1) - a_c * a_c;
      const T dc = dc_out + dh * o * d_act;  // everything that reaches c'
      T* dz = d_gates + n * 4 * H;
      dz[j] = dc * g * i * (T(1) - i);
      dz[H + j] = dc * c_in[w] * f * (T(1) - f);
      dz[2 * H + j] = dc * i * (T(1) - g * g);
      dz[3 * H + j] = dh * a_c * o * (T(1) - o);
      d_c[w] = dc * f;
    }
  }
};

template <class T>
void lstm_gates_backward(const T* grad, const T* activated, const T* act_c, const T* c_in, T* d_gates, T* d_c, int64_t N,
                         int64_t H, bool sigmoid_cell) {
  launch_n("lstm_gates_backward", N * H,
           LstmGatesBackwardKernel<T>{grad, activated, act_c, c_in, d_gates, d_c, N, H, sigmoid_cell});
}

// z, out: N x Tn x C x inner; scale, shift: N x G x C; frame t uses group t / per_group.
// out = z * scale + shift (Scale: gz = g * scale, no shift), one thread per element.
template <class T>
struct DynamicAffineKernel {
  const T* z;
  const T* scale;
  const T* shift;  // null: none
  T* out;
  int64_t Tn, C, G, inner, per_group, n;
  TV_HOST_DEVICE void operator()(Thread t) const {
    for (int64_t e = t.global(); e < n; e += t.stride()) {
      const int64_t r = e / inner, b = r / (Tn * C), f = (r / C) % Tn, k = r % C;
      const int64_t at = (b * G + f / per_group) * C + k;
      out[e] = shift ? z[e] * scale[at] + shift[at] : z[e] * scale[at];
    }
  }
};

template <class T>
void dynamic_affine_forward(const T* z, const T* scale, const T* shift, T* out, int64_t N, int64_t Tn, int64_t C,
                            int64_t G, int64_t inner) {
  const int64_t n = N * Tn * C * inner;
  if (n == 0) return;
  launch_n("dynamic_affine", n, DynamicAffineKernel<T>{z, scale, shift, out, Tn, C, G, inner, Tn / G, n});
}

// partial[p * rows + r], partial[(pieces + p) * rows + r] = the sums of g z and of g over piece p of row r
// (a frame's channel, inner values).
template <class T>
struct AffineRowSumsKernel {
  const T* g;
  const T* z;
  int64_t rows, inner, chunk, pieces;
  double* partial;
  TV_HOST_DEVICE void operator()(Thread t) const {
    for (int64_t w = t.global(); w < rows * pieces; w += t.stride()) {
      const int64_t r = w % rows, p = w / rows;
      const int64_t end = (p + 1) * chunk < inner ? (p + 1) * chunk : inner;
      const T* gr = g + r * inner;
      const T* zr = z + r * inner;
      double sa = 0, sb = 0;
      for (int64_t i = p * chunk; i < end; ++i) {
        sa += static_cast<double>(gr[i]) * zr[i];
        sb += gr[i];
      }
      partial[w] = sa;
      partial[pieces * rows + w] = sb;
    }
  }
};

// gscale, gshift (N x G x C) = over the frames of the group in order, each frame's double sums (from
// partial when given, else summed here) added in T.
template <class T>
struct AffineGroupSumsKernel {
  const T* g;
  const T* z;
  const double* partial;  // null: sum the frames here
  T* gscale;
  T* gshift;
  int64_t N, Tn, C, G, inner, per_group, pieces;
  TV_HOST_DEVICE void operator()(Thread t) const {
    const int64_t rows = N * Tn * C;
    for (int64_t o = t.global(); o < N * G * C; o += t.stride()) {
      const int64_t b = o / (G * C), j = (o / C) % G, k = o % C;
      T acc_a = T(0), acc_b = T(0);
      for (int64_t f = j * per_group; f < (j + 1) * per_group; ++f) {
        const int64_t r = (b * Tn + f) * C + k;
        double sa = 0, sb = 0;
        if (partial) {
          for (int64_t p = 0; p < pieces; ++p) {
            sa += partial[p * rows + r];
            sb += partial[(pieces + p) * rows + r];
          }
        } else {
          const T* gr = g + r * inner;
          const T* zr = z + r * inner;
          for (int64_t i = 0; i < inner; ++i) {
            sa += static_cast<double>(gr[i]) * zr[i];
            sb += gr[i];
          }
        }
        acc_a += static_cast<T>(sa);
        acc_b += static_cast<T>(sb);
      }
      gscale[o] = acc_a;
      gshift[o] = acc_b;
    }
  }
};

template <class T>
void dynamic_affine_backward(const T* g, const T* z, const T* scale, T* gz, T* gscale, T* gshift, int64_t N, int64_t Tn,
                             int64_t C, int64_t G, int64_t inner) {
  const int64_t per_group = G > 0 ? Tn / G : 0, n = N * Tn * C * inner;
  if (gz && n > 0)
    launch_n("dynamic_affine_backward", n,
             DynamicAffineKernel<T>{g, scale, nullptr, gz, Tn, C, G, inner, per_group, n});
  if (!gscale) return;
  const int64_t outputs = N * G * C, rows = N * Tn * C;
  if (outputs == 0) return;
  // One thread per output while that gives the GPU enough threads or the sums are short; else the frames
  // are cut into pieces summed by separate threads first.
  const int64_t pieces = sum_pieces(rows, inner);
  if (outputs >= (int64_t{1} << 16) || per_group * inner <= 4096) {
    launch_n("dynamic_affine_backward", outputs,
             AffineGroupSumsKernel<T>{g, z, nullptr, gscale, gshift, N, Tn, C, G, inner, per_group, 0});
    return;
  }
  const int64_t chunk = (inner + pieces - 1) / pieces;
  Storage<double> partial(2 * rows * pieces, Device::CUDA);
  launch_n("dynamic_affine_backward", rows * pieces,
           AffineRowSumsKernel<T>{g, z, rows, inner, chunk, pieces, partial.data()});
  launch_n("dynamic_affine_backward", outputs,
           AffineGroupSumsKernel<T>{g, z, partial.data(), gscale, gshift, N, Tn, C, G, inner, per_group, pieces});
}

}  // namespace tv::cuda
