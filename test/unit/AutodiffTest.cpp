//===- AutodiffTest.cpp - every VJP against central finite differences ----===//
//
// For each differentiable op, a small function `loss(params) =
// normalized_pixel_loss(op(params), target)` is differentiated by aim-autodiff
// and run by the interpreter in float64; every gradient element is compared
// with the central difference (f(p + h) - f(p - h)) / 2h of @forward.
//
// Step and tolerance: h = 1e-5. The truncation error is h^2 f''' / 6 (about
// 1e-10 here) and the rounding error about 1e-16 |f| / h (about 1e-11), so an
// error above 1e-7 absolute plus 1e-6 relative is a wrong rule, not noise.
//
//===----------------------------------------------------------------------===//

#include "dialects/aim/AimDialect.h"
#include "interpreter/Interpreter.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace mlir;

namespace {

constexpr double kStep = 1e-5;
constexpr double kAbsoluteTolerance = 1e-7;
constexpr double kRelativeTolerance = 1e-6;

/// The data arguments every case shares: the loss target and the prefix
/// lengths of a batch of 2 (K = 1 and K = 3 of N = 4 patches).
const char *kDataArgs = "%target: tensor<2x4x6xf32> {aim.input = \"target\"}, "
                        "%K: tensor<2xi32> {aim.input = \"prefix\"}";
const char *kLoss =
    "  %loss = aim.normalized_pixel_loss %y, %target, prefix %K, epsilon = "
    "1.0e-6 : tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2xi32> -> "
    "tensor<f32>\n  return %loss : tensor<f32>\n}\n";

std::string module(const std::string &params, const std::string &body) {
  return "func.func @forward(" + params + ", " + kDataArgs +
         ") -> tensor<f32> {\n" + body + "\n" + kLoss;
}

class AutodiffTest : public ::testing::Test {
protected:
  AutodiffTest() {
    context.loadDialect<mlir::aim::AimDialect, func::FuncDialect,
                        arith::ArithDialect>();
  }

  /// Random arguments: normal floats, prefix lengths {1, 3}.
  std::vector<::aim::HostTensor> randomArguments(func::FuncOp f) {
    std::mt19937_64 rng(42);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<::aim::HostTensor> args;
    for (Type t : f.getArgumentTypes()) {
      auto type = cast<RankedTensorType>(t);
      std::vector<int64_t> shape(type.getShape().begin(),
                                 type.getShape().end());
      std::vector<double> values(type.getNumElements());
      if (isa<IntegerType>(type.getElementType())) {
        values = {1, 3};
        args.push_back(
            ::aim::HostTensor::fromDoubles(::aim::DType::I32, shape, values));
        continue;
      }
      for (double &v : values)
        v = normal(rng);
      args.push_back(
          ::aim::HostTensor::fromDoubles(::aim::DType::F64, shape, values));
    }
    return args;
  }

  double loss(func::FuncOp forward,
              const std::vector<::aim::HostTensor> &args) {
    auto results = ::aim::interp::runFunction(forward, args,
                                              ::aim::interp::Precision::F64);
    EXPECT_TRUE(bool(results)) << llvm::toString(results.takeError());
    return (*results)[0].toDoubles()[0];
  }

  /// Differentiates `source`'s @forward and checks every gradient element of
  /// every {aim.param} argument against central differences.
  void checkGradients(const std::string &source) {
    OwningOpRef<ModuleOp> m = parseSourceString<ModuleOp>(source, &context);
    ASSERT_TRUE(m) << source;
    PassManager pm(&context);
    pm.addPass(mlir::aim::createAutodiffPass());
    ASSERT_TRUE(succeeded(pm.run(*m)));
    auto forward = m->lookupSymbol<func::FuncOp>("forward");
    auto lossAndGrads = m->lookupSymbol<func::FuncOp>("loss_and_grads");
    ASSERT_TRUE(forward && lossAndGrads);

    std::vector<::aim::HostTensor> args = randomArguments(forward);
    auto results = ::aim::interp::runFunction(lossAndGrads, args,
                                              ::aim::interp::Precision::F64);
    ASSERT_TRUE(bool(results)) << llvm::toString(results.takeError());
    EXPECT_NEAR((*results)[0].toDoubles()[0], loss(forward, args), 1e-15);

    unsigned gradIndex = 1;
    int checked = 0;
    for (unsigned a = 0; a < forward.getNumArguments(); ++a) {
      if (!forward.getArgAttr(a, mlir::aim::AimDialect::kParamAttrName))
        continue;
      std::vector<double> grad = (*results)[gradIndex++].toDoubles();
      std::vector<double> base = args[a].toDoubles();
      for (size_t i = 0; i < base.size(); ++i) {
        std::vector<double> shifted = base;
        shifted[i] = base[i] + kStep;
        args[a] = ::aim::HostTensor::fromDoubles(::aim::DType::F64,
                                                 args[a].shape, shifted);
        double up = loss(forward, args);
        shifted[i] = base[i] - kStep;
        args[a] = ::aim::HostTensor::fromDoubles(::aim::DType::F64,
                                                 args[a].shape, shifted);
        double down = loss(forward, args);
        double numeric = (up - down) / (2 * kStep);
        EXPECT_NEAR(grad[i], numeric,
                    kAbsoluteTolerance + kRelativeTolerance * std::abs(numeric))
            << "argument " << a << " element " << i;
        ++checked;
      }
      args[a] = ::aim::HostTensor::fromDoubles(::aim::DType::F64, args[a].shape,
                                               base);
    }
    EXPECT_GT(checked, 0);
  }

  MLIRContext context;
};

TEST_F(AutodiffTest, NormalizedPixelLoss) {
  checkGradients(module("%y: tensor<2x4x6xf32> {aim.param = \"y\"}", ""));
}

TEST_F(AutodiffTest, LinearWithBias) {
  checkGradients(module(
      "%x: tensor<2x4x5xf32> {aim.param = \"x\"}, %w: tensor<6x5xf32> "
      "{aim.param = \"w\"}, %b: tensor<6xf32> {aim.param = \"b\"}",
      "  %y = aim.linear %x, %w, %b : tensor<2x4x5xf32>, tensor<6x5xf32>, "
      "tensor<6xf32> -> tensor<2x4x6xf32>"));
}

TEST_F(AutodiffTest, LayerNorm) {
  checkGradients(module(
      "%x: tensor<2x4x6xf32> {aim.param = \"x\"}, %w: tensor<6xf32> "
      "{aim.param = \"w\"}, %b: tensor<6xf32> {aim.param = \"b\"}",
      "  %y = aim.layer_norm %x, %w, %b, epsilon = 1.0e-6 : tensor<2x4x6xf32>, "
      "tensor<6xf32>, tensor<6xf32> -> tensor<2x4x6xf32>"));
}

TEST_F(AutodiffTest, AddWithBroadcastAndReuse) {
  // %x is used twice: its gradients from both uses must add up.
  checkGradients(
      module("%x: tensor<2x4x6xf32> {aim.param = \"x\"}, %r: tensor<4x6xf32> "
             "{aim.param = \"r\"}",
             "  %s = aim.add %x, %r : tensor<2x4x6xf32>, tensor<4x6xf32> -> "
             "tensor<2x4x6xf32>\n"
             "  %t = aim.gelu %s, approximation = erf : tensor<2x4x6xf32> -> "
             "tensor<2x4x6xf32>\n"
             "  %y = aim.add %t, %x : tensor<2x4x6xf32>, tensor<2x4x6xf32> -> "
             "tensor<2x4x6xf32>"));
}

TEST_F(AutodiffTest, GeluErfAndTanh) {
  for (const char *form : {"erf", "tanh"})
    checkGradients(module("%x: tensor<2x4x6xf32> {aim.param = \"x\"}",
                          std::string("  %y = aim.gelu %x, approximation = ") +
                              form +
                              " : tensor<2x4x6xf32> -> tensor<2x4x6xf32>"));
}

TEST_F(AutodiffTest, AttentionEveryMaskKind) {
  const char *params = "%q: tensor<2x4x6xf32> {aim.param = \"q\"}, %k: "
                       "tensor<2x4x6xf32> {aim.param = \"k\"}, %v: "
                       "tensor<2x4x6xf32> {aim.param = \"v\"}";
  const char *types = "tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2x4x6xf32>";
  for (std::string mask : {"prefix_causal(%K)", "causal", "bidirectional"}) {
    std::string prefixType =
        mask.rfind("prefix", 0) == 0 ? ", tensor<2xi32>" : "";
    checkGradients(module(
        params, "  %y, %lse = aim.attention %q, %k, %v, heads = 2, mask = " +
                    mask + ", scale = 0.5 : " + types + prefixType +
                    " -> tensor<2x4x6xf32>, tensor<2x2x4xf32>"));
  }
}

TEST_F(AutodiffTest, SliceAndReshape) {
  checkGradients(module(
      "%x: tensor<2x4x12xf32> {aim.param = \"x\"}, %z: tensor<2x24xf32> "
      "{aim.param = \"z\"}",
      "  %s = aim.slice %x, dim = 2, offset = 3, size = 6 : tensor<2x4x12xf32> "
      "-> tensor<2x4x6xf32>\n"
      "  %r = aim.reshape %z : tensor<2x24xf32> -> tensor<2x4x6xf32>\n"
      "  %y = aim.add %s, %r : tensor<2x4x6xf32>, tensor<2x4x6xf32> -> "
      "tensor<2x4x6xf32>"));
}

TEST_F(AutodiffTest, CastToWiderType) {
  // Only a widening cast is smooth: a narrowing one rounds, and finite
  // differences of a rounding function say nothing about its VJP.
  checkGradients(
      "func.func @forward(%x: tensor<2x4x6xf32> {aim.param = \"x\"}, "
      "%target: tensor<2x4x6xf64>, %K: tensor<2xi32>) -> tensor<f64> {\n"
      "  %y = aim.cast %x : tensor<2x4x6xf32> -> tensor<2x4x6xf64>\n"
      "  %l = aim.normalized_pixel_loss %y, %target, prefix %K, epsilon = "
      "1.0e-6 : tensor<2x4x6xf64>, tensor<2x4x6xf64>, tensor<2xi32> -> "
      "tensor<f64>\n  return %l : tensor<f64>\n}\n");
}

TEST_F(AutodiffTest, OpWithoutVjpIsANamedError) {
  // aim.patchify has no VJP; on a path from a parameter it is an error.
  std::string source =
      "func.func @forward(%x: tensor<2x1x4x12xf32> {aim.param = \"x\"}, "
      "%target: tensor<2x3x16xf32>, %K: tensor<2xi32>) -> tensor<f32> {\n"
      "  %y = aim.patchify %x, patch_size = 4, order = channel_last : "
      "tensor<2x1x4x12xf32> -> tensor<2x3x16xf32>\n"
      "  %l = aim.normalized_pixel_loss %y, %target, prefix %K, epsilon = "
      "1.0e-6 : tensor<2x3x16xf32>, tensor<2x3x16xf32>, tensor<2xi32> -> "
      "tensor<f32>\n  return %l : tensor<f32>\n}\n";
  OwningOpRef<ModuleOp> m = parseSourceString<ModuleOp>(source, &context);
  ASSERT_TRUE(m);
  std::string diagnostics;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &d) {
    diagnostics += d.str();
    return success();
  });
  PassManager pm(&context);
  pm.addPass(mlir::aim::createAutodiffPass());
  EXPECT_TRUE(failed(pm.run(*m)));
  EXPECT_NE(diagnostics.find("has no vector-Jacobian product"),
            std::string::npos)
      << diagnostics;
}

} // namespace
