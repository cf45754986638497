//===- InterpreterKernelsTest.cpp - each interpreter op against hand values
//===//
//
// Expected values are worked out by hand (shown in the comments) or are
// textbook constants, never computed with the code under test.
//
//===----------------------------------------------------------------------===//

#include "interpreter/Kernels.h"

#include <gtest/gtest.h>

using namespace aim::interp;

namespace {
Tensor<double> tensor(std::vector<int64_t> shape, std::vector<double> values) {
  Tensor<double> t(std::move(shape));
  EXPECT_EQ(t.data.size(), values.size());
  t.data = std::move(values);
  return t;
}

Tensor<double> iota(std::vector<int64_t> shape) {
  Tensor<double> t(std::move(shape));
  for (size_t i = 0; i < t.data.size(); ++i)
    t.data[i] = static_cast<double>(i);
  return t;
}
} // namespace

TEST(PatchifyKernel, ChannelFirstAndChannelLastOrders) {
  // One image, C = 2, 4x4, value = c * 16 + row * 4 + col; p = 2, grid 2x2.
  Tensor<double> images = iota({1, 2, 4, 4});
  Tensor<double> first = patchify(images, 2, /*channelLast=*/false);
  Tensor<double> last = patchify(images, 2, /*channelLast=*/true);
  ASSERT_EQ(first.shape, (std::vector<int64_t>{1, 4, 8}));
  // Patch n = 1 is grid row 0, column 1: pixel rows 0-1, columns 2-3.
  // (c, r, col) order: c0: 2, 3, 6, 7; c1: 18, 19, 22, 23.
  std::vector<double> expectFirst = {2, 3, 6, 7, 18, 19, 22, 23};
  // (r, col, c) order: (0,0): 2, 18; (0,1): 3, 19; (1,0): 6, 22; (1,1): 7, 23.
  std::vector<double> expectLast = {2, 18, 3, 19, 6, 22, 7, 23};
  for (int k = 0; k < 8; ++k) {
    EXPECT_EQ(first.data[8 + k], expectFirst[k]) << k;
    EXPECT_EQ(last.data[8 + k], expectLast[k]) << k;
  }
  // Patch n = 2 is grid row 1, column 0: its first value is pixel (2, 0) = 8.
  EXPECT_EQ(first.data[16], 8);
}

TEST(LinearKernel, WeightIsOutByInWithOptionalBias) {
  Tensor<double> x = tensor({1, 2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor<double> w = tensor({2, 3}, {1, 0, -1, 0.5, 0.5, 0.5});
  Tensor<double> b = tensor({2}, {10, 20});
  Tensor<double> y = linear(x, w, &b);
  ASSERT_EQ(y.shape, (std::vector<int64_t>{1, 2, 2}));
  // Row [1,2,3]: 1 - 3 = -2 (+10), (1+2+3)/2 = 3 (+20); row [4,5,6]: -2, 7.5.
  EXPECT_DOUBLE_EQ(y.data[0], 8);
  EXPECT_DOUBLE_EQ(y.data[1], 23);
  EXPECT_DOUBLE_EQ(y.data[2], 8);
  EXPECT_DOUBLE_EQ(y.data[3], 27.5);
  Tensor<double> noBias = linear<double>(x, w, nullptr);
  EXPECT_DOUBLE_EQ(noBias.data[3], 7.5);
}

TEST(LayerNormKernel, BiasedVarianceAndAffine) {
  // [1, 2, 3, 4]: mean 2.5, biased variance 1.25.
  Tensor<double> x = tensor({1, 4}, {1, 2, 3, 4});
  Tensor<double> w = tensor({4}, {1, 2, 1, 1});
  Tensor<double> b = tensor({4}, {0, 0, 0, 1});
  const double eps = 1e-6, inv = 1.0 / std::sqrt(1.25 + eps);
  Tensor<double> y = layerNorm(x, w, b, eps);
  EXPECT_DOUBLE_EQ(y.data[0], -1.5 * inv);
  EXPECT_DOUBLE_EQ(y.data[1], -0.5 * inv * 2);
  EXPECT_DOUBLE_EQ(y.data[2], 0.5 * inv);
  EXPECT_DOUBLE_EQ(y.data[3], 1.5 * inv + 1);
}

TEST(AddKernel, BroadcastsRhsOverLeadingDims) {
  Tensor<double> lhs = iota({2, 2, 3});
  Tensor<double> rhs = tensor({2, 3}, {100, 200, 300, 400, 500, 600});
  Tensor<double> y = add(lhs, rhs);
  EXPECT_EQ(y.data[0], 100);
  EXPECT_EQ(y.data[5], 605);
  EXPECT_EQ(y.data[6], 106); // second sample starts the rhs again
  EXPECT_EQ(y.data[11], 611);
}

TEST(GeluKernel, ErfAndTanhForms) {
  Tensor<double> x = tensor({3}, {1, -1, 0});
  Tensor<double> exact = gelu(x, /*tanhForm=*/false);
  // x * Phi(x): Phi(1) = 0.8413447460685429, Phi(-1) = 0.15865525393145707.
  EXPECT_NEAR(exact.data[0], 0.8413447460685429, 1e-15);
  EXPECT_NEAR(exact.data[1], -0.15865525393145707, 1e-15);
  EXPECT_EQ(exact.data[2], 0);
  Tensor<double> approx = gelu(x, /*tanhForm=*/true);
  // 0.5 * (1 + tanh(sqrt(2/pi) * 1.044715)) = 0.8411919906082768.
  EXPECT_NEAR(approx.data[0], 0.8411919906082768, 1e-15);
}

TEST(PosEmbed2dKernel, ColumnFirstThenRowSinThenCos) {
  // Width 8: quarters of 2 frequencies, w_k = 10000^(-k/2) = {1, 0.01}.
  Tensor<double> pe = posEmbed2d<double>(2, 3, 8);
  ASSERT_EQ(pe.shape, (std::vector<int64_t>{6, 8}));
  // Token n = 5 is row i = 1, column j = 2.
  const double *t = &pe.data[5 * 8];
  EXPECT_DOUBLE_EQ(t[0], std::sin(2.0));
  EXPECT_DOUBLE_EQ(t[1], std::sin(0.02));
  EXPECT_DOUBLE_EQ(t[2], std::cos(2.0));
  EXPECT_DOUBLE_EQ(t[3], std::cos(0.02));
  EXPECT_DOUBLE_EQ(t[4], std::sin(1.0));
  EXPECT_DOUBLE_EQ(t[5], std::sin(0.01));
  EXPECT_DOUBLE_EQ(t[6], std::cos(1.0));
  EXPECT_DOUBLE_EQ(t[7], std::cos(0.01));
}

TEST(SliceKernel, TakesRangeAlongOneDim) {
  Tensor<double> x = iota({2, 6});
  Tensor<double> y = slice(x, 1, 2, 3);
  EXPECT_EQ(y.data, (std::vector<double>{2, 3, 4, 8, 9, 10}));
}

TEST(AttentionKernel, MaskKindsByHand) {
  // One sample, N = 3, one head of dh = 1; q = k = 1 everywhere, so every
  // visible key gets the same weight and the output is the mean of the
  // visible values v = {1, 2, 4}.
  Tensor<double> q = tensor({1, 3, 1}, {1, 1, 1});
  Tensor<double> v = tensor({1, 3, 1}, {1, 2, 4});
  Tensor<double> causal = attention(q, q, v, 1, Mask::Causal, {}, 1.0).output;
  EXPECT_DOUBLE_EQ(causal.data[0], 1);
  EXPECT_DOUBLE_EQ(causal.data[1], 1.5);
  EXPECT_DOUBLE_EQ(causal.data[2], 7.0 / 3);
  Tensor<double> full =
      attention(q, q, v, 1, Mask::Bidirectional, {}, 1.0).output;
  EXPECT_DOUBLE_EQ(full.data[0], 7.0 / 3);
  // Prefix K = 2: queries 0 and 1 see keys {0, 1}; query 2 sees all.
  Tensor<double> prefix =
      attention(q, q, v, 1, Mask::PrefixCausal, {2}, 1.0).output;
  EXPECT_DOUBLE_EQ(prefix.data[0], 1.5);
  EXPECT_DOUBLE_EQ(prefix.data[1], 1.5);
  EXPECT_DOUBLE_EQ(prefix.data[2], 7.0 / 3);
}

TEST(AttentionKernel, SoftmaxWeightsAndHeads) {
  // Two heads of dh = 1 over N = 2 keys, bidirectional. Head 0: q = 1,
  // keys {0, 1}, scale 2: weights softmax(0, 2). Head 1: q = 0, uniform.
  Tensor<double> q = tensor({1, 2, 2}, {1, 0, 1, 0});
  Tensor<double> k = tensor({1, 2, 2}, {0, 5, 1, 7});
  Tensor<double> v = tensor({1, 2, 2}, {10, 3, 20, 5});
  AttentionResult<double> r =
      attention(q, k, v, 2, Mask::Bidirectional, {}, 2.0);
  double w1 = std::exp(2.0) / (1 + std::exp(2.0));
  EXPECT_NEAR(r.output.data[0], 10 * (1 - w1) + 20 * w1, 1e-12);
  EXPECT_NEAR(r.output.data[1], 4, 1e-12);
  // Row statistics [B, heads, N]: log(e^0 + e^2) for head 0, log 2 for head 1.
  EXPECT_NEAR(r.rowLogSumExp.data[0], std::log(1 + std::exp(2.0)), 1e-12);
  EXPECT_NEAR(r.rowLogSumExp.data[2], std::log(2.0), 1e-12);
}

TEST(NormalizedPixelLossKernel, OneTargetByHand) {
  // N = 2, P = 2, one sample, K = 1: only patch 1 = [1, 3] is a target.
  // mean 2, Bessel variance 2, normalised target [-1, 1] / sqrt(2 + eps);
  // prediction 0: loss = mean of squares = 1 / (2 + eps).
  Tensor<double> pred = tensor({1, 2, 2}, {0, 0, 9, 9});
  Tensor<double> target = tensor({1, 2, 2}, {5, 6, 1, 3});
  aim::StatusOr<double> loss = normalizedPixelLoss(pred, target, {1}, 1e-6);
  ASSERT_TRUE(loss.isOk()) << loss.status().message();
  EXPECT_DOUBLE_EQ(*loss, 1.0 / (2 + 1e-6));
}

TEST(NormalizedPixelLossKernel, AveragesOverPairsOfTheWholeBatch) {
  // Sample 0 (K = 1) has one target with loss 1/(2+eps) as above; sample 1
  // (K = 2 = N) has none. The mean is over 1 pair, not over 2 samples.
  Tensor<double> pred = tensor({2, 2, 2}, {0, 0, 9, 9, 0, 0, 9, 9});
  Tensor<double> target = tensor({2, 2, 2}, {5, 6, 1, 3, 5, 6, 1, 3});
  aim::StatusOr<double> loss = normalizedPixelLoss(pred, target, {1, 2}, 1e-6);
  ASSERT_TRUE(loss.isOk());
  EXPECT_DOUBLE_EQ(*loss, 1.0 / (2 + 1e-6));
}

TEST(NormalizedPixelLossKernel, NoTargetIsAnError) {
  Tensor<double> pred = tensor({1, 2, 2}, {0, 0, 0, 0});
  aim::StatusOr<double> loss = normalizedPixelLoss(pred, pred, {2}, 1e-6);
  ASSERT_FALSE(loss.isOk());
  EXPECT_NE(loss.status().message().find("no loss target"), std::string::npos);
}

TEST(NormalizedPixelLossKernel, PrefixOutOfRangeIsAnError) {
  Tensor<double> pred = tensor({1, 2, 2}, {0, 0, 0, 0});
  aim::StatusOr<double> loss = normalizedPixelLoss(pred, pred, {0}, 1e-6);
  ASSERT_FALSE(loss.isOk());
  EXPECT_NE(loss.status().message().find("[1, N] = [1, 2]"), std::string::npos);
}

TEST(CastKernel, BF16RoundsToNearestEven) {
  // bfloat16 keeps 7 fraction bits: the spacing at 1 is 2^-7.
  Tensor<double> x =
      tensor({3}, {1 + std::ldexp(1.0, -8), 1 + std::ldexp(3.0, -9),
                   1 + std::ldexp(3.0, -8)});
  Tensor<double> y = cast(x, RoundTo::BF16);
  EXPECT_EQ(y.data[0], 1.0);                     // tie: to even (down)
  EXPECT_EQ(y.data[1], 1 + std::ldexp(1.0, -7)); // above the tie: up
  EXPECT_EQ(y.data[2], 1 + std::ldexp(2.0, -7)); // tie: to even (up)
  Tensor<double> f32 = cast(tensor({1}, {0.1}), RoundTo::F32);
  EXPECT_EQ(f32.data[0], static_cast<double>(0.1f));
}
