//===- aim-opt.cpp - mlir-opt with the aim dialect ------------------------===//
//
// Parses, verifies, transforms and prints IR for lit tests and research. Every
// aim pass is registered here as it lands, runnable alone.
//
//===----------------------------------------------------------------------===//

#include "codegen/kernels/OutlineKernels.h"
#include "dialects/aim/AimDialect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"
#include "passes/Passes.h"

int main(int argc, char **argv) {
  mlir::registerTransformsPasses();
  mlir::aim::registerAimPasses();
  mlir::aim::registerOutlineKernelsPass();
  mlir::DialectRegistry registry;
  registry.insert<mlir::aim::AimDialect, mlir::func::FuncDialect,
                  mlir::arith::ArithDialect, mlir::tensor::TensorDialect,
                  mlir::shard::ShardDialect>();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "aim optimizer driver\n", registry));
}
