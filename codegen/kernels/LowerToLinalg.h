//===- LowerToLinalg.h - aim ops as linalg on tensors ------------*- C++
//-*-===//
#ifndef AIMC_CODEGEN_KERNELS_LOWERTOLINALG_H
#define AIMC_CODEGEN_KERNELS_LOWERTOLINALG_H

#include "codegen/kernels/GemmCalls.h"
#include "dialects/aim/AimOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::aim {

/// Marks the contractions (GEMMs) the host compiler may call a BLAS for: an
/// array [transpose A, transpose B] on the linalg.generic.
inline constexpr llvm::StringLiteral kGemmAttrName = "aim.gemm";

/// On a GEMM (beside kGemmAttrName) whose epilogue is in the op: [has bias,
/// has residual]. Its inputs are A, B, then the bias [N] and the residual
/// [M, N] where present; its output starts empty, each element from bias +
/// residual at k = 0. A call then computes D = A B + 1 C + bias with C the
/// residual's buffer (GemmCalls.h): no kernel writes a starting C.
inline constexpr llvm::StringLiteral kGemmEpilogueAttrName = "aim.gemm_epilogue";

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

/// How attention is lowered.
enum class AttentionLowering {
  /// Scores and probabilities as [B, heads, N, N] tensors: batches of GEMMs
  /// and element-wise and row ops around them.
  Dense,
  /// Float32 attention as aim.attention_kernel / aim.attention_grad_kernel
  /// on buffers, kernels that never hold an N x N tensor (TiledAttention.h).
  Tiled,
  /// The same buffer forms, as kernels that multiply bfloat16 tiles on
  /// tensor cores (FlashAttention.h).
  Flash,
};

/// Marks a narrowing copy -- a GEMM operand's bfloat16 copy made in the
/// lowering (LinalgLoweringOptions::gemmOperands) or an aim.cast
/// (aim-bf16-gemm-operands) -- before fusion: its producer is merged into it
/// even when the producer has other uses, so that the producing kernel
/// writes the copy beside its result.
inline constexpr llvm::StringLiteral kGemmOperandCastAttrName =
    "aim.gemm_operand_cast";

/// On a GEMM whose A and B were rounded that way: the call reads them as
/// they are.
inline constexpr llvm::StringLiteral kGemmOperandsRoundedAttrName =
    "aim.gemm_operands_rounded";

struct LinalgLoweringOptions {
  /// GEMM operands keep their stored layout (a BLAS reads them as they
  /// are), and GEMMs are marked (kGemmAttrName, kBatchedGemmAttrName).
  bool blas = false;
  AttentionLowering attention = AttentionLowering::Dense;
  /// With `blas`: plain GEMMs carry their bias and residual
  /// (kGemmEpilogueAttrName) instead of starting from a C a kernel fills.
  bool gemmEpilogues = false;
  /// With `gemmEpilogues`: their A and B rounded to bfloat16 here, by copies
  /// (kGemmOperandCastAttrName) that fusion merges into the producers.
  GemmOperands gemmOperands = GemmOperands::F32;
};

/// Rewrites the aim ops of `module` into linalg, tensor, arith and math ops
/// on tensors (with Tiled attention, also the attention kernel ops on
/// buffers). Fails, naming the op, when one has no lowering.
LogicalResult lowerAimToLinalg(ModuleOp module,
                               const LinalgLoweringOptions &options = {});

/// Whether query position q may see key position k under `mask` (`prefix`:
/// the sample's prefix length as an index; unused unless prefix_causal).
Value keyIsVisible(OpBuilder &b, Location loc, MaskKind mask, Value q, Value k,
                   Value prefix);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_LOWERTOLINALG_H
