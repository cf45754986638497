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

namespace {
Tensor<double> randomTensor(std::vector<int64_t> shape, unsigned seed) {
  Tensor<double> t(std::move(shape));
  uint64_t state = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (double &v : t.data) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    v = static_cast<double>(state >> 11) / 9007199254740992.0 * 2 - 1;
  }
  return t;
}

/// The prefix-causal tile rule, as aim-prefix-mask records it.
TilePlan prefixCausalPlan(int64_t tq, int64_t tk, int64_t fullSlack = 1) {
  TilePlan plan;
  plan.queryTile = tq;
  plan.keyTile = tk;
  plan.emptyFrom = [](int64_t, int64_t qe, int64_t k) {
    return std::max(k, qe);
  };
  plan.fullUntil = [fullSlack](int64_t qb, int64_t, int64_t k) {
    return std::max(k, qb + fullSlack);
  };
  return plan;
}
} // namespace

TEST(TiledAttention, FollowsTheRuleAndSkipsOnlyEmptyTiles) {
  const int64_t n = 7;
  Tensor<double> q = randomTensor({3, n, 6}, 1), k = randomTensor({3, n, 6}, 2),
                 v = randomTensor({3, n, 6}, 3);
  std::vector<int64_t> prefix = {1, 4, 7};
  AttentionResult<double> plain =
      attention(q, k, v, 2, Mask::PrefixCausal, prefix, 0.5);
  for (auto [tq, tk] :
       {std::pair<int64_t, int64_t>{2, 3}, {3, 2}, {1, 1}, {7, 7}}) {
    TileCounts counts;
    AttentionResult<double> tiled =
        attentionTiled(q, k, v, 2, Mask::PrefixCausal, prefix, 0.5,
                       prefixCausalPlan(tq, tk), &counts);
    for (size_t i = 0; i < plain.output.data.size(); ++i)
      ASSERT_NEAR(tiled.output.data[i], plain.output.data[i], 1e-12);
    for (size_t i = 0; i < plain.rowLogSumExp.data.size(); ++i)
      ASSERT_NEAR(tiled.rowLogSumExp.data[i], plain.rowLogSumExp.data[i],
                  1e-12);
    // The classes the rule gave agree with a brute-force look at every pair.
    TileCounts expected;
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t q0 = 0; q0 < n; q0 += tq)
        for (int64_t k0 = 0; k0 < n; k0 += tk) {
          int64_t visible = 0, pairs = 0;
          for (int64_t qi = q0; qi < std::min(n, q0 + tq); ++qi)
            for (int64_t ki = k0; ki < std::min(n, k0 + tk); ++ki, ++pairs)
              visible += maskAllows(Mask::PrefixCausal, prefix[b], qi, ki);
          (visible == 0       ? expected.empty
           : visible == pairs ? expected.full
                              : expected.partial) += 2; // two heads
        }
    EXPECT_EQ(counts.empty, expected.empty) << tq << "x" << tk;
    EXPECT_EQ(counts.full, expected.full) << tq << "x" << tk;
    EXPECT_EQ(counts.partial, expected.partial) << tq << "x" << tk;
  }
}

TEST(TiledAttention, AWrongTileRuleChangesTheResult) {
  // Calling a tile full one row too early drops the mask where it matters:
  // the tiled mode must then disagree, or it could not catch a wrong rule.
  const int64_t n = 7;
  Tensor<double> q = randomTensor({2, n, 4}, 4), k = randomTensor({2, n, 4}, 5),
                 v = randomTensor({2, n, 4}, 6);
  std::vector<int64_t> prefix = {2, 5};
  AttentionResult<double> plain =
      attention(q, k, v, 1, Mask::PrefixCausal, prefix, 0.5);
  AttentionResult<double> wrong =
      attentionTiled(q, k, v, 1, Mask::PrefixCausal, prefix, 0.5,
                     prefixCausalPlan(2, 2, /*fullSlack=*/2));
  double maxDiff = 0;
  for (size_t i = 0; i < plain.output.data.size(); ++i)
    maxDiff = std::max(maxDiff,
                       std::abs(wrong.output.data[i] - plain.output.data[i]));
  EXPECT_GT(maxDiff, 1e-3);
}

TEST(TiledAttention, BackwardFollowsTheRule) {
  const int64_t n = 6;
  Tensor<double> q = randomTensor({2, n, 4}, 7), k = randomTensor({2, n, 4}, 8),
                 v = randomTensor({2, n, 4}, 9),
                 dout = randomTensor({2, n, 4}, 10);
  std::vector<int64_t> prefix = {3, 6};
  AttentionResult<double> fwd =
      attention(q, k, v, 2, Mask::PrefixCausal, prefix, 0.7);
  AttentionGrads<double> plain =
      attentionGrad(dout, q, k, v, fwd.output, fwd.rowLogSumExp, 2,
                    Mask::PrefixCausal, prefix, 0.7);
  TileCounts counts;
  AttentionGrads<double> tiled = attentionGrad(
      dout, q, k, v, fwd.output, fwd.rowLogSumExp, 2, Mask::PrefixCausal,
      prefix, 0.7, prefixCausalPlan(2, 2), &counts);
  for (size_t i = 0; i < plain.query.data.size(); ++i) {
    ASSERT_NEAR(tiled.query.data[i], plain.query.data[i], 1e-12);
    ASSERT_NEAR(tiled.key.data[i], plain.key.data[i], 1e-12);
    ASSERT_NEAR(tiled.value.data[i], plain.value.data[i], 1e-12);
  }
  EXPECT_GT(counts.empty, 0); // sample 0 (K = 3) has tiles above the diagonal
}

TEST(LiveRows, GatherAndScatterFollowTheLivenessRule) {
  // N = 4: K = 1 -> rows 0..2 live; K = 3 -> rows 2..2; K = 4 -> none.
  Tensor<double> x = iota({3, 4, 2});
  aim::StatusOr<Tensor<double>> rows = gatherLiveRows(x, {1, 3, 4}, 5);
  ASSERT_TRUE(rows.isOk()) << rows.status().message();
  // (0,0), (0,1), (0,2), (1,2), then one zero row of padding.
  EXPECT_EQ(rows->data, (std::vector<double>{0, 1, 2, 3, 4, 5, 12, 13, 0, 0}));
  aim::StatusOr<Tensor<double>> back = scatterLiveRows(*rows, {1, 3, 4}, 4);
  ASSERT_TRUE(back.isOk());
  EXPECT_EQ(back->data[5], 5);   // live row (0, 2) back in place
  EXPECT_EQ(back->data[6], 0);   // row (0, 3) = N - 1 is never live
  EXPECT_EQ(back->data[12], 12); // (1, 2)
  EXPECT_EQ(back->data[16], 0);  // sample 2 has K = N: nothing live
  aim::StatusOr<Tensor<double>> tooMany = gatherLiveRows(x, {1, 1, 1}, 5);
  ASSERT_FALSE(tooMany.isOk());
  EXPECT_NE(tooMany.status().message().find("9 live rows"), std::string::npos);
}
