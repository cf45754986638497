//===- HostCompiler.h - aim IR to x86-64 object code -------------*- C++
//-*-===//
//
// The host backend's compiler half: kernels outlined (one function per
// distinct kernel) -> aim ops -> linalg on tensors -> one-shot
// bufferization (results become out-parameters) -> loops -> LLVM dialect ->
// LLVM IR -> an ELF object for the chosen CPU. Every public function `f` gets
// a packed entry `f_packed(void **buffers)` taking its operands' and then its
// results' buffers (dense, row-major), so a loader can call any of them the
// same way. The object needs only libc (malloc/free) and libm.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_HOST_HOSTCOMPILER_H
#define AIMC_CODEGEN_HOST_HOSTCOMPILER_H

#include "codegen/kernels/LowerToLinalg.h"
#include "codegen/kernels/SplitFullReductions.h"
#include "codegen/kernels/WgmmaGemm.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <string>

namespace mlir::aim {

struct HostCompileOptions {
  std::string cpu = "x86-64-v3"; // the ISA the object may use
  /// GEMMs as calls of cblas_sgemm (resolved when aim-run loads the code)
  /// instead of loops.
  bool blas = false;
  /// Kernels fused, prepared and tiled as the GPU backend does it
  /// (elementwise fusion, GpuPreparation.h, parallel loops 1 x ... x 1 x
  /// `gpuTileThreads`, guarded), run sequentially: checks that on the CPU.
  /// 0: plain loops.
  int64_t gpuTileThreads = 0;
  /// With `blas`: batches of GEMMs as the GPU backend calls them (one
  /// strided-batched call over (sample, head), operands copied batch-major
  /// first; GemmCalls.h), the call a loop of cblas_sgemm: checks the GPU's
  /// batching on the CPU. Otherwise one cblas_sgemm call a (sample, head).
  bool stridedBatchedGemms = false;
  /// Float32 attention as the GPU backend's tiled kernels
  /// (TiledAttention.h) or flash forward (FlashAttention.h), a warp's 32
  /// lanes at once: checks them on the CPU.
  AttentionLowering attention = AttentionLowering::Dense;
  /// With `blas`: GEMM operands rounded to bfloat16 as the GPU backend's
  /// --gemm-operands bf16 copies them (kept as float32 for cblas_sgemm):
  /// checks those copies on the CPU.
  bool bf16GemmOperands = false;
  /// With `blas`: GEMMs carry their bias and residual to the call as the
  /// GPU backend's do (aimcCudaGemm), the call a stand-in that adds them
  /// and calls cblas_sgemm: checks the GPU's epilogues on the CPU.
  bool gemmEpilogues = false;
  /// With `gemmEpilogues` and `bf16GemmOperands`: GemmKernel::Wgmma
  /// computes the GEMMs the rule selects with the GPU backend's generated
  /// kernel (WgmmaGemm.h), TMA copies and wgmma products emulated: checks
  /// it on the CPU.
  GemmKernel gemmKernel = GemmKernel::Library;
  /// Sums of this many elements or more in two stages, as the GPU backend
  /// splits them (SplitFullReductions.h): one float32 accumulator over a
  /// whole gradient loses digits as it grows (aim-fmnist's gradient norm was
  /// 0.35% low), partial sums do not; and host and GPU then add in the same
  /// order. 0: one sequential sum each.
  int64_t splitReductionsFrom = kSplitReductionsFrom;
};

struct HostObject {
  std::string bytes;            // an ELF relocatable object
  unsigned kernelLaunches = 0;  // kernel calls the entry points make
  unsigned distinctKernels = 0; // functions compiled for them
};

/// Compiles (and consumes) `module`: each distinct kernel once (see
/// OutlineKernels.h), the entry points as sequences of kernel calls.
llvm::Expected<HostObject> compileToObject(ModuleOp module,
                                           const HostCompileOptions &options);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_HOST_HOSTCOMPILER_H
