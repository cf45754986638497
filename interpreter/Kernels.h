//===- Kernels.h - the reference semantics of every aim op ----------------===//
//
// Plain loops over row-major arrays, written to be checked by reading: each
// function is the formula in its op's ODS description, nothing more. T is
// double (the default, the oracle) or float. No MLIR here, so the kernels are
// unit-tested on their own (test/unit/InterpreterKernelsTest.cpp).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_INTERPRETER_KERNELS_H
#define AIMC_INTERPRETER_KERNELS_H

#include "common/Status.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace aim::interp {

template <typename T> struct Tensor {
  std::vector<int64_t> shape;
  std::vector<T> data;

  Tensor() = default;
  explicit Tensor(std::vector<int64_t> s) : shape(std::move(s)) {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    data.assign(n, T(0));
  }
  int64_t size() const { return static_cast<int64_t>(data.size()); }
};

enum class Mask { Bidirectional, Causal, PrefixCausal };

/// [B, C, H, W] -> [B, N, P]; channelLast picks (row, col, channel) order
/// within a patch, otherwise (channel, row, col).
template <typename T>
Tensor<T> patchify(const Tensor<T> &images, int64_t p, bool channelLast) {
  const int64_t b = images.shape[0], c = images.shape[1], h = images.shape[2],
                w = images.shape[3], gh = h / p, gw = w / p, pv = c * p * p;
  Tensor<T> out({b, gh * gw, pv});
  for (int64_t s = 0; s < b; ++s)
    for (int64_t i = 0; i < gh; ++i)
      for (int64_t j = 0; j < gw; ++j)
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t r = 0; r < p; ++r)
            for (int64_t col = 0; col < p; ++col) {
              int64_t k =
                  channelLast ? (r * p + col) * c + ch : (ch * p + r) * p + col;
              out.data[((s * gh * gw) + i * gw + j) * pv + k] =
                  images.data[((s * c + ch) * h + i * p + r) * w + j * p + col];
            }
  return out;
}

/// x [..., in] times weight [out, in] transposed, plus bias [out] if given.
template <typename T>
Tensor<T> linear(const Tensor<T> &x, const Tensor<T> &weight,
                 const Tensor<T> *bias) {
  const int64_t in = x.shape.back(), out = weight.shape[0];
  std::vector<int64_t> shape = x.shape;
  shape.back() = out;
  Tensor<T> y(shape);
  const int64_t rows = x.size() / in;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      T acc = bias ? bias->data[o] : T(0);
      const T *xr = &x.data[r * in], *wr = &weight.data[o * in];
      for (int64_t i = 0; i < in; ++i)
        acc += xr[i] * wr[i];
      y.data[r * out + o] = acc;
    }
  return y;
}

/// (x - mean) / sqrt(biased var + eps) * weight + bias over the last dim.
template <typename T>
Tensor<T> layerNorm(const Tensor<T> &x, const Tensor<T> &weight,
                    const Tensor<T> &bias, double eps) {
  const int64_t d = x.shape.back(), rows = x.size() / d;
  Tensor<T> y(x.shape);
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = &x.data[r * d];
    T mean = 0, var = 0;
    for (int64_t i = 0; i < d; ++i)
      mean += xr[i];
    mean /= T(d);
    for (int64_t i = 0; i < d; ++i)
      var += (xr[i] - mean) * (xr[i] - mean);
    var /= T(d);
    T inv = T(1) / std::sqrt(var + T(eps));
    for (int64_t i = 0; i < d; ++i)
      y.data[r * d + i] = (xr[i] - mean) * inv * weight.data[i] + bias.data[i];
  }
  return y;
}

/// lhs + rhs with rhs repeated over lhs's leading dimensions.
template <typename T>
Tensor<T> add(const Tensor<T> &lhs, const Tensor<T> &rhs) {
  Tensor<T> y(lhs.shape);
  const int64_t period = rhs.size();
  for (int64_t i = 0; i < lhs.size(); ++i)
    y.data[i] = lhs.data[i] + rhs.data[i % period];
  return y;
}

template <typename T> Tensor<T> gelu(const Tensor<T> &x, bool tanhForm) {
  Tensor<T> y(x.shape);
  const T kInvSqrt2 = T(0.70710678118654752440);
  const T kSqrt2OverPi = T(0.79788456080286535588);
  for (int64_t i = 0; i < x.size(); ++i) {
    T v = x.data[i];
    y.data[i] = tanhForm ? T(0.5) * v *
                               (T(1) + std::tanh(kSqrt2OverPi *
                                                 (v + T(0.044715) * v * v * v)))
                         : T(0.5) * v * (T(1) + std::erf(v * kInvSqrt2));
  }
  return y;
}

/// [gh * gw, E]: channels [0, E/2) encode the column, [E/2, E) the row, each
/// as [sin(t w_k)..., cos(t w_k)...] with w_k = 10000^(-k / (E/4)).
template <typename T>
Tensor<T> posEmbed2d(int64_t gridHeight, int64_t gridWidth, int64_t width) {
  Tensor<T> y({gridHeight * gridWidth, width});
  const int64_t half = width / 2, quarter = width / 4;
  for (int64_t i = 0; i < gridHeight; ++i)
    for (int64_t j = 0; j < gridWidth; ++j) {
      T *row = &y.data[(i * gridWidth + j) * width];
      for (int64_t k = 0; k < quarter; ++k) {
        double omega = std::pow(10000.0, -static_cast<double>(k) / quarter);
        row[k] = T(std::sin(j * omega));
        row[quarter + k] = T(std::cos(j * omega));
        row[half + k] = T(std::sin(i * omega));
        row[half + quarter + k] = T(std::cos(i * omega));
      }
    }
  return y;
}

/// x[..., offset : offset + size, ...] along `dim`.
template <typename T>
Tensor<T> slice(const Tensor<T> &x, int64_t dim, int64_t offset, int64_t size) {
  std::vector<int64_t> shape = x.shape;
  shape[dim] = size;
  Tensor<T> y(shape);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d)
    outer *= x.shape[d];
  for (size_t d = dim + 1; d < x.shape.size(); ++d)
    inner *= x.shape[d];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t s = 0; s < size; ++s)
      std::memcpy(&y.data[(o * size + s) * inner],
                  &x.data[(o * x.shape[dim] + offset + s) * inner],
                  inner * sizeof(T));
  return y;
}

/// Whether query q may attend key k.
inline bool maskAllows(Mask mask, int64_t prefix, int64_t q, int64_t k) {
  switch (mask) {
  case Mask::Bidirectional:
    return true;
  case Mask::Causal:
    return k <= q;
  case Mask::PrefixCausal:
    return k < prefix || k <= q;
  }
  return false;
}

/// Multi-head attention on [B, N, heads * dh]; `prefix` has B entries for
/// Mask::PrefixCausal and is ignored otherwise. Every query sees at least
/// itself under every mask kind, so no softmax row is empty.
template <typename T>
Tensor<T> attention(const Tensor<T> &query, const Tensor<T> &key,
                    const Tensor<T> &value, int64_t heads, Mask mask,
                    const std::vector<int64_t> &prefix, double scale) {
  const int64_t b = query.shape[0], n = query.shape[1], width = query.shape[2],
                dh = width / heads;
  Tensor<T> out(query.shape);
  std::vector<T> scores(n);
  for (int64_t s = 0; s < b; ++s)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t q = 0; q < n; ++q) {
        const T *qv = &query.data[(s * n + q) * width + h * dh];
        int64_t k_prefix = mask == Mask::PrefixCausal ? prefix[s] : 0;
        T maxScore = -INFINITY;
        for (int64_t k = 0; k < n; ++k) {
          if (!maskAllows(mask, k_prefix, q, k))
            continue;
          const T *kv = &key.data[(s * n + k) * width + h * dh];
          T dot = 0;
          for (int64_t i = 0; i < dh; ++i)
            dot += qv[i] * kv[i];
          scores[k] = dot * T(scale);
          maxScore = std::max(maxScore, scores[k]);
        }
        T denominator = 0;
        for (int64_t k = 0; k < n; ++k)
          if (maskAllows(mask, k_prefix, q, k)) {
            scores[k] = std::exp(scores[k] - maxScore);
            denominator += scores[k];
          }
        T *ov = &out.data[(s * n + q) * width + h * dh];
        for (int64_t k = 0; k < n; ++k) {
          if (!maskAllows(mask, k_prefix, q, k))
            continue;
          const T *vv = &value.data[(s * n + k) * width + h * dh];
          T weight = scores[k] / denominator;
          for (int64_t i = 0; i < dh; ++i)
            ov[i] += weight * vv[i];
        }
      }
  return out;
}

/// Checks 1 <= prefix[b] <= n for every sample.
inline Status checkPrefixLengths(const std::vector<int64_t> &prefix,
                                 int64_t n) {
  for (size_t s = 0; s < prefix.size(); ++s)
    if (prefix[s] < 1 || prefix[s] > n)
      return Status::error("prefix length of sample " + std::to_string(s) +
                           " is " + std::to_string(prefix[s]) +
                           "; every K_b must be in [1, N] = [1, " +
                           std::to_string(n) + "]");
  return Status::ok();
}

/// AIM's loss (see the aim.normalized_pixel_loss description). An error when
/// no (b, n) pair is a target, or a prefix length is out of range.
template <typename T>
StatusOr<T>
normalizedPixelLoss(const Tensor<T> &prediction, const Tensor<T> &target,
                    const std::vector<int64_t> &prefix, double eps) {
  const int64_t b = prediction.shape[0], n = prediction.shape[1],
                p = prediction.shape[2];
  if (Status s = checkPrefixLengths(prefix, n); !s)
    return s;
  T total = 0;
  int64_t pairs = 0;
  for (int64_t s = 0; s < b; ++s)
    for (int64_t t = std::max<int64_t>(1, prefix[s]); t < n; ++t) {
      const T *tv = &target.data[(s * n + t) * p];
      const T *pv = &prediction.data[(s * n + t - 1) * p];
      T mean = 0, var = 0;
      for (int64_t j = 0; j < p; ++j)
        mean += tv[j];
      mean /= T(p);
      for (int64_t j = 0; j < p; ++j)
        var += (tv[j] - mean) * (tv[j] - mean);
      var /= T(p - 1);
      T inv = T(1) / std::sqrt(var + T(eps));
      T squared = 0;
      for (int64_t j = 0; j < p; ++j) {
        T diff = pv[j] - (tv[j] - mean) * inv;
        squared += diff * diff;
      }
      total += squared / T(p);
      ++pairs;
    }
  if (pairs == 0)
    return Status::error(
        "the batch has no loss target: every prefix length equals N = " +
        std::to_string(n) +
        ", so no patch is predicted; use K_b < N for at least one sample");
  return total / T(pairs);
}

/// Rounds to bfloat16 (round to nearest, ties to even), kept in T.
inline float roundToBF16(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  if ((bits & 0x7F800000u) == 0x7F800000u) { // inf or nan: truncate
    bits &= 0xFFFF0000u;
  } else {
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    bits &= 0xFFFF0000u;
  }
  std::memcpy(&v, &bits, 4);
  return v;
}

enum class RoundTo { F16, BF16, F32, F64 };

template <typename T> Tensor<T> cast(const Tensor<T> &x, RoundTo to) {
  Tensor<T> y = x;
  for (T &v : y.data) {
    switch (to) {
    case RoundTo::F16:
      v = T(static_cast<float>(static_cast<_Float16>(static_cast<float>(v))));
      break;
    case RoundTo::BF16:
      v = T(roundToBF16(static_cast<float>(v)));
      break;
    case RoundTo::F32:
      v = T(static_cast<float>(v));
      break;
    case RoundTo::F64:
      break;
    }
  }
  return y;
}

} // namespace aim::interp

#endif // AIMC_INTERPRETER_KERNELS_H
