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
#include "codegen/kernels/LowerToLinalg.h"
#include "codegen/kernels/OutlineKernels.h"

#include "llvm/Support/Error.h"

namespace mlir::aim {

struct BufferizedKernelOptions {
  /// GEMM operands in their stored layout, the GEMMs marked (see
  /// LowerToLinalg.h), and with `gemmEpilogues` carrying their bias and
  /// residual, with `gemmOperands` their A and B rounded to bfloat16 before
  /// fusion (the rounding fused into their producers).
  LinalgLoweringOptions linalg;
  /// Each elementwise producer with a single use merged into its consumer
  /// first (one loop nest, no buffer between them: one GPU kernel instead of
  /// two); also a producer of other uses into a GEMM operand's bfloat16 copy.
  bool fuseElementwise = false;
  /// Sums to a scalar of at least this many elements, and long narrow sums
  /// of at least a sixteenth of it, in two stages (SplitFullReductions.h;
  /// 0: none).
  int64_t splitReductionsFrom = 0;
  /// With AttentionLowering::Tiled or Flash: the target of its kernels.
  KernelTarget attentionTarget = KernelTarget::GpuLaunch;
};

/// Rewrites `module` in place.
llvm::Expected<KernelCount>
lowerToBufferizedKernels(ModuleOp module,
                         const BufferizedKernelOptions &options);

/// Tiles every outermost scf.parallel nest by 1 x ... x 1 x `threads`, with
/// constant tile bounds and a guard inside (the GPU backend's blocks: a
/// block's threads run along the innermost, contiguous dimension). The host
/// compiler can apply it too, so that the tiling is checked on the CPU.
void tileInnermostParallelLoops(ModuleOp module, int64_t threads);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_BUFFERIZEDKERNELS_H
