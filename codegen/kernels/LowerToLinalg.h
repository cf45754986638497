//===- LowerToLinalg.h - aim ops as linalg on tensors ------------*- C++
//-*-===//
#ifndef AIMC_CODEGEN_KERNELS_LOWERTOLINALG_H
#define AIMC_CODEGEN_KERNELS_LOWERTOLINALG_H

#include "mlir/IR/BuiltinOps.h"

namespace mlir::aim {

/// Marks the contractions (GEMMs) the host compiler may call a BLAS for: an
/// array [transpose A, transpose B] on the linalg.generic.
inline constexpr llvm::StringLiteral kGemmAttrName = "aim.gemm";

/// Marks a batch of GEMMs (attention's products per sample and head): a
/// linalg.generic over (outer batch, inner batch, m, n, k), its operand
/// maps permutations of those dimensions, C(o, i, m, n) += A(m, k) B(k, n).
/// GemmCalls.h derives the layouts from the maps and the buffers' strides.
inline constexpr llvm::StringLiteral kBatchedGemmAttrName = "aim.batched_gemm";

/// Marks a scalar computation (a rank-0 linalg.generic) that elementwise
/// fusion must not copy into its consumer's loop: AdamW's bias corrections,
/// two double-precision powers, once a step instead of once an element.
inline constexpr llvm::StringLiteral kComputedOnceAttrName =
    "aim.computed_once";

/// Rewrites the aim ops of `module` into linalg, tensor, arith and math ops
/// on tensors. With `blas`, GEMM operands keep their stored layout (a BLAS
/// reads them as they are). Fails, naming the op, when one has no lowering.
LogicalResult lowerAimToLinalg(ModuleOp module, bool blas = false);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_LOWERTOLINALG_H
