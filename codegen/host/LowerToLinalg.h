//===- LowerToLinalg.h - aim ops as linalg on tensors ------------*- C++
//-*-===//
#ifndef AIMC_CODEGEN_HOST_LOWERTOLINALG_H
#define AIMC_CODEGEN_HOST_LOWERTOLINALG_H

#include "mlir/IR/BuiltinOps.h"

namespace mlir::aim {

/// Rewrites the aim ops of `module` that have a lowering into linalg, tensor,
/// arith and math ops on tensors. Fails, naming the op, when one is left that
/// has none yet.
LogicalResult lowerAimToLinalg(ModuleOp module);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_HOST_LOWERTOLINALG_H
