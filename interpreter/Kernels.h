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

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
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
/// Each output is bias + sum_i x_i w_oi accumulated in order of i; the loop
/// runs over o innermost (on a transposed copy of the weight) so that it
/// vectorises without reordering any sum.
template <typename T>
Tensor<T> linear(const Tensor<T> &x, const Tensor<T> &weight,
                 const Tensor<T> *bias) {
  const int64_t in = x.shape.back(), out = weight.shape[0];
  std::vector<int64_t> shape = x.shape;
  shape.back() = out;
  Tensor<T> y(shape);
  std::vector<T> weightT(in * out);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i)
      weightT[i * out + o] = weight.data[o * in + i];
  const int64_t rows = x.size() / in;
  for (int64_t r = 0; r < rows; ++r) {
    T *yr = &y.data[r * out];
    if (bias)
      std::copy(bias->data.begin(), bias->data.end(), yr);
    for (int64_t i = 0; i < in; ++i) {
      const T xi = x.data[r * in + i];
      const T *wi = &weightT[i * out];
      for (int64_t o = 0; o < out; ++o)
        yr[o] += xi * wi[o];
    }
  }
  return y;
}

/// op(a) @ op(b) for matrices, op transposing when asked; each output sums
/// over the contracted index in order.
template <typename T>
Tensor<T> matmul(const Tensor<T> &a, const Tensor<T> &b, bool transposeA,
                 bool transposeB) {
  const int64_t m = transposeA ? a.shape[1] : a.shape[0];
  const int64_t k = transposeA ? a.shape[0] : a.shape[1];
  const int64_t n = transposeB ? b.shape[0] : b.shape[1];
  // Row-major copies of op(a) [m, k] and op(b) [k, n], then i-k-j loops.
  std::vector<T> lhs(m * k), rhs(k * n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j)
      lhs[i * k + j] = transposeA ? a.data[j * m + i] : a.data[i * k + j];
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < n; ++j)
      rhs[i * n + j] = transposeB ? b.data[j * k + i] : b.data[i * n + j];
  Tensor<T> c({m, n});
  for (int64_t i = 0; i < m; ++i) {
    T *ci = &c.data[i * n];
    for (int64_t j = 0; j < k; ++j) {
      const T aij = lhs[i * k + j];
      const T *bj = &rhs[j * n];
      for (int64_t l = 0; l < n; ++l)
        ci[l] += aij * bj[l];
    }
  }
  return c;
}

/// Sums x over its leading dimensions down to the trailing shape `outShape`.
template <typename T>
Tensor<T> sumLeading(const Tensor<T> &x, std::vector<int64_t> outShape) {
  Tensor<T> y(std::move(outShape));
  const int64_t period = y.size();
  for (int64_t i = 0; i < x.size(); ++i)
    y.data[i % period] += x.data[i];
  return y;
}

/// Zeros, x, zeros along `dim`.
template <typename T>
Tensor<T> pad(const Tensor<T> &x, int64_t dim, int64_t before, int64_t after) {
  std::vector<int64_t> shape = x.shape;
  shape[dim] += before + after;
  Tensor<T> y(shape);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d)
    outer *= x.shape[d];
  for (size_t d = dim + 1; d < x.shape.size(); ++d)
    inner *= x.shape[d];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t s = 0; s < x.shape[dim]; ++s)
      std::memcpy(&y.data[(o * shape[dim] + before + s) * inner],
                  &x.data[(o * x.shape[dim] + s) * inner], inner * sizeof(T));
  return y;
}

/// Mean and variance of n values, the variance divided by n - correction
/// (0: biased, as LayerNorm; 1: Bessel's, as the loss targets).
template <typename T>
std::pair<T, T> meanAndVariance(const T *x, int64_t n, int64_t correction) {
  T mean = 0, var = 0;
  for (int64_t i = 0; i < n; ++i)
    mean += x[i];
  mean /= T(n);
  for (int64_t i = 0; i < n; ++i)
    var += (x[i] - mean) * (x[i] - mean);
  return {mean, var / T(n - correction)};
}

/// (x - mean) / sqrt(biased var + eps) * weight + bias over the last dim.
template <typename T>
Tensor<T> layerNorm(const Tensor<T> &x, const Tensor<T> &weight,
                    const Tensor<T> &bias, double eps) {
  const int64_t d = x.shape.back(), rows = x.size() / d;
  Tensor<T> y(x.shape);
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = &x.data[r * d];
    auto [mean, var] = meanAndVariance(xr, d, 0);
    T inv = T(1) / std::sqrt(var + T(eps));
    for (int64_t i = 0; i < d; ++i)
      y.data[r * d + i] = (xr[i] - mean) * inv * weight.data[i] + bias.data[i];
  }
  return y;
}

template <typename T> struct LayerNormGrads { Tensor<T> input, weight, bias; };

/// Gradients of layerNorm (see aim.layer_norm_grad), statistics recomputed.
template <typename T>
LayerNormGrads<T> layerNormGrad(const Tensor<T> &dy, const Tensor<T> &x,
                                const Tensor<T> &weight, double eps) {
  const int64_t d = x.shape.back(), rows = x.size() / d;
  LayerNormGrads<T> g{Tensor<T>(x.shape), Tensor<T>({d}), Tensor<T>({d})};
  std::vector<T> xhat(d), gw(d);
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = &x.data[r * d], *dyr = &dy.data[r * d];
    auto [mean, var] = meanAndVariance(xr, d, 0);
    T rstd = T(1) / std::sqrt(var + T(eps));
    T meanG = 0, meanGX = 0;
    for (int64_t i = 0; i < d; ++i) {
      xhat[i] = (xr[i] - mean) * rstd;
      gw[i] = dyr[i] * weight.data[i];
      meanG += gw[i];
      meanGX += gw[i] * xhat[i];
      g.weight.data[i] += dyr[i] * xhat[i];
      g.bias.data[i] += dyr[i];
    }
    meanG /= T(d);
    meanGX /= T(d);
    for (int64_t i = 0; i < d; ++i)
      g.input.data[r * d + i] = rstd * (gw[i] - meanG - xhat[i] * meanGX);
  }
  return g;
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

/// grad * gelu'(x).
template <typename T>
Tensor<T> geluGrad(const Tensor<T> &dy, const Tensor<T> &x, bool tanhForm) {
  Tensor<T> y(x.shape);
  const T kInvSqrt2 = T(0.70710678118654752440);
  const T kInvSqrt2Pi = T(0.39894228040143267794);
  const T kSqrt2OverPi = T(0.79788456080286535588);
  for (int64_t i = 0; i < x.size(); ++i) {
    T v = x.data[i], derivative;
    if (tanhForm) {
      T t = std::tanh(kSqrt2OverPi * (v + T(0.044715) * v * v * v));
      derivative = T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) *
                                             kSqrt2OverPi *
                                             (T(1) + T(3 * 0.044715) * v * v);
    } else {
      derivative = T(0.5) * (T(1) + std::erf(v * kInvSqrt2)) +
                   v * kInvSqrt2Pi * std::exp(T(-0.5) * v * v);
    }
    y.data[i] = dy.data[i] * derivative;
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

template <typename T> struct AttentionResult {
  Tensor<T> output;
  Tensor<T> rowLogSumExp; // [B, heads, N], or [R, heads] for live queries
};

/// One query row of one head: writes softmax(scale q.K) V over the visible
/// keys of sample s to `out` and returns the row's log-sum-exp.
template <typename T>
T attendRow(const T *qv, const Tensor<T> &key, const Tensor<T> &value,
            int64_t s, int64_t q, int64_t h, int64_t heads, Mask mask,
            int64_t kPrefix, double scale, std::vector<T> &scores, T *out) {
  const int64_t n = key.shape[1], width = key.shape[2], dh = width / heads;
  T maxScore = -INFINITY;
  for (int64_t k = 0; k < n; ++k) {
    if (!maskAllows(mask, kPrefix, q, k))
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
    if (maskAllows(mask, kPrefix, q, k)) {
      scores[k] = std::exp(scores[k] - maxScore);
      denominator += scores[k];
    }
  for (int64_t k = 0; k < n; ++k) {
    if (!maskAllows(mask, kPrefix, q, k))
      continue;
    const T *vv = &value.data[(s * n + k) * width + h * dh];
    T weight = scores[k] / denominator;
    for (int64_t i = 0; i < dh; ++i)
      out[i] += weight * vv[i];
  }
  return maxScore + std::log(denominator);
}

/// Multi-head attention on [B, N, heads * dh]; `prefix` has B entries for
/// Mask::PrefixCausal and is ignored otherwise. Every query sees at least
/// itself under every mask kind, so no softmax row is empty.
template <typename T>
AttentionResult<T> attention(const Tensor<T> &query, const Tensor<T> &key,
                             const Tensor<T> &value, int64_t heads, Mask mask,
                             const std::vector<int64_t> &prefix, double scale) {
  const int64_t b = query.shape[0], n = query.shape[1], width = query.shape[2],
                dh = width / heads;
  AttentionResult<T> r{Tensor<T>(query.shape), Tensor<T>({b, heads, n})};
  std::vector<T> scores(n);
  for (int64_t s = 0; s < b; ++s)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t q = 0; q < n; ++q) {
        const int64_t offset = (s * n + q) * width + h * dh;
        r.rowLogSumExp.data[(s * heads + h) * n + q] =
            attendRow(&query.data[offset], key, value, s, q, h, heads, mask,
                      mask == Mask::PrefixCausal ? prefix[s] : 0, scale, scores,
                      &r.output.data[offset]);
      }
  return r;
}

/// How a tiled attention kernel walks (query tile, key tile) pairs. The rule
/// functions are the tile rule recorded on the op (see aim.attention): a tile
/// is empty when k_begin >= emptyFrom(q_begin, q_end, K), full when
/// k_end <= fullUntil(q_begin, q_end, K), partial otherwise. Without a rule
/// every tile is partial (every pair tests the mask).
struct TilePlan {
  int64_t queryTile = 0, keyTile = 0; // 0: one tile covering everything
  std::function<int64_t(int64_t, int64_t, int64_t)> emptyFrom, fullUntil;
};

/// How many tiles of each class a kernel visited (empty ones are skipped).
struct TileCounts {
  int64_t empty = 0, full = 0, partial = 0;
};

enum class TileClass { Empty, Full, Partial };

/// Classifies one tile and, when `counts` is given, counts it.
inline TileClass classifyTile(const TilePlan &plan, int64_t qBegin,
                              int64_t qEnd, int64_t kBegin, int64_t kEnd,
                              int64_t prefix, TileCounts *counts) {
  TileClass cls = TileClass::Partial;
  if (plan.emptyFrom && kBegin >= plan.emptyFrom(qBegin, qEnd, prefix))
    cls = TileClass::Empty;
  else if (plan.fullUntil && kEnd <= plan.fullUntil(qBegin, qEnd, prefix))
    cls = TileClass::Full;
  if (counts)
    ++(cls == TileClass::Empty  ? counts->empty
       : cls == TileClass::Full ? counts->full
                                : counts->partial);
  return cls;
}

/// Attention computed tile by tile with an online softmax (flash-attention's
/// forward): empty tiles are skipped, full tiles test no mask. Equal to
/// attention() up to rounding when the tile rule is right.
template <typename T>
AttentionResult<T> attentionTiled(const Tensor<T> &query, const Tensor<T> &key,
                                  const Tensor<T> &value, int64_t heads,
                                  Mask mask, const std::vector<int64_t> &prefix,
                                  double scale, const TilePlan &plan,
                                  TileCounts *counts = nullptr) {
  const int64_t b = query.shape[0], n = query.shape[1], width = query.shape[2],
                dh = width / heads;
  const int64_t tq = plan.queryTile > 0 ? plan.queryTile : n;
  const int64_t tk = plan.keyTile > 0 ? plan.keyTile : n;
  AttentionResult<T> r{Tensor<T>(query.shape), Tensor<T>({b, heads, n})};
  std::vector<T> rowMax(tq), rowSum(tq), acc(tq * dh);
  for (int64_t s = 0; s < b; ++s)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t q0 = 0; q0 < n; q0 += tq) {
        const int64_t q1 = std::min(n, q0 + tq);
        const int64_t kPrefix = mask == Mask::PrefixCausal ? prefix[s] : 0;
        std::fill(rowMax.begin(), rowMax.end(), T(-INFINITY));
        std::fill(rowSum.begin(), rowSum.end(), T(0));
        std::fill(acc.begin(), acc.end(), T(0));
        for (int64_t k0 = 0; k0 < n; k0 += tk) {
          const int64_t k1 = std::min(n, k0 + tk);
          TileClass cls = classifyTile(plan, q0, q1, k0, k1, kPrefix, counts);
          if (cls == TileClass::Empty)
            continue;
          for (int64_t q = q0; q < q1; ++q) {
            const T *qv = &query.data[(s * n + q) * width + h * dh];
            T *a = &acc[(q - q0) * dh];
            for (int64_t k = k0; k < k1; ++k) {
              if (cls == TileClass::Partial && !maskAllows(mask, kPrefix, q, k))
                continue;
              const T *kv = &key.data[(s * n + k) * width + h * dh];
              const T *vv = &value.data[(s * n + k) * width + h * dh];
              T dot = 0;
              for (int64_t i = 0; i < dh; ++i)
                dot += qv[i] * kv[i];
              T score = dot * T(scale);
              T &m = rowMax[q - q0], &l = rowSum[q - q0];
              if (score > m) { // rescale what was accumulated so far
                T factor = std::exp(m - score);
                l *= factor;
                for (int64_t i = 0; i < dh; ++i)
                  a[i] *= factor;
                m = score;
              }
              T p = std::exp(score - m);
              l += p;
              for (int64_t i = 0; i < dh; ++i)
                a[i] += p * vv[i];
            }
          }
        }
        for (int64_t q = q0; q < q1; ++q) {
          T *o = &r.output.data[(s * n + q) * width + h * dh];
          for (int64_t i = 0; i < dh; ++i)
            o[i] = acc[(q - q0) * dh + i] / rowSum[q - q0];
          r.rowLogSumExp.data[(s * heads + h) * n + q] =
              rowMax[q - q0] + std::log(rowSum[q - q0]);
        }
      }
  return r;
}

/// The backward of one visible (query, key) pair of one head: recomputes
/// p = exp(scale q.k - lse) and adds its share to dq, dk and dv (FA2's
/// backward, with delta = <dout, out> of the query row).
template <typename T>
void accumulatePairGrad(const T *qv, const T *dov, T lse, T delta, const T *kv,
                        const T *vv, int64_t dh, double scale, T *dq, T *dk,
                        T *dv) {
  T dot = 0, dp = 0;
  for (int64_t i = 0; i < dh; ++i) {
    dot += qv[i] * kv[i];
    dp += dov[i] * vv[i];
  }
  T p = std::exp(dot * T(scale) - lse);
  T ds = p * (dp - delta) * T(scale);
  for (int64_t i = 0; i < dh; ++i) {
    dv[i] += p * dov[i];
    dq[i] += ds * kv[i];
    dk[i] += ds * qv[i];
  }
}

template <typename T> struct AttentionGrads { Tensor<T> query, key, value; };

/// Gradients of attention (see aim.attention_grad): the probabilities are
/// recomputed from the row statistics, one (query, key) pair at a time, tile
/// by tile as `plan` says (by default one partial tile: every pair tested).
template <typename T>
AttentionGrads<T> attentionGrad(const Tensor<T> &dOut, const Tensor<T> &query,
                                const Tensor<T> &key, const Tensor<T> &value,
                                const Tensor<T> &output,
                                const Tensor<T> &rowLogSumExp, int64_t heads,
                                Mask mask, const std::vector<int64_t> &prefix,
                                double scale, const TilePlan &plan = {},
                                TileCounts *counts = nullptr) {
  const int64_t b = query.shape[0], n = query.shape[1], width = query.shape[2],
                dh = width / heads;
  const int64_t tq = plan.queryTile > 0 ? plan.queryTile : n;
  const int64_t tk = plan.keyTile > 0 ? plan.keyTile : n;
  AttentionGrads<T> g{Tensor<T>(query.shape), Tensor<T>(query.shape),
                      Tensor<T>(query.shape)};
  std::vector<T> delta(n);
  for (int64_t s = 0; s < b; ++s)
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t kPrefix = mask == Mask::PrefixCausal ? prefix[s] : 0;
      for (int64_t q = 0; q < n; ++q) {
        const int64_t qOffset = (s * n + q) * width + h * dh;
        T sum = 0;
        for (int64_t i = 0; i < dh; ++i)
          sum += dOut.data[qOffset + i] * output.data[qOffset + i];
        delta[q] = sum;
      }
      for (int64_t q0 = 0; q0 < n; q0 += tq)
        for (int64_t k0 = 0; k0 < n; k0 += tk) {
          const int64_t q1 = std::min(n, q0 + tq), k1 = std::min(n, k0 + tk);
          TileClass cls = classifyTile(plan, q0, q1, k0, k1, kPrefix, counts);
          if (cls == TileClass::Empty)
            continue;
          for (int64_t q = q0; q < q1; ++q) {
            const int64_t qOffset = (s * n + q) * width + h * dh;
            const T *qv = &query.data[qOffset], *dov = &dOut.data[qOffset];
            const T lse = rowLogSumExp.data[(s * heads + h) * n + q];
            for (int64_t k = k0; k < k1; ++k) {
              if (cls == TileClass::Partial && !maskAllows(mask, kPrefix, q, k))
                continue;
              const int64_t kOffset = (s * n + k) * width + h * dh;
              accumulatePairGrad(qv, dov, lse, delta[q], &key.data[kOffset],
                                 &value.data[kOffset], dh, scale,
                                 &g.query.data[qOffset], &g.key.data[kOffset],
                                 &g.value.data[kOffset]);
            }
          }
        }
    }
  return g;
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
      auto [mean, var] = meanAndVariance(tv, p, 1);
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

/// The live rows (b, m) of a batch in order: max(K_b, 1) - 1 <= m <= N - 2
/// (the output at m predicts patch m + 1, a loss target iff m + 1 >= K_b).
inline std::vector<std::pair<int64_t, int64_t>>
liveRows(const std::vector<int64_t> &prefix, int64_t n) {
  std::vector<std::pair<int64_t, int64_t>> rows;
  for (size_t b = 0; b < prefix.size(); ++b)
    for (int64_t m = std::max<int64_t>(prefix[b], 1) - 1; m <= n - 2; ++m)
      rows.emplace_back(static_cast<int64_t>(b), m);
  return rows;
}

/// Live rows of x ([B, N, D], or [N, D] shared by all samples) into
/// [capacity, D], zero-padded.
template <typename T>
StatusOr<Tensor<T>> gatherLiveRows(const Tensor<T> &x,
                                   const std::vector<int64_t> &prefix,
                                   int64_t capacity) {
  const bool shared = x.shape.size() == 2;
  const int64_t n = shared ? x.shape[0] : x.shape[1], d = x.shape.back();
  if (Status s = checkPrefixLengths(prefix, n); !s)
    return s;
  auto rows = liveRows(prefix, n);
  if (static_cast<int64_t>(rows.size()) > capacity)
    return Status::error(
        "these prefix lengths leave " + std::to_string(rows.size()) +
        " live rows but the program was compiled for at most " +
        std::to_string(capacity) +
        " (antithetic pairs K, N - K give exactly B*N/2; compile with "
        "--prefix-mode=iid for independent lengths)");
  Tensor<T> y({capacity, d});
  for (size_t r = 0; r < rows.size(); ++r) {
    auto [b, m] = rows[r];
    const T *src = &x.data[((shared ? 0 : b * n) + m) * d];
    std::copy(src, src + d, &y.data[r * d]);
  }
  return y;
}

/// Compacted rows [capacity, D] back into [B, N, D], zeros at dead rows.
template <typename T>
StatusOr<Tensor<T>> scatterLiveRows(const Tensor<T> &y,
                                    const std::vector<int64_t> &prefix,
                                    int64_t n) {
  const int64_t d = y.shape[1], capacity = y.shape[0];
  if (Status s = checkPrefixLengths(prefix, n); !s)
    return s;
  auto rows = liveRows(prefix, n);
  if (static_cast<int64_t>(rows.size()) > capacity)
    return Status::error("these prefix lengths leave " +
                         std::to_string(rows.size()) + " live rows but only " +
                         std::to_string(capacity) + " were computed");
  Tensor<T> x({static_cast<int64_t>(prefix.size()), n, d});
  for (size_t r = 0; r < rows.size(); ++r) {
    auto [b, m] = rows[r];
    std::copy(&y.data[r * d], &y.data[(r + 1) * d], &x.data[(b * n + m) * d]);
  }
  return x;
}

/// Prefix-causal attention for the live query rows only (aim.attention with
/// live_queries): query [R, W] holds the rows of liveRows(prefix) in order,
/// then padding rows, whose output and statistics stay zero.
template <typename T>
AttentionResult<T>
attentionLiveQueries(const Tensor<T> &query, const Tensor<T> &key,
                     const Tensor<T> &value, int64_t heads,
                     const std::vector<int64_t> &prefix, double scale) {
  const int64_t n = key.shape[1], width = key.shape[2], dh = width / heads;
  AttentionResult<T> r{Tensor<T>(query.shape),
                       Tensor<T>({query.shape[0], heads})};
  std::vector<T> scores(n);
  auto rows = liveRows(prefix, n);
  for (size_t row = 0; row < rows.size(); ++row) {
    auto [s, q] = rows[row];
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t offset = row * width + h * dh;
      r.rowLogSumExp.data[row * heads + h] = attendRow(
          &query.data[offset], key, value, s, q, h, heads, Mask::PrefixCausal,
          prefix[s], scale, scores, &r.output.data[offset]);
    }
  }
  return r;
}

/// Gradients of attentionLiveQueries: query_grad is [R, W] like the queries,
/// key_grad and value_grad [B, N, W].
template <typename T>
AttentionGrads<T>
attentionGradLiveQueries(const Tensor<T> &dOut, const Tensor<T> &query,
                         const Tensor<T> &key, const Tensor<T> &value,
                         const Tensor<T> &output, const Tensor<T> &rowLogSumExp,
                         int64_t heads, const std::vector<int64_t> &prefix,
                         double scale) {
  const int64_t n = key.shape[1], width = key.shape[2], dh = width / heads;
  AttentionGrads<T> g{Tensor<T>(query.shape), Tensor<T>(key.shape),
                      Tensor<T>(key.shape)};
  auto rows = liveRows(prefix, n);
  for (size_t row = 0; row < rows.size(); ++row) {
    auto [s, q] = rows[row];
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t qOffset = row * width + h * dh;
      const T *qv = &query.data[qOffset], *dov = &dOut.data[qOffset],
              *ov = &output.data[qOffset];
      const T lse = rowLogSumExp.data[row * heads + h];
      T delta = 0;
      for (int64_t i = 0; i < dh; ++i)
        delta += dov[i] * ov[i];
      for (int64_t k = 0; k < n; ++k) {
        if (!maskAllows(Mask::PrefixCausal, prefix[s], q, k))
          continue;
        const int64_t kOffset = (s * n + k) * width + h * dh;
        accumulatePairGrad(qv, dov, lse, delta, &key.data[kOffset],
                           &value.data[kOffset], dh, scale,
                           &g.query.data[qOffset], &g.key.data[kOffset],
                           &g.value.data[kOffset]);
      }
    }
  }
  return g;
}

/// d loss / d prediction times `grad` (see aim.normalized_pixel_loss_grad).
template <typename T>
StatusOr<Tensor<T>> normalizedPixelLossGrad(T grad, const Tensor<T> &prediction,
                                            const Tensor<T> &target,
                                            const std::vector<int64_t> &prefix,
                                            double eps) {
  const int64_t b = prediction.shape[0], n = prediction.shape[1],
                p = prediction.shape[2];
  if (Status s = checkPrefixLengths(prefix, n); !s)
    return s;
  int64_t pairs = 0;
  for (int64_t s = 0; s < b; ++s)
    pairs += n - std::max<int64_t>(1, prefix[s]);
  if (pairs == 0)
    return Status::error("the batch has no loss target: every prefix length "
                         "equals N = " +
                         std::to_string(n));
  Tensor<T> d(prediction.shape);
  const T factor = grad * T(2) / T(p * pairs);
  for (int64_t s = 0; s < b; ++s)
    for (int64_t t = std::max<int64_t>(1, prefix[s]); t < n; ++t) {
      const T *tv = &target.data[(s * n + t) * p];
      const T *pv = &prediction.data[(s * n + t - 1) * p];
      T *dv = &d.data[(s * n + t - 1) * p];
      auto [mean, var] = meanAndVariance(tv, p, 1);
      T inv = T(1) / std::sqrt(var + T(eps));
      for (int64_t j = 0; j < p; ++j)
        dv[j] = factor * (pv[j] - (tv[j] - mean) * inv);
    }
  return d;
}

/// The sum of squares of every element of every tensor.
template <typename T> T sumSquares(const std::vector<const Tensor<T> *> &xs) {
  T sum = 0;
  for (const Tensor<T> *x : xs)
    for (T v : x->data)
      sum += v * v;
  return sum;
}

/// sqrt of the sum of squares of every element of every tensor.
template <typename T> T globalNorm(const std::vector<const Tensor<T> *> &xs) {
  return std::sqrt(sumSquares(xs));
}

struct AdamWHyper {
  double beta1, beta2, epsilon, weightDecay;
};

template <typename T> struct AdamWState { Tensor<T> param, expAvg, expAvgSq; };

/// One AdamW update (see aim.adamw), `step` 0-based.
template <typename T>
AdamWState<T> adamw(const Tensor<T> &param, const Tensor<T> &grad,
                    const Tensor<T> &expAvg, const Tensor<T> &expAvgSq, T lr,
                    int64_t step, T clipCoefficient, const AdamWHyper &h) {
  AdamWState<T> out{param, expAvg, expAvgSq};
  const T b1 = T(h.beta1), b2 = T(h.beta2);
  const double t = static_cast<double>(step + 1);
  const T correction1 = T(1 - std::pow(h.beta1, t));
  const T correction2 = T(1 - std::pow(h.beta2, t));
  for (int64_t i = 0; i < param.size(); ++i) {
    T g = grad.data[i] * clipCoefficient;
    T &p = out.param.data[i], &m = out.expAvg.data[i],
      &v = out.expAvgSq.data[i];
    p -= lr * T(h.weightDecay) * p;
    m = b1 * m + (T(1) - b1) * g;
    v = b2 * v + (T(1) - b2) * g * g;
    p -= lr * (m / correction1) / (std::sqrt(v / correction2) + T(h.epsilon));
  }
  return out;
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
