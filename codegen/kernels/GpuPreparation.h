//===- GpuPreparation.h - bufferized kernels made fit for a GPU -*- C++ -*-===//
//
// What the GPU backend changes in the bufferized kernels before mapping them
// to threads, so that the host side of the step only launches: constant
// globals (which kernels cannot read) become buffers filled by a kernel,
// parallel loops move before reductions (one kernel, a thread per output,
// instead of a kernel per reduction step), reductions along rows take a
// block a row (RowReductions.h), independent element-wise ops one kernel
// (MultiTensorKernels.h), and the other linalg ops without a parallel
// loop (rank 0, or reducing every dimension) are wrapped in a one-iteration
// scf.parallel, a one-thread kernel. The host
// backend applies it too when it checks the GPU's loop structure on the CPU
// (HostCompileOptions::gpuTileThreads).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_KERNELS_GPUPREPARATION_H
#define AIMC_CODEGEN_KERNELS_GPUPREPARATION_H

#include "codegen/kernels/ElementwiseKernels.h"
#include "codegen/kernels/MultiTensorKernels.h"
#include "codegen/kernels/RowReductions.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

namespace mlir::aim {

struct GpuPreparationOptions {
  /// The form of the kernels built directly (a gpu.launch, or its
  /// emulation on the host).
  KernelTarget target = KernelTarget::GpuLaunch;
  RowReductionOptions rows;
  MultiTensorOptions multiTensor;
  ElementwiseOptions elementwise;
};

/// Fails on a constant global that is not a splat. Reductions along rows
/// become a block a row (RowReductions.h), runs of independent element-wise
/// ops one kernel (MultiTensorKernels.h).
llvm::Error prepareKernelsForGpu(ModuleOp module,
                                 const GpuPreparationOptions &options);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_GPUPREPARATION_H
