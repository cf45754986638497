//===- GemmCalls.h - GEMMs as calls of a cblas_sgemm-shaped function -*- C++
//-*-===//
//
// The lowering marks each contraction that is a plain GEMM (LowerToLinalg.h,
// kGemmAttrName). Each one whose operands are contiguous row-major float32
// buffers becomes a call of `symbol`, declared with cblas_sgemm's signature
// (order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) and
// called as C = op(A) op(B) + C, C holding its initial value (zeros or the
// bias): cblas_sgemm itself for the host backend (aim-run carries OpenBLAS),
// aimcCudaSgemm (cuBLASLt, runtime/cuda/CublasLt.h) for the GPU backend. The
// others stay loop nests. A batch of GEMMs (kBatchedGemmAttrName: attention's
// products) becomes a loop of such calls, one per sample and head, each
// operand at its offset with its own leading dimension; or, on the GPU, one
// strided-batched call per sample.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_KERNELS_GEMMCALLS_H
#define AIMC_CODEGEN_KERNELS_GEMMCALLS_H

#include "codegen/kernels/WgmmaGemm.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

#include <string>
#include <vector>

namespace mlir::aim {

/// A pointer to the first element of `memref` (aligned base + offset), or
/// `elementOffset` elements past it, for a call of a C function.
Value dataPointer(OpBuilder &b, Location loc, Value memref,
                  Value elementOffset = nullptr);

/// With `stridedBatchedSymbol` (aimcCudaSgemmStridedBatched), a batch of
/// GEMMs over (sample, head) is one call of it: cblas_sgemm's signature with
/// each matrix followed by its stride (i64) and the batch count last. An
/// operand whose (sample, head) offsets are not one stride ([B, N, heads,
/// dh] views) is copied to a [B, heads, N, dh] buffer first (a result
/// copied back after).
/// Defines `symbol`, with the strided-batched signature above, as a loop of
/// calls of `gemmSymbol` (cblas_sgemm), one a matrix of the batch: the host's
/// stand-in for aimcCudaSgemmStridedBatched, so that the GPU's batching of
/// GEMMs (one call, batch-major copies) runs and is checked on the CPU.
void defineStridedBatchedLoop(ModuleOp module, StringRef symbol,
                              StringRef gemmSymbol);

/// How a GEMM call's A and B reach it.
enum class GemmOperands {
  /// As they are: float32.
  F32,
  /// Copied to bfloat16 buffers (rounded to nearest, ties to even) that the
  /// call reads (aimcCudaGemmBf16: cuBLASLt with bfloat16 A and B, float32 C
  /// and accumulation). Batch-major copies (above) round as they copy.
  BF16,
  /// The host's stand-in: the same copies holding the bfloat16 values as
  /// float32 (cblas_sgemm reads them), so that the rounding is checked on
  /// the CPU.
  BF16AsF32,
};

/// With `epilogueSymbol` (aimcCudaGemm), each GEMM that carries its bias
/// and residual (kGemmEpilogueAttrName) is one call of it:
///   (operands: 0 float32, 1 bfloat16; order, transA, transB, M, N, K,
///    alpha, A, lda, B, ldb, beta, C, ldc, D, ldd, bias)
/// computing D = alpha op(A) op(B) + beta C + bias (bias[j] on column j, a
/// null bias none), C the residual's buffer (beta 1) or D (beta 0, unread).
/// `x` (float32) rounded to bfloat16 (nearest, ties to even): the bfloat16
/// value, or with `asF32` the same value as a float32 (BF16AsF32).
Value roundToBf16(OpBuilder &b, Location loc, Value x, bool asF32);

/// Which GEMMs with epilogue become generated kernels instead of calls of
/// `epilogueSymbol` (WgmmaGemm.h), and for which target.
struct GeneratedGemms {
  GemmKernel kernel = GemmKernel::Library;
  KernelTarget target = KernelTarget::GpuLaunch;
};

/// One GEMM with epilogue of the step and what computes it: the record
/// aimc puts in the artifact (GpuCode.gemms) and --report=gpu-kernels
/// prints.
struct GemmChoice {
  std::string site; // the op's location: its layer
  int64_t m = 0, n = 0, k = 0;
  bool transposeA = false, transposeB = false, bias = false, residual = false;
  GemmKernel kernel = GemmKernel::Library;
};

/// Returns the choices made for the GEMMs with epilogue (in program order).
std::vector<GemmChoice>
callGemmFunction(ModuleOp module, StringRef symbol,
                 StringRef stridedBatchedSymbol = {},
                 GemmOperands operands = GemmOperands::F32,
                 StringRef epilogueSymbol = {}, GeneratedGemms generated = {});

/// Defines `symbol`, with the epilogue signature above, as D = bias + beta C
/// (loops) then a call of `gemmSymbol` (cblas_sgemm) with beta 1 on D: the
/// host's stand-in for aimcCudaGemm, so that the GPU's GEMM epilogues run
/// and are checked on the CPU.
void defineEpilogueGemm(ModuleOp module, StringRef symbol,
                        StringRef gemmSymbol);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_GEMMCALLS_H
