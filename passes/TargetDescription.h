//===- TargetDescription.h - what the cost model knows of a chip -*- C++
//-*-===//
//
// A target description is data (codegen/targets/*.json): peak rates,
// bandwidth, launch cost. The cost model and the fusion decisions read only
// this, so a new chip is a new file, not new code.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_PASSES_TARGETDESCRIPTION_H
#define AIMC_PASSES_TARGETDESCRIPTION_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace mlir::aim {

struct TargetDescription {
  std::string name;
  double tensorFlops = 0;     // dense bf16 tensor-core FLOP/s
  double vectorFlops = 0;     // FP32 CUDA-core FLOP/s
  double memoryBandwidth = 0; // bytes/s
  double memoryBytes = 0;     // device memory capacity
  double kernelLaunchSeconds = 0;
  int64_t gemmTileColumns = 128;
  int64_t activationBytes = 2;
  int64_t optimizerBytes = 4;
};

/// Parses a description (JSON); errors name the key and the file.
llvm::Expected<TargetDescription> parseTargetDescription(llvm::StringRef json,
                                                         llvm::StringRef file);

/// A description shipped with aimc (codegen/targets/<name>.json), or a file.
llvm::Expected<TargetDescription>
loadTargetDescription(llvm::StringRef nameOrPath);

/// Names of the descriptions shipped with aimc.
std::vector<std::string> builtinTargetNames();

} // namespace mlir::aim

#endif // AIMC_PASSES_TARGETDESCRIPTION_H
