//===- CostModelTest.cpp - the cost model's counts, checked by hand -------===//
#include "passes/CostModel.h"
#include "dialects/aim/AimDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

using namespace mlir;

namespace {
class CostModelTest : public ::testing::Test {
protected:
  CostModelTest() {
    context.loadDialect<mlir::aim::AimDialect, func::FuncDialect,
                        arith::ArithDialect>();
    target.name = "test";
    target.tensorFlops = 1e12;
    target.vectorFlops = 1e11;
    target.memoryBandwidth = 1e11;
    target.memoryBytes = 1e9;
    target.kernelLaunchSeconds = 1e-6;
  }
  OwningOpRef<ModuleOp> parse(const std::string &source) {
    OwningOpRef<ModuleOp> m = parseSourceString<ModuleOp>(source, &context);
    EXPECT_TRUE(m) << source;
    return m;
  }
  template <typename OpTy> OpTy first(ModuleOp m) {
    OpTy found;
    m.walk([&](OpTy op) {
      if (!found)
        found = op;
    });
    return found;
  }
  MLIRContext context;
  mlir::aim::TargetDescription target;
};
} // namespace

TEST_F(CostModelTest, LinearIsTwoMKNPlusBias) {
  auto m = parse("func.func @f(%x: tensor<6x4xf32>, %w: tensor<5x4xf32>, %b: "
                 "tensor<5xf32>) -> tensor<6x5xf32> {\n"
                 "  %y = aim.linear %x, %w, %b : tensor<6x4xf32>, "
                 "tensor<5x4xf32>, tensor<5xf32> -> tensor<6x5xf32>\n"
                 "  return %y : tensor<6x5xf32>\n}\n");
  auto linear = first<mlir::aim::LinearOp>(*m);
  mlir::aim::OpWork w = mlir::aim::opWork(linear);
  EXPECT_EQ(w.tensorFlops, 2.0 * 6 * 4 * 5);
  EXPECT_EQ(w.vectorFlops, 30.0);
  // Bytes at 2 per element: x 24 + w 20 + b 5 + y 30 = 79 elements.
  EXPECT_EQ(mlir::aim::kernelBytes(linear, target), 2.0 * 79);
  // Time: compute 240/1e12 + 30/1e11 = 5.4e-10 s, memory 158/1e11 = 1.58e-9.
  mlir::aim::KernelCost k = mlir::aim::kernelCost(linear, target);
  EXPECT_FALSE(k.computeBound);
  EXPECT_DOUBLE_EQ(k.seconds, 158 / 1e11 + 1e-6);
}

TEST_F(CostModelTest, AttentionCountsTheVisitedPairs) {
  // N = 3, W = 4, B = 1. Dense: 4 * 1 * 4 * 9 = 144. With the prefix-causal
  // tile rule, K in {1, 2}: visible pairs sum_q max(K, q + 1) = 1+2+3 = 6 and
  // 2+2+3 = 7, average 6.5, so 4 * 4 * 6.5 = 104.
  const char *source =
      "func.func @f(%q: tensor<1x3x4xf32>, %K: tensor<1xi32>) -> "
      "tensor<1x3x4xf32> {\n"
      "  %o, %l = aim.attention %q, %q, %q, heads = 1, mask = "
      "prefix_causal(%K), scale = 0.5 %s : tensor<1x3x4xf32>, "
      "tensor<1x3x4xf32>, tensor<1x3x4xf32>, tensor<1xi32> -> "
      "tensor<1x3x4xf32>, tensor<1x1x3xf32>\n"
      "  return %o : tensor<1x3x4xf32>\n}\n";
  std::string dense = source, tiled = source;
  dense.replace(dense.find("%s"), 2, "");
  tiled.replace(tiled.find("%s"), 2,
                "{tile_empty_from = affine_map<(d0, d1)[s0] -> (s0, d1)>, "
                "tile_full_until = affine_map<(d0, d1)[s0] -> (s0, d0 + 1)>}");
  auto a = parse(dense), b = parse(tiled);
  EXPECT_EQ(mlir::aim::opWork(first<mlir::aim::AttentionOp>(*a)).tensorFlops,
            144.0);
  EXPECT_EQ(mlir::aim::opWork(first<mlir::aim::AttentionOp>(*b)).tensorFlops,
            104.0);
}

TEST_F(CostModelTest, FusionMovesOnlyItsInputsAndOutputs) {
  auto m = parse(
      "func.func @loss_and_grads(%x: tensor<8x4xf32>, %w: tensor<4x4xf32>) -> "
      "tensor<8x4xf32> {\n"
      "  %y = aim.linear %x, %w : tensor<8x4xf32>, tensor<4x4xf32> -> "
      "tensor<8x4xf32>\n"
      "  %z = aim.gelu %y, approximation = erf : tensor<8x4xf32> -> "
      "tensor<8x4xf32>\n"
      "  return %z : tensor<8x4xf32>\n}\n");
  mlir::aim::StepCost before = mlir::aim::estimateStepCost(*m, target);
  PassManager pm(&context);
  mlir::aim::FusePassOptions options;
  options.target = "h100-sxm";
  pm.addPass(mlir::aim::createFusePass(options));
  ASSERT_TRUE(succeeded(pm.run(*m)));
  mlir::aim::StepCost after = mlir::aim::estimateStepCost(*m, target);
  ASSERT_EQ(before.kernels.size(), 2u);
  ASSERT_EQ(after.kernels.size(), 1u);
  EXPECT_EQ(after.kernels[0].kind, "fusion:gemm");
  // The intermediate y (32 elements) is neither written nor read again.
  EXPECT_EQ(before.bytes - after.bytes, 2.0 * 2 * 32);
  EXPECT_EQ(before.flops, after.flops);
}
