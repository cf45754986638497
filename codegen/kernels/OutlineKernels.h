//===- OutlineKernels.h - one function per distinct kernel ------*- C++ -*-===//
#ifndef AIMC_CODEGEN_KERNELS_OUTLINEKERNELS_H
#define AIMC_CODEGEN_KERNELS_OUTLINEKERNELS_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

#include <memory>

namespace mlir::aim {

/// How many kernel launches the entry points make and how many distinct
/// kernel functions they call.
struct KernelCount {
  unsigned launches = 0;
  unsigned distinct = 0;
};

/// Moves each kernel of the module's entry points -- every aim.fusion region
/// and every aim op outside one that computes (not the views aim.reshape and
/// aim.slice) -- into a private function and calls it. Kernels that are
/// identical up to annotations (aim.scope, aim.arena_offsets: anything
/// discardable) share one function, so the twelve blocks of a trunk compile
/// their kernels once.
KernelCount outlineKernels(ModuleOp module);

/// `aim-outline-kernels`: outlineKernels as a pass, for aim-opt.
std::unique_ptr<Pass> createOutlineKernelsPass();
void registerOutlineKernelsPass();

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_OUTLINEKERNELS_H
