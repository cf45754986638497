//===- GpuProgramCompiler.h - a training step for one NVIDIA GPU -*- C++ -*-===//
//
// What `aimc --target sm_90a` puts in an artifact: the kernels of the step as
// one cubin (PTX from lowerToGpuBinary, assembled by ptxas here, so no GPU is
// needed to compile) embedded in CPU code whose entry points launch them.
// That CPU code is called like the host backend's (`f_packed(void **)` with
// device-visible buffers) and calls back into aim-run for everything CUDA:
//
//   mgpuModuleLoad / mgpuModuleGetFunction / mgpuLaunchKernel /
//   mgpuStreamCreate / mgpuStreamSynchronize / mgpuStreamDestroy /
//   mgpuModuleUnload   (upstream gpu-to-llvm's launch ABI)
//   _mlir_memref_to_llvm_alloc / _mlir_memref_to_llvm_free (temporaries)
//
// runtime/cuda/GpuRuntimeCalls.cpp implements them over the driver that
// aim-run loads with dlopen. The kernels are part 1's straightforward ones
// (docs/gpu-codegen.md); every launch is synchronous and the temporaries are
// managed memory, so host-side leftovers of the step (scalar ops) stay
// correct.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_NVPTX_GPUPROGRAMCOMPILER_H
#define AIMC_CODEGEN_NVPTX_GPUPROGRAMCOMPILER_H

#include "codegen/nvptx/NvptxCompiler.h"

namespace mlir::aim {

struct GpuProgram {
  std::string hostObject; // ELF relocatable object for the CPU, cubin inside
  GpuObject kernels;      // PTX, cubin and per-kernel resources
};

/// Compiles (and consumes) `module` (the step at the kernels stage) for
/// `gpu.chip`, with launcher code for `cpu`.
llvm::Expected<GpuProgram> compileGpuProgram(ModuleOp module,
                                             const GpuCompileOptions &gpu,
                                             const std::string &cpu);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_NVPTX_GPUPROGRAMCOMPILER_H
