//===- SharedResultBuffers.h - results written over their arguments -*- C++ -*-===//
//
// train_step's new parameters and optimiser state are results named like
// arguments: the runtime keeps them on the device as the next step's
// arguments. With a buffer of their own, that is a device copy of the whole
// model state after every step (and a buffer of every parameter's size
// twice over). A result may instead be written into its argument's buffer
// when the compiled code reads that argument only before it first writes
// the result -- or in the same call, an element-wise kernel that reads each
// element of the argument and writes the same element of the result (AdamW
// on one parameter).
//
// This analysis finds those results on the bufferized entry points (results
// as out parameters, named by the same aim.param / aim.state attribute as
// their arguments); the artifact records them (GpuCode.in_place_results) and
// aim-run's CUDA device hands such a result the argument's buffer.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_KERNELS_SHAREDRESULTBUFFERS_H
#define AIMC_CODEGEN_KERNELS_SHAREDRESULTBUFFERS_H

#include "mlir/IR/BuiltinOps.h"

#include <map>
#include <string>
#include <vector>

namespace mlir::aim {

/// Entry point name -> names of the results that may share their argument's
/// buffer (entry points without any are left out).
std::map<std::string, std::vector<std::string>>
resultsSharingArgumentBuffers(ModuleOp bufferized);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_SHAREDRESULTBUFFERS_H
