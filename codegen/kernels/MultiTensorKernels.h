//===- MultiTensorKernels.h - independent element-wise ops, one kernel -*- C++ -*-===//
//
// The optimiser fusion updates every parameter with its own element-wise op
// (AdamW: the parameter and both moments): one kernel a parameter, a few
// hundred launches a step for aim-600m, many of them over a few thousand
// elements. Consecutive element-wise ops of one kernel function that do not
// depend on one another become one kernel instead (a "multi-tensor" kernel,
// as fused optimisers do it): a grid of G blocks of T threads strides over
// the first op's elements, then the second's, and so on; thread g takes
// elements g, g + G T, g + 2 G T, ... of each.
//
// A kernel's parameters (a pointer a buffer) must fit the 32 KB that PTX ISA
// 8.1 allows them on sm_70 and later (4 KB before): a run takes ops until
// their buffers would pass kMaxKernelBuffers, then a new kernel starts.
// aim-600m's AdamW, about 1600 buffers, is one kernel (six with 4 KB).
//
// The host backend runs the same partition when it checks the GPU's loop
// structure on the CPU (HostCompileOptions::gpuTileThreads).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_KERNELS_MULTITENSORKERNELS_H
#define AIMC_CODEGEN_KERNELS_MULTITENSORKERNELS_H

#include "codegen/kernels/KernelBuilding.h"

#include "mlir/IR/BuiltinOps.h"

#include <cstdint>

namespace mlir::aim {

/// Distinct buffers one multi-tensor kernel may take (8 bytes each of the
/// 32764 bytes of kernel parameters, with room for scalars).
inline constexpr int64_t kMaxKernelBuffers = 3800;

struct MultiTensorOptions {
  int64_t threads = 256; // T
  int64_t maxBlocks = 1024; // G at most; fewer if the ops are small
  int64_t maxBuffers = kMaxKernelBuffers;
};

/// Merges every run of at least two such ops on buffers in `module`;
/// returns how many kernels it made.
int mergeIndependentElementwise(ModuleOp module, KernelTarget target,
                                const MultiTensorOptions &options = {});

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_MULTITENSORKERNELS_H
