//===- NvptxCompiler.h - aim IR to PTX for NVIDIA GPUs ----------*- C++ -*-===//
//
// The first slice of the GPU backend (issue 7): every distinct kernel of the
// module (the host compiler's outlined, bufferized kernels) becomes GPU code
// through upstream MLIR -- linalg to parallel loops, tiled, mapped to blocks
// and threads, outlined into a gpu.module, NVVM, LLVM's NVPTX backend (with
// libdevice for erf, exp, ...) -- and ptxas assembles it for the chip to
// report registers, spills and shared memory per kernel. The kernels are the
// straightforward "correct first" ones: one thread per output element of a
// parallel loop nest, reductions sequential per thread; GEMMs are loop
// kernels too, not cuBLASLt yet.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_NVPTX_NVPTXCOMPILER_H
#define AIMC_CODEGEN_NVPTX_NVPTXCOMPILER_H

#include "codegen/kernels/GemmCalls.h"
#include "codegen/kernels/LowerToLinalg.h"
#include "codegen/kernels/WgmmaGemm.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <map>
#include <string>
#include <vector>

namespace mlir::aim {

/// The chips this backend emits code for.
const std::vector<std::string> &supportedGpuChips();

struct GpuCompileOptions {
  std::string chip = "sm_90a";
  std::string libdevice = "/usr/local/cuda/nvvm/libdevice/libdevice.10.bc";
  std::string ptxas = "/usr/local/cuda/bin/ptxas";
  /// GEMMs as calls of aimcCudaSgemm (cuBLASLt in aim-run) instead of loop
  /// kernels (codegen/kernels/GemmCalls.h).
  bool cublas = true;
  /// Float32 attention as dense batched GEMMs and softmax kernels over
  /// [B, heads, N, N], as the tiled kernels (TiledAttention.h: a warp a row,
  /// the tile rule, nothing N x N), or its forward on tensor cores
  /// (FlashAttention.h).
  AttentionLowering attention = AttentionLowering::Dense;
  /// With `cublas`: every GEMM's A and B copied to bfloat16 (rounded to
  /// nearest even) and multiplied by cuBLASLt as bfloat16, C and the
  /// accumulation float32 (aimcCudaGemmBf16; GemmCalls.h).
  bool bf16GemmOperands = false;
  /// With `cublas`: each linear layer's and matmul's bias and residual added
  /// by the call (aimcCudaGemm: cuBLASLt's bias epilogue, C apart from D);
  /// false: a kernel writes the starting C first (aimcCudaSgemm, beta 1), as
  /// before the epilogues -- kept to tell the two apart on a GPU. Needs
  /// float32 operands.
  bool gemmEpilogues = true;
  /// GemmKernel::Wgmma: the GEMMs with epilogue that the rule selects
  /// (wgmmaGemmApplies) become the generated TMA/wgmma kernel
  /// (WgmmaGemm.h) instead of cuBLASLt calls. Needs bf16GemmOperands.
  GemmKernel gemmKernel = GemmKernel::Library;
};

/// What ptxas says of one kernel.
struct GpuKernelInfo {
  std::string name;
  int registers = 0;
  int sharedBytes = 0;
  int spillStoreBytes = 0, spillLoadBytes = 0, stackBytes = 0;
  /// One launch, as the IR tells before NVVM: the bytes of the buffers it
  /// reads and writes (each once: a lower bound) and its floating-point
  /// operations (per thread, loops counted, times the threads).
  int64_t bytes = 0, flops = 0;
  /// Whether those flops are tensor-core MMAs (mma.sync, wgmma): their
  /// roofline is the tensor peak, not the CUDA cores'.
  bool tensorCores = false;
};

struct GpuObject {
  std::string ptx;
  std::string cubin;                  // filled in by assembleWithPtxas
  std::vector<GpuKernelInfo> kernels; // in PTX order
  unsigned kernelCalls = 0;     // outlined kernel calls of the entry points
  unsigned distinctKernels = 0; // functions they call
  /// Whether host code between the launches reads or writes buffers (then
  /// every launch must finish first); false: the host only launches.
  bool hostTouchesMemory = true;
  /// Entry point -> results written into their arguments' buffers
  /// (SharedResultBuffers.h).
  std::map<std::string, std::vector<std::string>> resultsSharingArguments;
  /// The GEMMs with epilogue and what computes each (--gemm-kernel).
  std::vector<GemmChoice> gemms;
};

/// Lowers (and consumes) `module` to GPU kernels in one gpu.binary holding
/// their PTX, launched by the entry points (gpu.launch_func, still on
/// memrefs). Fails naming an unsupported chip.
llvm::Expected<GpuObject> lowerToGpuBinary(ModuleOp module,
                                           const GpuCompileOptions &options);

/// lowerToGpuBinary, for the PTX alone.
llvm::Expected<GpuObject> compileToPtx(ModuleOp module,
                                       const GpuCompileOptions &options);

/// Assembles `ptx` with ptxas -v for `options.chip` into `cubin` and fills
/// in the kernels' resources; fails with ptxas' message when it rejects the
/// PTX.
llvm::Error assembleWithPtxas(GpuObject &object,
                              const GpuCompileOptions &options);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_NVPTX_NVPTXCOMPILER_H
