//===- MemoryPlanTest.cpp - arena offsets never overlap live buffers ------===//
#include "passes/MemoryPlan.h"
#include "common/ModelConfig.h"
#include "dialects/aim/AimDialect.h"
#include "frontends/ForwardBuilder.h"
#include "frontends/Presets.h"
#include "passes/Passes.h"
#include "passes/Pipelines.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

using namespace mlir;

TEST(MemoryPlan, HandExampleReusesDeadBuffers) {
  // %a (64 B) dies at %c; %b (64 B) lives to the end; %c may reuse %a's
  // bytes only if it does not overlap %a's life: %c is defined by the op
  // that last reads %a, so they are alive together and must not share.
  // %d is defined after %a died and takes %a's place.
  MLIRContext context;
  context.loadDialect<mlir::aim::AimDialect, func::FuncDialect,
                      arith::ArithDialect>();
  auto m = parseSourceString<ModuleOp>(
      "func.func @loss_and_grads(%x: tensor<16xf32>) -> tensor<16xf32> {\n"
      "  %a = aim.add %x, %x : tensor<16xf32>, tensor<16xf32> -> "
      "tensor<16xf32>\n"
      "  %b = aim.add %x, %x : tensor<16xf32>, tensor<16xf32> -> "
      "tensor<16xf32>\n"
      "  %c = aim.add %a, %b : tensor<16xf32>, tensor<16xf32> -> "
      "tensor<16xf32>\n"
      "  %d = aim.add %c, %c : tensor<16xf32>, tensor<16xf32> -> "
      "tensor<16xf32>\n"
      "  %e = aim.add %d, %b : tensor<16xf32>, tensor<16xf32> -> "
      "tensor<16xf32>\n"
      "  return %e : tensor<16xf32>\n}\n",
      &context);
  ASSERT_TRUE(m);
  mlir::aim::ArenaPlan plan =
      mlir::aim::planArena(*m->getOps<func::FuncOp>().begin());
  ASSERT_EQ(plan.buffers.size(), 4u); // %e is returned: not in the arena
  EXPECT_EQ(mlir::aim::checkArenaPlan(plan), "");
  // Three buffers are alive at once (%b, %c, %d around %d's definition): 3
  // aligned slots, not 4.
  EXPECT_EQ(plan.arenaBytes, 3 * mlir::aim::kArenaAlignment);
  // %d (buffer 3) is defined after %a (buffer 0) died: same bytes.
  EXPECT_EQ(plan.buffers[3].offset, plan.buffers[0].offset);
}

TEST(MemoryPlan, TrainingStepOfAPresetIsConsistent) {
  MLIRContext context;
  ::aim::ModelConfig config = *::aim::findPreset("aim-fmnist");
  OwningOpRef<ModuleOp> module = ::aim::buildForwardModule(context, config, 4);
  PassManager pm(&context);
  mlir::aim::addStagePipeline(pm, mlir::aim::Stage::Kernels);
  ASSERT_TRUE(succeeded(pm.run(*module)));
  for (StringRef name : {"loss_and_grads", "train_step"}) {
    auto function = module->lookupSymbol<func::FuncOp>(name);
    ASSERT_TRUE(function);
    mlir::aim::ArenaPlan plan = mlir::aim::planArena(function);
    EXPECT_EQ(mlir::aim::checkArenaPlan(plan), "") << name.str();
    // Between the largest set of buffers alive together and all of them.
    int64_t total = 0, largestLive = 0;
    size_t ops = 0;
    for (const auto &b : plan.buffers) {
      total += b.bytes;
      ops = std::max(ops, b.lastUse + 1);
    }
    for (size_t t = 0; t < ops; ++t) {
      int64_t live = 0;
      for (const auto &b : plan.buffers)
        if (b.firstUse <= t && t <= b.lastUse)
          live += b.bytes;
      largestLive = std::max(largestLive, live);
    }
    EXPECT_GE(plan.arenaBytes, largestLive) << name.str();
    if (name == "loss_and_grads") {
      EXPECT_LT(plan.arenaBytes, total / 2) << "no reuse?";
    }
    // The pass records the same plan.
    auto recorded = function->getAttrOfType<IntegerAttr>("aim.arena_bytes");
    ASSERT_TRUE(recorded);
    EXPECT_EQ(recorded.getInt(), plan.arenaBytes);
  }
}
