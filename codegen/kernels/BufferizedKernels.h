//===- BufferizedKernels.h - aim IR to kernels on buffers -------*- C++ -*-===//
//
// The half of code generation every target shares: one function per distinct
// kernel (OutlineKernels.h), aim ops as linalg on tensors (LowerToLinalg.h),
// one-shot bufferization with function boundaries (results become
// out-parameters, static allocations hoisted, buffers deallocated), and
// strided memref copies as linalg copies (no runtime helper needed). The host
// compiler turns the result into loops and x86 code, the NVPTX compiler into
// GPU kernels.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_KERNELS_BUFFERIZEDKERNELS_H
#define AIMC_CODEGEN_KERNELS_BUFFERIZEDKERNELS_H

#include "codegen/kernels/KernelBuilding.h"
#include "codegen/kernels/OutlineKernels.h"

#include "llvm/Support/Error.h"

namespace mlir::aim {

/// Rewrites `module` in place; `blas` keeps GEMM operands in their stored
/// layout and marks the GEMMs (see LowerToLinalg.h); `fuseElementwise` merges
/// each elementwise producer with a single use into its consumer first (one
/// loop nest, no buffer between them: one GPU kernel instead of two), and
/// then sums to a scalar of at least `splitReductionsFrom` elements, and
/// long narrow sums of at least a sixteenth of it, are split in two stages
/// (SplitFullReductions.h; 0: none). With `tiledAttention`, float32
/// attention and its gradient become the tiled kernels for that target
/// (TiledAttention.h) instead of dense [B, heads, N, N] products. With
/// `gemmEpilogues` (and `blas`), GEMMs carry their bias and residual for the
/// call to add (kGemmEpilogueAttrName).
llvm::Expected<KernelCount>
lowerToBufferizedKernels(ModuleOp module, bool blas,
                         bool fuseElementwise = false,
                         int64_t splitReductionsFrom = 0,
                         std::optional<KernelTarget> tiledAttention = {},
                         bool gemmEpilogues = false);

/// Tiles every outermost scf.parallel nest by 1 x ... x 1 x `threads`, with
/// constant tile bounds and a guard inside (the GPU backend's blocks: a
/// block's threads run along the innermost, contiguous dimension). The host
/// compiler can apply it too, so that the tiling is checked on the CPU.
void tileInnermostParallelLoops(ModuleOp module, int64_t threads);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_BUFFERIZEDKERNELS_H
